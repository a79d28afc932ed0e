/*
 * monitor.c: a connection turned into a stream of region events
 * (io.mmsrvd.Monitor called with "more").
 *
 * The call is sent once; after that the daemon writes replies with
 * "continues": true, one event each, whenever it likes, so the connection
 * can no longer pair replies with calls and serves nothing else.  Unlike a
 * call, waiting for an event may time out without harm: the wait is a
 * poll() on the socket, and bytes of an event that came only in part stay
 * in the reader for the next wait.  The daemon closes the stream by closing
 * the socket (when it stops, or when a monitor lags past its limit).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "client.h"

int mmsrv_monitor_start(struct mmsrv_client *client)
{
    if (client == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    pthread_mutex_lock(&client->lock);
    int rc;
    if (client->monitoring || client->regions != NULL) {
        rc = mmsrv__fail(-EBUSY);
    } else if (client->broken) {
        rc = mmsrv__fail(-ECONNRESET);
    } else {
        rc = mmsrv__send_call(client, PROTO_INTERFACE ".Monitor", NULL, PROTO_MORE);
        client->monitoring = rc == 0;
    }
    pthread_mutex_unlock(&client->lock);
    return rc < 0 ? rc : 0; /* the error name is set */
}

/* The Event type's kinds, as the interface spells them. */
static const char *const event_kinds[] = {
    [MMSRV_EVENT_CREATED] = "created",     [MMSRV_EVENT_DESTROYED] = "destroyed",
    [MMSRV_EVENT_ATTACHED] = "attached",   [MMSRV_EVENT_DETACHED] = "detached",
    [MMSRV_EVENT_RECLAIMED] = "reclaimed",
};

/* A reply's {"event": Event}: 1 with *out, 0 for a kind this library does
 * not know, -EPROTO for anything else. */
static int event_parse(const json_t *params, struct mmsrv_event *out)
{
    const json_t *event = json_object_get(params, "event");
    const char *kind = json_string_value(json_object_get(event, "kind"));
    if (!json_is_object(event) || kind == NULL) {
        return -EPROTO;
    }
    memset(out, 0, sizeof(*out));
    for (size_t i = MMSRV_EVENT_CREATED; i < sizeof(event_kinds) / sizeof(event_kinds[0]); i++) {
        if (strcmp(kind, event_kinds[i]) == 0) {
            out->kind = (enum mmsrv_event_kind)i;
        }
    }
    if (out->kind == 0) {
        return 0;
    }
    if (mmsrv__json_string(event, "region", out->region, sizeof(out->region)) < 0 ||
        !proto_name_valid(out->region)) {
        return -EPROTO;
    }
    const json_t *pid = json_object_get(event, "pid");
    uint64_t value;
    if (pid == NULL || json_is_null(pid)) {
        out->pid = -1;
    } else if (mmsrv__json_uint(event, "pid", INT64_MAX, &value) == 0) {
        out->pid = (int64_t)value;
    } else {
        return -EPROTO;
    }
    return 1;
}

/* The stream cannot go on: close it, and fail with err. */
static int stream_end(struct mmsrv_client *c, int err)
{
    mmsrv__connection_break(c);
    return mmsrv__fail(err);
}

/* One message of the stream: 1 with *ev, 0 for an event to skip, a negative
 * errno when the stream is over. */
static int message_take(struct mmsrv_client *c, const char *msg, size_t len, struct mmsrv_event *ev)
{
    struct proto_reply reply;
    const char *why;

    if (proto_reply_parse(msg, len, &reply, &why) < 0) {
        return stream_end(c, -EPROTO);
    }
    if (reply.error != NULL) {
        /* an error ends a Varlink call, streamed or not */
        int rc = mmsrv__fail_error(reply.error);
        proto_reply_release(&reply);
        mmsrv__connection_break(c);
        return rc;
    }
    struct mmsrv_event got;
    int rc = event_parse(reply.parameters, &got);
    bool last = !reply.continues;
    proto_reply_release(&reply);
    if (rc < 0) {
        return stream_end(c, rc);
    }
    if (last) {
        /* the daemon ended the call: this event is the stream's last */
        mmsrv__connection_break(c);
        if (rc == 0) {
            return mmsrv__fail(-ECONNRESET);
        }
    }
    if (rc == 1) {
        *ev = got;
    }
    return rc;
}

/* Wait until the socket is readable or the deadline (-1: none) passes.
 * 0, -ETIMEDOUT, or poll's -errno. */
static int wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - mmsrv__now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, wait);
        if (n > 0) {
            return 0;
        }
        if (n == 0) {
            return -ETIMEDOUT;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int event_next(struct mmsrv_client *c, struct mmsrv_event *ev, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mmsrv__now_ms() + timeout_ms;
    const char *msg;
    size_t len;

    for (;;) {
        int rc = proto_reader_next(&c->reader, &msg, &len);
        if (rc < 0) {
            return stream_end(c, -EPROTO); /* longer than any message */
        }
        if (rc == 1) {
            rc = message_take(c, msg, len, ev);
            if (rc != 0) {
                return rc < 0 ? rc : 0;
            }
            continue;
        }
        rc = wait_readable(c->fd, deadline);
        if (rc < 0) {
            return mmsrv__fail(rc); /* the stream is intact */
        }
        /* readable: this receive does not wait */
        rc = mmsrv__receive(c, NULL, NULL, 0);
        if (rc < 0) {
            return stream_end(c, rc);
        }
    }
}

int mmsrv_monitor_next(struct mmsrv_client *client, struct mmsrv_event *ev, int timeout_ms)
{
    if (client == NULL || ev == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    pthread_mutex_lock(&client->lock);
    int rc;
    if (!client->monitoring) {
        rc = mmsrv__fail(-EINVAL);
    } else if (client->broken) {
        rc = mmsrv__fail(-ECONNRESET);
    } else {
        rc = event_next(client, ev, timeout_ms);
    }
    pthread_mutex_unlock(&client->lock);
    return rc;
}
