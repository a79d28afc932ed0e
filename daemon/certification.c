/*
 * certification.c: org.varlink.certification, for the conformance test
 * build only (mmsrvd-certification; never linked into the installed mmsrvd).
 *
 * The Varlink project checks an implementation by running another
 * implementation's client through a fixed sequence against it: Start, then
 * Test01 to Test11, then End.  Each step's call must carry exactly what the
 * previous reply returned, so the sequence proves that values survive both
 * directions: booleans, integers, floats, strings, structs, maps, sets,
 * nullable members, a stream of replies ("more"/"continues", Test10) and a
 * call without reply ("oneway", Test11).
 *
 * The sequence is data (cert_steps): for each step, the parameters it must
 * receive, the flags it must carry and what it replies.  One handler serves
 * every step: it compares the call with what the step wants and answers
 * CertificationError {wants, got} on any difference, with the whole call
 * (method, parameters, flags) on both sides so that the peer sees what it
 * got wrong.  A oneway call cannot be answered, so its failure is kept and
 * End reports it.
 *
 * Each sequence is a session named by a random client_id.  The table is
 * fixed (CERT_MAX_SESSIONS, at most CERT_MAX_PER_CONN per connection), so a
 * client that keeps calling Start gets an error, not our memory; a session
 * ends at End, at its first failure, or when the connection that started
 * it closes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "mmsrvd.h"

/* The interface description, embedded by proto/embed.py at build time. */
extern const char certification_interface_description[];

#define CERT_INTERFACE         "org.varlink.certification"
#define CERT_ERR_CLIENT_ID     CERT_INTERFACE ".ClientIdError"
#define CERT_ERR_CERTIFICATION CERT_INTERFACE ".CertificationError"

#define CERT_MAX_SESSIONS 64
#define CERT_MAX_PER_CONN 4
/* A client_id: 128 random bits in hex. */
#define CERT_ID_BYTES 16
#define CERT_ID_LEN   (2 * CERT_ID_BYTES)
/* The most of a wrong call that an error echoes back as "got". */
#define CERT_MAX_ECHO (16 * 1024)
/* Test10's replies. */
#define CERT_STREAM_REPLIES 10

/* ---- The sequence ---------------------------------------------------- */

#define CERT_STRUCT                                                                                \
    "{\"bool\": false, \"int\": 2, \"float\": 3.141592653589793, \"string\": \"a lot of string\"}"
#define CERT_MAP "{\"foo\": \"Foo\", \"bar\": \"Bar\"}"
#define CERT_SET "{\"one\": {}, \"two\": {}, \"three\": {}}"
#define CERT_MYTYPE                                                                                \
    "{\"object\": {\"method\": \"org.varlink.certification.Test09\","                              \
    " \"parameters\": {\"map\": " CERT_MAP "}},"                                                   \
    " \"enum\": \"two\","                                                                          \
    " \"struct\": {\"first\": 1, \"second\": \"2\"},"                                              \
    " \"array\": [\"one\", \"two\", \"three\"],"                                                   \
    " \"dictionary\": " CERT_MAP ","                                                               \
    " \"stringset\": " CERT_SET ","                                                                \
    " \"nullable\": null,"                                                                         \
    " \"nullable_array_struct\": null,"                                                            \
    " \"interface\": {\"foo\": [null, {\"foo\": \"foo\", \"bar\": \"bar\"}, null,"                 \
    " {\"one\": \"foo\", \"two\": \"bar\"}], \"anon\": {\"foo\": true, \"bar\": false}}}"
#define CERT_REPLIES                                                                               \
    "[\"Reply number 1\", \"Reply number 2\", \"Reply number 3\", \"Reply number 4\","             \
    " \"Reply number 5\", \"Reply number 6\", \"Reply number 7\", \"Reply number 8\","             \
    " \"Reply number 9\", \"Reply number 10\"]"

struct cert_step {
    const char *name;  /* the method, without the interface */
    const char *wants; /* its parameters (JSON), client_id aside */
    unsigned flags;    /* the flags it must carry, and no other */
    const char *reply; /* its reply parameters (JSON); NULL for Test10, Test11 */
};

/* In order: a session's next step is an index in this table.  Start is not
 * in it (it has no session yet). */
static const struct cert_step cert_steps[] = {
    {"Test01", "{}", 0, "{\"bool\": true}"},
    {"Test02", "{\"bool\": true}", 0, "{\"int\": 1}"},
    {"Test03", "{\"int\": 1}", 0, "{\"float\": 1.0}"},
    {"Test04", "{\"float\": 1.0}", 0, "{\"string\": \"ping\"}"},
    {"Test05", "{\"string\": \"ping\"}", 0,
     "{\"bool\": false, \"int\": 2, \"float\": 3.141592653589793, \"string\": \"a lot of "
     "string\"}"},
    {"Test06", CERT_STRUCT, 0, "{\"struct\": " CERT_STRUCT "}"},
    {"Test07", "{\"struct\": " CERT_STRUCT "}", 0, "{\"map\": " CERT_MAP "}"},
    {"Test08", "{\"map\": " CERT_MAP "}", 0, "{\"set\": " CERT_SET "}"},
    {"Test09", "{\"set\": " CERT_SET "}", 0, "{\"mytype\": " CERT_MYTYPE "}"},
    {"Test10", "{\"mytype\": " CERT_MYTYPE "}", PROTO_MORE, NULL},
    {"Test11", "{\"last_more_replies\": " CERT_REPLIES "}", PROTO_ONEWAY, NULL},
    {"End", "{}", 0, "{\"all_ok\": true}"},
};
#define CERT_NSTEPS   (sizeof cert_steps / sizeof cert_steps[0])
#define CERT_STEP_END (CERT_NSTEPS - 1)

/* ---- Sessions ---------------------------------------------------------- */

struct cert_session {
    bool used;
    const struct conn *owner; /* the connection that called Start */
    char id[CERT_ID_LEN + 1];
    size_t next;     /* index in cert_steps of the call expected next */
    json_t *failure; /* {wants, got} of a failed oneway call, for End */
};

static struct cert_session cert_sessions[CERT_MAX_SESSIONS];

static struct cert_session *cert_session_find(const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < CERT_MAX_SESSIONS; i++)
        if (cert_sessions[i].used && strcmp(cert_sessions[i].id, id) == 0)
            return &cert_sessions[i];
    return NULL;
}

static void cert_session_end(struct cert_session *s)
{
    json_decref(s->failure);
    memset(s, 0, sizeof *s);
}

/* A new session for conn: 0, -EMFILE past CERT_MAX_PER_CONN for conn,
 * -ENOSPC past CERT_MAX_SESSIONS, or getrandom's error. */
static int cert_session_new(const struct conn *conn, struct cert_session **out)
{
    struct cert_session *free_slot = NULL;
    unsigned char raw[CERT_ID_BYTES];
    size_t mine = 0;

    for (size_t i = 0; i < CERT_MAX_SESSIONS; i++) {
        if (!cert_sessions[i].used) {
            if (free_slot == NULL)
                free_slot = &cert_sessions[i];
        } else if (cert_sessions[i].owner == conn) {
            mine++;
        }
    }
    if (mine >= CERT_MAX_PER_CONN)
        return -EMFILE;
    if (free_slot == NULL)
        return -ENOSPC;
    ssize_t n = getrandom(raw, sizeof raw, 0);
    if (n < 0)
        return -errno;
    if ((size_t)n != sizeof raw)
        return -EAGAIN;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(&free_slot->id[2 * i], 3, "%02x", raw[i]);
    free_slot->used = true;
    free_slot->owner = conn;
    free_slot->next = 0;
    free_slot->failure = NULL;
    *out = free_slot;
    return 0;
}

/* ---- Comparing calls --------------------------------------------------- */

/*
 * Whether got carries the value wants describes, as Varlink means it: a
 * float may come as a JSON integer (the Go client sends 1.0 as 1) but an
 * int may not come as a real; a member that is null counts as absent;
 * object members in any order.  The recursion follows wants, which is at
 * most a few levels deep, whatever got holds.
 */
static bool cert_equal(const json_t *wants, const json_t *got)
{
    const char *key;
    json_t *v;

    if (json_is_real(wants))
        return json_is_number(got) && json_number_value(got) == json_real_value(wants);
    if (json_is_object(wants)) {
        if (!json_is_object(got))
            return false;
        /* jansson's iteration macro takes a non-const object; it only reads. */
        json_object_foreach((json_t *)wants, key, v)
        {
            const json_t *g = json_object_get(got, key);
            if (json_is_null(v) ? !(g == NULL || json_is_null(g))
                                : (g == NULL || !cert_equal(v, g)))
                return false;
        }
        json_object_foreach((json_t *)got, key, v)
        {
            if (!json_is_null(v) && json_object_get(wants, key) == NULL)
                return false;
        }
        return true;
    }
    if (json_is_array(wants)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(wants))
            return false;
        for (size_t i = 0; i < json_array_size(wants); i++)
            if (!cert_equal(json_array_get(wants, i), json_array_get(got, i)))
                return false;
        return true;
    }
    return json_equal(wants, got) != 0;
}

/*
 * A call as one JSON object, the way it went on the wire: method,
 * parameters (left out when empty) and the flags that are set.  params is
 * stolen.  NULL on -ENOMEM.
 */
static json_t *cert_message(const char *method, json_t *params, unsigned flags)
{
    json_t *m = json_pack("{s:s}", "method", method);
    if (m == NULL || params == NULL) {
        json_decref(m);
        json_decref(params);
        return NULL;
    }
    if (json_object_size(params) > 0) {
        if (json_object_set_new(m, "parameters", params) != 0) {
            json_decref(m);
            return NULL;
        }
    } else {
        json_decref(params);
    }
    if (((flags & PROTO_ONEWAY) && json_object_set_new(m, "oneway", json_true()) != 0) ||
        ((flags & PROTO_MORE) && json_object_set_new(m, "more", json_true()) != 0) ||
        ((flags & PROTO_UPGRADE) && json_object_set_new(m, "upgrade", json_true()) != 0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The call a step wants from session id: its parameters plus client_id. */
static json_t *cert_wanted(const struct cert_step *step, const char *id)
{
    char method[64];
    json_t *params = json_loads(step->wants, 0, NULL);

    if (params == NULL)
        return NULL;
    if (id != NULL && json_object_set_new(params, "client_id", json_string(id)) != 0) {
        json_decref(params);
        return NULL;
    }
    snprintf(method, sizeof method, CERT_INTERFACE ".%s", step->name);
    return cert_message(method, params, step->flags);
}

/* The call as it came, for "got"; a huge one is summarized rather than
 * echoed, so that the error stays small. */
static json_t *cert_got(const struct dispatch_call *call, json_t *params)
{
    size_t size = json_dumpb(params, NULL, 0, JSON_COMPACT);

    if (size > CERT_MAX_ECHO)
        return json_pack("{s:s, s:s, s:I}", "method", call->method, "parameters", "(not echoed)",
                         "parameters_bytes", (json_int_t)size);
    return cert_message(call->method, json_deep_copy(params), call->flags);
}

/* ---- Answering --------------------------------------------------------- */

/* Memory ran out while building an answer: say so rather than leave the
 * caller waiting (the dispatcher would send MethodNotImplemented). */
static void cert_no_memory(struct dispatch_call *call)
{
    dispatch_error(call, CERT_ERR_CERTIFICATION,
                   json_pack("{s:{s:s}, s:{}}", "wants", "memory", "available", "got"));
}

/*
 * The call differs from what the step wanted: CertificationError {wants,
 * got}, which ends the session.  A oneway call has no answer, so the error
 * waits for End and the session must go there next.  wants and got are
 * stolen.
 */
static void cert_fail(struct dispatch_call *call, struct cert_session *s, json_t *wants,
                      json_t *got)
{
    json_t *err = json_object();

    /* json_object_set_new() takes its value even when it fails. */
    if (json_object_set_new(err, "wants", wants) != 0 || wants == NULL ||
        json_object_set_new(err, "got", got) != 0 || got == NULL) {
        if (wants == NULL || err == NULL)
            json_decref(got);
        json_decref(err);
        if (s != NULL)
            cert_session_end(s);
        cert_no_memory(call);
        return;
    }
    if ((call->flags & PROTO_ONEWAY) && s != NULL) {
        json_decref(s->failure);
        s->failure = err;
        s->next = CERT_STEP_END;
        return;
    }
    if (s != NULL)
        cert_session_end(s);
    dispatch_error(call, CERT_ERR_CERTIFICATION, err);
}

/* Test10: the stream of replies, all but the last with "continues". */
static void cert_stream(struct dispatch_call *call)
{
    char text[32];

    for (int i = 1; i <= CERT_STREAM_REPLIES; i++) {
        json_t *p;
        int r;
        snprintf(text, sizeof text, "Reply number %d", i);
        p = json_pack("{s:s}", "string", text);
        if (p == NULL) {
            cert_no_memory(call);
            return;
        }
        r = i < CERT_STREAM_REPLIES ? dispatch_reply_more(call, p) : dispatch_reply(call, p);
        if (r < 0)
            return; /* the connection is closing */
    }
}

/* ---- Methods ----------------------------------------------------------- */

static void cert_start(struct dispatch_call *call, json_t *params)
{
    static const struct cert_step start = {"Start", "{}", 0, NULL};
    struct cert_session *s = NULL;
    json_t *wants = cert_wanted(&start, NULL);
    json_t *got = cert_got(call, params);
    int r;

    if (wants == NULL || got == NULL || !cert_equal(wants, got)) {
        cert_fail(call, NULL, wants, got);
        return;
    }
    json_decref(wants);
    json_decref(got);
    r = cert_session_new(call->conn, &s);
    if (r < 0) {
        /* The interface has no error for this; CertificationError names
         * the limit that was hit. */
        dispatch_error(call, CERT_ERR_CERTIFICATION,
                       json_pack("{s:{s:i}, s:{s:s}}", "wants", "sessions_at_most",
                                 r == -EMFILE ? CERT_MAX_PER_CONN : CERT_MAX_SESSIONS, "got",
                                 "error", strerror(-r)));
        return;
    }
    if (dispatch_reply(call, json_pack("{s:s}", "client_id", s->id)) < 0)
        cert_session_end(s);
}

/* Test01 to Test11 and End. */
static void cert_step_call(struct dispatch_call *call, json_t *params)
{
    const char *name = strrchr(call->method, '.') + 1;
    struct cert_session *s =
        cert_session_find(json_string_value(json_object_get(params, "client_id")));
    const struct cert_step *step = NULL;
    json_t *wants;
    json_t *got;

    for (size_t i = 0; i < CERT_NSTEPS; i++)
        if (strcmp(cert_steps[i].name, name) == 0)
            step = &cert_steps[i];
    if (s == NULL) {
        dispatch_error(call, CERT_ERR_CLIENT_ID, NULL);
        return;
    }
    if (step != &cert_steps[s->next]) {
        char method[64];
        snprintf(method, sizeof method, CERT_INTERFACE ".%s", cert_steps[s->next].name);
        cert_fail(call, s, json_pack("{s:s}", "method", method),
                  json_pack("{s:s}", "method", call->method));
        return;
    }
    if (s->failure != NULL) {
        /* End, after a oneway call failed. */
        dispatch_error(call, CERT_ERR_CERTIFICATION, json_incref(s->failure));
        cert_session_end(s);
        return;
    }
    wants = cert_wanted(step, s->id);
    got = cert_got(call, params);
    if (wants == NULL || got == NULL || !cert_equal(wants, got)) {
        cert_fail(call, s, wants, got);
        return;
    }
    json_decref(wants);
    json_decref(got);

    s->next++;
    if ((step->flags & PROTO_MORE) != 0) {
        cert_stream(call);
    } else if (step->reply != NULL) {
        json_t *reply = json_loads(step->reply, 0, NULL);
        if (step == &cert_steps[CERT_STEP_END])
            cert_session_end(s);
        if (reply == NULL)
            cert_no_memory(call);
        else
            dispatch_reply(call, reply);
    }
}

/* ---- The interface ----------------------------------------------------- */

static const struct proto_param cert_p_id[] = {{"client_id", PROTO_T_STRING, false}};
static const struct proto_param cert_p_bool[] = {{"client_id", PROTO_T_STRING, false},
                                                 {"bool", PROTO_T_BOOL, false}};
static const struct proto_param cert_p_int[] = {{"client_id", PROTO_T_STRING, false},
                                                {"int", PROTO_T_INT, false}};
static const struct proto_param cert_p_float[] = {{"client_id", PROTO_T_STRING, false},
                                                  {"float", PROTO_T_FLOAT, false}};
static const struct proto_param cert_p_string[] = {{"client_id", PROTO_T_STRING, false},
                                                   {"string", PROTO_T_STRING, false}};
static const struct proto_param cert_p_four[] = {
    {"client_id", PROTO_T_STRING, false}, {"bool", PROTO_T_BOOL, false},
    {"int", PROTO_T_INT, false},          {"float", PROTO_T_FLOAT, false},
    {"string", PROTO_T_STRING, false},
};
static const struct proto_param cert_p_struct[] = {{"client_id", PROTO_T_STRING, false},
                                                   {"struct", PROTO_T_OBJECT, false}};
static const struct proto_param cert_p_map[] = {{"client_id", PROTO_T_STRING, false},
                                                {"map", PROTO_T_OBJECT, false}};
static const struct proto_param cert_p_set[] = {{"client_id", PROTO_T_STRING, false},
                                                {"set", PROTO_T_OBJECT, false}};
static const struct proto_param cert_p_mytype[] = {{"client_id", PROTO_T_STRING, false},
                                                   {"mytype", PROTO_T_OBJECT, false}};
static const struct proto_param cert_p_replies[] = {{"client_id", PROTO_T_STRING, false},
                                                    {"last_more_replies", PROTO_T_ARRAY, false}};

#define CERT_METHOD(name, params, fn)                                                              \
    {                                                                                              \
        name, params, sizeof params / sizeof params[0], fn                                         \
    }

static const struct dispatch_method cert_methods[] = {
    {"Start", NULL, 0, cert_start},
    CERT_METHOD("Test01", cert_p_id, cert_step_call),
    CERT_METHOD("Test02", cert_p_bool, cert_step_call),
    CERT_METHOD("Test03", cert_p_int, cert_step_call),
    CERT_METHOD("Test04", cert_p_float, cert_step_call),
    CERT_METHOD("Test05", cert_p_string, cert_step_call),
    CERT_METHOD("Test06", cert_p_four, cert_step_call),
    CERT_METHOD("Test07", cert_p_struct, cert_step_call),
    CERT_METHOD("Test08", cert_p_map, cert_step_call),
    CERT_METHOD("Test09", cert_p_set, cert_step_call),
    CERT_METHOD("Test10", cert_p_mytype, cert_step_call),
    CERT_METHOD("Test11", cert_p_replies, cert_step_call),
    CERT_METHOD("End", cert_p_id, cert_step_call),
};

static const struct dispatch_interface cert_interface = {
    .name = CERT_INTERFACE,
    .description = certification_interface_description,
    .methods = cert_methods,
    .nmethods = sizeof cert_methods / sizeof cert_methods[0],
};

/* A connection closed: the sessions it started go with it. */
static void cert_conn_closed(struct conn *conn)
{
    for (size_t i = 0; i < CERT_MAX_SESSIONS; i++)
        if (cert_sessions[i].used && cert_sessions[i].owner == conn)
            cert_session_end(&cert_sessions[i]);
}

/* Before main(): the daemon then serves the interface like its own. */
__attribute__((constructor)) static void cert_register(void)
{
    int r = dispatch_register(&cert_interface);
    if (r == 0)
        r = dispatch_on_close(cert_conn_closed);
    if (r < 0)
        log_err("cannot register %s: %s", CERT_INTERFACE, strerror(-r));
}
