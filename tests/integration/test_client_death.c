/*
 * test_client_death.c - a client killed with SIGKILL at the worst moment.
 *
 * The victim is a real client process (libmmsrv, built here with the
 * allocators' crash hooks): it holds IOB chains, then stops itself
 * (SIGSTOP) from inside the heap's critical section, lock held, structure
 * mid-change; the parent sees it stopped (waitpid WUNTRACED) and kills it.
 * Then, with no help from anyone but the daemon (which sees the socket
 * close): its buffers come back to the pool's free count, its channel
 * registration ends (the next victim may register), the heap checks clean
 * and records exactly one recovery, and a bystander client that kept
 * allocating and passing buffers all along saw no error and kept going.
 * The same for a victim stopped at each crash point of the IOB code.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define HEAP      "death-heap"
#define POOL      "death-pool"
#define VCHAN     "vch" /* the victims' own channel */
#define BCHAN     "bch" /* the bystander's loopback channel */
#define HEAP_SIZE (1u << 20)
#define BUFSIZE   256u
#define COUNT     128u
#define HELD      5u /* chains the victim holds, 3 buffers each */

static struct td_daemon g_d;

/* What the bystander reports, in shared memory. */
struct ctl {
    volatile int stop;
    volatile int pause_req;
    volatile int paused;
    volatile uint64_t ops;
    volatile uint32_t errors;
    char msg[256];
};
static struct ctl *g_ctl;

static void nap(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

/* ---- The bystander: heap and pool work, all the time ------------------------- */

#define BY_BLOCKS 16
#define BY_CHAINS 4

struct by_state {
    struct mm_heap_s *heap;
    struct iob_pool_s *pool;
    int chan;
    void *blk[BY_BLOCKS];
    size_t len[BY_BLOCKS];
    struct iob_s *chain[BY_CHAINS];
    struct tu_rng rng;
};

static void by_fail(const char *what, long value)
{
    if (g_ctl->errors++ == 0)
        snprintf(g_ctl->msg, sizeof g_ctl->msg, "%s (%ld)", what, value);
}

static void by_release(struct by_state *s)
{
    for (int i = 0; i < BY_BLOCKS; i++) {
        if (s->blk[i] != NULL && tu_pattern_check(s->blk[i], s->len[i], (uintptr_t)i) != s->len[i])
            by_fail("heap block content", i);
        mm_free(s->heap, s->blk[i]);
        s->blk[i] = NULL;
    }
    mm_cache_flush(s->heap);
    for (int i = 0; i < BY_CHAINS; i++) {
        iob_free_chain(s->pool, s->chain[i]);
        s->chain[i] = NULL;
    }
}

static void by_step(struct by_state *s)
{
    int i = (int)tu_rng_range(&s->rng, 0, BY_BLOCKS - 1);
    if (s->blk[i] != NULL) {
        if (tu_pattern_check(s->blk[i], s->len[i], (uintptr_t)i) != s->len[i])
            by_fail("heap block content", i);
        mm_free(s->heap, s->blk[i]);
        s->blk[i] = NULL;
    } else {
        s->len[i] = (size_t)tu_rng_range(&s->rng, 1, 3000);
        s->blk[i] = mm_malloc(s->heap, s->len[i]);
        if (s->blk[i] == NULL)
            by_fail("mm_malloc", (long)s->len[i]);
        else
            tu_pattern_fill(s->blk[i], s->len[i], (uintptr_t)i);
    }

    int c = (int)tu_rng_range(&s->rng, 0, BY_CHAINS - 1);
    if (s->chain[c] != NULL) {
        /* through the loopback channel and back, then freed */
        int rc = iob_send(s->pool, s->chan, s->chain[c], IT_CALL_MS);
        if (rc != 0) {
            by_fail("iob_send", rc);
            return;
        }
        struct iob_s *back = NULL;
        rc = iob_receive(s->pool, s->chan, &back, IT_CALL_MS);
        if (rc != 0 || back != s->chain[c]) {
            by_fail("iob_receive", rc);
            return;
        }
        uint8_t got[300];
        if (iob_copyout(s->pool, got, back, sizeof got, 0) != (int)sizeof got ||
            tu_pattern_check(got, sizeof got, 100u + (unsigned)c) != sizeof got)
            by_fail("chain content", c);
        iob_free_chain(s->pool, back);
        s->chain[c] = NULL;
    } else {
        uint8_t data[300];
        tu_pattern_fill(data, sizeof data, 100u + (unsigned)c);
        struct iob_s *h = iob_timedalloc(s->pool, false, IT_CALL_MS);
        if (h == NULL) {
            by_fail("iob_timedalloc", iob_pool_error(s->pool));
            return;
        }
        int rc = iob_copyin(s->pool, h, data, sizeof data, 0, false);
        if (rc != (int)sizeof data) {
            by_fail("iob_copyin", rc);
            iob_free_chain(s->pool, h);
            return;
        }
        s->chain[c] = h;
    }
}

static int bystander_child(void *arg, int rd, int wr)
{
    (void)arg;
    (void)rd;
    (void)wr;
    struct mmsrv_client *c;
    struct mmsrv_region *hr, *pr;
    if (mmsrv_connect(g_d.address, &c) != 0 || mmsrv_attach(c, HEAP, 0, &hr) != 0 ||
        mmsrv_attach(c, POOL, 0, &pr) != 0) {
        by_fail("attach", errno);
        return 2;
    }
    struct by_state s = {.heap = hr->heap, .pool = pr->pool};
    tu_rng_init(&s.rng, tu_seed() ^ 0xb75);
    s.chan = iob_channel_lookup(s.pool, BCHAN);
    if (s.chan < 0 || iob_channel_connect(s.pool, s.chan, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV) != 0)
        return 3;
    while (!g_ctl->stop && g_ctl->errors == 0) {
        if (g_ctl->pause_req) {
            by_release(&s);
            g_ctl->paused = 1;
            while (g_ctl->pause_req && !g_ctl->stop)
                nap();
            g_ctl->paused = 0;
            continue;
        }
        by_step(&s);
        g_ctl->ops++;
    }
    by_release(&s);
    mmsrv_disconnect(c);
    return g_ctl->errors == 0 ? 0 : 4;
}

static int ops_advanced(void *p)
{
    return g_ctl->ops >= *(uint64_t *)p || g_ctl->errors != 0;
}

static int is_paused(void *p)
{
    (void)p;
    return g_ctl->paused;
}

/* Let the bystander work at least n more steps. */
static bool bystander_runs(uint64_t n)
{
    uint64_t target = g_ctl->ops + n;
    return tu_wait_until(ops_advanced, &target, 20000) && g_ctl->errors == 0;
}

static bool bystander_pause(void)
{
    g_ctl->pause_req = 1;
    return tu_wait_until(is_paused, NULL, IT_WAIT_MS);
}

static void bystander_resume(void)
{
    g_ctl->pause_req = 0;
}

/* ---- Victims -------------------------------------------------------------------- */

static volatile sig_atomic_t g_armed;
static int g_point;

static void stop_here(int point)
{
    if (g_armed && (g_point == 0 || point == g_point)) {
        g_armed = 0;
        raise(SIGSTOP); /* the parent kills us here */
    }
}

struct victim_arg {
    bool in_heap; /* stop inside the heap's lock; else at IOB point g_point */
    int point;
};

static int victim_child(void *p, int rd, int wr)
{
    const struct victim_arg *arg = p;
    struct mmsrv_client *c;
    struct mmsrv_region *hr, *pr;
    if (mmsrv_connect(g_d.address, &c) != 0 || mmsrv_attach(c, HEAP, 0, &hr) != 0 ||
        mmsrv_attach(c, POOL, 0, &pr) != 0)
        return 2;
    struct iob_pool_s *pool = pr->pool;
    int vch = iob_channel_lookup(pool, VCHAN);
    int rc = iob_channel_connect(pool, vch, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV);
    IT_CHECK_EQ(rc, 0); /* the last victim's registration ended with it */
    if (rc != 0)
        return 3;

    /* Chains it holds when it dies. */
    uint8_t data[600];
    tu_pattern_fill(data, sizeof data, 42);
    uint32_t held = 0;
    for (uint32_t i = 0; i < HELD; i++) {
        struct iob_s *h = iob_timedalloc(pool, false, IT_CALL_MS);
        if (h == NULL || iob_copyin(pool, h, data, sizeof data, 0, false) != (int)sizeof data)
            return 4;
        for (struct iob_s *b = h; b != NULL; b = iob_next(pool, b))
            held++;
    }
    /* Heap blocks too (they stay allocated: a heap cannot know whose a
     * block is, only the lock and the cache are the victim's). */
    void *blk = mm_malloc(hr->heap, 100);
    IT_CHECK(blk != NULL);
    mm_cache_limit(hr->heap, 0); /* every call through the lock */
    it_put(wr, held);
    uint64_t go;
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 5;

    g_point = arg->point;
    if (arg->in_heap) {
        mm_set_crash_hook(stop_here);
        g_armed = 1;
        /* malloc splits (points 1-3), realloc shrinks (6), free merges
         * (4, 5); sizes vary, so that some chunk is split whatever the
         * bystander left free */
        for (size_t i = 0; i < 200; i++) {
            void *x = mm_malloc(hr->heap, 200 + i * 40);
            x = mm_realloc(hr->heap, x, 40);
            mm_free(hr->heap, x);
        }
        mm_free(hr->heap, blk);
        return 9; /* never stopped */
    }
    iob_set_crash_hook(stop_here);
    g_armed = 1;
    /* Every IOB crash point this sequence passes: pop, link (a chain of
     * three), send cell and state, receive state, free a chain, free one. */
    struct iob_s *h = iob_timedalloc(pool, false, IT_CALL_MS);
    if (h == NULL || iob_copyin(pool, h, data, sizeof data, 0, false) != (int)sizeof data)
        return 6;
    if (iob_send(pool, vch, h, IT_CALL_MS) != 0)
        return 7;
    struct iob_s *back = NULL;
    if (iob_receive(pool, vch, &back, IT_CALL_MS) != 0)
        return 8;
    iob_free_chain(pool, back);
    struct iob_s *one = iob_timedalloc(pool, false, IT_CALL_MS);
    iob_free(pool, one);
    return 9; /* never stopped */
}

/* Wait until the child stops; false on timeout or if it exited (then it
 * is reaped and c->pid is 0). */
static bool wait_stopped(struct it_child *c, int *status)
{
    uint64_t deadline = tu_now_ms() + IT_WAIT_MS;
    while (tu_now_ms() < deadline) {
        pid_t r = waitpid(c->pid, status, WUNTRACED | WNOHANG);
        if (r == c->pid) {
            if (WIFSTOPPED(*status))
                return true;
            c->pid = 0;
            return false;
        }
        if (r < 0)
            return false;
        nap();
    }
    return false;
}

/* ---- Figures ---------------------------------------------------------------------- */

struct pool_want {
    long long free;
    long long attached;
};

static int pool_is(void *p)
{
    const struct pool_want *w = p;
    json_t *r = it_region_stats(&g_d, POOL);
    int ok = r != NULL && it_int_at(r, "parameters.pool.free", -1) == w->free &&
             (long long)json_array_size(it_param(r, "attached")) == w->attached;
    json_decref(r);
    return ok;
}

static void show_pool(void)
{
    json_t *r = it_region_stats(&g_d, POOL);
    char *text = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;
    fprintf(stderr, "\n    pool stats: %s\n", text != NULL ? text : "(none)");
    free(text);
    json_decref(r);
}

static const char *heap_state(void)
{
    static char state[32];
    json_t *r = it_region_stats(&g_d, HEAP);
    const char *s = json_string_value(json_object_get(it_param(r, "heap"), "state"));
    snprintf(state, sizeof state, "%s", s != NULL ? s : "(none)");
    json_decref(r);
    return state;
}

/* Take what waits in the victims' channel (chains a victim sent and did
 * not receive stay there for a receiver), so that the pool is whole. */
static int drain_victim_channel(struct iob_pool_s *pool)
{
    int vch = iob_channel_lookup(pool, VCHAN);
    if (iob_channel_connect(pool, vch, IOB_CHANNEL_RECV) != 0)
        return -1;
    int n = 0;
    struct iob_s *chain;
    while (iob_receive(pool, vch, &chain, 0) == 0) {
        iob_free_chain(pool, chain);
        n++;
    }
    iob_channel_disconnect(pool, vch, IOB_CHANNEL_RECV);
    return n;
}

/* ---- The tests ---------------------------------------------------------------------- */

static struct mmsrv_client *setup(struct it_child *by)
{
    IT_START(&g_d, NULL);
    g_ctl = it_shared(sizeof *g_ctl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_ctl);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region_spec heap = {
        .name = HEAP, .kind = MMSRV_HEAP, .size = HEAP_SIZE, .uid = -1, .gid = -1, .mode = -1};
    struct mmsrv_channel_spec chans[2] = {{VCHAN, 16}, {BCHAN, 4}};
    struct mmsrv_region_spec pool = {.name = POOL,
                                     .kind = MMSRV_IOB,
                                     .bufsize = BUFSIZE,
                                     .count = COUNT,
                                     .channels = chans,
                                     .nchannels = 2,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &heap, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &pool, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(it_spawn(by, bystander_child, NULL), 0);
    CU_ASSERT_FATAL(bystander_runs(500));
    return c;
}

static void teardown(struct mmsrv_client *c, struct it_child *by)
{
    g_ctl->stop = 1;
    int status = it_finish(by, IT_WAIT_MS);
    if (g_ctl->errors != 0)
        fprintf(stderr, "\n    the bystander noticed: %s\n", g_ctl->msg);
    CU_ASSERT_EQUAL(g_ctl->errors, 0);
    CU_ASSERT(tu_exited_ok(status));
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
    munmap(g_ctl, sizeof *g_ctl);
}

/* One victim, killed as arg says; then every check.  Returns false if the
 * victim never reached its stopping point. */
static bool kill_victim(struct mmsrv_client *c, struct mmsrv_region *hr, struct mmsrv_region *pr,
                        const struct victim_arg *arg)
{
    struct mm_heap_stats hs0 = mm_heap_stats(hr->heap);
    struct it_child v;
    CU_ASSERT_FATAL(it_spawn(&v, victim_child, (void *)(uintptr_t)arg) == 0);
    uint64_t held = 0;
    CU_ASSERT_EQUAL(it_get(v.from, &held, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(held, HELD * 3);
    it_put(v.to, 1);
    int status = 0;
    bool stopped = wait_stopped(&v, &status);
    if (!stopped) {
        fprintf(stderr, "\n    victim (%s, point %d) did not stop: status %#x\n",
                arg->in_heap ? "heap" : "iob", arg->point, (unsigned)status);
        it_finish(&v, IT_WAIT_MS);
        return false;
    }
    CU_ASSERT_EQUAL(kill(v.pid, SIGKILL), 0);
    status = it_finish(&v, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* The bystander goes on, unaware. */
    CU_ASSERT(bystander_runs(2000));

    /* With the bystander quiet: all buffers back (what the victim left in
     * its channel, drained), one client attached to each region. */
    CU_ASSERT_FATAL(bystander_pause());
    /* The daemon reclaims in its own time: until it has, the victim is
     * still registered on its channel and the drain cannot connect. */
    struct pool_want whole_pool = {COUNT, 2}; /* the parent and the bystander */
    bool whole = false;
    uint64_t deadline = tu_now_ms() + IT_WAIT_MS;
    while (!whole && tu_now_ms() < deadline) {
        whole = drain_victim_channel(pr->pool) >= 0 && pool_is(&whole_pool);
        if (!whole)
            nap();
    }
    if (!whole)
        show_pool();
    CU_ASSERT(whole);
    struct iob_census_s census;
    int problems = iob_pool_check(pr->pool, &census);
    if (problems != 0)
        fprintf(stderr, "\n    pool check: %d problems (free %u owned %u queued %u orphans %u)\n",
                problems, census.free, census.owned, census.queued, census.orphans);
    CU_ASSERT_EQUAL(problems, 0);
    CU_ASSERT_EQUAL(census.free, COUNT);

    /* The heap: sound, and it recovered from the dead owner exactly once
     * if the victim died holding the lock. */
    CU_ASSERT_STRING_EQUAL(heap_state(), "ok");
    CU_ASSERT_EQUAL(mm_checkcorruption(hr->heap), 0);
    struct mm_heap_stats hs1 = mm_heap_stats(hr->heap);
    CU_ASSERT_EQUAL(hs1.recoveries, hs0.recoveries + (arg->in_heap ? 1u : 0u));
    void *p = mm_malloc(hr->heap, 5000);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_free(hr->heap, p);

    /* Nothing of the victim's is left in the daemon's table. */
    json_t *r = it_region_stats(&g_d, HEAP);
    CU_ASSERT_EQUAL(json_array_size(it_param(r, "attached")), 2);
    json_decref(r);
    bystander_resume();
    CU_ASSERT(bystander_runs(500));
    (void)c;
    return true;
}

static void test_killed_holding_heap_lock_and_iobs(void)
{
    struct it_child by;
    struct mmsrv_client *c = setup(&by);
    struct mmsrv_region *hr, *pr;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &hr), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, POOL, 0, &pr), 0);
    int daemon_fds = it_settled_fds(g_d.pid);
    long daemon_rss = td_rss_kib(g_d.pid);

    /* Inside the heap lock, at each of its crash points reachable by a
     * malloc/free pair (0: the first one reached). */
    struct victim_arg arg = {true, 0};
    CU_ASSERT(kill_victim(c, hr, pr, &arg));
    for (int point = 1; point <= 6; point++) {
        arg.point = point;
        CU_ASSERT(kill_victim(c, hr, pr, &arg));
    }
    /* The daemon's own descriptors and memory are back where they were. */
    int now = td_wait_fd_count(g_d.pid, daemon_fds, IT_WAIT_MS);
    if (now > daemon_fds)
        fprintf(stderr, "\n    the daemon has %d descriptors open, %d before the victims\n", now,
                daemon_fds);
    CU_ASSERT(now >= 0 && now <= daemon_fds);
    CU_ASSERT(td_rss_kib(g_d.pid) <= daemon_rss + 8192);
    CU_ASSERT_EQUAL(mmsrv_detach(c, hr), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, pr), 0);
    teardown(c, &by);
}

static void test_killed_inside_iob_calls(void)
{
    struct it_child by;
    struct mmsrv_client *c = setup(&by);
    struct mmsrv_region *hr, *pr;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &hr), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, POOL, 0, &pr), 0);
    static const int points[] = {IOB_CRASH_POP,        IOB_CRASH_LINK,       IOB_CRASH_SEND_CELL,
                                 IOB_CRASH_SEND_STATE, IOB_CRASH_RECV_STATE, IOB_CRASH_FREE_CHAIN,
                                 IOB_CRASH_FREE_STATE};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        struct victim_arg arg = {false, points[i]};
        bool reached = kill_victim(c, hr, pr, &arg);
        if (!reached)
            fprintf(stderr, "\n    IOB crash point %d not reached\n", points[i]);
        CU_ASSERT(reached);
    }
    CU_ASSERT_EQUAL(mmsrv_detach(c, hr), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, pr), 0);
    teardown(c, &by);
}

/* A client that leaves CACHED_BLOCKS blocks in its heap cache, reports
 * its owner id, and waits to be killed. */
#define CACHED_BLOCKS 20
static int cacher_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    struct mmsrv_region *hr;
    if (mmsrv_connect(g_d.address, &c) != 0 || mmsrv_attach(c, HEAP, 0, &hr) != 0)
        return 2;
    void *b[CACHED_BLOCKS];
    for (int i = 0; i < CACHED_BLOCKS; i++)
        if ((b[i] = mm_malloc(hr->heap, 100u + 40u * (unsigned)i)) == NULL)
            return 3;
    for (int i = 0; i < CACHED_BLOCKS; i++)
        mm_free(hr->heap, b[i]);
    it_put(wr, hr->owner);
    uint64_t go;
    (void)it_get(rd, &go, 60000);
    return 0;
}

/* The bystander paused (it would wait on the lock too), a cacher (its owner
 * id returned) and a victim stopped inside the heap's lock, alive. */
static uint64_t stop_inside_lock_beside_cacher(struct it_child *cacher, struct it_child *v)
{
    CU_ASSERT_FATAL(bystander_pause());
    CU_ASSERT_FATAL(it_spawn(cacher, cacher_child, NULL) == 0);
    uint64_t cacher_id = 0;
    CU_ASSERT_EQUAL_FATAL(it_get(cacher->from, &cacher_id, IT_WAIT_MS), 0);
    static struct victim_arg arg = {true, 0};
    CU_ASSERT_FATAL(it_spawn(v, victim_child, &arg) == 0);
    uint64_t held = 0;
    CU_ASSERT_EQUAL(it_get(v->from, &held, IT_WAIT_MS), 0);
    it_put(v->to, 1);
    int status = 0;
    CU_ASSERT_FATAL(wait_stopped(v, &status));
    return cacher_id;
}

/* A client stopped while it holds the heap's lock (in a debugger, say) and
 * alive: RegionStats of that heap answer "busy" once the daemon's lock
 * wait (2 s) runs out, more of them at once than the thread pool has
 * workers leave the daemon's other work going (a CreateRegion completes),
 * a client that dies meanwhile with blocks cached gets them reclaimed once
 * the lock is free again, and when the stopped client dies the heap
 * recovers as always. */
#define STUCK_STATS 6
static void test_stopped_holding_heap_lock_stalls_nothing(void)
{
    struct it_child by;
    struct mmsrv_client *c = setup(&by);
    struct it_child cacher, v;
    uint64_t cacher_id = stop_inside_lock_beside_cacher(&cacher, &v);
    int status = 0;

    /* The cacher dies now: its reclaim must wait for the lock. */
    CU_ASSERT_EQUAL(kill(cacher.pid, SIGKILL), 0);
    status = it_finish(&cacher, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    char waits[128], reclaimed[128];
    snprintf(waits, sizeof waits, "reclaim region=%s owner=%llu: its lock is held", HEAP,
             (unsigned long long)cacher_id);
    snprintf(reclaimed, sizeof reclaimed, "reclaim region=%s owner=%llu blocks=%d", HEAP,
             (unsigned long long)cacher_id, CACHED_BLOCKS);
    CU_ASSERT(it_wait_log(&g_d, waits, IT_WAIT_MS));

    static const char stats[] =
        "{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":\"" HEAP "\"}}";
    int fds[STUCK_STATS];
    for (int i = 0; i < STUCK_STATS; i++) {
        fds[i] = td_connect(&g_d);
        CU_ASSERT_FATAL(fds[i] >= 0);
        CU_ASSERT_EQUAL(td_send(fds[i], stats, sizeof stats), 0);
    }
    uint64_t t0 = tu_now_ms();
    struct mmsrv_region_spec more = {
        .name = "after-stuck", .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL(mmsrv_create(c, &more, NULL), 0);
    CU_ASSERT(tu_now_ms() - t0 < 15000);
    for (int i = 0; i < STUCK_STATS; i++) {
        char *text = td_recv(fds[i], IT_CALL_MS, NULL);
        json_t *reply = it_parse(text);
        const char *state = json_string_value(json_object_get(it_param(reply, "heap"), "state"));
        CU_ASSERT(state != NULL && strcmp(state, "busy") == 0);
        json_decref(reply);
        free(text);
        close(fds[i]);
    }

    CU_ASSERT(!it_log_has(&g_d, reclaimed));

    CU_ASSERT_EQUAL(kill(v.pid, SIGKILL), 0);
    status = it_finish(&v, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    CU_ASSERT_STRING_EQUAL(heap_state(), "ok");          /* the next locker repaired it */
    CU_ASSERT(it_wait_log(&g_d, reclaimed, IT_WAIT_MS)); /* the retry went through */
    bystander_resume();
    CU_ASSERT(bystander_runs(500));
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "after-stuck"), 0);
    teardown(c, &by);
}

/* The orphan scan after a restart meets the heap's lock held by a stopped
 * client: it scans that heap again until the lock is free, so a client that
 * died while no daemon knew it (it never reconnected) still gets its cached
 * blocks back. */
static void test_orphan_scan_waits_for_a_held_lock(void)
{
    struct it_child by;
    struct mmsrv_client *c = setup(&by);
    struct it_child cacher, v;
    uint64_t cacher_id = stop_inside_lock_beside_cacher(&cacher, &v);
    int status = 0;

    mmsrv_disconnect(c); /* the connection goes with the daemon */
    CU_ASSERT_EQUAL_FATAL(td_restart(&g_d), 0);
    char busy[128], reclaimed[128];
    snprintf(busy, sizeof busy, "orphans: region=%s: its lock is held; scanning it again", HEAP);
    snprintf(reclaimed, sizeof reclaimed, "reclaim region=%s owner=%llu blocks=%d", HEAP,
             (unsigned long long)cacher_id, CACHED_BLOCKS);
    CU_ASSERT(it_wait_log(&g_d, busy, IT_WAIT_MS));

    /* The cacher dies unseen: no daemon has its connection any more. */
    CU_ASSERT_EQUAL(kill(cacher.pid, SIGKILL), 0);
    status = it_finish(&cacher, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    CU_ASSERT(!it_log_has(&g_d, reclaimed));

    CU_ASSERT_EQUAL(kill(v.pid, SIGKILL), 0); /* the lock is free again */
    status = it_finish(&v, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    CU_ASSERT(it_wait_log(&g_d, reclaimed, IT_WAIT_MS)); /* found by a later scan */
    CU_ASSERT_STRING_EQUAL(heap_state(), "ok");
    bystander_resume();
    CU_ASSERT(bystander_runs(500));
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    teardown(c, &by);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_killed_holding_heap_lock_and_iobs),
        TU_TEST(test_killed_inside_iob_calls),
        TU_TEST(test_stopped_holding_heap_lock_stalls_nothing),
        TU_TEST(test_orphan_scan_waits_for_a_held_lock),
        TU_END,
    };
    return tu_main("client_death", tests);
}
