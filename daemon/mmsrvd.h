/*
 * mmsrvd.h: the modules of the daemon and what they share.
 *
 * One file per concept: log.c (stderr lines with syslog priorities),
 * config.c (the JSON configuration), segment.c (the address range and its
 * page allocator), region.c (the table of regions), access.c (who may do
 * what), client.c (connections: sockets, buffers, descriptors), dispatch.c
 * (Varlink calls to handlers), methods.c (io.mmsrvd), reclaim.c (what a
 * departed client owned), orphans.c (owners a restored region names),
 * monitor.c (the event stream), systemd.c
 * (readiness, socket activation, the descriptor store), main.c (options,
 * start-up, signals, shutdown).  Everything runs on the libuv loop's thread
 * except the work reclaim.c and methods.c hand to libuv's thread pool (the
 * locks in client-writable memory must never block the loop).
 */
#ifndef MMSRVD_MMSRVD_H
#define MMSRVD_MMSRVD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "dispatch.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "proto.h"
#include "region.h"

/* ------------------------------------------------------------------ */
/* log.c                                                                */
/* ------------------------------------------------------------------ */

#define LOG_P_ERR     3
#define LOG_P_WARNING 4
#define LOG_P_NOTICE  5
#define LOG_P_INFO    6
#define LOG_P_DEBUG   7

void log_set_verbose(bool verbose);
bool log_debug_enabled(void);
/* One line on stderr: "<prio>text\n", written with a single write(2). */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_P_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_P_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_P_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_P_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_debug_enabled())                                                                   \
            log_msg(LOG_P_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

/* ------------------------------------------------------------------ */
/* region.c: what a region is made of                                    */
/* ------------------------------------------------------------------ */

#define REGION_MAX_CHANNELS IOB_CONFIG_CHANNELS

struct channel_spec {
    char name[IOB_CHANNEL_NAME_MAX];
    uint32_t depth;
};

/* A region to create, from a CreateRegion call or the configuration. */
struct region_spec {
    char name[PROTO_NAME_MAX + 1];
    enum region_kind kind;
    uint64_t size;    /* heap: bytes asked for */
    uint32_t bufsize; /* iob */
    uint32_t count;   /* iob */
    struct channel_spec channels[REGION_MAX_CHANNELS];
    size_t nchannels;
    int64_t uid, gid, mode; /* -1: the default */
};

/*
 * Read a spec from a JSON object shaped like CreateRegion's parameters
 * (unknown members refused).  0, or -EINVAL with *bad naming the member and
 * why[] saying what is wrong with it.
 */
int region_spec_parse(const json_t *obj, struct region_spec *spec, const char **bad, char *why,
                      size_t whylen);

struct region {
    struct region *next;
    char name[PROTO_NAME_MAX + 1];
    enum region_kind kind;
    uint64_t generation;
    uint8_t *base; /* its page run in the segment */
    size_t size;   /* bytes of the memfd and of the run */
    int fd;        /* the memfd, read-write, sealed against resizing */
    uint32_t uid, gid, mode;
    uint32_t bufsize, count;
    struct channel_spec channels[REGION_MAX_CHANNELS];
    size_t nchannels;
    struct mm_heap_s *heap;  /* the daemon's own handle, never allocated from */
    struct iob_pool_s *pool; /* idem */
    unsigned clients;        /* connections that have it attached */
    unsigned refs;           /* clients + owners to reclaim + work in flight */
    bool destroying;         /* destroyed: name gone, memory goes at refs 0 */
};

/* Table-wide settings, from the configuration. */
struct region_defaults {
    uint32_t mode;
    int64_t uid, gid; /* -1: the caller's */
    size_t max_regions;
};
void region_set_defaults(const struct region_defaults *d);
size_t region_count(void);
size_t region_limit(void); /* max_regions */

/* The first live (not destroying) region of that name, or NULL. */
struct region *region_find(const char *name);
/* Iterate live and destroying regions. */
struct region *region_first(void);

/*
 * Create a region owned by uid/gid (used where the spec says -1) and log it.
 * 0 with *out; -EEXIST, -EUSERS (max_regions reached), -ENOSPC (*need and
 * *avail in bytes), -EINVAL with *bad (a spec member the allocators
 * refused), or another negative errno.
 */
int region_create(const struct region_spec *spec, uid_t uid, gid_t gid, pid_t pid,
                  struct region **out, const char **bad, uint64_t *need, uint64_t *avail);

/* Restore a region from the descriptor store (systemd.c).  Takes fd. */
int region_restore(const char *name, enum region_kind kind, uint64_t generation, uint64_t offset,
                   uint64_t size, uint32_t uid, uint32_t gid, uint32_t mode, uint32_t bufsize,
                   uint32_t count, const struct channel_spec *channels, size_t nchannels, int fd);

/* Remove the name at once; the memory goes when the last reference does. */
void region_destroy(struct region *r);
/* A connection's last attachment of r went (Detach or close): call before
 * dropping that attachment's reference.  A destroyed region that nobody has
 * attached any more is freed once its last reference goes. */
void region_client_gone(struct region *r);
void region_ref(struct region *r);
void region_unref(struct region *r);
/* Free every region without touching the descriptor store (shutdown). */
void region_release_all(void);

/* The generation the next region gets; systemd.c restores it. */
uint64_t region_next_generation(void);
void region_set_next_generation(uint64_t gen);

/* The region's row as io.mmsrvd.Region. */
json_t *region_to_json(const struct region *r);
const char *region_kind_name(enum region_kind kind);

/* ------------------------------------------------------------------ */
/* config.c                                                             */
/* ------------------------------------------------------------------ */

struct server_limits {
    size_t max_clients;
    size_t output_limit;  /* queued reply bytes before reading stops */
    uint64_t stall_ms;    /* a connection whose output does not move this long is closed */
    size_t monitor_limit; /* queued event bytes that close a monitor */
};

struct config {
    char path[4096];  /* the file read; "" when the defaults were used */
    char socket[108]; /* "" for the default path */
    uint64_t segment_size;
    size_t page_size;
    struct region_defaults defaults;
    struct server_limits limits;
    struct region_spec *regions; /* to create at start (and on SIGHUP) */
    size_t nregions;
};

/*
 * Read the configuration at path (NULL: the default path, which may be
 * missing; an explicit path must exist).  0 with *out filled (release with
 * config_free); -EINVAL after logging each problem with the file, the line
 * or key, and what is wrong.
 */
int config_load(const char *path, struct config *out);
/* What only the whole configuration can tell (the segment against the page
 * size and the regions), once command-line flags have overridden it: 0, or
 * -EINVAL after logging each problem as config_load does. */
int config_check(const struct config *c);
void config_free(struct config *c);
/* "64M", "4096", "1G": bytes; 0 with *out, or -EINVAL. */
int config_parse_size(const char *text, uint64_t *out);

/* ------------------------------------------------------------------ */
/* segment.c                                                            */
/* ------------------------------------------------------------------ */

/* Reserve the segment and start the page allocator over it.  0 or -errno. */
int segment_init(uint64_t size, size_t page_size);
void segment_fini(void);
size_t segment_page_size(void);
uint64_t segment_size(void);
/* A run of pages for bytes (a multiple of the page size), or NULL. */
uint8_t *segment_alloc(size_t bytes);
/* The run at offset, for a restored region: 0, -ERANGE, -EBUSY. */
int segment_reserve(uint64_t offset, size_t bytes, uint8_t **out);
void segment_free(uint8_t *run, size_t bytes);
/* Map fd over the run, shared, read-write; 0 or -errno. */
int segment_map(uint8_t *run, size_t bytes, int fd);
/* The largest free run, in bytes. */
uint64_t segment_largest_free(void);
uint64_t segment_offset(const uint8_t *run);

/* ------------------------------------------------------------------ */
/* access.c                                                             */
/* ------------------------------------------------------------------ */

struct peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    int fd; /* the socket, for SO_PEERGROUPS */
};

#define ACCESS_READ  0x1u
#define ACCESS_WRITE 0x2u

/* Root and the daemon's own user. */
bool access_is_admin(const struct peer *p);
/* ACCESS_READ | ACCESS_WRITE as the region's mode grants the peer. */
unsigned access_granted(const struct peer *p, const struct region *r);
/* Whether the peer had gid as its group or a supplementary group when it
 * connected. */
bool access_in_group(const struct peer *p, gid_t gid);
/* A descriptor of r's memfd that cannot be mapped writable: 0 or -errno. */
int access_readonly_fd(const struct region *r);

/* ------------------------------------------------------------------ */
/* client.c: connections                                                */
/* ------------------------------------------------------------------ */

struct owner;

/* What a connection holds of one region. */
struct attachment {
    struct attachment *next;
    struct region *region;
    unsigned count; /* Attach calls not yet detached */
    bool writable;
};

struct outmsg;

struct conn {
    uv_poll_t poll; /* first: the handle's data is the connection */
    struct conn *prev, *next;
    struct peer peer;
    struct owner *owner;
    struct proto_reader rd; /* rd.buf NULL while idle */
    struct outmsg *out_head, *out_tail;
    size_t out_bytes;
    uint64_t stalled_since; /* ms; 0 while output flows */
    int events;             /* what the poll watches */
    unsigned pending;       /* deferred calls and work holding the connection */
    bool monitor;           /* streams Monitor events */
    bool closing;
    bool eof;     /* the peer shut its side: finish the calls read, then close */
    bool in_poll; /* in its poll callback, which writes and sets events after */
    struct attachment *attachments;
};

int server_init(uv_loop_t *loop, int listen_fd, const struct server_limits *limits);
/* Stop accepting (SIGTERM).  Idempotent. */
void server_stop_listening(void);
/* Close every connection; reclaim false at shutdown, when clients live on. */
void server_close_all(bool reclaim);
size_t server_client_count(void);
/* The owner's reclaim finished: its waiting connections go on. */
void server_owner_ready(struct owner *o);
struct conn *server_first_conn(void);

/* Queue a reply on conn; params stolen.  0 or -errno (the conn is closing). */
int conn_send_reply(struct conn *c, json_t *params, bool continues, const int *fds, size_t nfds);
int conn_send_error(struct conn *c, const char *error, json_t *params);
/* Queue an already-encoded message (monitor.c); takes msg.  -ENOBUFS when
 * the connection's queue is over limit (it is then closed). */
int conn_send_raw(struct conn *c, char *msg, size_t len, size_t limit);
/* Work holding the connection: while pending, no further call is read. */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);
void conn_close(struct conn *c, const char *why);

/* Attachments of a connection. */
struct attachment *conn_find_attachment(struct conn *c, const char *name);

/* ------------------------------------------------------------------ */
/* reclaim.c                                                            */
/* ------------------------------------------------------------------ */

/* Owner ids from here up are private (a peer whose pid the daemon cannot
 * see); below, an owner id is its process's pid. */
#define OWNER_PRIVATE_FIRST 0x80000000u

/* The per-process record that owner ids come from: one per peer pid. */
struct owner *owner_get(pid_t pid);
/* Hand out private ids past id from now on (one a restored region names). */
void owner_skip_private(uint32_t id);
uint32_t owner_id(const struct owner *o);
/* Its reclaim runs: its connections' calls wait. */
bool owner_busy(const struct owner *o);
/* A connection of this owner attached r: remember it for the reclaim. */
void owner_touch(struct owner *o, struct region *r);
/* A connection of the owner closed; reclaim when it was its last one and
 * reclaim is true. */
void owner_put(struct owner *o, bool reclaim);
/* Owners that are not reclaiming drop what they remember of r (a destroyed
 * region nobody attaches any more needs no reclaim).  May free r. */
void owner_forget_region(struct region *r);
/* At shutdown: reclaims waiting to be tried again give up. */
void reclaim_stop(void);

/* orphans.c: after a restore, reclaim the owners the regions name whose
 * process is gone, and watch the live ones until they exit. */
void orphans_adopt(void);
/* At shutdown: stop watching (no reclaim: clients live on). */
void orphans_stop(void);

/* Run fn(arg) on libuv's thread pool, then done(arg) on the loop. */
int work_submit(void (*fn)(void *arg), void (*done)(void *arg), void *arg);
size_t work_pending(void);
uv_loop_t *work_loop(void);
void work_init(uv_loop_t *loop);

/* ------------------------------------------------------------------ */
/* monitor.c                                                            */
/* ------------------------------------------------------------------ */

enum monitor_event {
    MONITOR_CREATED,
    MONITOR_DESTROYED,
    MONITOR_ATTACHED,
    MONITOR_DETACHED,
    MONITOR_RECLAIMED,
};
/* Start streaming to c: the live regions first, as "created" events. */
void monitor_start(struct conn *c);
/* The connection closes: it streams no more. */
void monitor_stopped(struct conn *c);
/* Queued event bytes past which a monitor is closed. */
void monitor_set_limit(size_t bytes);
/* Send an event about r to every monitor that may read r; pid <= 0 leaves
 * it out. */
void monitor_emit(enum monitor_event ev, const struct region *r, pid_t pid);

/* ------------------------------------------------------------------ */
/* methods.c, dispatch.c                                                */
/* ------------------------------------------------------------------ */

/* Register org.varlink.service (first in GetInfo's list) and io.mmsrvd. */
void dispatch_register_service(void);
void methods_register(void);

/* ------------------------------------------------------------------ */
/* systemd.c                                                            */
/* ------------------------------------------------------------------ */

/* Descriptors systemd passed: the listening socket (or -1) and whatever the
 * store held, restored into the region table.  Call after segment_init is
 * possible: it may change the segment's size and page size first. */
struct sd_passed {
    int listen_fd;
    json_t *table; /* the stored table, or NULL */
    int *fds;      /* stored region descriptors, by name */
    char **names;
    size_t nfds;
};
int sd_collect(struct sd_passed *p);
/* Restore regions from p, then drop what is left.  Returns regions restored. */
int sd_restore(struct sd_passed *p);
void sd_passed_free(struct sd_passed *p);
bool sd_enabled(void);
void sd_ready(void);
void sd_stopping(void);
/* Wait at most timeout_ms for the notifications queued to go out. */
void sd_flush(unsigned timeout_ms);
/* A region was created / is gone: store or remove its descriptor, and write
 * the table again. */
void sd_region_stored(const struct region *r);
void sd_region_removed(const struct region *r);
void sd_table_changed(void);
/* What has been queued for the store so far, and a wait (on a worker
 * thread, never the loop) until all of that went out: at most timeout_ms;
 * false when it did not.  A reply that promises a region waits for its
 * descriptor and the table to be in the store, so that a daemon killed just
 * after the reply loses nothing it promised. */
uint64_t sd_store_mark(void);
bool sd_store_wait(uint64_t mark, unsigned timeout_ms);

#endif /* MMSRVD_MMSRVD_H */
