/*
 * test_iob_kill.c - processes killed with SIGKILL at random points while
 * they allocate, copy, send, receive, queue and free; after reclaim the
 * pool must balance and no buffer may be held twice.
 *
 * The set-up: a pool, two single-ended channels between a long-lived peer
 * process P and a victim V (v2p: V sends, P receives; p2v: P sends, V
 * receives).  P works all along (random chain operations, messages both
 * ways).  Each run forks a fresh V that does the same, and kills it:
 *
 *   - at a numbered crash point (iob_set_crash_hook), the k-th time it gets
 *     there: inside a pop, between a free's state and its push, in the
 *     middle of freeing a chain, between linking and marking a buffer,
 *     between promoting and unlinking, in each step of a send and a receive,
 *     in a queue operation;
 *   - or from the parent, after a random number of operations (anywhere,
 *     including asleep in a blocking allocation or receive).
 *
 * Some runs also kill the reclaimer itself in the middle of its reclaim;
 * the next admin-lock holder must finish the job.
 *
 * After each run the parent reclaims V while P keeps working, then pauses P
 * (between two of its operations) and checks the census: free + owned +
 * queued = count, nothing freed-but-not-free, no orphans, no duplicates,
 * nothing left to V (buffers, queue entries, sleeper slots), channel
 * registrations released.  At the end P releases everything, the channels
 * are drained, and every buffer must be free.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iob_internal.h"
#include "iob_work.h"
#include "test_util.h"

#define RUNS     480
#define BUFSIZE  256u
#define COUNT    512u
#define THROTTLE 8u
#define MAXLEN   4096u

struct ctl {
    volatile uint32_t stop;
    volatile uint32_t pause_req;
    volatile uint32_t paused;
    volatile uint32_t peer_error;
    volatile uint64_t peer_ops;
    volatile uint64_t victim_ops;
};

static struct iw_pool g_pool;
static struct ctl *g_ctl;
static int g_v2p, g_p2v;
static char g_msg[256];

/* ---- Crash hook of the victim ---------------------------------------------- */

static int g_hook_point;
static int g_hook_count;

static void crash_hook(int point)
{
    if (point == g_hook_point && --g_hook_count == 0)
        kill(getpid(), SIGKILL);
}

/* ---- Peer and victim --------------------------------------------------------- */

static void poll_pause(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static void peer_main(void)
{
    struct iob_pool_s *h = iob_pool_attach(g_pool.mem, g_pool.size);
    struct iw_churn w;
    if (h == NULL || !iw_churn_init(&w, h, tu_seed() ^ 0x9eeu, MAXLEN) ||
        iob_channel_connect(h, g_p2v, IOB_CHANNEL_SEND) != 0 ||
        iob_channel_connect(h, g_v2p, IOB_CHANNEL_RECV) != 0)
        _exit(2);
    w.chan_tx = g_p2v;
    w.chan_rx = g_v2p;
    w.block = true;
    int r = 0;
    while (!g_ctl->stop) {
        if (g_ctl->pause_req) {
            g_ctl->paused = 1;
            while (g_ctl->pause_req && !g_ctl->stop)
                poll_pause();
            g_ctl->paused = 0;
            continue;
        }
        r = iw_churn_step(&w);
        if (r != 0) {
            g_ctl->peer_error = (uint32_t)-r;
            break;
        }
        g_ctl->peer_ops++;
    }
    int rr = iw_churn_release(&w);
    _exit(r == 0 && rr == 0 ? 0 : 3);
}

static void victim_main(uint64_t seed, int hook_point, int hook_count)
{
    struct iob_pool_s *h = g_pool.h; /* inherited; owner: this process's pid */
    struct iw_churn w;
    if (!iw_churn_init(&w, h, seed, MAXLEN) ||
        iob_channel_connect(h, g_v2p, IOB_CHANNEL_SEND) != 0 ||
        iob_channel_connect(h, g_p2v, IOB_CHANNEL_RECV) != 0)
        _exit(10);
    w.chan_tx = g_v2p;
    w.chan_rx = g_p2v;
    w.block = (seed & 1u) != 0;
    iob_pool_set_spin(h, (seed & 2u) ? 0u : 200u);
    if (hook_point > 0) {
        g_hook_point = hook_point;
        g_hook_count = hook_count;
        iob_set_crash_hook(crash_hook);
    }
    struct tu_rng r;
    tu_rng_init(&r, seed ^ 0x51u);
    for (uint64_t i = 0; i < 50000; i++) {
        /* Now and then wait for a message: dying asleep is covered too. */
        if (tu_rng_range(&r, 0, 63) == 0) {
            struct iob_s *m;
            if (iob_receive(h, g_p2v, &m, 5) == 0) {
                if (iw_msg_check(h, m, NULL) != 0)
                    _exit(12);
                iob_free_chain(h, m);
            }
        }
        if (iw_churn_step(&w) != 0)
            _exit(11);
        g_ctl->victim_ops++;
    }
    _exit(0); /* the crash point was not reached often enough */
}

/* ---- The parent's checks ------------------------------------------------------- */

static int peer_paused(void *arg)
{
    (void)arg;
    return g_ctl->paused != 0;
}

static int victim_progressed(void *arg)
{
    return g_ctl->victim_ops >= *(const uint64_t *)arg;
}

static bool sleepers_of(const uint32_t *mask, const struct iob__sleepers *sl, uint32_t owner)
{
    bool any = false;
    for (unsigned i = 0; i < IOB__SLEEPERS; i++)
        if (sl->owner[i] == owner || ((*mask >> i) & 1u) != 0)
            any = true;
    return any;
}

/* Pause the peer, check the census, resume it. */
static bool check_balance(uint32_t victim, uint32_t peer, int run)
{
    struct iob_pool_s *h = g_pool.h;
    g_ctl->pause_req = 1;
    bool ok = tu_wait_until(peer_paused, NULL, 10000) != 0;
    CU_ASSERT(ok);
    struct iob_census_s cs;
    bool census = iw_census_ok(h, &cs, g_msg);
    if (!census)
        fprintf(stderr, "\n  run %d: census: %s\n", run, g_msg);
    ok = ok && census;
    uint32_t nq = 0, vict = iob_pool_owned(h, victim, &nq);
    uint32_t peers = iob_pool_owned(h, peer, NULL);
    if (vict != 0 || nq != 0 || peers != cs.owned || cs.freeing != 0) {
        fprintf(stderr, "\n  run %d: victim holds %u buffers %u entries; peer %u of %u owned\n",
                run, vict, nq, peers, cs.owned);
        ok = false;
    }
    /* Nobody sleeps now: the peer is paused between operations, the victim
     * is dead and reclaimed. */
    struct iob__header *hd = h->hdr;
    if (sleepers_of(&hd->bufs.sleepmask, &hd->bufs_sleepers, victim) ||
        sleepers_of(&hd->qents.sleepmask, &hd->qents_sleepers, victim) ||
        sleepers_of(&h->chan[g_p2v].recv_mask, &h->chan[g_p2v].recv_sleepers, victim) ||
        sleepers_of(&h->chan[g_v2p].send_mask, &h->chan[g_v2p].send_sleepers, victim)) {
        fprintf(stderr, "\n  run %d: sleeper slots left\n", run);
        ok = false;
    }
    if (h->chan[g_v2p].sender != 0 || h->chan[g_p2v].receiver != 0) {
        fprintf(stderr, "\n  run %d: the victim is still registered\n", run);
        ok = false;
    }
    g_ctl->pause_req = 0;
    return ok;
}

/* Kill a reclaimer in the middle of reclaiming owner: it dies holding the
 * admin lock with the lists frozen. */
static void reclaim_and_die(uint32_t owner, int count)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        g_hook_point = IOB_CRASH_RECLAIM;
        g_hook_count = count;
        iob_set_crash_hook(crash_hook);
        (void)iob_pool_reclaim(g_pool.h, owner);
        _exit(0); /* fewer buffers than count */
    }
    int st = tu_wait_child(pid, 10000);
    CU_ASSERT(st != -1);
}

static void t_kill_runs(void)
{
    CU_ASSERT_FATAL(iw_pool_make(&g_pool, BUFSIZE, COUNT, THROTTLE));
    g_ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(g_ctl != MAP_FAILED);
    memset((void *)g_ctl, 0, sizeof(*g_ctl));
    g_v2p = iob_channel_create(g_pool.h, "v2p", 16, 0);
    g_p2v = iob_channel_create(g_pool.h, "p2v", 16, 0);
    CU_ASSERT_FATAL(g_v2p >= 0 && g_p2v >= 0);
    pid_t peer = fork();
    CU_ASSERT_FATAL(peer >= 0);
    if (peer == 0)
        peer_main();

    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0xdeadu);
    int by_hook = 0, by_parent = 0, survived = 0, reclaimer_killed = 0, failed = 0;
    uint32_t reclaimed = 0;
    uint64_t t0 = tu_now_ms();
    for (int run = 0; run < RUNS && failed < 3; run++) {
        bool hook = (run & 1) == 0;
        int point = 1 + (run / 2) % IOB_CRASH_POINTS;
        if (point == IOB_CRASH_RECLAIM)
            point = IOB_CRASH_POP;
        int count = (int)tu_rng_range(&rng, 1, 40);
        uint64_t target = tu_rng_range(&rng, 1, 3000);
        uint64_t seed = tu_rng_next(&rng);
        g_ctl->victim_ops = 0;
        pid_t v = fork();
        CU_ASSERT_FATAL(v >= 0);
        if (v == 0)
            victim_main(seed, hook ? point : 0, count);
        if (!hook) {
            if (!tu_wait_until(victim_progressed, &target, 20000))
                fprintf(stderr, "\n  run %d: victim made no progress\n", run);
            kill(v, SIGKILL);
        }
        int st = tu_wait_child(v, 30000);
        if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            if (hook)
                by_hook++;
            else
                by_parent++;
        } else if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            survived++;
        } else {
            fprintf(stderr, "\n  run %d: victim status %#x (point %d)\n", run, (unsigned)st, point);
            failed++;
            CU_FAIL("victim failed");
        }
        /* Every eighth run: the first reclaimer dies half way. */
        if (run % 8 == 3) {
            reclaim_and_die((uint32_t)v, (int)tu_rng_range(&rng, 1, 8));
            reclaimer_killed++;
        }
        int n = iob_pool_reclaim(g_pool.h, (uint32_t)v);
        if (n < 0) {
            fprintf(stderr, "\n  run %d: reclaim: %d\n", run, n);
            failed++;
            CU_FAIL("reclaim failed");
        } else {
            reclaimed += (uint32_t)n;
        }
        if (!check_balance((uint32_t)v, (uint32_t)peer, run)) {
            failed++;
            CU_FAIL("pool does not balance after reclaim");
        }
        if (g_ctl->peer_error != 0) {
            fprintf(stderr, "\n  run %d: peer error %u\n", run, g_ctl->peer_error);
            failed++;
            CU_FAIL("peer saw bad data");
            break;
        }
    }
    printf("\n    %d runs in %.1f s: killed at crash points %d, by the parent %d, lived %d; "
           "%d reclaimers killed; %u buffers reclaimed; peer ops %llu",
           RUNS, (double)(tu_now_ms() - t0) / 1000.0, by_hook, by_parent, survived,
           reclaimer_killed, reclaimed, (unsigned long long)g_ctl->peer_ops);
    CU_ASSERT(by_hook + by_parent >= 200);

    g_ctl->stop = 1;
    CU_ASSERT(tu_exited_ok(tu_wait_child(peer, 30000)));
    CU_ASSERT_EQUAL(iob_pool_reclaim(g_pool.h, (uint32_t)peer), 0);
    /* Drain what waits in the channels. */
    CU_ASSERT_EQUAL(iob_channel_connect(g_pool.h, g_v2p, IOB_CHANNEL_RECV), 0);
    CU_ASSERT_EQUAL(iob_channel_connect(g_pool.h, g_p2v, IOB_CHANNEL_RECV), 0);
    for (int c = 0; c < 2; c++) {
        struct iob_s *m;
        while (iob_receive(g_pool.h, c == 0 ? g_v2p : g_p2v, &m, 0) == 0) {
            CU_ASSERT_EQUAL(iw_msg_check(g_pool.h, m, NULL), 0);
            iob_free_chain(g_pool.h, m);
        }
    }
    bool all = iw_all_free(g_pool.h, g_msg);
    if (!all)
        fprintf(stderr, "\n  at the end: %s\n", g_msg);
    CU_ASSERT(all);
    struct iob_stats_s st = iob_pool_stats(g_pool.h);
    CU_ASSERT_EQUAL(st.allocs, st.frees);
    munmap((void *)g_ctl, 4096);
    iw_pool_destroy(&g_pool);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(t_kill_runs),
        TU_END,
    };
    return tu_main("iob_kill", tests);
}
