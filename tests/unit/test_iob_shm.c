/*
 * test_iob_shm.c - the IOB pool shared by several processes: allocators
 * asleep on an empty pool woken by another process's free, receivers asleep
 * on a channel, a million chains passed between two processes, several
 * senders and receivers on one channel, processes and threads churning one
 * pool, and reclaim while others keep working.
 *
 * Children report through their exit status (and pipes for timings); the
 * parent waits with bounded timeouts and then checks that the pool
 * balances (iob_pool_check).  No test sleeps to wait: it waits for a
 * condition, with a bound.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <pthread.h>
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

static char g_msg[256];

#define ASSERT_ALL_FREE(h)                                                                         \
    do {                                                                                           \
        bool ok_ = iw_all_free(h, g_msg);                                                          \
        if (!ok_)                                                                                  \
            fprintf(stderr, "\n  %s:%d census: %s\n", __FILE__, __LINE__, g_msg);                  \
        CU_ASSERT(ok_);                                                                            \
    } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Shared memory for control words between parent and children. */
struct ctl {
    volatile uint32_t stop;
    volatile uint32_t ready;
    volatile uint64_t progress[4];
    volatile uint64_t stamp;
};

static struct ctl *ctl_map(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(p != MAP_FAILED);
    memset(p, 0, 4096);
    return p;
}

static int waiters_on(void *arg)
{
    const struct iob__stack *st = arg;
    return __atomic_load_n(&st->sleepmask, __ATOMIC_SEQ_CST) != 0;
}

static int word_nonzero(void *arg)
{
    return __atomic_load_n((const uint32_t *)arg, __ATOMIC_SEQ_CST) != 0;
}

/* ---- A blocked allocator, woken by another process ---------------------- */

static void t_waiter_woken_by_free(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 256, 8, 2));
    struct iob_s *held[8];
    for (int i = 0; i < 8; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(held[i] = iob_tryalloc(p.h, false));
    int pipefd[2];
    CU_ASSERT_FATAL(pipe(pipefd) == 0);
    struct iob__header *hd = (struct iob__header *)(void *)p.mem;

    for (int round = 0; round < 2; round++) {
        bool throttled = round == 1;
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            iob_pool_set_spin(p.h, 0); /* straight to the futex */
            struct iob_s *b = iob_alloc(p.h, throttled);
            uint64_t t = now_ns();
            int ok = b != NULL && iob_owner(p.h, b) == (uint32_t)getpid();
            (void)!write(pipefd[1], &t, sizeof(t));
            iob_free(p.h, b);
            _exit(ok ? 0 : 1);
        }
        /* Wait until the child sleeps on the pool (it counts itself among
         * the waiters right before the futex wait). */
        CU_ASSERT(tu_wait_until(waiters_on, &hd->bufs, 5000));
        if (throttled) {
            /* One free leaves 1 <= throttle: not enough for it. */
            iob_free(p.h, held[7]);
            struct iob_s *again = iob_timedalloc(p.h, false, 10);
            CU_ASSERT_PTR_NOT_NULL(again); /* still there: the child did not take it */
            held[7] = again;
            /* Free two at once: 2 <= throttle, still not; a third frees it. */
            iob_free(p.h, held[7]);
            iob_free(p.h, held[6]);
            CU_ASSERT_EQUAL(iob_navail(p.h, false), 2);
        }
        uint64_t t0 = now_ns();
        iob_free(p.h, held[throttled ? 5 : 7]);
        uint64_t t1 = 0;
        CU_ASSERT_EQUAL(tu_read_full(pipefd[0], &t1, sizeof(t1), 5000), (long)sizeof(t1));
        CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 5000)));
        double us = (double)(t1 - t0) / 1000.0;
        printf("\n    %s waiter woken %.1f us after the free", throttled ? "throttled" : "plain",
               us);
        CU_ASSERT(t1 >= t0 && us < 200000.0);
        /* Take back what the child freed, to hold all again. */
        for (int i = throttled ? 5 : 7; i < 8; i++)
            CU_ASSERT_PTR_NOT_NULL(held[i] = iob_tryalloc(p.h, false));
        CU_ASSERT_EQUAL(iob_navail(p.h, false), 0);
    }
    CU_ASSERT(iob_pool_stats(p.h).waits >= 2);
    /* A timed wait that nobody ends. */
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t t0 = tu_now_ms();
        struct iob_s *b = iob_timedalloc(p.h, false, 100);
        uint64_t dt = tu_now_ms() - t0;
        _exit(b == NULL && iob_pool_error(p.h) == -MM_ETIMEDOUT && dt >= 99 && dt < 5000 ? 0 : 1);
    }
    CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 10000)));
    for (int i = 0; i < 8; i++)
        iob_free(p.h, held[i]);
    ASSERT_ALL_FREE(p.h);
    close(pipefd[0]);
    close(pipefd[1]);
    iw_pool_destroy(&p);
}

/* ---- A receiver asleep on a channel, woken by a sender ------------------- */

static void t_receiver_woken_by_send(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 256, 64, 0));
    int id = iob_channel_create(p.h, "wake", 8, 0);
    CU_ASSERT_FATAL(id >= 0);
    CU_ASSERT_EQUAL(iob_channel_connect(p.h, id, IOB_CHANNEL_SEND), 0);
    struct iob__chan *ch = &p.h->chan[id];
    int pipefd[2];
    CU_ASSERT_FATAL(pipe(pipefd) == 0);
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            struct iob_s *m;
            iob_pool_set_spin(p.h, 0);
            if (iob_channel_connect(p.h, id, IOB_CHANNEL_RECV) != 0)
                _exit(2);
            int r = iob_receive(p.h, id, &m, 5000);
            uint64_t t = now_ns();
            (void)!write(pipefd[1], &t, sizeof(t));
            int ok = r == 0 && iw_msg_check(p.h, m, NULL) == 0 &&
                     iob_owner(p.h, m) == (uint32_t)getpid();
            iob_free_chain(p.h, m);
            iob_channel_disconnect(p.h, id, IOB_CHANNEL_RECV);
            _exit(ok ? 0 : 1);
        }
        CU_ASSERT(tu_wait_until(word_nonzero, &ch->recv_mask, 5000));
        struct tu_rng rng;
        tu_rng_init(&rng, tu_seed() + (uint64_t)round);
        struct iob_s *m = iw_msg_make(p.h, &rng, (uint32_t)round, 1000, true, false);
        uint64_t t0 = now_ns();
        CU_ASSERT_EQUAL(iob_send(p.h, id, m, 0), 0);
        uint64_t t1 = 0;
        CU_ASSERT_EQUAL(tu_read_full(pipefd[0], &t1, sizeof(t1), 5000), (long)sizeof(t1));
        CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 5000)));
        if (round == 0)
            printf("\n    sleeping receiver woken %.1f us after the send",
                   (double)(t1 - t0) / 1000.0);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    ASSERT_ALL_FREE(p.h);
    iw_pool_destroy(&p);
}

/* ---- A million chains of 1 B .. 64 KiB through one channel ------------------ */

#define MILLION_BUFSIZE 2048u
#define MILLION_COUNT   4096u
#define MILLION_DEPTH   64u
#define MILLION_MAX     65536u

/* The length of chain i: the same sequence on both sides. */
static uint32_t million_len(struct tu_rng *r)
{
    return (uint32_t)tu_rng_range(r, 1, MILLION_MAX);
}

/* Chains shorter than a message header carry bytes derived from their
 * number, which the receiver recomputes. */
static void small_bytes(uint8_t *p, uint32_t len, uint32_t seq)
{
    for (uint32_t k = 0; k < len; k++)
        p[k] = (uint8_t)(seq * 131u + k * 7u + 1u);
}

static int million_sender(struct iob_pool_s *h, int id, uint32_t n, uint64_t seed)
{
    struct tu_rng lens, data;
    tu_rng_init(&lens, seed);
    tu_rng_init(&data, seed ^ 0xdadau);
    if (iob_channel_connect(h, id, IOB_CHANNEL_SEND) != 0)
        return 2;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = million_len(&lens);
        struct iob_s *m;
        if (len < IW_MSG_MIN) {
            uint8_t b[IW_MSG_MIN];
            small_bytes(b, len, i);
            m = iw_chain_from(h, b, len, true);
        } else {
            m = iw_msg_make(h, &data, i, len, (i & 1u) == 0, true);
        }
        if (m == NULL)
            return 3;
        if (iob_send(h, id, m, 30000) != 0)
            return 4;
    }
    return 0;
}

static void t_channel_million(void)
{
    uint32_t n = 1000000u;
    const char *env = getenv("MMSRV_IOB_CHAINS");
    if (env != NULL && *env != '\0')
        n = (uint32_t)strtoul(env, NULL, 0);
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, MILLION_BUFSIZE, MILLION_COUNT, 0));
    int id = iob_channel_create(p.h, "million", MILLION_DEPTH, 0);
    CU_ASSERT_FATAL(id >= 0);
    CU_ASSERT_EQUAL(iob_channel_connect(p.h, id, IOB_CHANNEL_RECV), 0);
    uint64_t seed = tu_seed();
    uint64_t t0 = tu_now_ms();
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(million_sender(p.h, id, n, seed));

    struct tu_rng lens;
    tu_rng_init(&lens, seed);
    uint64_t bytes = 0, bad = 0, first_bad = UINT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = million_len(&lens);
        struct iob_s *m = NULL;
        int r = iob_receive(p.h, id, &m, 30000);
        if (r != 0) {
            fprintf(stderr, "\n  receive %u: %d\n", i, r);
            bad++;
            break;
        }
        bool ok = iob_pktlen(p.h, m) == len;
        if (ok && len < IW_MSG_MIN) {
            uint8_t want[IW_MSG_MIN], got[IW_MSG_MIN];
            small_bytes(want, len, i);
            ok = iob_copyout(p.h, got, m, len, 0) == (int)len && memcmp(got, want, len) == 0;
        } else if (ok) {
            uint32_t seq = 0;
            ok = iw_msg_check(p.h, m, &seq) == 0 && seq == i;
        }
        if (!ok && bad++ == 0)
            first_bad = i;
        bytes += len;
        iob_free_chain(p.h, m);
    }
    int status = tu_wait_child(pid, 60000);
    double secs = (double)(tu_now_ms() - t0) / 1000.0;
    printf("\n    %u chains, %.2f GiB, %.1f s: %.0f chains/s, %.2f GiB/s", n,
           (double)bytes / (1u << 30), secs, n / secs, (double)bytes / (1u << 30) / secs);
    if (bad != 0)
        fprintf(stderr, "\n  %llu chains failed their check, first #%llu\n",
                (unsigned long long)bad, (unsigned long long)first_bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(tu_exited_ok(status));
    ASSERT_ALL_FREE(p.h);
    struct iob_stats_s st = iob_pool_stats(p.h);
    CU_ASSERT_EQUAL(st.allocs, st.frees);
    CU_ASSERT_EQUAL(st.nfree, MILLION_COUNT);
    iw_pool_destroy(&p);
}

/* ---- Several senders and receivers on one channel ------------------------------ */

#define MP_SENDERS   3
#define MP_RECEIVERS 2
#define MP_EACH      20000u

struct mp_shared {
    volatile uint32_t seen[MP_SENDERS][MP_EACH];
    volatile uint32_t done_senders;
};

static void t_channel_mpmc(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 512, 512, 0));
    int id =
        iob_channel_create(p.h, "mpmc", 16, IOB_CHANNEL_MULTI_SENDER | IOB_CHANNEL_MULTI_RECEIVER);
    CU_ASSERT_FATAL(id >= 0);
    struct mp_shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(sh != MAP_FAILED);
    memset((void *)sh, 0, sizeof(*sh));
    pid_t pids[MP_SENDERS + MP_RECEIVERS];
    for (int s = 0; s < MP_SENDERS; s++) {
        pids[s] = fork();
        if (pids[s] == 0) {
            struct tu_rng r;
            tu_rng_init(&r, tu_seed() + (uint64_t)s);
            if (iob_channel_connect(p.h, id, IOB_CHANNEL_SEND) != 0)
                _exit(2);
            for (uint32_t i = 0; i < MP_EACH; i++) {
                uint32_t len = (uint32_t)tu_rng_range(&r, IW_MSG_MIN, 3000);
                struct iob_s *m =
                    iw_msg_make(p.h, &r, (uint32_t)s * MP_EACH + i, len, i & 1u, true);
                if (m == NULL || iob_send(p.h, id, m, 20000) != 0)
                    _exit(3);
            }
            __atomic_add_fetch(&sh->done_senders, 1u, __ATOMIC_SEQ_CST);
            _exit(0);
        }
    }
    for (int k = 0; k < MP_RECEIVERS; k++) {
        pid_t pid = fork();
        pids[MP_SENDERS + k] = pid;
        if (pid == 0) {
            if (iob_channel_connect(p.h, id, IOB_CHANNEL_RECV) != 0)
                _exit(2);
            for (;;) {
                struct iob_s *m;
                int r = iob_receive(p.h, id, &m, 50);
                if (r == -MM_ETIMEDOUT) {
                    if (__atomic_load_n(&sh->done_senders, __ATOMIC_SEQ_CST) == MP_SENDERS &&
                        iob_channel_count(p.h, id) == 0)
                        _exit(0);
                    continue;
                }
                uint32_t seq;
                if (r != 0 || iw_msg_check(p.h, m, &seq) != 0 || seq >= MP_SENDERS * MP_EACH)
                    _exit(4);
                __atomic_add_fetch(&sh->seen[seq / MP_EACH][seq % MP_EACH], 1u, __ATOMIC_SEQ_CST);
                iob_free_chain(p.h, m);
            }
        }
    }
    for (int i = 0; i < MP_SENDERS + MP_RECEIVERS; i++)
        CU_ASSERT(tu_exited_ok(tu_wait_child(pids[i], 120000)));
    uint32_t missing = 0, dup = 0;
    for (int s = 0; s < MP_SENDERS; s++)
        for (uint32_t i = 0; i < MP_EACH; i++) {
            missing += sh->seen[s][i] == 0;
            dup += sh->seen[s][i] > 1;
        }
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(dup, 0);
    ASSERT_ALL_FREE(p.h);
    munmap((void *)sh, sizeof(*sh));
    iw_pool_destroy(&p);
}

/* ---- Processes and threads churning one pool ------------------------------------- */

struct churn_arg {
    struct iob_pool_s *h;
    uint64_t seed;
    uint32_t steps;
    int tx, rx;
    int result;
};

static void *churn_thread(void *arg)
{
    struct churn_arg *a = arg;
    struct iw_churn w;
    a->result = -1;
    if (!iw_churn_init(&w, a->h, a->seed, 8192))
        return NULL;
    w.chan_tx = a->tx;
    w.chan_rx = a->rx;
    w.block = (a->seed & 1u) != 0;
    int r = 0;
    for (uint32_t i = 0; i < a->steps && r == 0; i++)
        r = iw_churn_step(&w);
    int rr = iw_churn_release(&w);
    a->result = r != 0 ? r : rr;
    return NULL;
}

/* Two processes, each with two threads (one handle per process, shared by
 * its threads: the same owner), on a small pool so that it runs dry, with a
 * channel between them. */
static void t_churn_processes_and_threads(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 128, 160, 16));
    int ab =
        iob_channel_create(p.h, "ab", 8, IOB_CHANNEL_MULTI_SENDER | IOB_CHANNEL_MULTI_RECEIVER);
    int ba =
        iob_channel_create(p.h, "ba", 8, IOB_CHANNEL_MULTI_SENDER | IOB_CHANNEL_MULTI_RECEIVER);
    CU_ASSERT_FATAL(ab >= 0 && ba >= 0);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        if (pids[k] == 0) {
            struct iob_pool_s *h = iob_pool_attach(p.mem, p.size); /* its own handle */
            int tx = k == 0 ? ab : ba, rx = k == 0 ? ba : ab;
            if (h == NULL || iob_channel_connect(h, tx, IOB_CHANNEL_SEND) != 0 ||
                iob_channel_connect(h, rx, IOB_CHANNEL_RECV) != 0)
                _exit(2);
            struct churn_arg a[2];
            pthread_t th[2];
            for (int t = 0; t < 2; t++) {
                a[t] = (struct churn_arg){h, tu_seed() + (uint64_t)(10 * k + t), 60000, tx, rx, 0};
                pthread_create(&th[t], NULL, churn_thread, &a[t]);
            }
            for (int t = 0; t < 2; t++)
                pthread_join(th[t], NULL);
            for (int t = 0; t < 2; t++)
                if (a[t].result != 0) {
                    fprintf(stderr, "\n  process %d thread %d: %d\n", k, t, a[t].result);
                    _exit(3);
                }
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++)
        CU_ASSERT(tu_exited_ok(tu_wait_child(pids[k], 120000)));
    /* Messages still in the channels are the only things left. */
    CU_ASSERT_EQUAL(iob_channel_connect(p.h, ab, IOB_CHANNEL_RECV), 0);
    CU_ASSERT_EQUAL(iob_channel_connect(p.h, ba, IOB_CHANNEL_RECV), 0);
    for (int c = 0; c < 2; c++) {
        struct iob_s *m;
        while (iob_receive(p.h, c == 0 ? ab : ba, &m, 0) == 0) {
            CU_ASSERT_EQUAL(iw_msg_check(p.h, m, NULL), 0);
            iob_free_chain(p.h, m);
        }
    }
    ASSERT_ALL_FREE(p.h);
    struct iob_stats_s st = iob_pool_stats(p.h);
    CU_ASSERT_EQUAL(st.allocs, st.frees);
    CU_ASSERT(st.lowest_free < 160);
    printf("\n    %llu allocations, lowest free %u, %u waits, %u failures",
           (unsigned long long)st.allocs, st.lowest_free, st.waits, st.failures);
    iw_pool_destroy(&p);
}

/* ---- Exclusive ownership under contention ----------------------------------------- */

/* Processes and threads take and return single buffers on a tiny pool as
 * fast as they can, each stamping what it holds with its own identity and
 * checking the stamp and the recorded owner before it gives the buffer
 * back.  A buffer handed to two holders at once, or recorded with the wrong
 * owner (a helper recording a pop that is long over), shows up here. */
#define STAMP_PROCS   4
#define STAMP_THREADS 2
#define STAMP_HELD    16
#define STAMP_OPS     1000000

struct stamp_arg {
    struct iob_pool_s *h;
    uint64_t id;
    int bad;
};

static void *stamp_thread(void *arg)
{
    struct stamp_arg *a = arg;
    struct iob_s *held[STAMP_HELD];
    int n = 0;
    struct tu_rng r;
    tu_rng_init(&r, tu_seed() ^ a->id);
    uint32_t me = iob_pool_owner(a->h);
    for (uint32_t i = 0; i < STAMP_OPS && a->bad == 0; i++) {
        if (n < STAMP_HELD && (n == 0 || tu_rng_range(&r, 0, 1) != 0)) {
            struct iob_s *b = tu_rng_range(&r, 0, 63) == 0 ? iob_timedalloc(a->h, false, 5)
                                                           : iob_tryalloc(a->h, false);
            if (b == NULL)
                continue;
            memcpy(iob_buffer(a->h, b), &a->id, sizeof(a->id));
            held[n++] = b;
        } else if (n > 0) {
            int k = (int)tu_rng_range(&r, 0, (uint64_t)n - 1u);
            struct iob_s *b = held[k];
            uint64_t stamp;
            memcpy(&stamp, iob_buffer(a->h, b), sizeof(stamp));
            if (stamp != a->id || iob_owner(a->h, b) != me)
                a->bad = 1;
            iob_free(a->h, b);
            held[k] = held[--n];
        }
    }
    while (n > 0)
        iob_free(a->h, held[--n]);
    return NULL;
}

static void t_exclusive_under_contention(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 64, 24, 0));
    pid_t pids[STAMP_PROCS];
    for (int k = 0; k < STAMP_PROCS; k++) {
        pids[k] = fork();
        CU_ASSERT_FATAL(pids[k] >= 0);
        if (pids[k] == 0) {
            struct stamp_arg a[STAMP_THREADS];
            pthread_t th[STAMP_THREADS];
            for (int t = 0; t < STAMP_THREADS; t++) {
                a[t] = (struct stamp_arg){p.h, ((uint64_t)getpid() << 8) | (uint64_t)t, 0};
                pthread_create(&th[t], NULL, stamp_thread, &a[t]);
            }
            int bad = 0;
            for (int t = 0; t < STAMP_THREADS; t++) {
                pthread_join(th[t], NULL);
                bad |= a[t].bad;
            }
            _exit(bad);
        }
    }
    for (int k = 0; k < STAMP_PROCS; k++)
        CU_ASSERT(tu_exited_ok(tu_wait_child(pids[k], 120000)));
    ASSERT_ALL_FREE(p.h);
    struct iob_stats_s st = iob_pool_stats(p.h);
    CU_ASSERT_EQUAL(st.allocs, st.frees);
    iw_pool_destroy(&p);
}

/* ---- Reclaim while others keep working -------------------------------------------- */

static int progress_at_least(void *arg)
{
    const struct ctl *c = arg;
    return c->progress[1] >= 2000;
}

static void t_reclaim_while_working(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 128, 256, 8));
    struct ctl *c = ctl_map();
    pid_t worker = fork();
    CU_ASSERT_FATAL(worker >= 0);
    if (worker == 0) {
        struct iw_churn w;
        if (!iw_churn_init(&w, p.h, tu_seed() ^ 0x77u, 4096))
            _exit(2);
        int r = 0;
        while (!c->stop && r == 0) {
            r = iw_churn_step(&w);
            c->progress[0]++;
        }
        int rr = iw_churn_release(&w);
        _exit(r == 0 && rr == 0 ? 0 : 3);
    }
    for (int round = 0; round < 20; round++) {
        c->progress[1] = 0;
        pid_t victim = fork();
        CU_ASSERT_FATAL(victim >= 0);
        if (victim == 0) {
            struct iw_churn w;
            iw_churn_init(&w, p.h, tu_seed() + (uint64_t)round, 4096);
            for (;;) {
                (void)iw_churn_step(&w);
                c->progress[1]++;
            }
        }
        CU_ASSERT(tu_wait_until(progress_at_least, c, 10000));
        kill(victim, SIGKILL);
        int st;
        waitpid(victim, &st, 0);
        CU_ASSERT(WIFSIGNALED(st));
        int n = iob_pool_reclaim(p.h, (uint32_t)victim);
        CU_ASSERT(n >= 0);
        CU_ASSERT_EQUAL(iob_pool_owned(p.h, (uint32_t)victim, NULL), 0);
    }
    CU_ASSERT(c->progress[0] > 0);
    c->stop = 1;
    CU_ASSERT(tu_exited_ok(tu_wait_child(worker, 30000)));
    ASSERT_ALL_FREE(p.h);
    munmap(c, 4096);
    iw_pool_destroy(&p);
}

/* Why iob_pool_initialize or iob_pool_attach returned NULL:
 * iob_pool_error(NULL). */
static void t_open_errors(void)
{
    struct iw_pool p;
    CU_ASSERT_FATAL(iw_pool_make(&p, 128, 16, 0));
    CU_ASSERT_EQUAL(iob_pool_error(NULL), 0);
    CU_ASSERT_PTR_NULL(iob_pool_initialize(p.mem + 1, p.size, 128, 16, 0));
    CU_ASSERT_EQUAL(iob_pool_error(NULL), -MM_EINVAL);
    static uint8_t zeros[8192] __attribute__((aligned(64)));
    CU_ASSERT_PTR_NULL(iob_pool_attach(zeros, sizeof zeros));
    CU_ASSERT_EQUAL(iob_pool_error(NULL), -MM_EBADMSG);

    /* every handle of this process's table, then one more */
    static struct iob_pool_s *more[IOB_CONFIG_MAX_POOLS];
    size_t n = 0;
    while (n < IOB_CONFIG_MAX_POOLS && (more[n] = iob_pool_attach(p.mem, p.size)) != NULL)
        n++;
    CU_ASSERT(n > 0 && n < IOB_CONFIG_MAX_POOLS); /* p.h holds one */
    CU_ASSERT_EQUAL(iob_pool_error(NULL), -MM_ENOSPC);
    while (n > 0)
        iob_pool_detach(more[--n]);
    struct iob_pool_s *h = iob_pool_attach(p.mem, p.size);
    CU_ASSERT_PTR_NOT_NULL(h);
    CU_ASSERT_EQUAL(iob_pool_error(NULL), 0);
    iob_pool_detach(h);
    iw_pool_destroy(&p);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(t_open_errors),
        TU_TEST(t_waiter_woken_by_free),
        TU_TEST(t_receiver_woken_by_send),
        TU_TEST(t_exclusive_under_contention),
        TU_TEST(t_channel_mpmc),
        TU_TEST(t_churn_processes_and_threads),
        TU_TEST(t_reclaim_while_working),
        TU_TEST(t_channel_million),
        TU_END,
    };
    return tu_main("iob_shm", tests);
}
