/*
 * orphans.c: the owners a restored region names, whose connections ended
 * with the previous daemon.
 *
 * A restart through systemd's descriptor store (systemd.c) brings the
 * regions back but not who holds what in them: every connection, and with
 * it every owner record (reclaim.c), went with the old daemon.  A client
 * that died while no daemon ran, or that works on in shared memory without
 * reconnecting and dies later, would keep its buffers, its channel ends and
 * its cached heap blocks for good.  So after a restore the daemon reads the
 * owner ids the regions name (the holders of chains, the single ends of
 * channels, the owners of cached blocks) and treats each like a client:
 *
 *   - an id below 0x80000000 is a pid (reclaim.c).  If no such process
 *     exists, its reclaim runs at once.  If one does, the daemon watches it
 *     through a pidfd and reclaims when it exits and no connection of it is
 *     left, as if its last connection had closed.  A reused pid only delays
 *     the reclaim until that process exits; a pidfd names one process, so
 *     the watch ends with it, not with the number;
 *   - a private id (a peer whose pid the daemon could not see) cannot be
 *     checked and is left alone; new private ids start past it.
 *
 * The ids are read from client-writable memory, so the watches are capped
 * (WATCH_MAX): a scribbler naming every process of the host costs the
 * daemon no more than that many descriptors.
 *
 * Reading the heaps takes their locks, which live in client-writable
 * memory, so the scan runs on libuv's thread pool like a reclaim.  A heap
 * whose lock stays held past the wait (a client stopped inside it, say) is
 * scanned again every RESCAN_MS until the scan goes through, as a reclaim
 * is retried: its dead owners' cached blocks would otherwise stay lost.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One owner id and the restored regions that name it. */
struct found {
    struct found *next;
    uint32_t id;
    size_t nregions;
    struct region **regions;
};

/* The scan: what the worker fills in, the loop then acts on. */
struct scan {
    size_t nregions;
    struct region **regions; /* referenced for the scan's length */
    struct found *found;
    bool out_of_memory;
    size_t nbusy;
    struct region **busy; /* heaps whose lock was held: room for nregions */
};

/* A live owner watched through a pidfd until it exits. */
struct watch {
    uv_poll_t poll;
    int pidfd;
    struct owner *owner;
    struct watch *next;
};

static struct watch *watches;
static size_t nwatches;

/* The owner ids come from memory clients can write: a scribbler could
 * name every live process of the host.  Watch no more than this many. */
#define WATCH_MAX 1024
static bool stopped; /* orphans_stop ran: start nothing more */

/* The next scan of the heaps that were busy, and when it starts. */
#define RESCAN_MS 1000
static uv_timer_t *rescan_timer;
static struct scan *rescan;

/* ---- The scan, on a worker thread ------------------------------------- */

static void found_add(struct scan *s, uint32_t id, struct region *r)
{
    if (id == 0)
        return;
    struct found *f = s->found;
    while (f != NULL && f->id != id)
        f = f->next;
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            s->out_of_memory = true;
            return;
        }
        f->id = id;
        f->next = s->found;
        s->found = f;
    }
    if (f->nregions > 0 && f->regions[f->nregions - 1] == r)
        return; /* regions are scanned one at a time */
    struct region **more = realloc(f->regions, (f->nregions + 1) * sizeof(*more));
    if (more == NULL) {
        s->out_of_memory = true;
        return;
    }
    more[f->nregions++] = r;
    f->regions = more;
}

struct scan_region {
    struct scan *scan;
    struct region *region;
};

static bool chain_owner(void *arg, const struct iob_chain_info *chain)
{
    struct scan_region *sr = arg;
    found_add(sr->scan, chain->owner, sr->region); /* 0 for queued chains */
    return true;
}

/* Sees every chunk, so that a walk that ran reports at least one. */
static bool cache_owner(void *arg, const struct mm_block_info *block)
{
    struct scan_region *sr = arg;
    if (block->cached) /* an allocated block's owner (debug builds) is no holder */
        found_add(sr->scan, block->owner, sr->region);
    return true;
}

static void scan_work(void *arg)
{
    struct scan *s = arg;
    for (size_t i = 0; i < s->nregions; i++) {
        struct scan_region sr = {s, s->regions[i]};
        struct region *r = sr.region;
        if (r->pool != NULL) {
            (void)iob_pool_walk(r->pool, chain_owner, &sr);
            for (size_t c = 0; c < r->nchannels; c++) {
                int id = iob_channel_lookup(r->pool, r->channels[c].name);
                uint32_t sender, receiver;
                if (id >= 0 && iob_channel_ends(r->pool, id, &sender, &receiver) == 0) {
                    found_add(s, sender, r);
                    found_add(s, receiver, r);
                }
            }
        } else if (r->heap != NULL) {
            struct mm_dump_filter every = {.kinds =
                                               MM_DUMP_CACHED | MM_DUMP_ALLOCATED | MM_DUMP_FREE};
            /* Nothing reported: the walk did not run.  A broken heap stays
             * so; any other refusal is its lock, held past the wait. */
            if (mm_memdump(r->heap, &every, cache_owner, &sr) == 0 &&
                mm_heap_state(r->heap) == MM_OK)
                s->busy[s->nbusy++] = r;
        }
    }
}

/* ---- Acting on it, on the loop ------------------------------------------ */

static void watch_closed(uv_handle_t *h)
{
    struct watch *w = h->data;
    close(w->pidfd);
    free(w);
}

static void watch_end(struct watch *w, bool reclaim)
{
    for (struct watch **p = &watches; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    nwatches--;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    owner_put(w->owner, reclaim);
}

static void on_exit_of_owner(uv_poll_t *p, int status, int events)
{
    struct watch *w = p->data;
    (void)status, (void)events; /* readable or an error: either way it is gone */
    log_info("orphan owner=%u: the process exited", owner_id(w->owner));
    watch_end(w, true);
}

/* Watch the live process pid for o; false if it cannot be watched. */
static bool watch_start(struct owner *o, pid_t pid)
{
    if (nwatches >= WATCH_MAX) {
        errno = EMFILE;
        return false;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return false;
    struct watch *w = calloc(1, sizeof(*w));
    if (w == NULL || uv_poll_init(work_loop(), &w->poll, fd) != 0) {
        free(w);
        close(fd);
        return false;
    }
    w->poll.data = w;
    w->pidfd = fd;
    w->owner = o;
    if (uv_poll_start(&w->poll, UV_READABLE, on_exit_of_owner) != 0) {
        uv_close((uv_handle_t *)&w->poll, watch_closed);
        return false;
    }
    w->next = watches;
    watches = w;
    nwatches++;
    return true;
}

static bool watched(const struct owner *o)
{
    for (const struct watch *w = watches; w != NULL; w = w->next)
        if (w->owner == o)
            return true;
    return false;
}

static void adopt(const struct found *f)
{
    if (stopped)
        return;
    if (f->id >= OWNER_PRIVATE_FIRST) {
        owner_skip_private(f->id);
        log_notice("orphan owner=%u: a private id, left alone", f->id);
        return;
    }
    pid_t pid = (pid_t)f->id;
    struct owner *o = owner_get(pid); /* one reference: this watch */
    if (o == NULL) {
        log_err("orphan owner=%u: out of memory: not reclaimed", f->id);
        return;
    }
    for (size_t i = 0; i < f->nregions; i++)
        owner_touch(o, f->regions[i]);
    if (watched(o)) { /* found again by a later scan: one watch is enough */
        owner_put(o, false);
        return;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        log_notice("orphan owner=%u regions=%zu: the process is gone; reclaiming", f->id,
                   f->nregions);
        owner_put(o, true);
    } else if (watch_start(o, pid)) {
        log_info("orphan owner=%u regions=%zu: the process lives; watching it", f->id, f->nregions);
    } else {
        log_warn("orphan owner=%u: cannot watch the process (%s); reclaimed only if it "
                 "connects again",
                 f->id, strerror(errno));
        owner_put(o, false);
    }
}

static void scan_free(struct scan *s)
{
    for (size_t i = 0; i < s->nregions; i++)
        region_unref(s->regions[i]);
    free(s->regions);
    free(s->busy);
    free(s);
}

/* An empty scan with room for n regions, or NULL if out of memory. */
static struct scan *scan_new(size_t n)
{
    struct scan *s = calloc(1, sizeof(*s));
    struct region **regions = calloc(n, sizeof(*regions));
    struct region **busy = calloc(n, sizeof(*busy));
    if (s == NULL || regions == NULL || busy == NULL) {
        free(s);
        free(regions);
        free(busy);
        return NULL;
    }
    s->regions = regions;
    s->busy = busy;
    return s;
}

/* Add r to a scan (referenced for the scan's length). */
static void scan_add(struct scan *s, struct region *r)
{
    region_ref(r);
    s->regions[s->nregions++] = r;
}

static void scan_done(void *arg);

static void scan_start(struct scan *s)
{
    if (work_submit(scan_work, scan_done, s) != 0) {
        log_err("orphans: cannot start the scan: owners of restored regions are not reclaimed");
        scan_free(s);
    }
}

static void rescan_fire(uv_timer_t *timer)
{
    (void)timer;
    struct scan *s = rescan;
    rescan = NULL;
    if (s != NULL)
        scan_start(s);
}

/* Scan the heaps of s that were busy again in RESCAN_MS (those not being
 * destroyed: their owners' blocks go with them). */
static void rescan_later(struct scan *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nbusy; i++) {
        if (s->busy[i]->destroying)
            continue;
        log_info("orphans: region=%s: its lock is held; scanning it again in %d ms",
                 s->busy[i]->name, RESCAN_MS);
        s->busy[n++] = s->busy[i];
    }
    s->nbusy = n;
    if (n == 0)
        return;
    if (rescan_timer == NULL) {
        rescan_timer = calloc(1, sizeof(*rescan_timer));
        if (rescan_timer == NULL || uv_timer_init(work_loop(), rescan_timer) != 0) {
            free(rescan_timer);
            rescan_timer = NULL;
        }
    }
    rescan = rescan_timer != NULL ? scan_new(n) : NULL;
    for (size_t i = 0; rescan != NULL && i < n; i++)
        scan_add(rescan, s->busy[i]);
    if (rescan == NULL || uv_timer_start(rescan_timer, rescan_fire, RESCAN_MS, 0) != 0) {
        log_err("orphans: out of memory: owners of busy heaps are not reclaimed");
        if (rescan != NULL)
            scan_free(rescan);
        rescan = NULL;
    }
}

static void scan_done(void *arg)
{
    struct scan *s = arg;
    if (s->out_of_memory)
        log_err("orphans: out of memory while scanning; some owners are not reclaimed");
    while (s->found != NULL) {
        struct found *f = s->found;
        s->found = f->next;
        adopt(f);
        free(f->regions);
        free(f);
    }
    if (s->nbusy > 0 && !stopped)
        rescan_later(s);
    scan_free(s);
}

void orphans_adopt(void)
{
    size_t n = 0;
    for (struct region *r = region_first(); r != NULL; r = r->next)
        n++;
    if (n == 0)
        return;
    struct scan *s = scan_new(n);
    if (s == NULL) {
        log_err("orphans: out of memory: owners of restored regions are not reclaimed");
        return;
    }
    for (struct region *r = region_first(); r != NULL; r = r->next)
        scan_add(s, r);
    scan_start(s);
}

static void rescan_timer_closed(uv_handle_t *h)
{
    free(h);
}

void orphans_stop(void)
{
    stopped = true;
    if (rescan_timer != NULL) {
        uv_close((uv_handle_t *)rescan_timer, rescan_timer_closed);
        rescan_timer = NULL;
    }
    if (rescan != NULL) {
        scan_free(rescan);
        rescan = NULL;
    }
    while (watches != NULL)
        watch_end(watches, false); /* clients live on past a stop */
}
