/*
 * test_load.c - mmsrvd under sustained load from many real client processes:
 * it must stay correct, not merely up.
 *
 * Three loads, each against a daemon of its own:
 * - Many clients: 64 forked clients in pairs, round after round, connect,
 *   attach one shared heap and their group's IOB pool, run the checked
 *   random heap workload (tests/lib/heap_work.h) and pass self-checking
 *   messages (tests/lib/iob_work.h) to and from their partner through two
 *   channels, then detach.  Afterwards every block and buffer is back, the
 *   heap checks clean and its counters balance, and the daemon is back to
 *   its descriptors and about its memory.
 * - Connection churn: thousands of connect, call, disconnect cycles from
 *   well-behaved clients (raw Varlink; libmmsrv attach, create, destroy)
 *   while others close mid-request, send garbage, pipeline, or disconnect
 *   holding buffers.  No well-behaved call fails or takes long; nothing
 *   leaks.
 * - Crash under load: 24 workers hammer a heap and three pools, attaching
 *   and detaching as they go, and keep a record, in memory the parent
 *   reads, of the blocks they hold; a random quarter to half of them is
 *   SIGKILLed at random moments, in control calls and in shared memory.
 *   The daemon gives back their buffers, channel ends and cached blocks;
 *   their live blocks are where their records say and intact; at most one
 *   block each (the malloc or free in flight) is not in a record; the
 *   survivors finish with correct data.  A heap cannot tell whose an
 *   allocated block is (DESIGN.md: reclaim covers attachments, IOBs, queue
 *   entries, the lock and the cache), so the parent frees the dead
 *   workers' blocks from their records, as an application's recovery
 *   would, and the heap must then be exactly as it started.
 *
 * Sizes are picked for about 30-60 s on a noisy 2-core machine, under
 * AddressSanitizer too; every wait is bounded.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heap_work.h"
#include "iob_work.h"
#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

/* AddressSanitizer keeps freed memory in quarantine (256 MiB by default),
 * so the daemon's memory grows under it whatever it does: the memory check
 * is left to LeakSanitizer at the daemon's exit (it_stop wants status 0). */
#if defined(__SANITIZE_ADDRESS__)
#define LOAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOAD_ASAN 1
#endif
#endif
#ifndef LOAD_ASAN
#define LOAD_ASAN 0
#endif

/* How long a client waits for its partner, or a worker for its channel:
 * long, as 64 processes share two cores, but bounded. */
#define LOAD_WAIT_MS 20000
/* How long all clients of a test may take together. */
#define LOAD_RUN_MS 150000
/* Private memory the daemon may gain over a test (KiB). */
#define LOAD_ANON_SLACK_KIB 16384

static struct td_daemon g_d;

/* ---- The daemon's figures ------------------------------------------------------- */

struct baseline {
    int fds;
    long anon_kib;
};

/* After one served call (whatever the daemon sets up lazily counts in),
 * once its descriptor count has settled. */
static void take_baseline(struct baseline *b)
{
    CU_ASSERT_FATAL(it_served(&g_d));
    b->fds = it_settled_fds(g_d.pid);
    /* RssAnon: its own allocations; VmRSS would also count the pages of
     * the segment it touched */
    b->anon_kib = td_status_kib(g_d.pid, "RssAnon");
    CU_ASSERT_FATAL(b->fds > 0);
}

/* The daemon serves, has its baseline descriptors back (waited for) and
 * about its baseline memory. */
static void check_baseline(const struct baseline *b, const char *after)
{
    CU_ASSERT(it_served(&g_d));
    int n = td_wait_fd_count(g_d.pid, b->fds, IT_WAIT_MS);
    if (n > b->fds)
        fprintf(stderr, "\n    after %s: the daemon has %d descriptors open, %d before\n", after, n,
                b->fds);
    CU_ASSERT(n >= 0 && n <= b->fds);
    long anon = td_status_kib(g_d.pid, "RssAnon");
    printf("\n    after %s: daemon fds %d (baseline %d), private memory %ld KiB (baseline %ld)",
           after, n, b->fds, anon, b->anon_kib);
    if (!LOAD_ASAN) {
        if (anon > b->anon_kib + LOAD_ANON_SLACK_KIB)
            fprintf(stderr, "\n    after %s: the daemon grew from %ld to %ld KiB\n", after,
                    b->anon_kib, anon);
        CU_ASSERT(anon > 0 && anon <= b->anon_kib + LOAD_ANON_SLACK_KIB);
    }
}

struct heap_figures {
    long long uordblks, fordblks, ordblks, attached;
    char state[16];
};

/* RegionStats of a heap; false if there is no answer. */
static bool heap_figures(const char *name, struct heap_figures *f)
{
    json_t *r = it_region_stats(&g_d, name);
    bool answered = r != NULL;
    memset(f, 0, sizeof *f);
    f->uordblks = it_int_at(r, "parameters.heap.uordblks", -1);
    f->fordblks = it_int_at(r, "parameters.heap.fordblks", -1);
    f->ordblks = it_int_at(r, "parameters.heap.ordblks", -1);
    f->attached = (long long)json_array_size(it_param(r, "attached"));
    const char *s = json_string_value(json_object_get(it_param(r, "heap"), "state"));
    snprintf(f->state, sizeof f->state, "%s", s != NULL ? s : "(none)");
    json_decref(r);
    return answered && f->uordblks >= 0;
}

static void show_heap(const char *what, const struct heap_figures *f)
{
    fprintf(stderr, "\n    %s: uordblks %lld fordblks %lld ordblks %lld attached %lld state %s\n",
            what, f->uordblks, f->fordblks, f->ordblks, f->attached, f->state);
}

/* The heap is as it was: same figures, nobody attached but `attached`. */
static bool heap_back(const char *name, const struct heap_figures *f0, long long attached)
{
    struct heap_figures f;
    return heap_figures(name, &f) && f.uordblks == f0->uordblks && f.fordblks == f0->fordblks &&
           f.ordblks == f0->ordblks && f.attached == attached && strcmp(f.state, "ok") == 0;
}

struct pool_figures {
    long long free, count, queued, attached;
};

/* RegionStats of a pool: free and total buffers, chains waiting in all its
 * channels, clients attached. */
static bool pool_figures(const char *name, struct pool_figures *p)
{
    json_t *r = it_region_stats(&g_d, name);
    bool answered = r != NULL;
    p->free = it_int_at(r, "parameters.pool.free", -1);
    p->count = it_int_at(r, "parameters.pool.count", -1);
    p->attached = (long long)json_array_size(it_param(r, "attached"));
    p->queued = 0;
    json_t *chans = json_object_get(it_param(r, "pool"), "channels");
    for (size_t i = 0; i < json_array_size(chans); i++)
        p->queued += it_int_at(json_array_get(chans, i), "queued", 0);
    json_decref(r);
    return answered && p->free >= 0;
}

/* Every buffer free, nothing queued, nobody attached but `attached`. */
static bool pool_whole(const char *name, long long attached)
{
    struct pool_figures p;
    return pool_figures(name, &p) && p.free == p.count && p.queued == 0 && p.attached == attached;
}

static void show_pool(const char *name)
{
    struct pool_figures p;
    if (pool_figures(name, &p))
        fprintf(stderr, "\n    %s: free %lld of %lld, queued %lld, attached %lld\n", name, p.free,
                p.count, p.queued, p.attached);
    else
        fprintf(stderr, "\n    %s: no figures\n", name);
}

/* What "everything is back" means for a test: the heap's figures are f0,
 * every pool's buffers are free and nothing waits in its channels, and
 * `attached` clients are attached to each. */
struct whole_want {
    const char *heap;
    const struct heap_figures *f0;
    const char *const *pools;
    int npools;
    long long attached;
};

static int all_whole(void *arg)
{
    const struct whole_want *w = arg;
    if (w->heap != NULL && !heap_back(w->heap, w->f0, w->attached))
        return 0;
    for (int i = 0; i < w->npools; i++)
        if (!pool_whole(w->pools[i], w->attached))
            return 0;
    return 1;
}

/* After a wait for all_whole: say what is not back. */
static void show_unless_whole(const struct whole_want *w)
{
    struct heap_figures f;
    if (w->heap != NULL && !heap_back(w->heap, w->f0, w->attached)) {
        show_heap("heap before", w->f0);
        if (heap_figures(w->heap, &f))
            show_heap("heap now", &f);
    }
    for (int i = 0; i < w->npools; i++)
        if (!pool_whole(w->pools[i], w->attached))
            show_pool(w->pools[i]);
}

/* ---- Regions ------------------------------------------------------------------------ */

static int create_heap(struct mmsrv_client *c, const char *name, uint64_t size)
{
    struct mmsrv_region_spec spec = {
        .name = name, .kind = MMSRV_HEAP, .size = size, .uid = -1, .gid = -1, .mode = -1};
    int rc = mmsrv_create(c, &spec, NULL);
    if (rc != 0)
        fprintf(stderr, "\n    create %s: %d %s\n", name, rc,
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
    return rc;
}

/* A pool with nch channels (at most IOB_CONFIG_CHANNELS) of the given names. */
static int create_pool(struct mmsrv_client *c, const char *name, uint32_t bufsize, uint32_t count,
                       const char *const *chan_names, size_t nch, uint32_t depth)
{
    struct mmsrv_channel_spec chans[IOB_CONFIG_CHANNELS];
    for (size_t i = 0; i < nch && i < IOB_CONFIG_CHANNELS; i++)
        chans[i] = (struct mmsrv_channel_spec){chan_names[i], depth};
    struct mmsrv_region_spec spec = {.name = name,
                                     .kind = MMSRV_IOB,
                                     .bufsize = bufsize,
                                     .count = count,
                                     .channels = chans,
                                     .nchannels = nch,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    int rc = mmsrv_create(c, &spec, NULL);
    if (rc != 0)
        fprintf(stderr, "\n    create %s: %d %s\n", name, rc,
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
    return rc;
}

/* In a child: a libmmsrv call that must succeed. */
static bool call_ok(int rc, const char *what)
{
    if (rc != 0) {
        it_child_failures++;
        fprintf(stderr, "[child %d] %s: %d (%s) %s\n", (int)getpid(), what, rc, strerror(-rc),
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
    }
    return rc == 0;
}

/* Wait for every child until deadline (ms on tu_now_ms); how many exited 0. */
static int finish_all(struct it_child *kids, int n, uint64_t deadline)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        uint64_t now = tu_now_ms();
        int left = now < deadline ? (int)(deadline - now) : 1;
        ok += tu_exited_ok(it_finish(&kids[i], left)) ? 1 : 0;
    }
    return ok;
}

/* ==== 1. Many clients at once ======================================================= */

#define LOAD_CLIENTS    64
#define LOAD_GROUP      8 /* clients per pool: 4 pairs, a channel each way */
#define LOAD_POOLS      (LOAD_CLIENTS / LOAD_GROUP)
#define LOAD_ROUNDS     8
#define LOAD_MSGS       700 /* messages each way per round */
#define LOAD_HEAP_STEPS 4   /* heap operations per message */
#define LOAD_MAX_LIVE   32
#define LOAD_HEAP       "load-heap"
#define LOAD_HEAP_SIZE  (24u << 20)
#define LOAD_BUFSIZE    256u
#define LOAD_COUNT      384u
#define LOAD_MAXLEN     2048u

_Static_assert(LOAD_CLIENTS % LOAD_GROUP == 0 && LOAD_GROUP % 2 == 0, "whole pairs per pool");
_Static_assert(LOAD_GROUP <= IOB_CONFIG_CHANNELS, "a channel per client in each pool");
_Static_assert(LOAD_CLIENTS <= 64, "g_index");
/* A client holds at most one message, and at most one waits for it in its
 * channel (each side sends only after receiving): with room for three per
 * client a group never runs its pool dry, so an allocation that fails is
 * a failure. */
_Static_assert(LOAD_GROUP * 3 * (LOAD_MAXLEN / LOAD_BUFSIZE + 1) <= LOAD_COUNT, "pool too small");

struct load_report {
    uint64_t heap_ops, nomem, sent, received;
    uint32_t rounds, slowest_ms;
};
static struct load_report *g_load;
static int g_index[64];

static const char *const g_pair_chans[LOAD_GROUP] = {"p0a", "p0b", "p1a", "p1b",
                                                     "p2a", "p2b", "p3a", "p3b"};

static void load_heap_config(struct hw_config *cfg)
{
    hw_config_default(cfg, LOAD_HEAP_SIZE, LOAD_MAX_LIVE);
    cfg->size_common = 512;
    cfg->size_mid = 8192;
    cfg->size_large = 65536;
    cfg->pct_mid = 5;
    cfg->large_pm = 2;
    cfg->max_align_log2 = 12;
    /* A round (LOAD_MSGS * LOAD_HEAP_STEPS steps) ends after a growing
     * phase: the client holds many blocks when it checks, frees, detaches. */
    cfg->phase_ops = 400;
}
_Static_assert((LOAD_MSGS * LOAD_HEAP_STEPS / 400) % 2 == 1 &&
                   LOAD_MSGS * LOAD_HEAP_STEPS % 400 == 0,
               "a round ends after a growing phase");

static void note_ms(uint32_t *slowest, uint64_t t0)
{
    uint64_t ms = tu_now_ms() - t0;
    if (ms > *slowest)
        *slowest = (uint32_t)ms;
}

/* Messages back and forth with the partner, heap work in between.  false
 * when a check failed (already reported). */
static bool load_exchange(struct load_report *rep, struct iob_pool_s *pool, int tx, int rx,
                          struct hw_worker *w, struct tu_rng *rng, uint32_t *tx_seq,
                          uint32_t *rx_seq)
{
    for (int m = 0; m < LOAD_MSGS; m++) {
        for (int s = 0; s < LOAD_HEAP_STEPS; s++) {
            if (!hw_step(w)) {
                fprintf(stderr, "[child %d] heap: %s\n", (int)getpid(), w->err);
                return false;
            }
        }
        uint32_t len = (uint32_t)tu_rng_range(rng, IW_MSG_MIN, LOAD_MAXLEN);
        struct iob_s *msg =
            iw_msg_make(pool, rng, *tx_seq, len, tu_rng_range(rng, 0, 1) != 0, false);
        IT_CHECK(msg != NULL); /* the pool is large enough: see above */
        if (msg == NULL)
            return false;
        int rc = iob_send(pool, tx, msg, LOAD_WAIT_MS);
        IT_CHECK_EQ(rc, 0);
        if (rc != 0) {
            iob_free_chain(pool, msg);
            return false;
        }
        (*tx_seq)++;
        rep->sent++;
        struct iob_s *got = NULL;
        rc = iob_receive(pool, rx, &got, LOAD_WAIT_MS);
        IT_CHECK_EQ(rc, 0);
        if (rc != 0)
            return false;
        uint32_t seq = UINT32_MAX;
        IT_CHECK_EQ(iw_msg_check(pool, got, &seq), 0);
        IT_CHECK_EQ(seq, *rx_seq);
        (*rx_seq)++;
        rep->received++;
        iob_free_chain(pool, got);
        if (it_child_failures != 0)
            return false;
    }
    return true;
}

static int load_client(void *arg, int rd, int wr)
{
    (void)rd;
    (void)wr;
    int i = *(const int *)arg;
    struct load_report *rep = &g_load[i];
    char pool_name[32];
    snprintf(pool_name, sizeof pool_name, "load-pool%d", i / LOAD_GROUP);
    int me = i % LOAD_GROUP, partner = me ^ 1; /* channel `me` carries what I send */
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ ((uint64_t)i + 1) * 0x9e3779b97f4a7c15ull);
    struct hw_config cfg;
    load_heap_config(&cfg);
    struct hw_block blocks[LOAD_MAX_LIVE];
    uint32_t tx_seq = 0, rx_seq = 0; /* across rounds: nothing lost or repeated */

    for (int round = 0; round < LOAD_ROUNDS; round++) {
        struct mmsrv_client *c;
        struct mmsrv_region *hr, *pr;
        uint64_t t0 = tu_now_ms();
        if (!call_ok(mmsrv_connect(g_d.address, &c), "connect"))
            return 2;
        if (!call_ok(mmsrv_attach(c, LOAD_HEAP, 0, &hr), "attach heap") ||
            !call_ok(mmsrv_attach(c, pool_name, 0, &pr), "attach pool"))
            return 3;
        note_ms(&rep->slowest_ms, t0);
        struct iob_pool_s *pool = pr->pool;
        int tx = iob_channel_lookup(pool, g_pair_chans[me]);
        int rx = iob_channel_lookup(pool, g_pair_chans[partner]);
        IT_CHECK_EQ(iob_channel_connect(pool, tx, IOB_CHANNEL_SEND), 0);
        IT_CHECK_EQ(iob_channel_connect(pool, rx, IOB_CHANNEL_RECV), 0);
        if (it_child_failures != 0)
            return 4;

        struct hw_worker w;
        hw_init(&w, hr->heap, &cfg, blocks, (uint64_t)(round * LOAD_CLIENTS + i + 1), tu_seed());
        bool ok = load_exchange(rep, pool, tx, rx, &w, &rng, &tx_seq, &rx_seq);
        if (ok && (!hw_verify_all(&w) || !hw_free_all(&w))) {
            fprintf(stderr, "[child %d] heap: %s\n", (int)getpid(), w.err);
            ok = false;
        }
        rep->heap_ops += w.ops;
        rep->nomem += w.nomem;
        if (!ok)
            return 5;
        IT_CHECK_EQ(iob_channel_disconnect(pool, tx, IOB_CHANNEL_SEND), 0);
        IT_CHECK_EQ(iob_channel_disconnect(pool, rx, IOB_CHANNEL_RECV), 0);

        t0 = tu_now_ms();
        IT_CHECK(call_ok(mmsrv_detach(c, pr), "detach pool"));
        IT_CHECK(call_ok(mmsrv_detach(c, hr), "detach heap"));
        mmsrv_disconnect(c);
        note_ms(&rep->slowest_ms, t0);
        rep->rounds++;
    }
    return 0;
}

static void test_many_clients(void)
{
    IT_START(&g_d, NULL); /* a 64 MiB segment */
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, LOAD_HEAP, LOAD_HEAP_SIZE), 0);
    for (int p = 0; p < LOAD_POOLS; p++) {
        char name[32];
        snprintf(name, sizeof name, "load-pool%d", p);
        CU_ASSERT_EQUAL_FATAL(
            create_pool(c, name, LOAD_BUFSIZE, LOAD_COUNT, g_pair_chans, LOAD_GROUP, 4), 0);
    }
    mmsrv_disconnect(c); /* the children must not inherit a connection */
    struct baseline base;
    take_baseline(&base);
    struct heap_figures f0;
    CU_ASSERT_FATAL(heap_figures(LOAD_HEAP, &f0));

    g_load = it_shared(sizeof *g_load * LOAD_CLIENTS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_load);
    static struct it_child kids[LOAD_CLIENTS];
    uint64_t t0 = tu_now_ms();
    int spawned = 0;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        g_index[i] = i;
        if (it_spawn(&kids[i], load_client, &g_index[i]) != 0)
            break;
        spawned++;
    }
    CU_ASSERT_EQUAL(spawned, LOAD_CLIENTS);
    int ok = finish_all(kids, spawned, t0 + LOAD_RUN_MS);
    uint64_t elapsed = tu_now_ms() - t0;
    CU_ASSERT_EQUAL(ok, LOAD_CLIENTS);

    struct load_report sum = {0};
    for (int i = 0; i < spawned; i++) {
        sum.heap_ops += g_load[i].heap_ops;
        sum.nomem += g_load[i].nomem;
        sum.sent += g_load[i].sent;
        sum.received += g_load[i].received;
        sum.rounds += g_load[i].rounds;
        if (g_load[i].slowest_ms > sum.slowest_ms)
            sum.slowest_ms = g_load[i].slowest_ms;
    }
    printf("\n    %d clients, %u rounds: %llu heap ops (%llu refused), %llu messages sent, %llu "
           "received, in %llu ms; slowest attach or detach %u ms",
           spawned, sum.rounds, (unsigned long long)sum.heap_ops, (unsigned long long)sum.nomem,
           (unsigned long long)sum.sent, (unsigned long long)sum.received,
           (unsigned long long)elapsed, sum.slowest_ms);
    CU_ASSERT_EQUAL(sum.rounds, LOAD_CLIENTS * LOAD_ROUNDS);
    CU_ASSERT_EQUAL(sum.sent, (uint64_t)LOAD_CLIENTS * LOAD_ROUNDS * LOAD_MSGS);
    CU_ASSERT_EQUAL(sum.received, sum.sent);
    /* The heap is 24 MiB for at most about 3 MiB live: it never ran out. */
    CU_ASSERT_EQUAL(sum.nomem, 0);

    /* Every block and buffer back, nothing queued, nobody attached. */
    CU_ASSERT(it_served(&g_d));
    char pools[LOAD_POOLS][32];
    const char *pool_names[LOAD_POOLS];
    for (int p = 0; p < LOAD_POOLS; p++) {
        snprintf(pools[p], sizeof pools[p], "load-pool%d", p);
        pool_names[p] = pools[p];
    }
    struct whole_want want = {LOAD_HEAP, &f0, pool_names, LOAD_POOLS, 0};
    CU_ASSERT(tu_wait_until(all_whole, &want, IT_WAIT_MS));
    show_unless_whole(&want);

    /* The heap checks clean through a client's eyes too, and its shared
     * counters balance: nothing freed twice or from elsewhere, no recovery
     * (nobody died), as many allocations as frees. */
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region *hr;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, LOAD_HEAP, 0, &hr), 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(hr->heap), 0);
    struct mm_heap_stats hs = mm_heap_stats(hr->heap);
    printf("\n    heap counters: mallocs %u frees %u failures %u", hs.mallocs, hs.frees,
           hs.failures);
    CU_ASSERT_EQUAL(hs.double_frees + hs.foreign_frees + hs.guard_errors, 0);
    CU_ASSERT_EQUAL(hs.recoveries + hs.repairs, 0);
    CU_ASSERT_EQUAL(hs.mallocs, hs.frees);
    CU_ASSERT(hs.mallocs >= sum.heap_ops / 4);
    CU_ASSERT_EQUAL(mmsrv_detach(c, hr), 0);
    mmsrv_disconnect(c);

    munmap(g_load, sizeof *g_load * LOAD_CLIENTS);
    check_baseline(&base, "many clients");
    it_stop(&g_d);
}

/* ==== 2. Connection churn ========================================================== */

#define CHURN_GOOD     4
#define CHURN_BAD      4
#define CHURN_CYCLES   3000 /* per client */
#define CHURN_BOUND_MS 5000 /* a well-behaved cycle (several calls) takes at most this */
#define CHURN_HEAP     "churn-heap"
#define CHURN_POOL     "churn-pool"
#define CHURN_COUNT    256u

struct churn_report {
    uint32_t cycles, slowest_ms;
    uint32_t kinds[8];
};
static struct churn_report *g_churn;

static const char k_get_info[] = "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{}}";
static const char k_list[] = "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{}}";
static const char k_heap_stats[] =
    "{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":\"" CHURN_HEAP "\"}}";
static const char k_pool_stats[] =
    "{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":\"" CHURN_POOL "\"}}";
static const char k_attach_heap[] =
    "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"" CHURN_HEAP "\"}}";
static const char k_attach_pool[] =
    "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"" CHURN_POOL "\"}}";

/* A well-behaved cycle ended: it must have gone right, and in time. */
static bool cycle_done(struct churn_report *rep, uint64_t t0, bool ok, const char *what)
{
    uint32_t ms = (uint32_t)(tu_now_ms() - t0);
    if (ms > rep->slowest_ms)
        rep->slowest_ms = ms;
    if (ms > CHURN_BOUND_MS) {
        fprintf(stderr, "[child %d] %s took %u ms\n", (int)getpid(), what, ms);
        ok = false;
    }
    if (!ok) {
        it_child_failures++;
        fprintf(stderr, "[child %d] %s failed\n", (int)getpid(), what);
    }
    return ok;
}

/* Raw Varlink: GetInfo and a heap's RegionStats (answered from the thread
 * pool), then close. */
static bool good_raw(struct churn_report *rep)
{
    uint64_t t0 = tu_now_ms();
    int fd = td_connect(&g_d);
    bool ok = fd >= 0;
    if (ok) {
        json_t *info = it_call(fd, k_get_info);
        json_t *st = it_call(fd, k_heap_stats);
        const char *state = json_string_value(json_object_get(it_param(st, "heap"), "state"));
        ok = it_is_result(info) && json_is_array(it_param(info, "interfaces")) &&
             it_is_result(st) && state != NULL && strcmp(state, "ok") == 0;
        json_decref(info);
        json_decref(st);
        close(fd);
    }
    return cycle_done(rep, t0, ok, "raw GetInfo and RegionStats");
}

/* libmmsrv: attach both regions, use them, detach, disconnect. */
static bool good_attach(struct churn_report *rep, struct tu_rng *rng)
{
    uint64_t t0 = tu_now_ms();
    struct mmsrv_client *c;
    struct mmsrv_region *hr = NULL, *pr = NULL;
    bool ok = call_ok(mmsrv_connect(g_d.address, &c), "connect");
    if (!ok)
        return cycle_done(rep, t0, false, "connect");
    ok = call_ok(mmsrv_attach(c, CHURN_HEAP, 0, &hr), "attach heap") &&
         call_ok(mmsrv_attach(c, CHURN_POOL, 0, &pr), "attach pool");
    if (ok) {
        size_t len = (size_t)tu_rng_range(rng, 1, 4000);
        uint64_t key = tu_rng_next(rng);
        uint8_t *p = mm_malloc(hr->heap, len);
        IT_CHECK(p != NULL);
        if (p != NULL) {
            tu_pattern_fill(p, len, key);
            IT_CHECK_EQ(tu_pattern_check(p, len, key), len);
            mm_free(hr->heap, p);
        }
        uint8_t data[600], back[600];
        tu_pattern_fill(data, sizeof data, key);
        struct iob_s *chain = iw_chain_from(pr->pool, data, sizeof data, false);
        IT_CHECK(chain != NULL);
        IT_CHECK(iob_copyout(pr->pool, back, chain, sizeof back, 0) == (int)sizeof back &&
                 memcmp(back, data, sizeof data) == 0);
        iob_free_chain(pr->pool, chain);
        ok = it_child_failures == 0;
        ok = call_ok(mmsrv_detach(c, pr), "detach pool") && ok;
        ok = call_ok(mmsrv_detach(c, hr), "detach heap") && ok;
    }
    mmsrv_disconnect(c);
    return cycle_done(rep, t0, ok, "attach, use, detach");
}

/* libmmsrv: create a small heap of its own, use it, destroy it. */
static bool good_create(struct churn_report *rep, int who, int cycle)
{
    uint64_t t0 = tu_now_ms();
    char name[48];
    snprintf(name, sizeof name, "churn-g%d-%d", who, cycle);
    struct mmsrv_client *c;
    if (!call_ok(mmsrv_connect(g_d.address, &c), "connect"))
        return cycle_done(rep, t0, false, "connect");
    bool ok = create_heap(c, name, 65536) == 0;
    struct mmsrv_region *r = NULL;
    if (ok && call_ok(mmsrv_attach(c, name, 0, &r), "attach new heap")) {
        void *p = mm_malloc(r->heap, 1000);
        IT_CHECK(p != NULL);
        mm_free(r->heap, p);
        ok = call_ok(mmsrv_detach(c, r), "detach new heap") && it_child_failures == 0;
    } else {
        ok = false;
    }
    ok = call_ok(mmsrv_destroy(c, name), "destroy") && ok;
    mmsrv_disconnect(c);
    return cycle_done(rep, t0, ok, "create, attach, destroy");
}

/* libmmsrv: list and stats. */
static bool good_list(struct churn_report *rep)
{
    uint64_t t0 = tu_now_ms();
    struct mmsrv_client *c;
    if (!call_ok(mmsrv_connect(g_d.address, &c), "connect"))
        return cycle_done(rep, t0, false, "connect");
    struct mmsrv_region_info *list = NULL;
    int n = mmsrv_list(c, &list);
    bool ok = n >= 2;
    if (!ok)
        fprintf(stderr, "[child %d] list: %d\n", (int)getpid(), n);
    free(list);
    struct mmsrv_stats st;
    ok = call_ok(mmsrv_stats(c, CHURN_POOL, &st), "stats") && ok;
    ok = ok && st.count == CHURN_COUNT;
    mmsrv_disconnect(c);
    return cycle_done(rep, t0, ok, "list and stats");
}

static int churn_good(void *arg, int rd, int wr)
{
    (void)rd;
    (void)wr;
    int i = *(const int *)arg;
    struct churn_report *rep = &g_churn[i];
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ (0x600du + (uint64_t)i));
    for (int k = 0; k < CHURN_CYCLES; k++) {
        int kind = (k + i) % 4;
        bool ok = kind == 0   ? good_raw(rep)
                  : kind == 1 ? good_attach(rep, &rng)
                  : kind == 2 ? good_create(rep, i, k)
                              : good_list(rep);
        if (!ok)
            return 2;
        rep->kinds[kind]++;
        rep->cycles++;
    }
    return 0;
}

/* A connection for a misbehaving client; -1 counts as a failure (the
 * daemon must accept everyone). */
static int bad_connect(void)
{
    int fd = td_connect(&g_d);
    IT_CHECK(fd >= 0);
    return fd;
}

/* One misbehaving cycle of the given kind.  Where the protocol says what
 * must come back (garbage, a shut write side), it is checked. */
static void bad_cycle(int kind, struct tu_rng *rng)
{
    switch (kind) {
    case 0: { /* connect and go */
        int fd = bad_connect();
        if (fd >= 0)
            close(fd);
        break;
    }
    case 1: { /* part of a call, then go */
        int fd = bad_connect();
        if (fd < 0)
            break;
        size_t cut = (size_t)tu_rng_range(rng, 1, sizeof k_attach_pool - 2);
        IT_CHECK_EQ(td_send(fd, k_attach_pool, cut), 0);
        close(fd);
        break;
    }
    case 2: { /* an Attach (its reply carries a descriptor), gone before the reply */
        int fd = bad_connect();
        if (fd < 0)
            break;
        const char *call = tu_rng_range(rng, 0, 1) ? k_attach_heap : k_attach_pool;
        IT_CHECK_EQ(td_send(fd, call, strlen(call) + 1), 0);
        close(fd);
        break;
    }
    case 3: { /* a heap's stats (work on the daemon's thread pool), gone before the reply */
        int fd = bad_connect();
        if (fd < 0)
            break;
        IT_CHECK_EQ(td_send(fd, k_heap_stats, sizeof k_heap_stats), 0);
        close(fd);
        break;
    }
    case 4: { /* garbage: InvalidMessage, then the daemon closes */
        int fd = bad_connect();
        if (fd < 0)
            break;
        uint8_t junk[512];
        size_t n = (size_t)tu_rng_range(rng, 2, sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)tu_rng_range(rng, 1, 255);
        junk[0] = 1; /* no JSON text starts so */
        junk[n - 1] = 0;
        IT_CHECK_EQ(td_send(fd, junk, n), 0);
        char *text = td_recv(fd, IT_CALL_MS, NULL);
        json_t *reply = it_parse(text);
        IT_CHECK(it_is_error(reply, "io.mmsrvd.InvalidMessage", NULL, NULL));
        IT_CHECK(td_wait_closed(fd, IT_CALL_MS));
        json_decref(reply);
        free(text);
        close(fd);
        break;
    }
    case 5: { /* attach, hold buffers, disconnect holding them */
        struct mmsrv_client *c;
        struct mmsrv_region *pr;
        if (!call_ok(mmsrv_connect(g_d.address, &c), "connect"))
            break;
        if (call_ok(mmsrv_attach(c, CHURN_POOL, 0, &pr), "attach pool")) {
            int n = (int)tu_rng_range(rng, 1, 4);
            for (int i = 0; i < n; i++)
                IT_CHECK(iob_tryalloc(pr->pool, false) != NULL);
        }
        mmsrv_disconnect(c);
        break;
    }
    case 6: { /* three calls at once, one reply read */
        int fd = bad_connect();
        if (fd < 0)
            break;
        char calls[sizeof k_get_info + sizeof k_list + sizeof k_pool_stats];
        memcpy(calls, k_get_info, sizeof k_get_info);
        memcpy(calls + sizeof k_get_info, k_list, sizeof k_list);
        memcpy(calls + sizeof k_get_info + sizeof k_list, k_pool_stats, sizeof k_pool_stats);
        IT_CHECK_EQ(td_send(fd, calls, sizeof calls), 0);
        char *text = td_recv(fd, IT_CALL_MS, NULL);
        json_t *reply = it_parse(text);
        IT_CHECK(it_is_result(reply) && json_is_array(it_param(reply, "interfaces")));
        json_decref(reply);
        free(text);
        close(fd);
        break;
    }
    default: { /* a call without its NUL, then the write side shut: closed */
        int fd = bad_connect();
        if (fd < 0)
            break;
        IT_CHECK_EQ(td_send(fd, k_list, sizeof k_list - 1), 0);
        shutdown(fd, SHUT_WR);
        IT_CHECK(td_wait_closed(fd, IT_CALL_MS));
        close(fd);
        break;
    }
    }
}

static int churn_bad(void *arg, int rd, int wr)
{
    (void)rd;
    (void)wr;
    int i = *(const int *)arg;
    struct churn_report *rep = &g_churn[i];
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ (0xbadu + (uint64_t)i));
    for (int k = 0; k < CHURN_CYCLES && it_child_failures == 0; k++) {
        int kind = (int)tu_rng_range(&rng, 0, 7);
        bad_cycle(kind, &rng);
        rep->kinds[kind]++;
        rep->cycles++;
    }
    return 0;
}

static void test_connection_churn(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, CHURN_HEAP, 1u << 20), 0);
    CU_ASSERT_EQUAL_FATAL(create_pool(c, CHURN_POOL, 256, CHURN_COUNT, NULL, 0, 0), 0);
    mmsrv_disconnect(c);
    struct baseline base;
    take_baseline(&base);
    struct heap_figures f0;
    CU_ASSERT_FATAL(heap_figures(CHURN_HEAP, &f0));

    enum { N = CHURN_GOOD + CHURN_BAD };
    g_churn = it_shared(sizeof *g_churn * N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_churn);
    struct it_child kids[N];
    uint64_t t0 = tu_now_ms();
    int spawned = 0;
    for (int i = 0; i < N; i++) {
        g_index[i] = i;
        if (it_spawn(&kids[i], i < CHURN_GOOD ? churn_good : churn_bad, &g_index[i]) != 0)
            break;
        spawned++;
    }
    CU_ASSERT_EQUAL(spawned, N);
    int good_ok = finish_all(kids, spawned < CHURN_GOOD ? spawned : CHURN_GOOD, t0 + LOAD_RUN_MS);
    int bad_ok = spawned > CHURN_GOOD
                     ? finish_all(kids + CHURN_GOOD, spawned - CHURN_GOOD, t0 + LOAD_RUN_MS)
                     : 0;
    uint64_t elapsed = tu_now_ms() - t0;
    CU_ASSERT_EQUAL(good_ok, CHURN_GOOD); /* every call of theirs succeeded in time */
    CU_ASSERT_EQUAL(bad_ok, CHURN_BAD);   /* the daemon answered their mess as it should */

    uint32_t good_cycles = 0, bad_cycles = 0, slowest = 0, bad_kinds[8] = {0};
    for (int i = 0; i < spawned; i++) {
        if (i < CHURN_GOOD)
            good_cycles += g_churn[i].cycles;
        else
            bad_cycles += g_churn[i].cycles;
        if (i < CHURN_GOOD && g_churn[i].slowest_ms > slowest)
            slowest = g_churn[i].slowest_ms;
        for (int k = 0; k < 8 && i >= CHURN_GOOD; k++)
            bad_kinds[k] += g_churn[i].kinds[k];
    }
    printf("\n    %u well-behaved cycles (slowest %u ms), %u misbehaving (%u %u %u %u %u %u %u %u "
           "by kind) in %llu ms",
           good_cycles, slowest, bad_cycles, bad_kinds[0], bad_kinds[1], bad_kinds[2], bad_kinds[3],
           bad_kinds[4], bad_kinds[5], bad_kinds[6], bad_kinds[7], (unsigned long long)elapsed);
    CU_ASSERT_EQUAL(good_cycles, CHURN_GOOD * CHURN_CYCLES);
    CU_ASSERT_EQUAL(bad_cycles, CHURN_BAD * CHURN_CYCLES);

    /* The buffers held at disconnect came back, the heap is as it was, the
     * heaps made and destroyed are gone, and no descriptor leaked. */
    const char *pools[] = {CHURN_POOL};
    struct whole_want want = {CHURN_HEAP, &f0, pools, 1, 0};
    CU_ASSERT(tu_wait_until(all_whole, &want, IT_WAIT_MS));
    show_unless_whole(&want);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region_info *list = NULL;
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), 2);
    free(list);
    mmsrv_disconnect(c);
    munmap(g_churn, sizeof *g_churn * N);
    check_baseline(&base, "churn");
    it_stop(&g_d);
}

/* ==== 3. Crash under load =========================================================== */

#define CRASH_WORKERS  24
#define CRASH_PER_POOL 8 /* a loopback channel each */
#define CRASH_POOLS    (CRASH_WORKERS / CRASH_PER_POOL)
#define CRASH_SLOTS    48 /* heap blocks a worker may hold */
#define CRASH_HELD     2  /* chains it may hold outside the channel */
#define CRASH_INFLIGHT 4  /* chains it may have in its channel */
#define CRASH_MAXLEN   1500u
#define CRASH_WINDOW   8000 /* ms in which the victims die */
#define CRASH_HEAP     "crash-heap"
#define CRASH_COUNT    512u

_Static_assert(CRASH_WORKERS % CRASH_PER_POOL == 0 && CRASH_PER_POOL <= IOB_CONFIG_CHANNELS,
               "a channel per worker");
/* Every worker of a pool at its most, dead or alive: the pool still has
 * buffers, so an allocation that fails is a failure. */
_Static_assert(CRASH_PER_POOL *(CRASH_HELD + CRASH_INFLIGHT) * (CRASH_MAXLEN / 256 + 1) <=
                   CRASH_COUNT,
               "pool too small");

enum crash_phase { PHASE_CONTROL, PHASE_HEAP, PHASE_IOB, PHASES };
static const char *const k_phase_names[PHASES] = {"a control call", "the heap", "the pool"};

/* A heap block a worker holds: its offset in the region (0: none), length
 * and pattern key.  off is written last when a block is taken and cleared
 * first when it is given back, so that a worker killed at any instruction
 * leaves at most one block that no record names. */
struct crash_slot {
    uint64_t off, len, key;
};

/* What a worker shares with the parent (atomics: it may die at any time). */
struct crash_worker {
    uint64_t ops;
    uint32_t phase;
    uint32_t chains; /* held and in flight, for the report */
    struct crash_slot slot[CRASH_SLOTS];
};

struct crash_ctl {
    int stop;
    struct crash_worker w[CRASH_WORKERS];
};
static struct crash_ctl *g_crash;

static const char *const g_worker_chans[CRASH_PER_POOL] = {"w0", "w1", "w2", "w3",
                                                           "w4", "w5", "w6", "w7"};

static void set_phase(struct crash_worker *me, enum crash_phase ph)
{
    __atomic_store_n(&me->phase, (uint32_t)ph, __ATOMIC_RELEASE);
}

/* One block taken or given back. */
static bool crash_heap_step(struct crash_worker *me, struct mmsrv_region *hr, struct tu_rng *rng,
                            uint64_t id, uint64_t *next_key)
{
    struct crash_slot *sl = &me->slot[tu_rng_range(rng, 0, CRASH_SLOTS - 1)];
    uint64_t off = __atomic_load_n(&sl->off, __ATOMIC_RELAXED);
    if (off != 0) {
        uint8_t *p = mmsrv_pointer(hr, off, (size_t)sl->len);
        IT_CHECK(p != NULL && tu_pattern_check(p, (size_t)sl->len, sl->key) == sl->len);
        if (p == NULL)
            return false;
        __atomic_store_n(&sl->off, 0, __ATOMIC_RELEASE);
        mm_free(hr->heap, p);
        return it_child_failures == 0;
    }
    size_t len = (size_t)tu_rng_range(rng, 1, 2000);
    uint8_t *p = mm_malloc(hr->heap, len);
    IT_CHECK(p != NULL);
    if (p == NULL)
        return false;
    uint64_t key = (id << 40) | ++*next_key;
    tu_pattern_fill(p, len, key);
    __atomic_store_n(&sl->len, (uint64_t)len, __ATOMIC_RELAXED);
    __atomic_store_n(&sl->key, key, __ATOMIC_RELAXED);
    __atomic_store_n(&sl->off, mmsrv_offset(hr, p), __ATOMIC_RELEASE);
    return true;
}

/* What a worker does with its pool: chains it holds, and messages through
 * its own channel, in order. */
struct crash_iob {
    struct iob_pool_s *pool;
    int ch;
    struct iob_s *held[CRASH_HELD];
    uint64_t held_key[CRASH_HELD];
    uint32_t held_len[CRASH_HELD];
    uint32_t tx_seq, rx_seq, inflight;
};

static bool crash_receive(struct crash_iob *io)
{
    struct iob_s *got = NULL;
    int rc = iob_receive(io->pool, io->ch, &got, LOAD_WAIT_MS);
    IT_CHECK_EQ(rc, 0);
    if (rc != 0)
        return false;
    uint32_t seq = UINT32_MAX;
    IT_CHECK_EQ(iw_msg_check(io->pool, got, &seq), 0);
    IT_CHECK_EQ(seq, io->rx_seq);
    io->rx_seq++;
    io->inflight--;
    iob_free_chain(io->pool, got);
    return it_child_failures == 0;
}

static bool crash_iob_step(struct crash_iob *io, struct tu_rng *rng)
{
    uint64_t r = tu_rng_range(rng, 0, 3);
    if (r < 2) { /* hold a chain, or check and free one held */
        int k = (int)r;
        if (io->held[k] != NULL) {
            uint8_t want[CRASH_MAXLEN];
            tu_pattern_fill(want, io->held_len[k], io->held_key[k]);
            IT_CHECK(iw_chain_is(io->pool, io->held[k], want, io->held_len[k]));
            iob_free_chain(io->pool, io->held[k]);
            io->held[k] = NULL;
        } else {
            uint8_t data[CRASH_MAXLEN];
            io->held_len[k] = (uint32_t)tu_rng_range(rng, 1, CRASH_MAXLEN);
            io->held_key[k] = tu_rng_next(rng);
            tu_pattern_fill(data, io->held_len[k], io->held_key[k]);
            io->held[k] = iw_chain_from(io->pool, data, io->held_len[k], false);
            IT_CHECK(io->held[k] != NULL);
        }
        return it_child_failures == 0;
    }
    if (io->inflight < CRASH_INFLIGHT && (io->inflight == 0 || r == 2)) {
        uint32_t len = (uint32_t)tu_rng_range(rng, IW_MSG_MIN, CRASH_MAXLEN);
        struct iob_s *msg =
            iw_msg_make(io->pool, rng, io->tx_seq, len, tu_rng_range(rng, 0, 1) != 0, false);
        IT_CHECK(msg != NULL);
        if (msg == NULL)
            return false;
        int rc = iob_send(io->pool, io->ch, msg, LOAD_WAIT_MS);
        IT_CHECK_EQ(rc, 0);
        if (rc != 0) {
            iob_free_chain(io->pool, msg);
            return false;
        }
        io->tx_seq++;
        io->inflight++;
        return true;
    }
    return crash_receive(io);
}

/* Take back and check everything in flight, free what it holds. */
static bool crash_iob_settle(struct crash_iob *io)
{
    while (io->inflight > 0)
        if (!crash_receive(io))
            return false;
    for (int k = 0; k < CRASH_HELD; k++) {
        iob_free_chain(io->pool, io->held[k]);
        io->held[k] = NULL;
    }
    return true;
}

/* Check and free every block it holds. */
static void crash_free_all(struct crash_worker *me, struct mmsrv_region *hr)
{
    for (int k = 0; k < CRASH_SLOTS; k++) {
        struct crash_slot *sl = &me->slot[k];
        if (sl->off == 0)
            continue;
        uint8_t *p = mmsrv_pointer(hr, sl->off, (size_t)sl->len);
        IT_CHECK(p != NULL && tu_pattern_check(p, (size_t)sl->len, sl->key) == sl->len);
        __atomic_store_n(&sl->off, 0, __ATOMIC_RELEASE);
        mm_free(hr->heap, p);
    }
}

/* Attach cycles of random length until told to stop: connect, attach the
 * heap and its pool, heap and pool steps, settle, detach, disconnect.  Its
 * heap blocks live on across cycles (found again by offset in a new
 * mapping); its chains do not. */
static int crash_worker(void *arg, int rd, int wr)
{
    (void)rd;
    (void)wr;
    int i = *(const int *)arg;
    struct crash_worker *me = &g_crash->w[i];
    char pool_name[32];
    snprintf(pool_name, sizeof pool_name, "crash-pool%d", i / CRASH_PER_POOL);
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ (0xc4a54u + (uint64_t)i) * 0x2545f4914f6cdd1dull);
    uint64_t next_key = 0;
    struct crash_iob io = {.tx_seq = 0};
    bool stop = false;
    while (!stop) {
        set_phase(me, PHASE_CONTROL);
        struct mmsrv_client *c;
        struct mmsrv_region *hr, *pr;
        if (!call_ok(mmsrv_connect(g_d.address, &c), "connect"))
            return 2;
        if (!call_ok(mmsrv_attach(c, CRASH_HEAP, 0, &hr), "attach heap") ||
            !call_ok(mmsrv_attach(c, pool_name, 0, &pr), "attach pool"))
            return 3;
        io.pool = pr->pool;
        io.ch = iob_channel_lookup(io.pool, g_worker_chans[i % CRASH_PER_POOL]);
        if (!call_ok(iob_channel_connect(io.pool, io.ch, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV),
                     "channel connect"))
            return 4;
        int steps = (int)tu_rng_range(&rng, 20, 300);
        for (int s = 0; s < steps; s++) {
            if (__atomic_load_n(&g_crash->stop, __ATOMIC_ACQUIRE)) {
                stop = true;
                break;
            }
            set_phase(me, PHASE_HEAP);
            if (!crash_heap_step(me, hr, &rng, (uint64_t)i + 1, &next_key))
                return 5;
            set_phase(me, PHASE_IOB);
            if (!crash_iob_step(&io, &rng))
                return 6;
            uint32_t chains = io.inflight + (io.held[0] != NULL) + (io.held[1] != NULL);
            __atomic_store_n(&me->chains, chains, __ATOMIC_RELAXED);
            __atomic_fetch_add(&me->ops, 1, __ATOMIC_RELEASE);
        }
        if (!crash_iob_settle(&io))
            return 7;
        __atomic_store_n(&me->chains, 0, __ATOMIC_RELAXED);
        if (stop)
            crash_free_all(me, hr);
        set_phase(me, PHASE_CONTROL);
        IT_CHECK_EQ(iob_channel_disconnect(io.pool, io.ch, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
        IT_CHECK(call_ok(mmsrv_detach(c, pr), "detach pool"));
        IT_CHECK(call_ok(mmsrv_detach(c, hr), "detach heap"));
        mmsrv_disconnect(c);
        if (it_child_failures != 0)
            return 8;
    }
    return 0;
}

/* The worker is in a heap or pool step. */
static int in_data_path(void *arg)
{
    const struct crash_worker *w = arg;
    return __atomic_load_n(&w->phase, __ATOMIC_ACQUIRE) != PHASE_CONTROL;
}

struct ops_want {
    uint64_t target[CRASH_WORKERS];
    const bool *dead;
};

/* Every living worker has done its target number of steps. */
static int ops_reached(void *arg)
{
    const struct ops_want *w = arg;
    for (int i = 0; i < CRASH_WORKERS; i++)
        if (!w->dead[i] && __atomic_load_n(&g_crash->w[i].ops, __ATOMIC_ACQUIRE) < w->target[i])
            return 0;
    return 1;
}

/* Let every living worker do n more steps (bounded). */
static bool workers_advance(const bool *dead, uint64_t n)
{
    struct ops_want w = {.dead = dead};
    for (int i = 0; i < CRASH_WORKERS; i++)
        w.target[i] = __atomic_load_n(&g_crash->w[i].ops, __ATOMIC_ACQUIRE) + n;
    return tu_wait_until(ops_reached, &w, LOAD_WAIT_MS);
}

struct crash_reclaim {
    struct iob_pool_s *pools[CRASH_POOLS];
    struct mm_heap_s *heap;
    const bool *dead;
    bool drained[CRASH_WORKERS];
    int messages_left; /* chains the dead left in their channels */
    int bad_messages;
};

static bool count_block(void *arg, const struct mm_block_info *b)
{
    (void)b;
    (*(size_t *)arg)++;
    return true;
}

/* The daemon has reclaimed the dead workers: the receiver end of each
 * dead worker's channel is free again (then what it left in flight is
 * drained and checked), no block is cached under any owner, and every
 * pool has all its buffers free. */
static int reclaimed(void *arg)
{
    struct crash_reclaim *r = arg;
    for (int i = 0; i < CRASH_WORKERS; i++) {
        if (!r->dead[i] || r->drained[i])
            continue;
        struct iob_pool_s *pool = r->pools[i / CRASH_PER_POOL];
        int ch = iob_channel_lookup(pool, g_worker_chans[i % CRASH_PER_POOL]);
        if (iob_channel_connect(pool, ch, IOB_CHANNEL_RECV) != 0)
            return 0; /* not reclaimed yet */
        struct iob_s *m;
        uint32_t seq, last = 0;
        for (int n = 0; iob_receive(pool, ch, &m, 0) == 0; n++) {
            if (iw_msg_check(pool, m, &seq) != 0 || (n > 0 && seq != last + 1))
                r->bad_messages++;
            last = seq;
            iob_free_chain(pool, m);
            r->messages_left++;
        }
        iob_channel_disconnect(pool, ch, IOB_CHANNEL_RECV);
        r->drained[i] = true;
    }
    size_t cached = 0;
    struct mm_dump_filter cached_only = {.kinds = MM_DUMP_CACHED};
    mm_memdump(r->heap, &cached_only, count_block, &cached);
    if (cached != 0)
        return 0;
    for (int p = 0; p < CRASH_POOLS; p++) {
        char name[32];
        snprintf(name, sizeof name, "crash-pool%d", p);
        struct pool_figures f;
        if (!pool_figures(name, &f) || f.free != f.count || f.queued != 0)
            return 0;
    }
    return 1;
}

/* Allocated blocks of the heap, as mm_memdump reports them. */
struct block_list {
    size_t n, cap;
    void **mem;
};

static bool list_block(void *arg, const struct mm_block_info *b)
{
    struct block_list *l = arg;
    if (l->n < l->cap)
        l->mem[l->n] = b->mem;
    l->n++;
    return true;
}

static bool block_listed(const struct block_list *l, const void *p)
{
    for (size_t i = 0; i < l->n && i < l->cap; i++)
        if (l->mem[i] == p)
            return true;
    return false;
}

static void test_crash_under_load(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, CRASH_HEAP, 8u << 20), 0);
    char pool_names[CRASH_POOLS][32];
    for (int p = 0; p < CRASH_POOLS; p++) {
        snprintf(pool_names[p], sizeof pool_names[p], "crash-pool%d", p);
        CU_ASSERT_EQUAL_FATAL(
            create_pool(c, pool_names[p], 256, CRASH_COUNT, g_worker_chans, CRASH_PER_POOL, 8), 0);
    }
    mmsrv_disconnect(c);
    struct baseline base;
    take_baseline(&base);
    struct heap_figures f0;
    CU_ASSERT_FATAL(heap_figures(CRASH_HEAP, &f0));

    g_crash = it_shared(sizeof *g_crash);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_crash);
    static struct it_child kids[CRASH_WORKERS];
    bool dead[CRASH_WORKERS] = {false};
    for (int i = 0; i < CRASH_WORKERS; i++) {
        g_index[i] = i;
        CU_ASSERT_EQUAL_FATAL(it_spawn(&kids[i], crash_worker, &g_index[i]), 0);
    }
    /* All at work and holding things before anyone dies. */
    CU_ASSERT_FATAL(workers_advance(dead, 300));

    /* The victims: a random subset, each killed at a random moment of the
     * window, whatever it is doing; every other one once it is at work in
     * shared memory (the parent mostly gets a core when a worker blocks on
     * its socket, so moments alone would favour control calls). */
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0xdeadu);
    int order[CRASH_WORKERS];
    for (int i = 0; i < CRASH_WORKERS; i++)
        order[i] = i;
    for (int i = CRASH_WORKERS - 1; i > 0; i--) {
        int j = (int)tu_rng_range(&rng, 0, (uint64_t)i), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int nvictims = (int)tu_rng_range(&rng, CRASH_WORKERS / 4, CRASH_WORKERS / 2);
    uint64_t at[CRASH_WORKERS];
    for (int v = 0; v < nvictims; v++)
        at[v] = tu_rng_range(&rng, 0, CRASH_WINDOW);
    for (int v = 1; v < nvictims; v++) /* in time order */
        for (int u = v; u > 0 && at[u] < at[u - 1]; u--) {
            uint64_t t = at[u];
            at[u] = at[u - 1];
            at[u - 1] = t;
        }
    int in_phase[PHASES] = {0}, holding_blocks = 0, holding_chains = 0, killed = 0;
    uint64_t t0 = tu_now_ms();
    for (int v = 0; v < nvictims; v++) {
        while (tu_now_ms() < t0 + at[v]) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        int i = order[v];
        if (v % 2 == 1)
            (void)tu_wait_until(in_data_path, &g_crash->w[i], 2000);
        CU_ASSERT_EQUAL(kill(kids[i].pid, SIGKILL), 0);
        int status = it_finish(&kids[i], IT_WAIT_MS);
        bool by_kill = status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!by_kill)
            fprintf(stderr, "\n    worker %d was not killed: status %#x\n", i, (unsigned)status);
        CU_ASSERT(by_kill);
        dead[i] = true;
        killed++;
        struct crash_worker *w = &g_crash->w[i];
        uint32_t ph = __atomic_load_n(&w->phase, __ATOMIC_ACQUIRE);
        in_phase[ph < PHASES ? ph : 0]++;
        int blocks = 0;
        for (int k = 0; k < CRASH_SLOTS; k++)
            blocks += __atomic_load_n(&w->slot[k].off, __ATOMIC_ACQUIRE) != 0;
        holding_blocks += blocks > 0;
        holding_chains += __atomic_load_n(&w->chains, __ATOMIC_ACQUIRE) > 0;
    }
    printf("\n    %d of %d workers killed over %d ms: %d in %s, %d in %s, %d in %s; %d holding "
           "blocks, %d holding chains",
           killed, CRASH_WORKERS, CRASH_WINDOW, in_phase[PHASE_CONTROL],
           k_phase_names[PHASE_CONTROL], in_phase[PHASE_HEAP], k_phase_names[PHASE_HEAP],
           in_phase[PHASE_IOB], k_phase_names[PHASE_IOB], holding_blocks, holding_chains);

    /* The survivors go on working, and the daemon serves meanwhile. */
    CU_ASSERT(workers_advance(dead, 300));
    CU_ASSERT(it_served(&g_d));
    __atomic_store_n(&g_crash->stop, 1, __ATOMIC_RELEASE);
    int ok = 0;
    for (int i = 0; i < CRASH_WORKERS; i++)
        if (!dead[i])
            ok += tu_exited_ok(it_finish(&kids[i], LOAD_WAIT_MS)) ? 1 : 0;
    CU_ASSERT_EQUAL(ok, CRASH_WORKERS - killed); /* their data was right to the end */
    uint64_t total_ops = 0;
    for (int i = 0; i < CRASH_WORKERS; i++)
        total_ops += g_crash->w[i].ops;
    printf("\n    %llu steps in all", (unsigned long long)total_ops);

    /* The daemon reclaims what the dead held: buffers, channel ends,
     * cached blocks. */
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region *hr, *pr[CRASH_POOLS];
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, CRASH_HEAP, 0, &hr), 0);
    mm_cache_limit(hr->heap, 0); /* the frees below go straight back */
    struct crash_reclaim rec = {.heap = hr->heap, .dead = dead};
    for (int p = 0; p < CRASH_POOLS; p++) {
        CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, pool_names[p], 0, &pr[p]), 0);
        rec.pools[p] = pr[p]->pool;
    }
    bool back = tu_wait_until(reclaimed, &rec, IT_WAIT_MS);
    if (!back)
        for (int p = 0; p < CRASH_POOLS; p++)
            show_pool(pool_names[p]);
    CU_ASSERT(back);
    CU_ASSERT_EQUAL(rec.bad_messages, 0);
    for (int i = 0; i < CRASH_WORKERS; i++) {
        uint32_t snd = 1, rcv = 1;
        iob_channel_ends(
            rec.pools[i / CRASH_PER_POOL],
            iob_channel_lookup(rec.pools[i / CRASH_PER_POOL], g_worker_chans[i % CRASH_PER_POOL]),
            &snd, &rcv);
        CU_ASSERT(snd == 0 && rcv == 0);
    }
    for (int p = 0; p < CRASH_POOLS; p++) {
        struct iob_census_s census;
        CU_ASSERT_EQUAL(iob_pool_check(rec.pools[p], &census), 0);
        CU_ASSERT_EQUAL(census.free, CRASH_COUNT);
    }

    /* The dead workers' blocks: every one its record names is allocated and
     * intact; at most one each is in no record.  Freed, the heap is as it
     * started. */
    struct block_list all = {.cap = 8192};
    all.mem = calloc(all.cap, sizeof *all.mem);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all.mem);
    struct mm_dump_filter allocated = {.kinds = MM_DUMP_ALLOCATED};
    mm_memdump(hr->heap, &allocated, list_block, &all);
    CU_ASSERT_FATAL(all.n <= all.cap);
    size_t recorded = 0, found = 0, intact = 0;
    for (int i = 0; i < CRASH_WORKERS; i++) {
        for (int k = 0; k < CRASH_SLOTS; k++) {
            const struct crash_slot *sl = &g_crash->w[i].slot[k];
            if (sl->off == 0)
                continue;
            CU_ASSERT(dead[i]); /* survivors freed theirs */
            recorded++;
            uint8_t *p = mmsrv_pointer(hr, sl->off, (size_t)sl->len);
            if (p != NULL && block_listed(&all, p)) {
                found++;
                intact += tu_pattern_check(p, (size_t)sl->len, sl->key) == sl->len;
            }
        }
    }
    printf("\n    the dead held %zu blocks by their records, %zu allocated in all; %d messages "
           "left in their channels",
           recorded, all.n, rec.messages_left);
    CU_ASSERT_EQUAL(found, recorded);
    CU_ASSERT_EQUAL(intact, recorded);
    CU_ASSERT(all.n >= recorded && all.n - recorded <= (size_t)killed);
    for (size_t b = 0; b < all.n; b++)
        mm_free(hr->heap, all.mem[b]);
    free(all.mem);
    CU_ASSERT_EQUAL(mm_checkcorruption(hr->heap), 0);
    struct mm_heap_stats hs = mm_heap_stats(hr->heap);
    CU_ASSERT_EQUAL(hs.double_frees + hs.foreign_frees + hs.guard_errors, 0);
    for (int p = 0; p < CRASH_POOLS; p++)
        CU_ASSERT_EQUAL(mmsrv_detach(c, pr[p]), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, hr), 0);
    mmsrv_disconnect(c);
    const char *pools[CRASH_POOLS];
    for (int p = 0; p < CRASH_POOLS; p++)
        pools[p] = pool_names[p];
    struct whole_want want = {CRASH_HEAP, &f0, pools, CRASH_POOLS, 0};
    CU_ASSERT(tu_wait_until(all_whole, &want, IT_WAIT_MS));
    show_unless_whole(&want);

    munmap(g_crash, sizeof *g_crash);
    check_baseline(&base, "crashes");
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_many_clients),
        TU_TEST(test_connection_churn),
        TU_TEST(test_crash_under_load),
        TU_END,
    };
    return tu_main("load", tests);
}
