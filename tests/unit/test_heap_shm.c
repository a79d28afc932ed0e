/*
 * test_heap_shm.c - the mm heap in shared memory, between mappings and
 * processes: position independence (one memfd mapped at several addresses,
 * in this process and in a child), several processes hammering one heap,
 * a process killed with SIGKILL at each crash point inside the heap's
 * critical sections while others go on (and no more chunks left allocated
 * than the dead process held), and a heap whose chunk chain was
 * broken before its lock owner died.
 *
 * Children never use CUnit: each checks its own work and exits with 0 or a
 * code saying what failed; the parent asserts the status.  Every wait is
 * bounded (tu_wait_child, tu_read_full).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap_internal.h"
#include "heap_work.h"
#include "mm/mm.h"
#include "test_util.h"

#if MM_CONFIG_SMALL
#define SHM_HEAP    ((size_t)0x10000)
#define HAMMER_HEAP ((size_t)0x10000)
#define HAMMER_LIVE 12
#else
#define SHM_HEAP    ((size_t)1 << 20)
#define HAMMER_HEAP ((size_t)16 << 20)
#define HAMMER_LIVE 256
#endif

#define WAIT_MS 20000 /* bound on any wait for a child */

/* ---- A heap in a memfd ------------------------------------------------------ */

struct shm_heap {
    int fd;
    size_t size;
    uint8_t *a; /* the creator's mapping */
    struct mm_heap_s *h;
};

static void shm_open_heap(struct shm_heap *s, size_t size)
{
    s->size = size;
    s->fd = tu_shm_create(size);
    CU_ASSERT_FATAL(s->fd >= 0);
    s->a = tu_shm_map(s->fd, size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->a);
    s->h = mm_initialize("shm", s->a, size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->h);
}

static void shm_close_heap(struct shm_heap *s)
{
    mm_detach(s->h);
    tu_shm_unmap(s->a, s->size);
    close(s->fd);
}

/* In a child: a mapping of the heap at an address of its own, attached. */
static struct mm_heap_s *child_attach(const struct shm_heap *s, uint8_t **base)
{
    uint8_t *m = tu_shm_map_elsewhere(s->fd, s->size, s->a);
    if (m == NULL || m == s->a)
        return NULL;
    *base = m;
    return mm_attach(m, s->size);
}

/* ---- Child processes with a pipe each way ------------------------------------ */

struct child {
    pid_t pid;
    int to;   /* parent writes */
    int from; /* parent reads */
};

typedef int (*child_fn)(void *arg, int rd, int wr);

static void child_spawn(struct child *c, child_fn fn, void *arg)
{
    int down[2], up[2];
    CU_ASSERT_FATAL(pipe(down) == 0 && pipe(up) == 0);
    fflush(stdout);
    c->pid = fork();
    CU_ASSERT_FATAL(c->pid >= 0);
    if (c->pid == 0) {
        close(down[1]);
        close(up[0]);
        _exit(fn(arg, down[0], up[1]));
    }
    close(down[0]);
    close(up[1]);
    c->to = down[1];
    c->from = up[0];
}

static int child_finish(struct child *c)
{
    int status = tu_wait_child(c->pid, WAIT_MS);
    close(c->to);
    close(c->from);
    return status;
}

static bool send_byte(int fd, char b)
{
    return write(fd, &b, 1) == 1;
}

/* The byte the other side sent, or -1 on timeout or end of file. */
static int recv_byte(int fd, int timeout_ms)
{
    char b;
    return tu_read_full(fd, &b, 1, timeout_ms) == 1 ? (unsigned char)b : -1;
}

/* ---- (a) Position independence ------------------------------------------------- */

#define PI_BLOCKS 40

struct pi_child_arg {
    const struct shm_heap *s;
    const uint8_t *b;
};

/* Allocate and fill blocks through a third mapping; send their offsets. */
static int pi_child(void *p, int rd, int wr)
{
    (void)rd;
    const struct pi_child_arg *arg = p;
    uint8_t *c;
    struct mm_heap_s *h = child_attach(arg->s, &c);
    if (h == NULL || c == arg->b)
        return 10;
    uint64_t off[PI_BLOCKS];
    for (int i = 0; i < PI_BLOCKS; i++) {
        size_t n = 16 + (size_t)i * 24;
        uint8_t *q = mm_malloc(h, n);
        if (q == NULL)
            return 11;
        tu_pattern_fill(q, n, 1000 + (uint64_t)i);
        off[i] = (uint64_t)(q - c);
    }
    if (write(wr, off, sizeof(off)) != (ssize_t)sizeof(off))
        return 12;
    for (int i = 0; i < PI_BLOCKS; i++)
        if (tu_pattern_check(c + off[i], 16 + (size_t)i * 24, 1000 + (uint64_t)i) !=
            16 + (size_t)i * 24)
            return 13;
    int r = mm_checkcorruption(h) == 0 ? 0 : 14;
    mm_detach(h);
    return r;
}

static void test_position_independence(void)
{
    struct shm_heap s;
    shm_open_heap(&s, SHM_HEAP);
    uint8_t *b = tu_shm_map_elsewhere(s.fd, s.size, s.a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FATAL(b != s.a);
    struct mm_heap_s *hb = mm_attach(b, s.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hb);
    struct mm_mallinfo_s mi0 = mm_mallinfo(s.h), mi0b = mm_mallinfo(hb);
    CU_ASSERT_EQUAL(memcmp(&mi0, &mi0b, sizeof(mi0)), 0);
    CU_ASSERT(mi0.fordblks > 0);

    /* Allocate through A, read and check through B. */
    uint8_t *pa[PI_BLOCKS];
    for (int i = 0; i < PI_BLOCKS; i++) {
        size_t n = 8 + (size_t)i * 40;
        pa[i] = mm_malloc(s.h, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pa[i]);
        tu_pattern_fill(pa[i], n, (uint64_t)i);
    }
    for (int i = 0; i < PI_BLOCKS; i++) {
        size_t n = 8 + (size_t)i * 40;
        uint8_t *pb = b + (pa[i] - s.a);
        CU_ASSERT_EQUAL(tu_pattern_check(pb, n, (uint64_t)i), n);
        CU_ASSERT_EQUAL(mm_malloc_size(hb, pb), mm_malloc_size(s.h, pa[i]));
        CU_ASSERT(mm_heapmember(hb, pb));
        /* A's address means nothing through B. */
        CU_ASSERT(!mm_heapmember(hb, pa[i]));
        CU_ASSERT_EQUAL(mm_malloc_size(hb, pa[i]), 0);
    }
    struct mm_mallinfo_s ma = mm_mallinfo(s.h), mb = mm_mallinfo(hb);
    CU_ASSERT_EQUAL(memcmp(&ma, &mb, sizeof(ma)), 0);

    /* Freeing A's address through B is a foreign free and changes nothing. */
    struct mm_heap_stats st0 = mm_heap_stats(hb);
    mm_free(hb, pa[0]);
    CU_ASSERT_EQUAL(mm_heap_stats(s.h).foreign_frees, st0.foreign_frees + 1);
    CU_ASSERT_EQUAL(mm_mallinfo(s.h).aordblks, PI_BLOCKS);

    /* Free every other block through B; realloc one through B and read it
     * through A; memalign through B, free through A. */
    for (int i = 0; i < PI_BLOCKS; i += 2)
        mm_free(hb, b + (pa[i] - s.a));
    /* (Asked through B: a diagnostic gives back what the thread cached
     * through that handle.) */
    CU_ASSERT_EQUAL(mm_mallinfo(hb).aordblks, PI_BLOCKS / 2);
    uint8_t *rb = mm_realloc(hb, b + (pa[1] - s.a), 5000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rb);
    CU_ASSERT(mm_heapmember(hb, rb));
    CU_ASSERT_EQUAL(tu_pattern_check(s.a + (rb - b), 48, 1), 48);
    pa[1] = s.a + (rb - b);
    uint8_t *mb2 = mm_memalign(hb, 256, 300);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mb2);
    uint8_t *ma2 = s.a + (mb2 - b);
    /* Both mappings are page-aligned: aligned in one, aligned in both. */
    CU_ASSERT_EQUAL((uintptr_t)mb2 % 256, 0);
    CU_ASSERT_EQUAL((uintptr_t)ma2 % 256, 0);
    memset(mb2, 0x5c, 300);
    CU_ASSERT_EQUAL(ma2[299], 0x5c);
    mm_free(s.h, ma2);
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(hb), 0);

    /* A child maps the heap at a third address, allocates and writes; the
     * parent reads the blocks through its own mapping at the offsets. */
    struct pi_child_arg arg = {&s, b};
    struct child c;
    child_spawn(&c, pi_child, &arg);
    uint64_t off[PI_BLOCKS];
    CU_ASSERT_EQUAL(tu_read_full(c.from, off, sizeof(off), WAIT_MS), (long)sizeof(off));
    int status = child_finish(&c);
    CU_ASSERT(tu_exited_ok(status));
    if (tu_exited_ok(status)) {
        for (int i = 0; i < PI_BLOCKS; i++) {
            size_t n = 16 + (size_t)i * 24;
            CU_ASSERT_FATAL(off[i] < s.size);
            CU_ASSERT_EQUAL(tu_pattern_check(s.a + off[i], n, 1000 + (uint64_t)i), n);
            CU_ASSERT(mm_malloc_size(s.h, s.a + off[i]) >= n);
            /* Free half through A and half through B. */
            mm_free(i % 2 ? s.h : hb, (i % 2 ? s.a : b) + off[i]);
        }
    }
    for (int i = 1; i < PI_BLOCKS; i += 2)
        mm_free(s.h, pa[i]);
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    struct mm_mallinfo_s end = mm_mallinfo(hb);
    CU_ASSERT_EQUAL(memcmp(&end, &mi0, sizeof(end)), 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(hb), 0);
    mm_detach(hb);
    tu_shm_unmap(b, s.size);
    shm_close_heap(&s);
}

/* ---- (b) Processes hammering one heap ----------------------------------------- */

#define NPROC      4
#define HAMMER_OPS 100000

struct hammer_arg {
    const struct shm_heap *s;
    uint64_t id;
};

static int hammer_run(struct mm_heap_s *h, uint64_t id, long ops)
{
    static struct hw_block blocks[HAMMER_LIVE];
    struct hw_config cfg;
    hw_config_default(&cfg, HAMMER_HEAP / (NPROC + 1), HAMMER_LIVE);
    cfg.phase_ops = 2000;
    struct hw_worker w;
    hw_init(&w, h, &cfg, blocks, id, tu_seed());
    bool ok = true;
    for (long i = 0; i < ops && ok; i++)
        ok = hw_step(&w);
    ok = ok && hw_free_all(&w);
    if (!ok) {
        fprintf(stderr, "worker %llu (pid %d): %s\n", (unsigned long long)id, (int)getpid(), w.err);
        return 1;
    }
    return 0;
}

static int hammer_child(void *p, int rd, int wr)
{
    (void)rd, (void)wr;
    const struct hammer_arg *arg = p;
    uint8_t *m;
    struct mm_heap_s *h = child_attach(arg->s, &m);
    if (h == NULL)
        return 10;
    int r = hammer_run(h, arg->id, HAMMER_OPS);
    if (r == 0 && mm_checkcorruption(h) != 0)
        r = 11;
    mm_detach(h); /* as a process must before it goes */
    return r;
}

static void test_processes_hammer(void)
{
    struct shm_heap s;
    shm_open_heap(&s, HAMMER_HEAP);
    struct mm_mallinfo_s mi0 = mm_mallinfo(s.h);
    struct hammer_arg args[NPROC];
    struct child c[NPROC];
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < NPROC; i++) {
        args[i].s = &s;
        args[i].id = 1 + (uint64_t)i;
        child_spawn(&c[i], hammer_child, &args[i]);
    }
    /* The parent is one more process on the heap, through its own mapping. */
    int mine = hammer_run(s.h, 100, HAMMER_OPS);
    CU_ASSERT_EQUAL(mine, 0);
    for (int i = 0; i < NPROC; i++) {
        int status = child_finish(&c[i]);
        if (!tu_exited_ok(status))
            printf("\n    child %d: status %#x", i, status);
        CU_ASSERT(tu_exited_ok(status));
    }
    printf("\n    %d processes x %d ops in %llu ms ", NPROC + 1, HAMMER_OPS,
           (unsigned long long)(tu_now_ms() - t0));
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    struct mm_mallinfo_s mi = mm_mallinfo(s.h);
    CU_ASSERT_EQUAL(mi.ordblks, 1); /* one free chunk per region */
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.uordblks, 0);
    CU_ASSERT_EQUAL(mi.fordblks, mi0.fordblks);
    CU_ASSERT_EQUAL(mi.mxordblk, mi0.mxordblk);
    struct mm_heap_stats st = mm_heap_stats(s.h);
    CU_ASSERT_EQUAL(st.double_frees, 0);
    CU_ASSERT_EQUAL(st.foreign_frees, 0);
    CU_ASSERT_EQUAL(st.recoveries, 0);
    CU_ASSERT_EQUAL(st.repairs, 0);
    CU_ASSERT(st.mallocs > NPROC * HAMMER_OPS / 4);
    shm_close_heap(&s);
}

/* ---- (c) SIGKILL inside the critical section ------------------------------------ */

#if MM_CONFIG_CRASH_HOOKS

/* What the victim does once armed; each prepares its neighbours first. */
enum crash_op {
    OP_MALLOC_SPLIT,
    OP_MALLOC_WHOLE,
    OP_CALLOC,
    OP_FREE_ALONE,
    OP_FREE_MERGE_NEXT,
    OP_FREE_MERGE_BOTH,
    OP_REALLOC_GROW_NEXT,
    OP_REALLOC_GROW_PREV,
    OP_REALLOC_SHRINK,
    OP_REALLOC_MOVE,
    OP_MEMALIGN,
    OP_COUNT,
};

/* The most chunks the victim can hold when op stops: its own blocks set
 * up before op, plus the block op is making.  A split piece that op was
 * giving back must not stay allocated after the victim's death. */
static const size_t op_victim_chunks[OP_COUNT] = {
    1, /* malloc split: the new block */
    2, /* malloc whole chunk: b, the new block */
    1, /* calloc */
    3, /* free alone: a, b, c */
    2, /* free merge next: a, b */
    2, /* free merge both: b, d */
    2, /* realloc grow next: a, c */
    2, /* realloc grow prev: b, c */
    2, /* realloc shrink: a, b */
    3, /* realloc move: a, b, the new block */
    2, /* memalign: a, the new block */
};

static const char *const op_names[OP_COUNT] = {
    "malloc split",      "malloc whole chunk", "calloc",
    "free alone",        "free merge next",    "free merge both",
    "realloc grow next", "realloc grow prev",  "realloc shrink",
    "realloc move",      "memalign",
};

static volatile sig_atomic_t g_armed;
static int g_target; /* crash point to stop at; 0: the first one reached */
static int g_report_fd;

static void crash_hook(int point)
{
    if (!g_armed || (g_target != 0 && point != g_target))
        return;
    char b = (char)point;
    if (write(g_report_fd, &b, 1) != 1)
        _exit(20);
    for (;;)
        pause(); /* until SIGKILL */
}

struct victim_arg {
    const struct shm_heap *s;
    enum crash_op op;
    int point;
};

/* Set up op's neighbours, arm the hook, run op.  Reports the crash point
 * reached (from the hook) or 'n' when op finished without reaching it. */
static int victim_child(void *p, int rd, int wr)
{
    (void)rd;
    const struct victim_arg *arg = p;
    uint8_t *m;
    struct mm_heap_s *h = child_attach(arg->s, &m);
    if (h == NULL)
        return 10;
    g_report_fd = wr;
    g_target = arg->point;
    mm_set_crash_hook(crash_hook);
    /* Every call through the heap's critical sections: a free that only
     * parks the block in this thread's cache would leave no free
     * neighbour to merge with or grow into. */
    mm_cache_limit(h, 0);
    void *a = NULL, *b = NULL, *c = NULL, *d = NULL, *r = NULL;
    switch (arg->op) {
    case OP_MALLOC_SPLIT:
        g_armed = 1;
        r = mm_malloc(h, 100);
        break;
    case OP_MALLOC_WHOLE:
        a = mm_malloc(h, 200);
        b = mm_malloc(h, 16);
        mm_free(h, a);
        g_armed = 1;
        r = mm_malloc(h, 200);
        break;
    case OP_CALLOC:
        g_armed = 1;
        r = mm_calloc(h, 10, 30);
        break;
    case OP_FREE_ALONE:
        a = mm_malloc(h, 64), b = mm_malloc(h, 64), c = mm_malloc(h, 64);
        g_armed = 1;
        mm_free(h, b);
        r = a;
        break;
    case OP_FREE_MERGE_NEXT:
        a = mm_malloc(h, 64), b = mm_malloc(h, 64);
        g_armed = 1;
        mm_free(h, b);
        r = a;
        break;
    case OP_FREE_MERGE_BOTH:
        a = mm_malloc(h, 64), b = mm_malloc(h, 64), c = mm_malloc(h, 64), d = mm_malloc(h, 64);
        mm_free(h, a);
        mm_free(h, c);
        g_armed = 1;
        mm_free(h, b);
        r = d;
        break;
    case OP_REALLOC_GROW_NEXT:
        a = mm_malloc(h, 64), b = mm_malloc(h, 200), c = mm_malloc(h, 16);
        mm_free(h, b);
        g_armed = 1;
        r = mm_realloc(h, a, 150);
        break;
    case OP_REALLOC_GROW_PREV:
        a = mm_malloc(h, 300), b = mm_malloc(h, 64), c = mm_malloc(h, 16);
        tu_pattern_fill(b, 64, 7);
        mm_free(h, a);
        g_armed = 1;
        r = mm_realloc(h, b, 200);
        break;
    case OP_REALLOC_SHRINK:
        a = mm_malloc(h, 1000), b = mm_malloc(h, 16);
        g_armed = 1;
        r = mm_realloc(h, a, 100);
        break;
    case OP_REALLOC_MOVE:
        a = mm_malloc(h, 64), b = mm_malloc(h, 16);
        g_armed = 1;
        r = mm_realloc(h, a, 3000);
        break;
    case OP_MEMALIGN:
        a = mm_malloc(h, 8);
        g_armed = 1;
        r = mm_memalign(h, 1024, 100);
        break;
    case OP_COUNT:
        break;
    }
    g_armed = 0;
    if (r == NULL)
        return 11; /* the operation itself failed */
    return send_byte(wr, 'n') ? 0 : 12;
}

/* A survivor holds blocks of its own, waits for word from the parent, then
 * checks them and goes on.  The word is 'r' (the victim died holding the
 * lock: one recovery must have happened once the survivor's first call
 * returns) or 'n'. */
struct survivor_arg {
    const struct shm_heap *s;
    uint64_t id;
};

#define SURVIVOR_BLOCKS 8

static int survivor_child(void *p, int rd, int wr)
{
    const struct survivor_arg *arg = p;
    uint8_t *m;
    struct mm_heap_s *h = child_attach(arg->s, &m);
    if (h == NULL)
        return 10;
    static struct hw_block blocks[64];
    struct hw_config cfg;
    hw_config_default(&cfg, 0x4000, 64);
    struct hw_worker w;
    hw_init(&w, h, &cfg, blocks, arg->id, tu_seed());
    for (int i = 0; i < SURVIVOR_BLOCKS; i++)
        if (!hw_alloc_one(&w, 24 + (size_t)i * 40))
            return 11;
    uint32_t rec0 = mm_heap_stats(h).recoveries;
    if (!send_byte(wr, 'R'))
        return 12;
    int word = recv_byte(rd, WAIT_MS);
    if (word != 'r' && word != 'n')
        return 13;
    if (!hw_verify_all(&w))
        return 14;
    void *q = mm_malloc(h, 48);
    if (q == NULL)
        return 15;
    mm_free(h, q);
    if (mm_heap_stats(h).recoveries != rec0 + (word == 'r' ? 1u : 0u))
        return 16;
    for (int i = 0; i < 300; i++)
        if (!hw_step(&w))
            return 17;
    if (!hw_free_all(&w))
        return 18;
    if (mm_checkcorruption(h) != 0)
        return 19;
    mm_detach(h);
    return 0;
}

#define PARENT_BLOCKS 10

/* One round: fresh heap, parent's and survivor's blocks, a victim stopped
 * at point (1..MM_CRASH_POINTS) in op and killed.  Returns whether the
 * point was reached. */
static bool crash_round(enum crash_op op, int point, bool survivor_first)
{
    struct shm_heap s;
    shm_open_heap(&s, SHM_HEAP);
    static struct hw_block blocks[64];
    struct hw_config cfg;
    hw_config_default(&cfg, 0x4000, 64);
    struct hw_worker w;
    hw_init(&w, s.h, &cfg, blocks, 50, tu_seed() + (uint64_t)point);
    for (int i = 0; i < PARENT_BLOCKS; i++)
        CU_ASSERT_FATAL(hw_alloc_one(&w, 16 + (size_t)i * 56));

    struct survivor_arg sarg = {&s, 51};
    struct child surv;
    child_spawn(&surv, survivor_child, &sarg);
    CU_ASSERT_EQUAL_FATAL(recv_byte(surv.from, WAIT_MS), 'R');

    struct mm_heap_stats st0 = mm_heap_stats(s.h);
    struct victim_arg varg = {&s, op, point};
    struct child vic;
    child_spawn(&vic, victim_child, &varg);
    int got = recv_byte(vic.from, WAIT_MS);
    bool reached = got == point;
    if (reached) {
        /* Stopped inside the critical section, lock held: kill it there. */
        CU_ASSERT_EQUAL(kill(vic.pid, SIGKILL), 0);
        int status = child_finish(&vic);
        CU_ASSERT(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    } else {
        if (got != 'n')
            printf("\n    %s, point %d: victim said %d", op_names[op], point, got);
        CU_ASSERT_EQUAL(got, 'n');
        CU_ASSERT(tu_exited_ok(child_finish(&vic)));
    }

    char word = reached ? 'r' : 'n';
    int sstatus = -1;
    if (survivor_first) {
        CU_ASSERT(send_byte(surv.to, word));
        sstatus = child_finish(&surv);
    }
    /* The parent goes on: its blocks are intact, calls work. */
    bool ok = hw_verify_all(&w);
    if (!ok)
        printf("\n    %s, point %d: %s", op_names[op], point, w.err);
    CU_ASSERT(ok);
    void *q = mm_malloc(s.h, 100);
    CU_ASSERT_PTR_NOT_NULL(q);
    mm_free(s.h, q);
    struct mm_heap_stats st1 = mm_heap_stats(s.h);
    CU_ASSERT_EQUAL(st1.recoveries, st0.recoveries + (reached ? 1u : 0u));
    int problems = mm_checkcorruption(s.h);
    if (problems != 0)
        printf("\n    %s, point %d: %d problems after recovery", op_names[op], point, problems);
    CU_ASSERT_EQUAL(problems, 0);
    CU_ASSERT_EQUAL(mm_heap_state(s.h), MM_OK);
    for (int i = 0; i < 300 && ok; i++)
        ok = hw_step(&w);
    ok = ok && hw_free_all(&w);
    if (!ok)
        printf("\n    %s, point %d: %s", op_names[op], point, w.err);
    CU_ASSERT(ok);
    if (!survivor_first) {
        CU_ASSERT(send_byte(surv.to, word));
        sstatus = child_finish(&surv);
    }
    if (!tu_exited_ok(sstatus))
        printf("\n    %s, point %d: survivor status %#x", op_names[op], point, sstatus);
    CU_ASSERT(tu_exited_ok(sstatus));
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    /* What the victim left is a leak, not damage: used and free bytes still
     * add up to the heap.  Everyone else has freed everything, so the
     * chunks still allocated are the victim's own. */
    struct mm_mallinfo_s mi = mm_mallinfo(s.h);
    if (mi.aordblks > op_victim_chunks[op])
        printf("\n    %s, point %d: %zu chunks left allocated, the victim held at most %zu",
               op_names[op], point, mi.aordblks, op_victim_chunks[op]);
    CU_ASSERT(mi.aordblks <= op_victim_chunks[op]);
    struct mm_heap_s *h2 = mm_attach(s.a, s.size);
    CU_ASSERT_PTR_NOT_NULL(h2);
    mm_detach(h2);
    CU_ASSERT(mi.uordblks + mi.fordblks > 0);
    shm_close_heap(&s);
    return reached;
}

static void test_sigkill_in_critical_section(void)
{
    bool point_reached[MM_CRASH_POINTS + 1] = {false};
    int rounds = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        printf("\n    %-18s:", op_names[op]);
        for (int point = 1; point <= MM_CRASH_POINTS; point++) {
            bool r = crash_round((enum crash_op)op, point, rounds % 2 == 0);
            rounds++;
            if (r) {
                point_reached[point] = true;
                printf(" %d", point);
            }
        }
    }
    printf("\n   ");
    for (int point = 1; point <= MM_CRASH_POINTS; point++) {
        if (!point_reached[point])
            printf(" crash point %d reached by no operation;", point);
        CU_ASSERT(point_reached[point]);
    }
}

/* ---- (d) A broken chain found by the recovery ----------------------------------- */

static bool count_block(void *arg, const struct mm_block_info *b)
{
    (void)b;
    (*(size_t *)arg)++;
    return true;
}

static int broken_child(void *p, int rd, int wr)
{
    (void)rd, (void)wr;
    const struct shm_heap *s = p;
    uint8_t *m;
    struct mm_heap_s *h = child_attach(s, &m);
    if (h == NULL)
        return 0; /* refusing to attach a broken heap is fine too */
    if (mm_malloc(h, 16) != NULL)
        return 10;
    if (mm_last_error(h) != MM_ERR_BROKEN || mm_heap_state(h) != MM_ERR_BROKEN)
        return 11;
    if (mm_checkcorruption(h) <= 0)
        return 12;
    return 0;
}

/* Each way of breaking b's size field. */
enum scribble_kind { SCRIBBLE_ZERO, SCRIBBLE_HUGE, SCRIBBLE_INTO_NEXT, SCRIBBLE_COUNT };

static void broken_round(enum scribble_kind kind)
{
    struct shm_heap s;
    shm_open_heap(&s, SHM_HEAP);
    uint8_t *a = mm_malloc(s.h, 64), *b = mm_malloc(s.h, 64), *c = mm_malloc(s.h, 64);
    CU_ASSERT_FATAL(a != NULL && b != NULL && c != NULL);
    memset(c, 0, 64);
    struct mm__chunk *cb = (struct mm__chunk *)(void *)(b - MM__USER_OFFSET);
    switch (kind) {
    case SCRIBBLE_ZERO:
        cb->size = MM__ALLOC_BIT;
        break;
    case SCRIBBLE_HUGE:
        cb->size = (mmsize_t)(MM__SIZE_MASK | MM__ALLOC_BIT);
        break;
    case SCRIBBLE_INTO_NEXT:
        cb->size = (mmsize_t)(cb->size + 4 * MM_ALIGN);
        break;
    case SCRIBBLE_COUNT:
        break;
    }
    struct mm_heap_stats st0 = mm_heap_stats(s.h);

    /* A victim takes the lock and dies at the first crash point. */
    struct victim_arg varg = {&s, OP_MALLOC_SPLIT, 0};
    struct child vic;
    child_spawn(&vic, victim_child, &varg);
    int got = recv_byte(vic.from, WAIT_MS);
    CU_ASSERT(got >= 1 && got <= MM_CRASH_POINTS);
    kill(vic.pid, SIGKILL);
    int status = child_finish(&vic);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));

    /* The next locker finds the chain broken: everything refuses, nothing
     * crashes. */
    CU_ASSERT_PTR_NULL(mm_malloc(s.h, 16));
    CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BROKEN);
    CU_ASSERT_EQUAL(mm_heap_state(s.h), MM_ERR_BROKEN);
    CU_ASSERT_EQUAL(mm_heap_stats(s.h).recoveries, st0.recoveries + 1);
    CU_ASSERT(mm_checkcorruption(s.h) > 0);
    CU_ASSERT_PTR_NULL(mm_calloc(s.h, 2, 8));
    CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BROKEN);
    CU_ASSERT_PTR_NULL(mm_zalloc(s.h, 8));
    CU_ASSERT_PTR_NULL(mm_memalign(s.h, 64, 8));
    CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BROKEN);
    CU_ASSERT_PTR_NULL(mm_realloc(s.h, a, 200));
    CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BROKEN);
    CU_ASSERT_PTR_NULL(mm_realloc(s.h, NULL, 8));
    mm_free(s.h, a);
    mm_free(s.h, c);
    (void)mm_malloc_size(s.h, a);
    struct mm_mallinfo_s mi = mm_mallinfo(s.h);
    struct mm_mallinfo_s zero;
    memset(&zero, 0, sizeof(zero));
    CU_ASSERT_EQUAL(memcmp(&mi, &zero, sizeof(mi)), 0);
    mm_addregion(s.h, s.a + s.size / 2, 1024);
    size_t dumped = 0;
    (void)mm_memdump(s.h, NULL, count_block, &dumped);
    CU_ASSERT_PTR_NULL(mm_malloc(s.h, 16));
    CU_ASSERT_EQUAL(mm_heap_state(s.h), MM_ERR_BROKEN);
    CU_ASSERT(mm_checkcorruption(s.h) > 0);

    /* So does another process. */
    struct child other;
    child_spawn(&other, broken_child, &s);
    CU_ASSERT(tu_exited_ok(child_finish(&other)));
    shm_close_heap(&s);
}

static void test_broken_chain(void)
{
    for (int k = 0; k < SCRIBBLE_COUNT; k++)
        broken_round((enum scribble_kind)k);
}

/* ---- (e) A holder that does not die: the wait is bounded if asked ------------- */

/* A victim stopped inside the lock and alive: with mm_set_lock_wait, a
 * call gives up with MM_ERR_BUSY after the bound and leaves the heap as it
 * was; once the holder dies, the next locker repairs as always. */
static void test_lock_wait_bounds_a_stuck_holder(void)
{
    struct shm_heap s;
    shm_open_heap(&s, SHM_HEAP);
    mm_cache_limit(s.h, 0); /* every call through the lock */
    struct mm_heap_stats st0 = mm_heap_stats(s.h);
    struct victim_arg varg = {&s, OP_MALLOC_SPLIT, 0};
    struct child vic;
    child_spawn(&vic, victim_child, &varg);
    int got = recv_byte(vic.from, WAIT_MS);
    CU_ASSERT_FATAL(got > 0 && got <= MM_CRASH_POINTS); /* holding the lock */

    mm_set_lock_wait(300);
    uint64_t t0 = tu_now_ms();
    void *p = mm_malloc(s.h, 100);
    uint64_t waited = tu_now_ms() - t0;
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BUSY);
    CU_ASSERT(waited >= 300 && waited < 600);   /* one wait, not one per retry */
    CU_ASSERT_EQUAL(mm_mallinfo(s.h).arena, 0); /* no figures without the lock */
    CU_ASSERT_EQUAL(mm_heap_state(s.h), MM_OK); /* busy is not broken */
    /* A reclaim says it could not (builds without a cache have nothing to
     * reclaim and take no lock for it: 0). */
    size_t rr = mm_reclaim_owner(s.h, 4321);
    CU_ASSERT(rr == (size_t)-1 || rr == 0);
    if (rr != 0)
        CU_ASSERT_EQUAL(mm_last_error(s.h), MM_ERR_BUSY);
    CU_ASSERT_STRING_EQUAL(mm_strerror(MM_ERR_BUSY), "heap lock held too long by another process");
    mm_set_lock_wait(0);

    CU_ASSERT_EQUAL(kill(vic.pid, SIGKILL), 0);
    int status = child_finish(&vic);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    p = mm_malloc(s.h, 100);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_free(s.h, p);
    CU_ASSERT_EQUAL(mm_heap_stats(s.h).recoveries, st0.recoveries + 1u);
    CU_ASSERT_EQUAL(mm_checkcorruption(s.h), 0);
    shm_close_heap(&s);
}

#else /* !MM_CONFIG_CRASH_HOOKS */

static void test_lock_wait_bounds_a_stuck_holder(void)
{
    CU_FAIL("built without MM_CONFIG_CRASH_HOOKS");
}

static void test_sigkill_in_critical_section(void)
{
    CU_FAIL("built without MM_CONFIG_CRASH_HOOKS");
}

static void test_broken_chain(void)
{
    CU_FAIL("built without MM_CONFIG_CRASH_HOOKS");
}

#endif

/* Why mm_initialize or mm_attach returned NULL: mm_last_error(NULL). */
static void test_open_errors(void)
{
    struct shm_heap s;
    shm_open_heap(&s, SHM_HEAP);
    CU_ASSERT_EQUAL(mm_last_error(NULL), MM_OK);
    CU_ASSERT_PTR_NULL(mm_initialize("x", s.a + 1, 4096));
    CU_ASSERT_EQUAL(mm_last_error(NULL), MM_ERR_INVAL);
    static uint8_t zeros[8192] __attribute__((aligned(64)));
    CU_ASSERT_PTR_NULL(mm_attach(zeros, sizeof zeros));
    CU_ASSERT_EQUAL(mm_last_error(NULL), MM_ERR_NOTHEAP);

    /* every handle of this process's table, then one more */
    static struct mm_heap_s *more[MM_CONFIG_MAX_HEAPS];
    size_t n = 0;
    while (n < MM_CONFIG_MAX_HEAPS && (more[n] = mm_attach(s.a, s.size)) != NULL)
        n++;
    CU_ASSERT(n > 0 && n < MM_CONFIG_MAX_HEAPS); /* s.h holds one */
    CU_ASSERT_EQUAL(mm_last_error(NULL), MM_ERR_HANDLES);
    while (n > 0)
        mm_detach(more[--n]);
    struct mm_heap_s *h = mm_attach(s.a, s.size);
    CU_ASSERT_PTR_NOT_NULL(h);
    CU_ASSERT_EQUAL(mm_last_error(NULL), MM_OK);
    mm_detach(h);
    shm_close_heap(&s);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_open_errors),
        TU_TEST(test_position_independence),
        TU_TEST(test_processes_hammer),
        TU_TEST(test_sigkill_in_critical_section),
        TU_TEST(test_broken_chain),
        TU_TEST(test_lock_wait_bounds_a_stuck_holder),
        TU_END,
    };
    return tu_main("heap_shm", tests);
}
