/*
 * client.c: connections, from accept to close.
 *
 * libuv's stream handles cannot carry descriptors (libuv issue 1587), so
 * each connection is a uv_poll_t on the raw socket with our own recvmsg and
 * sendmsg.  Incoming bytes go into a proto_reader that exists only while
 * bytes are held (an idle connection costs its struct and the poll handle);
 * each complete message is dispatched in order.  Replies go to an output
 * queue whose head is written as soon as the socket takes it, descriptors
 * riding on the first byte of their reply.
 *
 * Back pressure: a connection whose queue holds output_limit bytes or more
 * is not read (its requests wait in its own socket buffer), and one whose
 * output has not moved for stall_ms is closed, so a client that never reads
 * its replies cannot make the daemon grow.  A call answered later (work on
 * the thread pool) also stops reading, so that replies keep the calls'
 * order.  A message that is too long, not JSON, or not a call is answered
 * with io.mmsrvd.InvalidMessage and the connection closes once that reply
 * is out.
 *
 * Closing is idempotent and deferred: conn_close() detaches the
 * connection's regions and hands its owner to reclaim.c at once, and the
 * memory goes when libuv has closed the handle and no work holds it.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct outmsg {
    struct outmsg *next;
    char *data;
    size_t len, off;
    int fds[PROTO_MAX_FDS];
    size_t nfds;
};

static uv_loop_t *srv_loop;
static int srv_listen_fd = -1;
static uv_poll_t srv_listen_poll;
static bool srv_listening;
static uv_timer_t srv_timer; /* accept back-off and the stall check */
static struct server_limits srv_limits;
static struct conn *srv_conns;
static size_t srv_nconns;

/* Bytes read per wakeup at most, so that one busy client cannot starve
 * the others. */
#define READ_BUDGET (64 * 1024)

static void conn_on_poll(uv_poll_t *h, int status, int events);
static void conn_process(struct conn *c);
static void conn_update_events(struct conn *c);
static void conn_flush(struct conn *c);

static uint64_t now_ms(void)
{
    return uv_now(srv_loop);
}

size_t server_client_count(void)
{
    return srv_nconns;
}

struct conn *server_first_conn(void)
{
    return srv_conns;
}

/* ---- Output ------------------------------------------------------------ */

static void outmsg_free(struct outmsg *m)
{
    for (size_t i = 0; i < m->nfds; i++)
        close(m->fds[i]);
    free(m->data);
    free(m);
}

/* One sendmsg of msg[off..len), with fds on its first byte when off is 0:
 * the bytes written, 0 when the socket takes nothing now, -errno. */
static ssize_t conn_write(struct conn *c, const char *msg, size_t off, size_t len, const int *fds,
                          size_t nfds)
{
    struct iovec iov = {.iov_base = (char *)msg + off, .iov_len = len - off};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (off == 0 && nfds > 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(c->peer.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
}

/*
 * Send msg (taken) with fds: at once when nothing is queued before it (the
 * usual case: the whole reply goes, and needs neither a queue entry nor
 * copies of its descriptors), else, or for what the socket did not take,
 * through the queue with duplicates of fds.  A write error is left for the
 * queue's flush to meet and report.
 */
static int conn_queue(struct conn *c, char *msg, size_t len, const int *fds, size_t nfds)
{
    if (c->closing) {
        free(msg);
        return -ECONNRESET;
    }
    if (nfds > PROTO_MAX_FDS) {
        free(msg);
        return -EINVAL;
    }
    size_t sent = 0;
    if (c->out_head == NULL) {
        ssize_t n = conn_write(c, msg, 0, len, fds, nfds);
        if (n > 0) {
            sent = (size_t)n;
            nfds = 0; /* they went with the first byte */
        }
        if (sent == len) {
            free(msg);
            return 0;
        }
    }
    struct outmsg *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        free(msg);
        return -ENOMEM;
    }
    m->data = msg;
    m->len = len;
    m->off = sent;
    for (size_t i = 0; i < nfds; i++) {
        int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            int err = -errno;
            outmsg_free(m);
            return err;
        }
        m->fds[m->nfds++] = fd;
    }
    if (c->out_tail != NULL)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += len - sent;
    return 0;
}

/* Something was queued.  Inside the connection's poll callback the
 * callback itself writes it and sets the events afterwards, so a reply to a
 * call costs no epoll change; elsewhere (a deferred reply, an event) ask to
 * be told when the socket is writable. */
static void conn_queued(struct conn *c)
{
    if (!c->in_poll)
        conn_update_events(c);
}

int conn_send_reply(struct conn *c, json_t *params, bool continues, const int *fds, size_t nfds)
{
    size_t len;
    char *msg = proto_encode_reply(params, continues, &len);
    if (msg == NULL)
        return -ENOMEM;
    int rc = conn_queue(c, msg, len, fds, nfds);
    conn_queued(c);
    return rc;
}

int conn_send_error(struct conn *c, const char *error, json_t *params)
{
    size_t len;
    char *msg = proto_encode_error(error, params, &len);
    if (msg == NULL)
        return -ENOMEM;
    log_debug("error pid=%d %s", (int)c->peer.pid, error);
    int rc = conn_queue(c, msg, len, NULL, 0);
    conn_queued(c);
    return rc;
}

int conn_send_raw(struct conn *c, char *msg, size_t len, size_t limit)
{
    if (c->closing) {
        free(msg);
        return -ECONNRESET;
    }
    if (c->out_bytes + len > limit) {
        free(msg);
        conn_close(c, "monitor does not read its events");
        return -ENOBUFS;
    }
    int rc = conn_queue(c, msg, len, NULL, 0);
    conn_queued(c);
    return rc;
}

/* Write what the socket takes.  May close the connection. */
static void conn_flush(struct conn *c)
{
    bool moved = false;

    while (!c->closing && c->out_head != NULL) {
        struct outmsg *m = c->out_head;
        ssize_t n = conn_write(c, m->data, m->off, m->len, m->fds, m->nfds);
        if (n == 0)
            break;
        if (n < 0) {
            char why[64];
            snprintf(why, sizeof(why), "write: %s", strerror((int)-n));
            conn_close(c, why);
            return;
        }
        moved = true;
        if (m->off == 0) {
            /* the descriptors went with the first byte */
            for (size_t i = 0; i < m->nfds; i++)
                close(m->fds[i]);
            m->nfds = 0;
        }
        m->off += (size_t)n;
        c->out_bytes -= (size_t)n;
        if (m->off == m->len) {
            c->out_head = m->next;
            if (c->out_head == NULL)
                c->out_tail = NULL;
            outmsg_free(m);
        }
    }
    if (c->closing)
        return;
    if (c->out_head == NULL || moved)
        c->stalled_since = 0;
    if (c->out_head != NULL && c->stalled_since == 0)
        c->stalled_since = now_ms();
}

/* ---- Events ------------------------------------------------------------ */

static bool conn_reading(const struct conn *c)
{
    return !c->closing && !c->eof && c->pending == 0 && !owner_busy(c->owner) &&
           c->out_bytes < srv_limits.output_limit;
}

static void conn_update_events(struct conn *c)
{
    if (c->closing)
        return;
    int want = 0;
    if (conn_reading(c))
        want |= UV_READABLE | UV_DISCONNECT;
    if (c->out_head != NULL)
        want |= UV_WRITABLE;
    if (want == c->events)
        return;
    c->events = want;
    if (want == 0)
        uv_poll_stop(&c->poll);
    else
        uv_poll_start(&c->poll, want, conn_on_poll);
}

/* ---- Input ------------------------------------------------------------- */

static void conn_fatal(struct conn *c, const char *reason)
{
    log_notice("invalid message pid=%d uid=%u: %s; closing", (int)c->peer.pid,
               (unsigned)c->peer.uid, reason);
    conn_send_error(c, PROTO_ERR_INVALID_MESSAGE, json_pack("{s:s}", "reason", reason));
    /* answer nothing more: close once the error is out */
    c->eof = true;
    if (c->rd.buf != NULL)
        proto_reader_release(&c->rd);
}

static void conn_handle(struct conn *c, const char *msg, size_t len)
{
    struct proto_call call;
    const char *why = NULL;
    int rc = proto_call_parse(msg, len, &call, &why);
    if (rc < 0) {
        conn_fatal(c, why != NULL ? why : "not a Varlink call");
        return;
    }
    log_debug("call pid=%d method=%s flags=%u", (int)c->peer.pid, call.method, call.flags);
    dispatch_handle(c, &call);
    proto_call_release(&call);
}

/* Dispatch the complete messages held, as long as the connection may. */
static void conn_process(struct conn *c)
{
    while (!c->closing && c->rd.buf != NULL && c->pending == 0 && !owner_busy(c->owner) &&
           c->out_bytes < srv_limits.output_limit) {
        const char *msg;
        size_t len;
        int rc = proto_reader_next(&c->rd, &msg, &len);
        if (rc == 0)
            break;
        if (rc < 0) {
            char why[64];
            snprintf(why, sizeof(why), "message longer than %zu bytes", c->rd.max);
            conn_fatal(c, why);
            break;
        }
        conn_handle(c, msg, len);
    }
    /* Nothing held: give the buffer back, an idle connection keeps none. */
    if (!c->closing && c->rd.buf != NULL && c->rd.start == c->rd.len)
        proto_reader_release(&c->rd);
}

/* After progress: finish a connection whose peer is gone, or read again. */
static void conn_settle(struct conn *c)
{
    if (c->closing)
        return;
    if (c->eof && c->pending == 0 && c->out_head == NULL) {
        bool partial = c->rd.buf != NULL && proto_reader_partial(&c->rd);
        conn_close(c, partial ? "closed in the middle of a message" : NULL);
        return;
    }
    conn_update_events(c);
}

static void conn_read(struct conn *c)
{
    size_t budget = READ_BUDGET;

    while (budget > 0 && conn_reading(c)) {
        char *dst;
        size_t room;
        if (c->rd.buf == NULL && proto_reader_init(&c->rd, 0) != 0) {
            conn_close(c, "out of memory");
            return;
        }
        int rc = proto_reader_space(&c->rd, &dst, &room);
        if (rc < 0) {
            if (rc == -EMSGSIZE) {
                conn_process(c);
            } else {
                conn_close(c, "out of memory");
                return;
            }
            break;
        }
        if (room > budget)
            room = budget;
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * 16)];
        } ctl;
        struct iovec iov = {.iov_base = dst, .iov_len = room};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(c->peer.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                char why[64];
                snprintf(why, sizeof(why), "read: %s", strerror(errno));
                conn_close(c, why);
                return;
            }
            break;
        }
        /* Descriptors a client sends are never wanted: close them, or each
         * would stay open in the daemon. */
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                    close(fd);
                }
            }
        }
        if (n == 0) {
            c->eof = true;
            break;
        }
        proto_reader_commit(&c->rd, (size_t)n);
        budget -= (size_t)n;
        conn_process(c);
        /* a short read drained the socket: the poll is level-triggered and
         * says when more comes, so skip the read that would only say EAGAIN */
        if ((size_t)n < room)
            break;
    }
    conn_process(c);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;

    if (status < 0) {
        /* libuv reports any socket error as UV_EBADF: ask the socket */
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->peer.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == ECONNRESET || err == EPIPE) {
            conn_close(c, NULL); /* the peer went away with replies unread */
        } else {
            char why[64];
            snprintf(why, sizeof(why), "socket error: %s", strerror(err != 0 ? err : EIO));
            conn_close(c, why);
        }
        return;
    }
    if ((events & UV_WRITABLE) != 0) {
        size_t before = c->out_bytes;
        conn_flush(c);
        /* drained below the limit: take up the calls that waited */
        if (!c->closing && before >= srv_limits.output_limit &&
            c->out_bytes < srv_limits.output_limit)
            conn_process(c);
    }
    c->in_poll = true;
    if (!c->closing && (events & (UV_READABLE | UV_DISCONNECT)) != 0)
        conn_read(c);
    c->in_poll = false;
    if (!c->closing)
        conn_flush(c);
    conn_settle(c);
}

void conn_hold(struct conn *c)
{
    c->pending++;
    conn_update_events(c);
}

static void conn_free(struct conn *c)
{
    while (c->out_head != NULL) {
        struct outmsg *m = c->out_head;
        c->out_head = m->next;
        outmsg_free(m);
    }
    if (c->rd.buf != NULL)
        proto_reader_release(&c->rd);
    free(c);
}

static void conn_on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    close(c->peer.fd);
    c->peer.fd = -1;
    if (c->pending == 0)
        conn_free(c);
}

void conn_release(struct conn *c)
{
    c->pending--;
    if (c->closing) {
        if (c->pending == 0 && c->peer.fd < 0)
            conn_free(c);
        return;
    }
    /* the deferred reply is queued: send it, then take up waiting calls */
    conn_flush(c);
    conn_process(c);
    conn_flush(c);
    conn_settle(c);
}

void server_owner_ready(struct owner *o)
{
    struct conn *next;
    for (struct conn *c = srv_conns; c != NULL; c = next) {
        next = c->next;
        if (c->owner != o)
            continue;
        conn_process(c);
        conn_flush(c);
        conn_settle(c);
    }
}

struct attachment *conn_find_attachment(struct conn *c, const char *name)
{
    for (struct attachment *a = c->attachments; a != NULL; a = a->next)
        if (strcmp(a->region->name, name) == 0)
            return a;
    return NULL;
}

/* reclaim false: the daemon is stopping and its clients live on. */
static void conn_close_ex(struct conn *c, const char *why, bool reclaim)
{
    if (c->closing)
        return;
    c->closing = true;
    if (why != NULL)
        log_notice("close pid=%d uid=%u: %s", (int)c->peer.pid, (unsigned)c->peer.uid, why);
    else
        log_debug("disconnect pid=%d uid=%u", (int)c->peer.pid, (unsigned)c->peer.uid);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv_conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv_nconns--;

    while (c->attachments != NULL) {
        struct attachment *a = c->attachments;
        c->attachments = a->next;
        region_client_gone(a->region);
        if (reclaim) {
            log_info("detach region=%s pid=%d (connection closed)", a->region->name,
                     (int)c->peer.pid);
            monitor_emit(MONITOR_DETACHED, a->region, c->peer.pid);
        }
        region_unref(a->region);
        free(a);
    }
    monitor_stopped(c);
    dispatch_conn_closed(c);
    owner_put(c->owner, reclaim);
    c->owner = NULL;
    uv_close((uv_handle_t *)&c->poll, conn_on_closed);
}

void conn_close(struct conn *c, const char *why)
{
    conn_close_ex(c, why, true);
}

void server_close_all(bool reclaim)
{
    while (srv_conns != NULL)
        conn_close_ex(srv_conns, NULL, reclaim);
}

/* ---- Accepting -------------------------------------------------------- */

static void server_on_listen(uv_poll_t *h, int status, int events);

/* A connection beyond max_clients gets ResourceUnavailable, as the reply
 * to whatever it sends first, and is closed: a client then learns why
 * rather than seeing a reset.  One small message into an empty socket
 * buffer: the send does not block, and if it fails the close says enough. */
static void server_refuse(int fd)
{
    char reason[64];
    snprintf(reason, sizeof(reason), "max_clients (%zu) reached", srv_limits.max_clients);
    size_t len;
    char *msg = proto_encode_error(
        PROTO_ERR_RESOURCE_UNAVAILABLE,
        json_pack("{s:s, s:s}", "resource", "connections", "reason", reason), &len);
    if (msg != NULL)
        (void)!send(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    free(msg);
    close(fd);
}

static void server_accept_one(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (srv_nconns >= srv_limits.max_clients) {
        log_warn("refuse connection: %zu clients already (max_clients)", srv_nconns);
        server_refuse(fd);
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        log_warn("refuse connection: no credentials: %s", strerror(errno));
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_err("refuse connection: out of memory");
        close(fd);
        return;
    }
    c->peer.fd = fd;
    c->peer.pid = cred.pid;
    c->peer.uid = cred.uid;
    c->peer.gid = cred.gid;
    c->owner = owner_get(cred.pid);
    if (c->owner == NULL || uv_poll_init(srv_loop, &c->poll, fd) != 0) {
        log_err("refuse connection: out of memory");
        if (c->owner != NULL)
            owner_put(c->owner, false);
        close(fd);
        free(c);
        return;
    }
    c->poll.data = c;
    c->next = srv_conns;
    if (srv_conns != NULL)
        srv_conns->prev = c;
    srv_conns = c;
    srv_nconns++;
    log_debug("connect pid=%d uid=%u gid=%u clients=%zu", (int)cred.pid, (unsigned)cred.uid,
              (unsigned)cred.gid, srv_nconns);
    conn_update_events(c);
}

static void server_on_timer(uv_timer_t *t)
{
    (void)t;
    /* accepting again after running out of descriptors */
    if (srv_listen_fd >= 0 && !srv_listening && !uv_is_closing((uv_handle_t *)&srv_listen_poll)) {
        srv_listening = true;
        uv_poll_start(&srv_listen_poll, UV_READABLE, server_on_listen);
    }
    uint64_t now = now_ms();
    struct conn *next;
    for (struct conn *c = srv_conns; c != NULL; c = next) {
        next = c->next;
        if (c->out_head != NULL && c->stalled_since != 0 &&
            now - c->stalled_since >= srv_limits.stall_ms)
            conn_close(c, "does not read its replies");
    }
}

static void server_on_listen(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    if (status < 0) {
        log_err("listening socket: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < 64; i++) {
        int fd = accept4(srv_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory, or any error the socket keeps
             * reporting: the poll is level-triggered and would call again
             * at once, a busy loop.  Back off: the timer takes up
             * accepting again. */
            log_warn("accept: %s; pausing for a moment", strerror(errno));
            uv_poll_stop(&srv_listen_poll);
            srv_listening = false;
            return;
        }
        server_accept_one(fd);
    }
}

int server_init(uv_loop_t *loop, int listen_fd, const struct server_limits *limits)
{
    srv_loop = loop;
    srv_listen_fd = listen_fd;
    srv_limits = *limits;
    int rc = uv_poll_init(loop, &srv_listen_poll, listen_fd);
    if (rc != 0)
        return rc;
    rc = uv_poll_start(&srv_listen_poll, UV_READABLE, server_on_listen);
    if (rc != 0)
        return rc;
    srv_listening = true;
    uv_timer_init(loop, &srv_timer);
    uint64_t period = srv_limits.stall_ms / 4;
    if (period < 50)
        period = 50;
    if (period > 1000)
        period = 1000;
    uv_timer_start(&srv_timer, server_on_timer, period, period);
    uv_unref((uv_handle_t *)&srv_timer);
    return 0;
}

void server_stop_listening(void)
{
    if (srv_listen_fd < 0)
        return;
    uv_close((uv_handle_t *)&srv_listen_poll, NULL);
    uv_close((uv_handle_t *)&srv_timer, NULL);
    close(srv_listen_fd);
    srv_listen_fd = -1;
    srv_listening = false;
}
