/*
 * connection.c: the connection to mmsrvd and its blocking calls.
 *
 * One call at a time per connection (a mutex), so a reply always answers the
 * call just sent and the descriptors that arrive while it is read are its
 * own.  The socket blocks, with the reply timeout as its send and receive
 * timeouts (SO_SNDTIMEO, SO_RCVTIMEO), so that a call costs one send and
 * usually one receive, with no poll() between; a call as a whole gives up
 * once a read or write after its deadline would wait again.  Descriptors
 * arrive close-on-exec (SOCK_CLOEXEC, MSG_CMSG_CLOEXEC); any the caller does
 * not take is closed, so that a confused or hostile daemon cannot make the
 * process leak descriptors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

/* ---- The error name of this thread's last failed call ------------------ */

/* Longer than any name of the interface; a longer one is cut, never
 * overrun. */
static _Thread_local char error_name[128];
static _Thread_local bool error_set;

const char *mmsrv_error_name(void)
{
    return error_set ? error_name : NULL;
}

static void error_name_set(const char *name)
{
    if (name == NULL) {
        error_set = false;
        return;
    }
    snprintf(error_name, sizeof(error_name), "%s", name);
    error_set = true;
}

int mmsrv__fail(int err)
{
    error_name_set(NULL);
    return err;
}

int mmsrv__fail_error(const char *name)
{
    error_name_set(name);
    return proto_error_errno(name);
}

/* ---- Addresses ---------------------------------------------------------- */

/* Fill sa from a Varlink address ("unix:/path", "unix:@abstract", a plain
 * path; ";key=value" parameters ignored).  0 or -EINVAL. */
static int address_parse(const char *address, struct sockaddr_un *sa, socklen_t *salen)
{
    char fallback[sizeof(sa->sun_path) + 32];

    if (address == NULL) {
        address = getenv("MMSRV_ADDRESS");
    }
    if (address == NULL || address[0] == '\0') {
        if (geteuid() == 0) {
            address = "/run/mmsrvd/io.mmsrvd";
        } else {
            const char *runtime = getenv("XDG_RUNTIME_DIR");
            if (runtime != NULL && runtime[0] != '\0') {
                snprintf(fallback, sizeof(fallback), "%s/mmsrvd/io.mmsrvd", runtime);
            } else {
                snprintf(fallback, sizeof(fallback), "/run/user/%u/mmsrvd/io.mmsrvd",
                         (unsigned)geteuid());
            }
            address = fallback;
        }
    }
    if (strncmp(address, "unix:", 5) == 0) {
        address += 5;
    } else if (strchr(address, ':') != NULL && address[0] != '/' && address[0] != '.') {
        return -EINVAL; /* another transport (tcp:, exec:, ...) */
    }
    size_t len = strcspn(address, ";");
    if (len == 0 || len >= sizeof(sa->sun_path)) {
        return -EINVAL;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, address, len);
    if (address[0] == '@') {
        /* abstract namespace: no terminating NUL counts */
        sa->sun_path[0] = '\0';
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

static int timeout_from_env(void)
{
    const char *s = getenv("MMSRV_TIMEOUT_MS");
    if (s == NULL || s[0] == '\0') {
        return MMSRV__TIMEOUT_MS;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0 || v > 24L * 3600 * 1000) {
        return MMSRV__TIMEOUT_MS;
    }
    return (int)v;
}

/* ---- Connect, disconnect ----------------------------------------------- */

int mmsrv_connect(const char *address, struct mmsrv_client **out)
{
    struct sockaddr_un sa;
    socklen_t salen;

    if (out == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    *out = NULL;
    int rc = address_parse(address, &sa, &salen);
    if (rc < 0) {
        return mmsrv__fail(rc);
    }
    struct mmsrv_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return mmsrv__fail(-ENOMEM);
    }
    c->timeout_ms = timeout_from_env();
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = -errno;
        goto fail;
    }
    /* A UNIX stream connect waits while the listener's backlog is full, for
     * as long as the send timeout says: bound it by the reply timeout. */
    struct timeval tv = {
        .tv_sec = c->timeout_ms / 1000,
        .tv_usec = (c->timeout_ms % 1000) * 1000,
    };
    if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
        rc = -errno;
        goto fail;
    }
    while (connect(c->fd, (const struct sockaddr *)&sa, salen) < 0) {
        if (errno == EINTR) {
            continue;
        }
        rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
        goto fail;
    }
    rc = proto_reader_init(&c->reader, 0);
    if (rc < 0) {
        goto fail;
    }
    rc = pthread_mutex_init(&c->lock, NULL);
    if (rc != 0) {
        proto_reader_release(&c->reader);
        rc = -rc;
        goto fail;
    }
    *out = c;
    return 0;

fail:
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
    return mmsrv__fail(rc);
}

void mmsrv_disconnect(struct mmsrv_client *client)
{
    if (client == NULL) {
        return;
    }
    mmsrv__regions_release(client);
    close(client->fd);
    proto_reader_release(&client->reader);
    pthread_mutex_destroy(&client->lock);
    free(client);
}

int mmsrv_fd(const struct mmsrv_client *client)
{
    return client != NULL ? client->fd : -EINVAL;
}

/* ---- Sending and receiving --------------------------------------------- */

int64_t mmsrv__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mmsrv__connection_break(struct mmsrv_client *c)
{
    c->broken = true;
    shutdown(c->fd, SHUT_RDWR);
}

static int send_all(struct mmsrv_client *c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return -ETIMEDOUT; /* SO_SNDTIMEO ran out */
        }
        return errno == EPIPE ? -ECONNRESET : -errno;
    }
    return 0;
}

/* A daemon that cannot serve a new connection (max_clients) sends one
 * error reply and closes it, so the first call's send fails while the
 * reply waits unread: that error (its name set), if it is there; else
 * -ECONNRESET.  The peer is gone, so no read here waits. */
static int refusal(struct mmsrv_client *c)
{
    int fds[PROTO_MAX_FDS];
    size_t nfds = 0;
    const char *msg;
    size_t len;
    int err = mmsrv__fail(-ECONNRESET);
    for (;;) {
        int rc = proto_reader_next(&c->reader, &msg, &len);
        if (rc == 1) {
            struct proto_reply reply;
            const char *why;
            if (proto_reply_parse(msg, len, &reply, &why) == 0) {
                if (reply.error != NULL) {
                    err = mmsrv__fail_error(reply.error);
                }
                proto_reply_release(&reply);
            }
            break;
        }
        if (rc < 0 || mmsrv__receive(c, fds, &nfds, PROTO_MAX_FDS) <= 0) {
            break;
        }
    }
    for (size_t i = 0; i < nfds; i++) {
        close(fds[i]);
    }
    return err;
}

int mmsrv__send_call(struct mmsrv_client *c, const char *method, json_t *params, unsigned flags)
{
    size_t len;
    char *call = proto_encode_call(method, params, flags, &len);
    if (call == NULL) {
        return mmsrv__fail(-ENOMEM);
    }
    int rc = send_all(c, call, len);
    free(call);
    if (rc < 0) {
        rc = rc == -ECONNRESET ? refusal(c) : mmsrv__fail(rc);
        mmsrv__connection_break(c);
    }
    return rc;
}

/* Keep the descriptors of the control message in fds[] up to its capacity
 * (*nfds counts them); close the rest. */
static void collect_fds(struct msghdr *mh, int *fds, size_t *nfds, size_t cap)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (fds != NULL && *nfds < cap) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
            }
        }
    }
}

int mmsrv__receive(struct mmsrv_client *c, int *fds, size_t *nfds, size_t cap)
{
    char *dst;
    size_t room;
    union {
        char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        struct cmsghdr align;
    } control;

    int rc = proto_reader_space(&c->reader, &dst, &room);
    if (rc < 0) {
        return rc;
    }
    for (;;) {
        struct iovec iov = {.iov_base = dst, .iov_len = room};
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return 0;
            }
            return errno == ECONNRESET ? -ECONNRESET : -errno;
        }
        /* Descriptors the control buffer could not hold were closed by
         * the kernel (MSG_CTRUNC); the ones it holds are ours to keep or
         * close. */
        collect_fds(&mh, fds, nfds, cap);
        if (n == 0) {
            return -ECONNRESET;
        }
        proto_reader_commit(&c->reader, (size_t)n);
        return (int)(n > INT32_MAX ? INT32_MAX : n);
    }
}

/*
 * Before a call: drop whatever the daemon sent unasked that is already
 * held (bytes that came after the last reply), so that it cannot pass for
 * the coming reply.  Varlink servers send nothing unasked, so this costs no
 * system call; a message that arrives unasked between two calls is caught
 * by the reply check instead (a reply that continues, or a second message
 * held behind the reply, breaks the connection).
 */
static int drop_unasked(struct mmsrv_client *c)
{
    const char *msg;
    size_t len;
    int rc;
    while ((rc = proto_reader_next(&c->reader, &msg, &len)) == 1) {
    }
    return rc < 0 ? -EPROTO : 0;
}

int mmsrv__call(struct mmsrv_client *c, const char *method, json_t *params,
                struct mmsrv__reply *out)
{
    int64_t deadline = mmsrv__now_ms() + c->timeout_ms;
    const char *msg;
    size_t len;
    int rc;

    memset(out, 0, sizeof(*out));
    if (c->monitoring || c->broken) {
        json_decref(params);
        return mmsrv__fail(c->monitoring ? -EBUSY : -ECONNRESET);
    }
    rc = drop_unasked(c);
    if (rc < 0) {
        json_decref(params);
        goto broken;
    }
    rc = mmsrv__send_call(c, method, params, 0);
    if (rc < 0) {
        return rc; /* its error name is set */
    }

    for (;;) {
        rc = proto_reader_next(&c->reader, &msg, &len);
        if (rc == 1) {
            break;
        }
        if (rc < 0) {
            rc = -EPROTO; /* longer than any message: the framing is lost */
            goto broken;
        }
        if (mmsrv__now_ms() >= deadline) {
            rc = -ETIMEDOUT;
            goto broken;
        }
        rc = mmsrv__receive(c, out->fds, &out->nfds, PROTO_MAX_FDS);
        if (rc < 0) {
            goto broken;
        }
    }

    const char *why;
    rc = proto_reply_parse(msg, len, &out->msg, &why);
    if (rc < 0) {
        mmsrv__reply_release(out);
        return mmsrv__fail(-EPROTO);
    }
    if (out->msg.continues || proto_reader_held(&c->reader) > 0) {
        /* more replies would follow, or already did, that no call asked for */
        rc = -EPROTO;
        mmsrv__reply_release(out);
        goto broken;
    }
    if (out->msg.error != NULL) {
        rc = mmsrv__fail_error(out->msg.error);
        mmsrv__reply_release(out);
        return rc;
    }
    return 0;

broken:
    for (size_t i = 0; i < out->nfds; i++) {
        close(out->fds[i]);
    }
    out->nfds = 0;
    mmsrv__connection_break(c);
    return mmsrv__fail(rc);
}

void mmsrv__reply_release(struct mmsrv__reply *reply)
{
    for (size_t i = 0; i < reply->nfds; i++) {
        if (reply->fds[i] >= 0) {
            close(reply->fds[i]);
        }
    }
    reply->nfds = 0;
    if (reply->msg.root != NULL) {
        proto_reply_release(&reply->msg);
        reply->msg.root = NULL;
    }
}

int mmsrv__reply_take_fd(struct mmsrv__reply *reply, const json_t *params, const char *key)
{
    uint64_t index;
    if (mmsrv__json_uint(params, key, PROTO_MAX_FDS - 1, &index) < 0 || index >= reply->nfds ||
        reply->fds[index] < 0) {
        return -EPROTO;
    }
    int fd = reply->fds[index];
    reply->fds[index] = -1;
    return fd;
}
