/*
 * proto.h: the Varlink protocol of mmsrvd, shared by the daemon and libmmsrv.
 *
 * Varlink frames each message as one JSON object followed by a NUL byte on a
 * UNIX stream socket.  A call is {"method": "iface.Method", "parameters":
 * {...}, "oneway"|"more"|"upgrade": bool}; a reply is {"parameters": {...},
 * "continues": bool} or {"error": "iface.ErrorName", "parameters": {...}}.
 * Descriptors travel as SCM_RIGHTS with the first byte of the reply that
 * returns them, and the reply names each one by its index among them.
 *
 * This module frames, parses, encodes and checks messages; it never touches a
 * socket, so either side can drive it from any loop.  Every byte it parses is
 * untrusted: each failure has a specific negative errno and a reason.
 * jansson does the JSON.
 */
#ifndef MMSRV_PROTO_H
#define MMSRV_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The interface mmsrvd serves, and the Varlink service interface. */
#define PROTO_INTERFACE         "io.mmsrvd"
#define PROTO_SERVICE_INTERFACE "org.varlink.service"

/* The largest message either side accepts, NUL excluded. */
#define PROTO_MAX_MESSAGE (64 * 1024)
/* The most descriptors one message carries. */
#define PROTO_MAX_FDS 8

/* Region names: 1 to 63 characters of [A-Za-z0-9._-]. */
#define PROTO_NAME_MAX 63

/* Error names of io.mmsrvd and of org.varlink.service. */
#define PROTO_ERR_REGION_NOT_FOUND       "io.mmsrvd.RegionNotFound"
#define PROTO_ERR_REGION_EXISTS          "io.mmsrvd.RegionExists"
#define PROTO_ERR_PERMISSION_DENIED      "io.mmsrvd.PermissionDenied"
#define PROTO_ERR_NO_SPACE               "io.mmsrvd.NoSpace"
#define PROTO_ERR_RESOURCE_UNAVAILABLE   "io.mmsrvd.ResourceUnavailable"
#define PROTO_ERR_NOT_ATTACHED           "io.mmsrvd.NotAttached"
#define PROTO_ERR_INVALID_MESSAGE        "io.mmsrvd.InvalidMessage"
#define PROTO_ERR_INTERFACE_NOT_FOUND    "org.varlink.service.InterfaceNotFound"
#define PROTO_ERR_METHOD_NOT_FOUND       "org.varlink.service.MethodNotFound"
#define PROTO_ERR_METHOD_NOT_IMPLEMENTED "org.varlink.service.MethodNotImplemented"
#define PROTO_ERR_INVALID_PARAMETER      "org.varlink.service.InvalidParameter"
#define PROTO_ERR_EXPECTED_MORE          "org.varlink.service.ExpectedMore"

/* ------------------------------------------------------------------ */
/* Framing                                                              */
/* ------------------------------------------------------------------ */

/*
 * A receive buffer that turns a byte stream into NUL-terminated messages.
 * The owner reads from its socket straight into proto_reader_space(), then
 * takes complete messages out with proto_reader_next().  The buffer grows
 * as needed, never past max_message + 1 bytes per message.
 */
struct proto_reader {
    char *buf;
    size_t cap;   /* bytes allocated */
    size_t start; /* first byte not yet returned as a message */
    size_t len;   /* bytes held, from buf */
    size_t scan;  /* bytes from start already known to hold no NUL */
    size_t max;   /* largest message, NUL excluded */
};

/* 0, or -ENOMEM.  max_message 0 means PROTO_MAX_MESSAGE. */
int proto_reader_init(struct proto_reader *r, size_t max_message);
void proto_reader_release(struct proto_reader *r);

/*
 * Room to receive into: *dst and *room (at least 1 byte) on 0; -ENOMEM;
 * -EMSGSIZE when the held message under way is already longer than the
 * maximum (proto_reader_next() said so; close the stream).
 * Bytes already returned as messages are dropped first.
 */
int proto_reader_space(struct proto_reader *r, char **dst, size_t *room);
/* n bytes were written at the last proto_reader_space(). */
void proto_reader_commit(struct proto_reader *r, size_t n);

/*
 * The next complete message: 1 with *msg (NUL-terminated, valid until the
 * next call on r) and *len (NUL excluded); 0 when more bytes are needed;
 * -EMSGSIZE when the message under way is longer than the maximum (the
 * stream cannot be resynchronized: close it).
 */
int proto_reader_next(struct proto_reader *r, const char **msg, size_t *len);

/* True when bytes of an unfinished message are held. */
bool proto_reader_partial(const struct proto_reader *r);
/* Bytes held that proto_reader_next() has not returned yet. */
size_t proto_reader_held(const struct proto_reader *r);

/* ------------------------------------------------------------------ */
/* Parsing                                                              */
/* ------------------------------------------------------------------ */

/* Call flags, as Varlink's boolean members name them. */
#define PROTO_ONEWAY  0x1u
#define PROTO_MORE    0x2u
#define PROTO_UPGRADE 0x4u

/* A parsed call.  parameters is never NULL (an empty object when absent);
 * method and parameters live as long as the call. */
struct proto_call {
    json_t *root;
    const char *method; /* "iface.Method" */
    json_t *parameters; /* borrowed from root */
    unsigned flags;     /* PROTO_ONEWAY | PROTO_MORE | PROTO_UPGRADE */
};

/*
 * Parse one message as a call.  0 on success (release with
 * proto_call_release); otherwise the call holds nothing and *why says what
 * is wrong: -EBADMSG not valid JSON (or not UTF-8, or a NUL inside);
 * -EPROTO not an object, "method" missing or not a string or not of the
 * form iface.Method, "parameters" not an object, a flag not a boolean, or a
 * member Varlink does not define.
 */
int proto_call_parse(const char *msg, size_t len, struct proto_call *call, const char **why);
void proto_call_release(struct proto_call *call);

/* A parsed reply: error NULL for a result; parameters never NULL. */
struct proto_reply {
    json_t *root;
    const char *error;  /* "iface.ErrorName", or NULL */
    json_t *parameters; /* borrowed from root */
    bool continues;
};

/* As proto_call_parse, for a reply. */
int proto_reply_parse(const char *msg, size_t len, struct proto_reply *reply, const char **why);
void proto_reply_release(struct proto_reply *reply);

/* ------------------------------------------------------------------ */
/* Encoding                                                             */
/* ------------------------------------------------------------------ */

/*
 * Each returns a malloc()ed message including its terminating NUL, and its
 * length including the NUL in *len; NULL on -ENOMEM.  params is stolen (a
 * reference is consumed even on failure); NULL means {}.
 */
char *proto_encode_call(const char *method, json_t *params, unsigned flags, size_t *len);
char *proto_encode_reply(json_t *params, bool continues, size_t *len);
char *proto_encode_error(const char *error, json_t *params, size_t *len);

/* ------------------------------------------------------------------ */
/* Checking parameters                                                  */
/* ------------------------------------------------------------------ */

enum proto_type {
    PROTO_T_STRING,
    PROTO_T_INT,  /* a JSON integer */
    PROTO_T_UINT, /* a JSON integer >= 0 */
    PROTO_T_BOOL,
    PROTO_T_OBJECT,
    PROTO_T_ARRAY,
    PROTO_T_FLOAT, /* Varlink's float: any JSON number, integer or real */
};

struct proto_param {
    const char *name;
    enum proto_type type;
    bool optional;
};

/*
 * Check params against a list of n expected members: 0 when every required
 * member is present, every present member has its type, and no other member
 * is present; otherwise -EINVAL with *bad naming the first offending member
 * (for InvalidParameter's "parameter").  null counts as absent for an
 * optional member.
 */
int proto_params_check(const json_t *params, const struct proto_param *spec, size_t n,
                       const char **bad);

/* True for a valid region name. */
bool proto_name_valid(const char *name);

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

/*
 * The one table between negative errnos and error names:
 * -ENOENT RegionNotFound, -EEXIST RegionExists, -EACCES PermissionDenied,
 * -ENOSPC NoSpace, -EAGAIN ResourceUnavailable, -ENOTCONN NotAttached,
 * -EBADMSG InvalidMessage,
 * -EINVAL InvalidParameter, -ENOSYS MethodNotFound, -ESRCH
 * InterfaceNotFound, -EOPNOTSUPP MethodNotImplemented.
 * proto_error_name() returns NULL for an errno the table lacks;
 * proto_error_errno() returns -EPROTO for a name it lacks.
 */
const char *proto_error_name(int err);
int proto_error_errno(const char *name);

/* ------------------------------------------------------------------ */
/* The interface description                                            */
/* ------------------------------------------------------------------ */

/* The text of proto/io.mmsrvd.varlink, embedded at build time, for
 * org.varlink.service.GetInterfaceDescription. */
extern const char proto_interface_description[];

#endif /* MMSRV_PROTO_H */
