/*
 * dispatch.h: the Varlink interfaces mmsrvd serves, and how a file adds one.
 *
 * An interface is a name, its description in Varlink's interface language
 * (returned by org.varlink.service.GetInterfaceDescription) and a table of
 * methods, each with the parameters it takes (checked before the handler
 * runs: a missing, wrongly typed or unknown member is answered with
 * org.varlink.service.InvalidParameter) and a handler.
 *
 * mmsrvd registers org.varlink.service and io.mmsrvd itself.  Another file
 * linked into a daemon binary registers its own interface from a
 * constructor, before main() runs:
 *
 *     static const struct dispatch_interface cert = {...};
 *     __attribute__((constructor)) static void cert_register(void)
 *     {
 *         dispatch_register(&cert);
 *     }
 *
 * (daemon/meson.build exports mmsrvd_core_dep for such test binaries).
 *
 * A handler answers through the call: one dispatch_reply() or
 * dispatch_error(), preceded by any number of dispatch_reply_more() when
 * the caller asked for "more".  Each of those is a no-op for a "oneway"
 * call, so handlers need not care.  A handler that returns without
 * answering a call that expects an answer gets MethodNotImplemented sent
 * for it, unless it kept the call streaming (dispatch_stream()).
 */
#ifndef MMSRVD_DISPATCH_H
#define MMSRVD_DISPATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct conn;

/* One call being handled.  Valid during the handler only. */
struct dispatch_call {
    struct conn *conn;
    const char *method; /* "iface.Method" */
    unsigned flags;     /* PROTO_ONEWAY | PROTO_MORE | PROTO_UPGRADE */
    bool answered;      /* a final reply or error went out */
    bool streaming;     /* the handler keeps sending (Monitor) */
    bool deferred;      /* the answer comes later (dispatch_defer) */
};

typedef void (*dispatch_fn)(struct dispatch_call *call, json_t *params);

struct dispatch_method {
    const char *name; /* "Method", without the interface */
    const struct proto_param *params;
    size_t nparams;
    dispatch_fn fn;
};

struct dispatch_interface {
    const char *name;        /* "org.example.iface" */
    const char *description; /* its text in the Varlink interface language */
    const struct dispatch_method *methods;
    size_t nmethods;
};

/* Add an interface (its tables must outlive the daemon).  0, -EEXIST for a
 * name already registered, -ENOSPC past DISPATCH_MAX_INTERFACES. */
#define DISPATCH_MAX_INTERFACES 8
int dispatch_register(const struct dispatch_interface *iface);

/* Have fn(conn) run when a connection closes, before its memory goes, so
 * that an interface drops what it keeps per connection (register it with
 * the interface).  0, or -ENOSPC past DISPATCH_MAX_INTERFACES hooks. */
int dispatch_on_close(void (*fn)(struct conn *conn));
/* Run those hooks: client.c calls it once per connection as it closes. */
void dispatch_conn_closed(struct conn *conn);

/* The registered interfaces, in registration order (org.varlink.service
 * and io.mmsrvd first). */
size_t dispatch_count(void);
const struct dispatch_interface *dispatch_get(size_t i);

/* Handle one parsed call from conn: find the method, check parameters, run
 * the handler, answer what it left unanswered. */
void dispatch_handle(struct conn *conn, const struct proto_call *pc);

/* The caller's credentials, from SO_PEERCRED at accept. */
pid_t dispatch_peer_pid(const struct dispatch_call *call);
uid_t dispatch_peer_uid(const struct dispatch_call *call);
gid_t dispatch_peer_gid(const struct dispatch_call *call);

/* The final reply; params is stolen (NULL: {}).  fds (may be NULL) go with
 * its first byte as SCM_RIGHTS; they are duplicated, the caller keeps its
 * own.  0 or a negative errno (the connection is then closing). */
int dispatch_reply(struct dispatch_call *call, json_t *params);
int dispatch_reply_fds(struct dispatch_call *call, json_t *params, const int *fds, size_t nfds);

/* An intermediate reply ("continues": true) of a call made with "more";
 * -EINVAL for a call without it. */
int dispatch_reply_more(struct dispatch_call *call, json_t *params);

/* An error; params is stolen (NULL: {}). */
int dispatch_error(struct dispatch_call *call, const char *error, json_t *params);

/* org.varlink.service.InvalidParameter {parameter}. */
int dispatch_invalid_parameter(struct dispatch_call *call, const char *parameter);

/* The call stays open: the handler's module sends its replies later with
 * conn_send_reply(..., continues true, ...) (Monitor). */
void dispatch_stream(struct dispatch_call *call);

/* The answer comes later, from work the handler started.  The handler
 * also calls conn_hold(call->conn); when the work is done, the answer goes
 * with conn_send_reply() or conn_send_error() (unless the connection is
 * closing, or the call was oneway), then conn_release().  Meanwhile the
 * connection takes no further call, so that replies keep the calls' order
 * (methods.c RegionStats does this). */
void dispatch_defer(struct dispatch_call *call);

#endif /* MMSRVD_DISPATCH_H */
