/*
 * client.h: what the files of libmmsrv share, never installed.
 *
 * A connection is one socket, one lock and the regions it attached.  Every
 * public call takes the lock for its whole length, so the blocking call
 * machinery (connection.c), the reply readers (reply.c) and the region
 * calls (regions.c, attach.c) run one at a time per connection and never
 * see each other's half-done state.  A connection turned into a monitor
 * stream (monitor.c) serves mmsrv_monitor_next() alone.
 */
#ifndef MMSRV_CLIENT_H
#define MMSRV_CLIENT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmsrv/mmsrv.h"
#include "proto.h"

/* An attached region: the public part first, so that a struct mmsrv_region *
 * handed out converts back to its entry. */
struct mmsrv__region {
    struct mmsrv_region pub;
    struct mmsrv__region *next;
};

struct mmsrv_client {
    int fd;
    pthread_mutex_t lock;
    struct proto_reader reader;
    int timeout_ms;
    /* A reply timed out or the stream lost its framing: the socket is shut
     * down and every later call fails with -ECONNRESET. */
    bool broken;
    /* mmsrv_monitor_start() sent Monitor: the socket carries events, and
     * every call but mmsrv_monitor_next() fails with -EBUSY. */
    bool monitoring;
    struct mmsrv__region *regions;
};

/* A reply and the descriptors that came with it. */
struct mmsrv__reply {
    struct proto_reply msg;
    int fds[PROTO_MAX_FDS];
    size_t nfds;
};

/* The reply timeout unless $MMSRV_TIMEOUT_MS says otherwise. */
#define MMSRV__TIMEOUT_MS 30000

/*
 * Send one call and wait for its reply; the caller holds client->lock.
 * params is stolen (NULL means {}).  0 with *out (release it with
 * mmsrv__reply_release) for a result; a negative errno otherwise, with the
 * thread's error name set to the daemon's error, or cleared when the daemon
 * did not answer with one.  Descriptors received with anything but the
 * reply are closed.
 */
int mmsrv__call(struct mmsrv_client *client, const char *method, json_t *params,
                struct mmsrv__reply *out);

/* The steps of a call, for monitor.c's stream; the caller holds the lock. */

/* Encode and send one call with flags (PROTO_MORE...); params is stolen.
 * 0, or a negative errno with the thread's error name set: -ENOMEM, the
 * send's -errno, or the error of a daemon that refused the connection (the
 * connection is then broken). */
int mmsrv__send_call(struct mmsrv_client *client, const char *method, json_t *params,
                     unsigned flags);

/* One recvmsg into the reader, waiting at most the receive timeout.  >0
 * bytes received, 0 nothing came in that time (EAGAIN), -ECONNRESET when
 * the daemon closed, another -errno.  Descriptors go to fds up to cap (*nfds
 * counts them); the rest, or all when fds is NULL, are closed. */
int mmsrv__receive(struct mmsrv_client *client, int *fds, size_t *nfds, size_t cap);

/* The connection can no longer be trusted to pair replies with calls (or
 * to frame events): shut the socket down; every later call fails with
 * -ECONNRESET. */
void mmsrv__connection_break(struct mmsrv_client *client);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t mmsrv__now_ms(void);

/* Close the descriptors nobody took and free the reply. */
void mmsrv__reply_release(struct mmsrv__reply *reply);

/* Take the descriptor the reply names by index (a JSON integer member key of
 * params): the caller owns it.  The fd, or -EPROTO. */
int mmsrv__reply_take_fd(struct mmsrv__reply *reply, const json_t *params, const char *key);

/* Record err as this thread's failure without a Varlink error name (a bad
 * argument, a reply the library cannot use); returns err. */
int mmsrv__fail(int err);
/* Record the daemon's error name as this thread's failure; returns its
 * errno (-EPROTO for a name the library does not know). */
int mmsrv__fail_error(const char *name);

/* A call whose only parameter is a region name and whose reply has nothing
 * the caller needs (DestroyRegion, Detach); the caller holds the lock. */
int mmsrv__call_name(struct mmsrv_client *client, const char *method, const char *name);

/* Reply readers (reply.c): each -EPROTO for a missing member, a wrong type or
 * a value out of range. */
int mmsrv__json_uint(const json_t *obj, const char *key, uint64_t max, uint64_t *out);
int mmsrv__json_u32(const json_t *obj, const char *key, uint32_t *out);
int mmsrv__json_bool(const json_t *obj, const char *key, bool *out);
/* Copy a string member into dst (size bytes); -EPROTO if it does not fit. */
int mmsrv__json_string(const json_t *obj, const char *key, char *dst, size_t size);
/* A Region object of the interface. */
int mmsrv__region_info_parse(const json_t *region, struct mmsrv_region_info *out);

/* Release every region of the connection: allocator handles, mappings, the
 * entries (attach.c).  No Detach calls: closing the socket detaches. */
void mmsrv__regions_release(struct mmsrv_client *client);

#endif /* MMSRV_CLIENT_H */
