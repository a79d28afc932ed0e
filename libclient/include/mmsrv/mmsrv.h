/*
 * mmsrv.h: libmmsrv, the client library of mmsrvd.
 *
 * A client connects to the daemon, creates and attaches named regions, and
 * then works in shared memory alone: an attached heap region comes with its
 * mm heap handle (mm/mm.h), an IOB region with its pool handle (mm/iob.h).
 * The daemon is needed again only for control calls.
 *
 * Every call is blocking and thread-safe: calls on one connection are
 * serialized by a lock inside it.  A call that can fail returns 0 (or a
 * count) on success and a negative errno on failure; the Varlink error name
 * of the calling thread's last failed call, on whichever connection, is
 * kept per thread (mmsrv_error_name()).  The library never logs.
 *
 * errno mapping: -ENOENT RegionNotFound, -EEXIST RegionExists, -EACCES
 * PermissionDenied, -ENOSPC NoSpace, -EAGAIN ResourceUnavailable (the
 * daemon ran short of descriptors or memory: try again later), -ENOTCONN
 * NotAttached, -EINVAL InvalidParameter (or a bad argument caught before
 * sending), -EPROTO a reply the library could not understand, -ECONNRESET
 * the daemon went away, -ETIMEDOUT no reply in time (the connection is then
 * closed: a late reply could not be told from the next one), -EUCLEAN an
 * attached region's memory does not hold what the daemon said (header, heap
 * or pool), -EMFILE this process holds as many heap or pool handles as the
 * allocators allow (detach some first), -EBUSY a call on a connection that is a monitor stream
 * (mmsrv_monitor_start()), -ENOSYS MethodNotFound (a daemon without the
 * method: an older one).
 * Failures the daemon did not answer with an error leave mmsrv_error_name()
 * NULL.
 */
#ifndef MMSRV_MMSRV_H
#define MMSRV_MMSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mm_heap_s;
struct iob_pool_s;

/* One connection to mmsrvd.  Opaque. */
struct mmsrv_client;

enum mmsrv_kind {
    MMSRV_HEAP = 1,
    MMSRV_IOB = 2,
};

/* What the daemon's table says about a region. */
struct mmsrv_region_info {
    char name[64];
    enum mmsrv_kind kind;
    uint64_t size;
    uint32_t uid;
    uint32_t gid;
    uint32_t mode;
    uint32_t clients;
    bool destroying;
};

/* An attached region, valid until mmsrv_detach() or mmsrv_disconnect(). */
struct mmsrv_region {
    struct mmsrv_region_info info;
    void *base; /* the mapping of the whole region */
    size_t size;
    bool writable;
    uint32_t owner;          /* the id this connection owns things under */
    struct mm_heap_s *heap;  /* heap regions attached writable; else NULL */
    struct iob_pool_s *pool; /* IOB regions attached writable; else NULL */
};

/* A channel to create with an IOB region. */
struct mmsrv_channel_spec {
    const char *name;
    uint32_t depth;
};

/* What mmsrv_create() makes.  uid, gid, mode: -1 for the daemon's default
 * (the caller's uid and gid, the configured mode). */
struct mmsrv_region_spec {
    const char *name;
    enum mmsrv_kind kind;
    uint64_t size;                             /* heap: bytes */
    uint32_t bufsize;                          /* iob: bytes per buffer */
    uint32_t count;                            /* iob: buffers */
    const struct mmsrv_channel_spec *channels; /* iob: may be NULL */
    size_t nchannels;
    int64_t uid;
    int64_t gid;
    int64_t mode;
};

/* A region's figures (RegionStats). */
struct mmsrv_stats {
    struct mmsrv_region_info info;
    /* heap: mm_mallinfo's figures as the daemon read them, and its state:
     * "ok", "broken", "lock-lost", "not-a-heap", "busy" (its lock stayed
     * held past the daemon's wait; the figures are then 0) or "error" */
    uint64_t arena, uordblks, fordblks, mxordblk, ordblks;
    char heap_state[16];
    /* iob */
    uint32_t bufsize, count, free;
    uint64_t waits;
    uint32_t nchannels;
    /* attached clients */
    uint32_t nattached;
};

/*
 * Connect to mmsrvd.  address is "unix:/path" or a path; NULL means
 * $MMSRV_ADDRESS, else the default (/run/mmsrvd/io.mmsrvd for root,
 * $XDG_RUNTIME_DIR/mmsrvd/io.mmsrvd otherwise).  0 with *out; -errno.
 */
int mmsrv_connect(const char *address, struct mmsrv_client **out);

/* Detach and unmap every region of the connection, then close it. */
void mmsrv_disconnect(struct mmsrv_client *client);

/* The connection's socket, for an event loop that watches it (readable
 * means the daemon closed it or sent an event). */
int mmsrv_fd(const struct mmsrv_client *client);

/* The Varlink error name of this thread's last failed call, or NULL. */
const char *mmsrv_error_name(void);

/* Create a region (CreateRegion).  0, with the daemon's entry for the new
 * region in *info unless info is NULL; -errno. */
int mmsrv_create(struct mmsrv_client *client, const struct mmsrv_region_spec *spec,
                 struct mmsrv_region_info *info);

/* Destroy a region (DestroyRegion): its name goes at once; its memory when
 * the last client that holds it detaches.  0; -errno. */
int mmsrv_destroy(struct mmsrv_client *client, const char *name);

#define MMSRV_ATTACH_READONLY 0x1u

/*
 * Attach a region: map it, check its header, and open its heap or pool.
 * 0 with *out (owned by the connection until mmsrv_detach()); -errno.
 * A read-only attach maps the region PROT_READ and opens no allocator.
 */
int mmsrv_attach(struct mmsrv_client *client, const char *name, unsigned flags,
                 struct mmsrv_region **out);

/* Close the region's heap or pool handle, unmap it, free *region, and tell
 * the daemon (Detach).  The region is gone from the connection even when
 * the daemon's answer is an error, which is returned.  0; -errno; -EINVAL
 * for a region that is not one of this connection's. */
int mmsrv_detach(struct mmsrv_client *client, struct mmsrv_region *region);

/* The regions this client may attach: a count >= 0 with *out (free() it). */
int mmsrv_list(struct mmsrv_client *client, struct mmsrv_region_info **out);

/* A region's figures (RegionStats), for a client that may read it: 0 with
 * *out; -errno. */
int mmsrv_stats(struct mmsrv_client *client, const char *name, struct mmsrv_stats *out);

/* ---- Monitoring region events ------------------------------------------ */

enum mmsrv_event_kind {
    MMSRV_EVENT_CREATED = 1,
    MMSRV_EVENT_DESTROYED, /* the name is gone (the memory may live on) */
    MMSRV_EVENT_ATTACHED,
    MMSRV_EVENT_DETACHED,
    MMSRV_EVENT_RECLAIMED, /* a client died or left; what it owned came back */
};

/* One event of the Monitor stream. */
struct mmsrv_event {
    enum mmsrv_event_kind kind;
    char region[64]; /* the region's name */
    int64_t pid;     /* the client that attached, detached or was reclaimed; -1 if none */
};

/*
 * Turn the connection into a stream of region events (io.mmsrvd.Monitor
 * with "more").  The stream starts with one MMSRV_EVENT_CREATED per region
 * that already exists, then carries events as they happen, for the regions
 * the caller may read.  Nothing is waited for: a daemon that refuses
 * Monitor says so at the first mmsrv_monitor_next().
 *
 * From then on only mmsrv_monitor_next(), mmsrv_fd(), mmsrv_error_name()
 * and mmsrv_disconnect() are valid on the connection; every other call
 * fails with -EBUSY.  Open a second connection for control calls.
 *
 * 0; -EINVAL client is NULL; -EBUSY the connection already monitors or has
 * regions attached (detach them first: a monitor connection cannot make the
 * Detach call); -ECONNRESET the connection is broken; the send's -errno.
 */
int mmsrv_monitor_start(struct mmsrv_client *client);

/*
 * Wait up to timeout_ms (-1: for ever, 0: only what has already arrived)
 * for the next event of a monitor connection.
 *
 * 0 with *ev filled.  -ETIMEDOUT when none came in time: the connection
 * stays usable, and a partly received event is kept for the next call.
 * -ECONNRESET when the daemon closed the stream (it stopped, or dropped a
 * monitor that fell more than its limit behind), and on every call after
 * that.  -EPROTO for a message that is not an event (the stream is then
 * closed, as its framing cannot be trusted).  The daemon's error, as for
 * any call, when it refused Monitor (an older daemon: -ENOSYS
 * MethodNotFound); the stream is then closed too.  -EINVAL client or ev is
 * NULL, or the connection is not a monitor stream.  On failure *ev is left
 * as it was.
 *
 * An event of a kind this library does not know (from a newer daemon) is
 * skipped, not an error.  Descriptors arriving on the stream are closed.
 *
 * The connection's lock is held while it waits: other threads calling on
 * the same connection wait too (nothing else is valid on it anyway).  To
 * wait in an event loop instead, watch mmsrv_fd() for readability, then
 * call this with timeout 0 until -ETIMEDOUT: several events may arrive in
 * one read, and those already read do not make the socket readable again.
 */
int mmsrv_monitor_next(struct mmsrv_client *client, struct mmsrv_event *ev, int timeout_ms);

/* Offsets: how processes tell each other where things are.  UINT64_MAX for
 * a pointer outside the region; NULL for an offset (plus len bytes) outside. */
uint64_t mmsrv_offset(const struct mmsrv_region *region, const void *ptr);
void *mmsrv_pointer(const struct mmsrv_region *region, uint64_t offset, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* MMSRV_MMSRV_H */
