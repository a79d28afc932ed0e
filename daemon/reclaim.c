/*
 * reclaim.c: what a departed client owned comes back.
 *
 * Owner ids.  Every connection of one process shares one owner id, the
 * process's pid as SO_PEERCRED gives it (returned as "owner" by Attach, so
 * that the client records its chains and cached blocks under it), or, for a
 * peer whose pid the daemon cannot see, an id from a range no pid reaches.
 * The owner remembers every region any of its connections attached.
 *
 * When the last connection of an owner closes, the process is gone or has
 * let go of the daemon; for every region it had attached, the daemon
 * returns its IOBs, queue entries and channel ends (iob_pool_reclaim) and
 * the blocks its threads cached, taking the heap's robust lock, which
 * repairs the heap if the process died holding it (mm_reclaim_owner).  Both
 * take locks that live in client-writable memory, so they run on libuv's
 * thread pool: a client that holds a lock forever stalls one worker, never
 * the loop.  While an owner's reclaim runs, new connections of the same pid
 * wait before their first call, so that the reclaim cannot take what a
 * reconnected process allocates.
 *
 * A region whose lock another client holds past the daemon's lock wait
 * (mm_set_lock_wait: a client stopped in a debugger inside mm_malloc, say)
 * is tried again every RECLAIM_RETRY_MS until its reclaim goes through:
 * what the dead process held comes back once the lock does.
 */
#include "mmsrvd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct touched {
    struct touched *next;
    struct region *region;
    long result; /* buffers or blocks returned, or a negative code */
};

struct owner {
    struct owner *next;
    pid_t pid;
    uint32_t id;
    unsigned nconns;
    bool busy; /* a reclaim runs, or waits to be tried again */
    struct touched *touched;
    uv_timer_t *retry; /* armed while regions wait for their lock */
};

#define RECLAIM_RETRY_MS 1000

static bool reclaim_stopping; /* reclaim_stop ran: no more tries */

static struct owner *owners;
static uint32_t next_private_id = OWNER_PRIVATE_FIRST;

struct owner *owner_get(pid_t pid)
{
    if (pid > 0) {
        for (struct owner *o = owners; o != NULL; o = o->next) {
            if (o->pid == pid) {
                o->nconns++;
                return o;
            }
        }
    }
    struct owner *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->pid = pid;
    o->id = pid > 0 ? (uint32_t)pid : next_private_id++;
    if (next_private_id == 0)
        next_private_id = OWNER_PRIVATE_FIRST;
    o->nconns = 1;
    o->next = owners;
    owners = o;
    return o;
}

void owner_skip_private(uint32_t id)
{
    if (id >= next_private_id) {
        next_private_id = id + 1u;
        if (next_private_id == 0)
            next_private_id = OWNER_PRIVATE_FIRST;
    }
}

uint32_t owner_id(const struct owner *o)
{
    return o->id;
}

bool owner_busy(const struct owner *o)
{
    return o != NULL && o->busy;
}

void owner_touch(struct owner *o, struct region *r)
{
    for (struct touched *t = o->touched; t != NULL; t = t->next)
        if (t->region == r)
            return;
    struct touched *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        log_err("owner %u: out of memory: region=%s will not be reclaimed", o->id, r->name);
        return;
    }
    t->region = r;
    region_ref(r);
    t->next = o->touched;
    o->touched = t;
}

/* Let go of the regions o remembers, reclaiming nothing. */
static void owner_drop_touched(struct owner *o)
{
    while (o->touched != NULL) {
        struct touched *t = o->touched;
        o->touched = t->next;
        region_unref(t->region);
        free(t);
    }
}

static void owner_unlink(struct owner *o)
{
    for (struct owner **p = &owners; *p != NULL; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            break;
        }
    }
    free(o);
}

/* On a worker thread: only the allocators, on regions kept alive by the
 * references the owner holds. */
static void reclaim_work(void *arg)
{
    struct owner *o = arg;
    for (struct touched *t = o->touched; t != NULL; t = t->next) {
        struct region *r = t->region;
        if (r->pool != NULL) {
            int rc = iob_pool_reclaim(r->pool, o->id);
            t->result = rc == -MM_ETIMEDOUT ? -EBUSY : rc;
        } else if (r->heap != NULL) {
            /* takes the robust lock: a lock its owner died holding is
             * repaired here */
            size_t n = mm_reclaim_owner(r->heap, o->id);
            if (n == (size_t)-1)
                t->result = mm_last_error(r->heap) == MM_ERR_BUSY ? -EBUSY : -EUCLEAN;
            else
                t->result = mm_heap_state(r->heap) == MM_OK ? (long)n : -EUCLEAN;
        } else {
            t->result = -EBADMSG;
        }
    }
}

static void reclaim_done(void *arg);

static void retry_closed(uv_handle_t *h)
{
    free(h);
}

static void retry_fire(uv_timer_t *timer)
{
    struct owner *o = timer->data;
    if (work_submit(reclaim_work, reclaim_done, o) != 0) {
        log_err("owner %u: cannot start its reclaim again", o->id);
        uv_timer_start(timer, retry_fire, RECLAIM_RETRY_MS, 0);
    }
}

/* Try the regions left in o->touched again later; false if it cannot. */
static bool retry_later(struct owner *o)
{
    if (o->retry == NULL) {
        o->retry = calloc(1, sizeof(*o->retry));
        if (o->retry == NULL || uv_timer_init(work_loop(), o->retry) != 0) {
            free(o->retry);
            o->retry = NULL;
            return false;
        }
        o->retry->data = o;
    }
    return uv_timer_start(o->retry, retry_fire, RECLAIM_RETRY_MS, 0) == 0;
}

static void retry_drop(struct owner *o)
{
    if (o->retry != NULL) {
        uv_close((uv_handle_t *)o->retry, retry_closed);
        o->retry = NULL;
    }
}

static void reclaim_done(void *arg)
{
    struct owner *o = arg;
    struct touched *again = NULL;
    while (o->touched != NULL) {
        struct touched *t = o->touched;
        o->touched = t->next;
        struct region *r = t->region;
        if (t->result == -EBUSY && !r->destroying) {
            log_info("reclaim region=%s owner=%u: its lock is held; again in %d ms", r->name, o->id,
                     RECLAIM_RETRY_MS);
            t->next = again;
            again = t;
            continue;
        }
        if (t->result < 0)
            log_warn("reclaim region=%s owner=%u: %s", r->name, o->id,
                     t->result == -EUCLEAN ? "the region's memory is corrupted"
                                           : strerror((int)-t->result));
        else
            log_info("reclaim region=%s owner=%u %s=%ld", r->name, o->id,
                     r->pool != NULL ? "buffers" : "blocks", t->result);
        monitor_emit(MONITOR_RECLAIMED, r, o->pid > 0 ? o->pid : 0);
        region_unref(r);
        free(t);
    }
    if (again != NULL) {
        o->touched = again;
        if (!reclaim_stopping && retry_later(o))
            return; /* still busy: the same pid's new connections wait */
        if (!reclaim_stopping)
            log_err("owner %u: cannot schedule its reclaim again", o->id);
        owner_drop_touched(o);
    }
    retry_drop(o);
    o->busy = false;
    if (o->nconns == 0)
        owner_unlink(o);
    else
        server_owner_ready(o);
}

void owner_forget_region(struct region *r)
{
    unsigned held = 0;
    for (struct owner *o = owners; o != NULL; o = o->next) {
        if (o->busy)
            continue; /* its reclaim is running and lets go when done */
        for (struct touched **p = &o->touched; *p != NULL; p = &(*p)->next) {
            if ((*p)->region == r) {
                struct touched *t = *p;
                *p = t->next;
                free(t);
                held++;
                break;
            }
        }
    }
    /* only now: the last reference frees r */
    while (held-- > 0)
        region_unref(r);
}

void owner_put(struct owner *o, bool reclaim)
{
    if (--o->nconns > 0 || o->busy)
        return;
    if (reclaim && o->touched != NULL) {
        o->busy = true;
        if (work_submit(reclaim_work, reclaim_done, o) == 0)
            return;
        log_err("owner %u: cannot start its reclaim", o->id);
        o->busy = false;
    }
    owner_drop_touched(o);
    owner_unlink(o);
}

/* ---- The thread pool ------------------------------------------------- */

struct work {
    uv_work_t req;
    void (*fn)(void *arg);
    void (*done)(void *arg);
    void *arg;
};

static uv_loop_t *work_uv_loop;
static size_t work_count;

void work_init(uv_loop_t *loop)
{
    work_uv_loop = loop;
}

uv_loop_t *work_loop(void)
{
    return work_uv_loop;
}

size_t work_pending(void)
{
    return work_count;
}

static void work_run(uv_work_t *req)
{
    struct work *w = req->data;
    w->fn(w->arg);
}

static void work_after(uv_work_t *req, int status)
{
    struct work *w = req->data;
    (void)status;
    work_count--;
    w->done(w->arg);
    free(w);
}

int work_submit(void (*fn)(void *arg), void (*done)(void *arg), void *arg)
{
    struct work *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    w->req.data = w;
    int rc = uv_queue_work(work_uv_loop, &w->req, work_run, work_after);
    if (rc != 0) {
        free(w);
        return rc;
    }
    work_count++;
    return 0;
}

void reclaim_stop(void)
{
    /* Clients live on past a stop: reclaims waiting for a lock give up.  A
     * retry whose work is in flight (its timer fired) ends in reclaim_done,
     * which tries no more. */
    reclaim_stopping = true;
    for (struct owner *o = owners; o != NULL; o = o->next) {
        if (o->retry == NULL || !uv_is_active((uv_handle_t *)o->retry))
            continue;
        uv_timer_stop(o->retry);
        retry_drop(o);
        owner_drop_touched(o);
        o->busy = false;
    }
}
