/*
 * test_iob.c - unit tests of the IOB pool (mm/iob.h) in one process: every
 * function, NuttX's edge cases, misuse, and memory scribbled over on
 * purpose.
 *
 * The main idea: every chain the tests build has a plain byte array beside
 * it, and after each operation the chain must hold exactly those bytes
 * (iw_chain_is: packet length, the buffers' lengths and a copyout), and the
 * pool must balance (iob_pool_check).  A random sequence of chain
 * operations against that model closes the file.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef TU_TARGET /* microcontroller builds: tests/target */
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "iob_internal.h"
#include "iob_work.h"
#include "test_util.h"

#define BUFSIZE  64u
#define COUNT    32u
#define THROTTLE 4u

/* What a wait that runs out returns: -MM_ETIMEDOUT, or -MM_EAGAIN where the
 * port cannot sleep (mm_port_wait; the microcontroller ports). */
#ifdef TU_TARGET
#define TIMED_OUT (-MM_EAGAIN)
#else
#define TIMED_OUT (-MM_ETIMEDOUT)
#endif

static struct iw_pool g_pool;
static struct iob_pool_s *H;
static char g_msg[256];

static void pool_up(uint32_t bufsize, uint32_t count, uint32_t throttle)
{
    CU_ASSERT_FATAL(iw_pool_make(&g_pool, bufsize, count, throttle));
    H = g_pool.h;
}

static void pool_down(void)
{
    iw_pool_destroy(&g_pool);
    H = NULL;
}

#define ASSERT_BALANCED()                                                                          \
    do {                                                                                           \
        bool ok_ = iw_census_ok(H, NULL, g_msg);                                                   \
        if (!ok_)                                                                                  \
            fprintf(stderr, "\n  %s:%d census: %s\n", __FILE__, __LINE__, g_msg);                  \
        CU_ASSERT(ok_);                                                                            \
    } while (0)

#define ASSERT_ALL_FREE()                                                                          \
    do {                                                                                           \
        bool ok_ = iw_all_free(H, g_msg);                                                          \
        if (!ok_)                                                                                  \
            fprintf(stderr, "\n  %s:%d census: %s\n", __FILE__, __LINE__, g_msg);                  \
        CU_ASSERT(ok_);                                                                            \
    } while (0)

/* Test data: what the longest chain of a test holds (COUNT buffers), and
 * more on the host; AVR (TU_RAM_TINY) has 16 KiB of RAM in all. */
#ifdef TU_RAM_TINY
#define DATA_SIZE 2176u
#else
#define DATA_SIZE 8192u
#endif
static uint8_t g_data[DATA_SIZE];

static void data_init(uint64_t key)
{
    tu_pattern_fill(g_data, sizeof(g_data), key);
}

/* ---- Pools ------------------------------------------------------------------ */

static void t_pool_size(void)
{
    CU_ASSERT_EQUAL(iob_pool_size(0, 4), 0);
    CU_ASSERT_EQUAL(iob_pool_size(64, 0), 0);
    CU_ASSERT_EQUAL(iob_pool_size(64, IOB_MAX_BUFFERS + 1u), 0);
#if SIZE_MAX > IOB_MAX_BUFSIZE
    CU_ASSERT_EQUAL(iob_pool_size((size_t)IOB_MAX_BUFSIZE + 1u, 1), 0);
#else
    /* A 16-bit size_t: pools that would pass SIZE_MAX, by the size of a
     * buffer or by their count, have no size (rather than a wrapped one). */
    CU_ASSERT_EQUAL(iob_pool_size(SIZE_MAX, 1), 0);
    CU_ASSERT_EQUAL(iob_pool_size(SIZE_MAX - 200u, 1), 0);
    CU_ASSERT_EQUAL(iob_pool_size(64, 1000), 0);
    CU_ASSERT_EQUAL(iob_pool_size(1024, 64), 0);
    CU_ASSERT(iob_pool_size(1024, 32) > 32u * 1024u);
#endif
    size_t a = iob_pool_size(64, 10), b = iob_pool_size(65, 10), c = iob_pool_size(64, 11);
    CU_ASSERT(a > 10u * 64u + 10u * sizeof(struct iob__desc));
    CU_ASSERT_EQUAL(b - a, 10u * 64u); /* stride rounds up to 128 */
    CU_ASSERT(c > a);
    CU_ASSERT_EQUAL(a % 64u, 0);
}

static void t_initialize_args(void)
{
    size_t need = iob_pool_size(BUFSIZE, COUNT);
#ifdef TU_RAM_TINY /* avr-libc has no aligned_alloc; tu_mem_alloc aligns to 64 */
    uint8_t *mem = tu_mem_alloc(need + 64);
#else
    uint8_t *mem = aligned_alloc(64, need + 64);
#endif
    CU_ASSERT_FATAL(mem != NULL);
    CU_ASSERT_PTR_NULL(iob_pool_initialize(NULL, need, BUFSIZE, COUNT, 0));
    CU_ASSERT_PTR_NULL(iob_pool_initialize(mem + 8, need, BUFSIZE, COUNT, 0)); /* misaligned */
    CU_ASSERT_PTR_NULL(iob_pool_initialize(mem, need - 1, BUFSIZE, COUNT, 0)); /* too small */
    CU_ASSERT_PTR_NULL(iob_pool_initialize(mem, need, BUFSIZE, COUNT, COUNT)); /* throttle */
    CU_ASSERT_PTR_NULL(iob_pool_initialize(mem, need, 0, COUNT, 0));
    CU_ASSERT_PTR_NULL(iob_pool_initialize(mem, need, BUFSIZE, 0, 0));
    struct iob_pool_s *h = iob_pool_initialize(mem, need, BUFSIZE, COUNT, COUNT - 1u);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(iob_pool_count(h), COUNT);
    CU_ASSERT_EQUAL(iob_pool_bufsize(h), BUFSIZE);
    CU_ASSERT_EQUAL(iob_navail(h, false), (int)COUNT);
    CU_ASSERT_EQUAL(iob_navail(h, true), 1);
    CU_ASSERT_EQUAL(iob_qentry_navail(h), (int)COUNT);
    iob_pool_detach(h);
#ifdef TU_RAM_TINY
    tu_mem_free(mem, need + 64);
#else
    free(mem);
#endif
}

/* Attach: where processes share pools (MM_CONFIG_MULTIPROCESS); a
 * microcontroller has no other process to attach. */
#if MM_CONFIG_MULTIPROCESS
static void t_attach_validates(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob__header *hd = (struct iob__header *)(void *)g_pool.mem;
    size_t need = iob_pool_size(BUFSIZE, COUNT);
    struct iob_pool_s *h2 = iob_pool_attach(g_pool.mem, g_pool.size);
    CU_ASSERT_PTR_NOT_NULL(h2);
    CU_ASSERT_EQUAL(iob_pool_count(h2), COUNT);
    iob_pool_detach(h2);
    CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, need - 1)); /* mapping too small */
    CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem + 64, g_pool.size - 64));
    CU_ASSERT_PTR_NULL(iob_pool_attach(NULL, g_pool.size));

    /* Each recorded field scribbled in turn: refused.  (throttle + 1 would
     * still be a valid pool.) */
    uint32_t *fields[] = {&hd->magic,     &hd->bufsize, &hd->count,     &hd->stride,
                          &hd->nchannels, &hd->chdepth, &hd->lock_size, &hd->throttle};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        uint32_t saved = *fields[i];
        *fields[i] = saved + 1u;
        if (fields[i] != &hd->throttle)
            CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, g_pool.size));
        *fields[i] = saved ^ 0x80000000u;
        CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, g_pool.size));
        *fields[i] = saved;
    }
    uint64_t saved = hd->data_off;
    hd->data_off += 64;
    CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, g_pool.size));
    hd->data_off = saved;
    /* A count that would reach past the mapping. */
    uint32_t c = hd->count;
    hd->count = 1000000u;
    CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, g_pool.size));
    hd->count = c;
    h2 = iob_pool_attach(g_pool.mem, g_pool.size);
    CU_ASSERT_PTR_NOT_NULL(h2);
    iob_pool_detach(h2);

    /* Memory that never held a pool. */
    memset(g_pool.mem, 0xa5, g_pool.size);
    CU_ASSERT_PTR_NULL(iob_pool_attach(g_pool.mem, g_pool.size));
    iob_pool_detach(H);
    g_pool.h = NULL;
    pool_down();
}
#endif

#ifndef TU_TARGET /* one mapping of everything on a microcontroller */
/* The same pool through two mappings at different addresses. */
static void t_position_independence(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    uint8_t *other = tu_shm_map_elsewhere(g_pool.fd, g_pool.size, g_pool.mem);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    CU_ASSERT(other != g_pool.mem);
    struct iob_pool_s *h2 = iob_pool_attach(other, g_pool.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h2);
    data_init(1);
    struct iob_s *a = iw_chain_from(H, g_data, 1000, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    /* The same buffer, seen through the second mapping. */
    struct iob_s *b = (struct iob_s *)(void *)(other + ((uint8_t *)a - g_pool.mem));
    CU_ASSERT(iw_chain_is(h2, b, g_data, 1000));
    CU_ASSERT_EQUAL(iob_owner(h2, b), iob_pool_owner(H));
    /* Freed through the other mapping (same owner). */
    iob_free_chain(h2, b);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)COUNT);
    ASSERT_ALL_FREE();
    iob_pool_detach(h2);
    tu_shm_unmap(other, g_pool.size);
    pool_down();
}
#endif

/* ---- Allocation ------------------------------------------------------------- */

static void t_alloc_exhaust(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob_s *b[COUNT];
    for (uint32_t i = 0; i < COUNT; i++) {
        b[i] = iob_tryalloc(H, false);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b[i]);
        CU_ASSERT_EQUAL(iob_len(H, b[i]), 0);
        CU_ASSERT_EQUAL(iob_pktlen(H, b[i]), 0);
        CU_ASSERT_PTR_NULL(iob_next(H, b[i]));
        CU_ASSERT_EQUAL(iob_owner(H, b[i]), iob_pool_owner(H));
        for (uint32_t j = 0; j < i; j++)
            CU_ASSERT(b[j] != b[i]);
        CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - i - 1u));
    }
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, false));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EAGAIN);
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, true));
    struct iob_stats_s st = iob_pool_stats(H);
    CU_ASSERT_EQUAL(st.lowest_free, 0);
    CU_ASSERT_EQUAL(st.failures, 2);
    CU_ASSERT_EQUAL(st.allocs, COUNT);
    CU_ASSERT_EQUAL(st.frees, 0);
    for (uint32_t i = 0; i < COUNT; i++)
        CU_ASSERT_PTR_NULL(iob_free(H, b[i]));
    st = iob_pool_stats(H);
    CU_ASSERT_EQUAL(st.frees, COUNT);
    CU_ASSERT_EQUAL(st.allocs, COUNT);
    CU_ASSERT_EQUAL(st.nfree, COUNT);
    /* LIFO: the last freed comes back first. */
    CU_ASSERT_PTR_EQUAL(iob_tryalloc(H, false), b[COUNT - 1u]);
    iob_free(H, b[COUNT - 1u]);
    ASSERT_ALL_FREE();
    pool_down();
}

/* Throttled allocations stop when throttle buffers are left; unthrottled
 * ones take those too. */
static void t_throttled_exhaustion(void)
{
    pool_up(BUFSIZE, 8, 3);
    struct iob_s *b[9]; /* 8 buffers, and the NULL of the call that fails */
    uint32_t n = 0;
    CU_ASSERT_EQUAL(iob_navail(H, true), 5);
    while ((b[n] = iob_tryalloc(H, true)) != NULL)
        n++;
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EAGAIN);
    CU_ASSERT_EQUAL(iob_navail(H, true), 0);
    CU_ASSERT_EQUAL(iob_navail(H, false), 3);
    CU_ASSERT_PTR_NULL(iob_timedalloc(H, true, 20));
    CU_ASSERT_EQUAL(iob_pool_error(H), TIMED_OUT);
    while ((b[n] = iob_tryalloc(H, false)) != NULL)
        n++;
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(iob_navail(H, false), 0);
    /* One free back: unthrottled may take it, throttled may not. */
    iob_free(H, b[--n]);
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, true));
    b[n] = iob_tryalloc(H, false);
    CU_ASSERT_PTR_NOT_NULL(b[n]);
    n++;
    /* Four back: throttled gets exactly one. */
    for (int i = 0; i < 4; i++)
        iob_free(H, b[--n]);
    b[n] = iob_tryalloc(H, true);
    CU_ASSERT_PTR_NOT_NULL(b[n]);
    n++;
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, true));
    while (n > 0)
        iob_free(H, b[--n]);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_timedalloc(void)
{
    pool_up(BUFSIZE, 2, 0);
    struct iob_s *a = iob_timedalloc(H, false, 1000), *b = iob_alloc(H, false);
    CU_ASSERT(a != NULL && b != NULL);
    uint64_t t0 = tu_now_ms();
    CU_ASSERT_PTR_NULL(iob_timedalloc(H, false, 50));
    uint64_t dt = tu_now_ms() - t0;
    CU_ASSERT_EQUAL(iob_pool_error(H), TIMED_OUT);
#ifndef TU_TARGET /* no clock on the targets */
    CU_ASSERT(dt >= 49 && dt < 2000);
#else
    (void)dt;
#endif
    CU_ASSERT_EQUAL(iob_pool_stats(H).waits, 1);
    iob_free(H, a);
    iob_free(H, b);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_free_returns_next(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(2);
    struct iob_s *c = iw_chain_from(H, g_data, 3 * BUFSIZE + 10, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 4);
    struct iob_s *n = iob_free(H, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    /* The next buffer is a head now, with the rest of the packet. */
    CU_ASSERT_EQUAL(iob_owner(H, n), iob_pool_owner(H));
    CU_ASSERT(iw_chain_is(H, n, g_data + BUFSIZE, 2 * BUFSIZE + 10));
    ASSERT_BALANCED();
    while (n != NULL)
        n = iob_free(H, n);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_free_misuse(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(3);
    struct iob_s *c = iw_chain_from(H, g_data, 2 * BUFSIZE, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct iob_s *mid = iob_next(H, c);
    CU_ASSERT_PTR_NULL(iob_free(H, mid)); /* not a head */
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EPERM);
    uint8_t junk[64];
    CU_ASSERT_PTR_NULL(iob_free(H, (struct iob_s *)(void *)junk));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EINVAL);
    CU_ASSERT_PTR_NULL(iob_free(H, (struct iob_s *)(void *)((uint8_t *)c + 8)));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EINVAL);
    /* Another owner's chain. */
    uint32_t me = iob_pool_owner(H);
    iob_pool_set_owner(H, me + 12345u);
    CU_ASSERT_PTR_NULL(iob_free(H, c));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EPERM);
    iob_free_chain(H, c);
    iob_pool_set_owner(H, 0);
    CU_ASSERT_EQUAL(iob_pool_owner(H), me);
    iob_free_chain(H, c);
    /* Double free. */
    CU_ASSERT_PTR_NULL(iob_free(H, c));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EPERM);
    iob_free_chain(H, NULL);
    CU_ASSERT(iob_pool_stats(H).misuse >= 6);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_free_chain(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(4);
    struct iob_s *c = iw_chain_from(H, g_data, COUNT * BUFSIZE, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(iob_navail(H, false), 0);
    iob_free_chain(H, c);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)COUNT);
    CU_ASSERT_EQUAL(iob_pool_stats(H).frees, COUNT);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Accessors -------------------------------------------------------------- */

static void t_accessors(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob_s *b = iob_tryalloc(H, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    uint8_t *buf = iob_buffer(H, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL((uintptr_t)buf % IOB_DATA_ALIGN, 0);
    CU_ASSERT(buf >= g_pool.mem && buf + BUFSIZE <= g_pool.mem + g_pool.size);
    CU_ASSERT_PTR_EQUAL(iob_data(H, b), buf);
    CU_ASSERT_EQUAL(iob_reserve(H, b, 10), 0);
    CU_ASSERT_PTR_EQUAL(iob_data(H, b), buf + 10);
    CU_ASSERT_EQUAL(iob_offset(H, b), 10);
    CU_ASSERT_EQUAL(iob_copyin(H, b, (const uint8_t *)"hello", 5, 0, false), 5);
    CU_ASSERT_EQUAL(memcmp(buf + 10, "hello", 5), 0);
    CU_ASSERT_EQUAL(iob_len(H, b), 5);
    CU_ASSERT_EQUAL(iob_pktlen(H, b), 5);
    CU_ASSERT_EQUAL(iob_reserve(H, b, 0), -MM_EINVAL); /* not empty */
    /* Not buffers of the pool. */
    uint8_t junk[128];
    struct iob_s *j = (struct iob_s *)(void *)junk;
    CU_ASSERT_PTR_NULL(iob_data(H, j));
    CU_ASSERT_PTR_NULL(iob_buffer(H, j));
    CU_ASSERT_EQUAL(iob_len(H, j), 0);
    CU_ASSERT_EQUAL(iob_offset(H, j), 0);
    CU_ASSERT_EQUAL(iob_pktlen(H, j), 0);
    CU_ASSERT_PTR_NULL(iob_next(H, j));
    CU_ASSERT_EQUAL(iob_owner(H, j), 0);
    CU_ASSERT_PTR_NULL(iob_data(NULL, b));
    iob_free(H, b);
    CU_ASSERT_EQUAL(iob_owner(H, b), 0); /* free */
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Copy in and out -------------------------------------------------------- */

static void t_copyin_across_boundaries(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(5);
    struct iob_s *c = iob_tryalloc(H, false);
    /* Byte by byte across several buffers. */
    for (uint32_t i = 0; i < 3 * BUFSIZE + 7; i++)
        CU_ASSERT_EQUAL(iob_copyin(H, c, g_data + i, 1, i, false), 1);
    CU_ASSERT(iw_chain_is(H, c, g_data, 3 * BUFSIZE + 7));
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 4);
    /* Overwrite a span that crosses two boundaries and extends the end. */
    uint8_t model[8 * BUFSIZE];
    memcpy(model, g_data, 3 * BUFSIZE + 7);
    memcpy(model + BUFSIZE - 5, g_data + 1000, 3 * BUFSIZE);
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data + 1000, 3 * BUFSIZE, BUFSIZE - 5, false),
                    (int)(3 * BUFSIZE));
    CU_ASSERT(iw_chain_is(H, c, model, 4 * BUFSIZE - 5));
    /* Append at the exact end. */
    memcpy(model + 4 * BUFSIZE - 5, g_data + 2000, 100);
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data + 2000, 100, 4 * BUFSIZE - 5, false), 100);
    CU_ASSERT(iw_chain_is(H, c, model, 4 * BUFSIZE + 95));
    /* Past the end: refused. */
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data, 1, 4 * BUFSIZE + 96, false), -MM_ESPIPE);
    CU_ASSERT_EQUAL(iob_copyin(H, c, NULL, 1, 0, false), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data, 0, 0, false), 0);
    /* copyin into a chain whose head has headroom. */
    struct iob_s *r = iob_tryalloc(H, false);
    iob_reserve(H, r, 20);
    CU_ASSERT_EQUAL(iob_copyin(H, r, g_data, 200, 0, false), 200);
    CU_ASSERT(iw_chain_is(H, r, g_data, 200));
    CU_ASSERT_EQUAL(iob_len(H, r), BUFSIZE - 20);
    iob_free_chain(H, r);
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_trycopyin_runs_out(void)
{
    pool_up(BUFSIZE, 8, 2);
    data_init(6);
    struct iob_s *c = iob_tryalloc(H, false);
    /* Throttled: 5 more buffers at most (8 - 1 - 2). */
    int r = iob_trycopyin(H, c, g_data, 10 * BUFSIZE, 0, true);
    CU_ASSERT_EQUAL(r, -MM_ENOMEM);
    CU_ASSERT_EQUAL(iob_pktlen(H, c), 6 * BUFSIZE); /* what fitted is kept */
    CU_ASSERT(iw_chain_is(H, c, g_data, 6 * BUFSIZE));
    CU_ASSERT_EQUAL(iob_navail(H, false), 2);
    r = iob_trycopyin(H, c, g_data + 6 * BUFSIZE, 4 * BUFSIZE, 6 * BUFSIZE, false);
    CU_ASSERT_EQUAL(r, -MM_ENOMEM);
    CU_ASSERT(iw_chain_is(H, c, g_data, 8 * BUFSIZE));
    ASSERT_BALANCED();
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_copyout_edges(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(7);
    struct iob_s *c = iw_chain_from(H, g_data, 2 * BUFSIZE + 3, false);
    uint8_t out[4 * BUFSIZE];
    for (uint32_t off = 0; off <= 2 * BUFSIZE + 3; off++) {
        uint32_t want = 2 * BUFSIZE + 3 - off;
        memset(out, 0, sizeof(out));
        CU_ASSERT_EQUAL(iob_copyout(H, out, c, sizeof(out), off), (int)want);
        CU_ASSERT_EQUAL(memcmp(out, g_data + off, (size_t)want), 0);
    }
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, 10, 5 * BUFSIZE), 0);
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, 0, 0), 0);
    CU_ASSERT_EQUAL(iob_copyout(H, NULL, c, 1, 0), -MM_EINVAL);
    /* Partly consumed chain: offsets shift. */
    c = iob_trimhead(H, c, 70);
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, 30, 10), 30);
    CU_ASSERT_EQUAL(memcmp(out, g_data + 80, 30), 0);
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Clone and concatenate --------------------------------------------------- */

static void t_clone(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(8);
    struct iob_s *a = iw_chain_from(H, g_data, 5 * BUFSIZE + 1, false);
    a = iob_trimhead(H, a, 30); /* partly consumed source */
    struct iob_s *b = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_clone(H, a, b, false, false), 0);
    CU_ASSERT(iw_chain_is(H, b, g_data + 30, 5 * BUFSIZE + 1 - 30));
    CU_ASSERT(iw_chain_is(H, a, g_data + 30, 5 * BUFSIZE + 1 - 30));
    CU_ASSERT_EQUAL(iob_offset(H, b), 0);
    CU_ASSERT_EQUAL(iob_len(H, b), BUFSIZE);                       /* packed */
    CU_ASSERT_EQUAL(iob_clone(H, a, b, false, false), -MM_EINVAL); /* b not empty */
    CU_ASSERT_EQUAL(iob_clone(H, a, a, false, false), -MM_EINVAL);
    ASSERT_BALANCED();
    iob_free_chain(H, a);
    iob_free_chain(H, b);

    /* Runs out of buffers without blocking. */
    a = iw_chain_from(H, g_data, 20 * BUFSIZE, false);
    b = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_clone(H, a, b, false, false), -MM_ENOMEM);
    CU_ASSERT_EQUAL(iob_navail(H, false), 0);
    uint32_t got = iob_pktlen(H, b);
    CU_ASSERT_EQUAL(got, (COUNT - 20u) * BUFSIZE);
    CU_ASSERT(iw_chain_is(H, b, g_data, (size_t)got));
    iob_free_chain(H, a);
    iob_free_chain(H, b);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_concat(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(9);
    struct iob_s *a = iw_chain_from(H, g_data, 100, false);
    struct iob_s *b = iw_chain_from(H, g_data + 100, 200, false);
    CU_ASSERT_EQUAL(iob_concat(H, a, b), 0);
    CU_ASSERT(iw_chain_is(H, a, g_data, 300));
    CU_ASSERT_EQUAL(iob_owner(H, b), 0); /* no longer a head */
    CU_ASSERT_PTR_NULL(iob_free(H, b));
    CU_ASSERT_EQUAL(iob_concat(H, a, a), -MM_EINVAL);
    ASSERT_BALANCED();
    iob_free_chain(H, a);
    ASSERT_ALL_FREE();
    pool_down();
}

/* NuttX's edge case: concatenating empty chains. */
static void t_concat_empty(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(10);
    struct iob_s *e1 = iob_tryalloc(H, false), *e2 = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_concat(H, e1, e2), 0); /* empty + empty */
    CU_ASSERT_EQUAL(iob_pktlen(H, e1), 0);
    CU_ASSERT_EQUAL(iw_chain_buffers(H, e1), 2);
    uint8_t out[8];
    CU_ASSERT_EQUAL(iob_copyout(H, out, e1, 8, 0), 0);
    struct iob_s *d = iw_chain_from(H, g_data, 150, false);
    CU_ASSERT_EQUAL(iob_concat(H, e1, d), 0); /* empty + data */
    CU_ASSERT(iw_chain_is(H, e1, g_data, 150));
    struct iob_s *e3 = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_concat(H, e1, e3), 0); /* data + empty */
    CU_ASSERT(iw_chain_is(H, e1, g_data, 150));
    CU_ASSERT_EQUAL(iw_chain_buffers(H, e1), 6);
    /* Appending through copyin at the end uses the trailing empty buffer. */
    CU_ASSERT_EQUAL(iob_copyin(H, e1, g_data + 150, 10, 150, false), 10);
    CU_ASSERT(iw_chain_is(H, e1, g_data, 160));
    ASSERT_BALANCED();
    /* pack drops the empty buffers. */
    e1 = iob_pack(H, e1);
    CU_ASSERT(iw_chain_is(H, e1, g_data, 160));
    CU_ASSERT_EQUAL(iw_chain_buffers(H, e1), 3);
    iob_free_chain(H, e1);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Trimming ------------------------------------------------------------------ */

static void t_trimhead(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(11);
    struct iob_s *c = iw_chain_from(H, g_data, 4 * BUFSIZE, false);
    c = iob_trimhead(H, c, 10);
    CU_ASSERT(iw_chain_is(H, c, g_data + 10, 4 * BUFSIZE - 10));
    CU_ASSERT_EQUAL(iob_offset(H, c), 10);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 4u));
    c = iob_trimhead(H, c, BUFSIZE); /* crosses into the second buffer */
    CU_ASSERT(iw_chain_is(H, c, g_data + 10 + BUFSIZE, 3 * BUFSIZE - 10));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 3u));
    CU_ASSERT_PTR_EQUAL(iob_trimhead(H, c, 0), c);
    ASSERT_BALANCED();
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

/* NuttX's edge case: trimming a whole chain away leaves one empty buffer. */
static void t_trimhead_whole_chain(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(12);
    struct iob_s *c = iw_chain_from(H, g_data, 3 * BUFSIZE + 5, false);
    c = iob_trimhead(H, c, 3 * BUFSIZE + 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(iob_pktlen(H, c), 0);
    CU_ASSERT_EQUAL(iob_len(H, c), 0);
    CU_ASSERT_EQUAL(iob_offset(H, c), 0);
    CU_ASSERT_PTR_NULL(iob_next(H, c));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 1u));
    /* More than there is: the same. */
    struct iob_s *d = iw_chain_from(H, g_data, 100, false);
    d = iob_trimhead(H, d, 1000);
    CU_ASSERT_EQUAL(iob_pktlen(H, d), 0);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 2u));
    /* The empty chain is still usable. */
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data, 70, 0, false), 70);
    CU_ASSERT(iw_chain_is(H, c, g_data, 70));
    iob_free_chain(H, c);
    iob_free_chain(H, d);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_trimtail(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(13);
    struct iob_s *c = iw_chain_from(H, g_data, 4 * BUFSIZE, false);
    CU_ASSERT_PTR_EQUAL(iob_trimtail(H, c, 10), c);
    CU_ASSERT(iw_chain_is(H, c, g_data, 4 * BUFSIZE - 10));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 4u));
    CU_ASSERT_PTR_EQUAL(iob_trimtail(H, c, BUFSIZE), c); /* frees the last buffer */
    CU_ASSERT(iw_chain_is(H, c, g_data, 3 * BUFSIZE - 10));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 3u));
    CU_ASSERT_PTR_EQUAL(iob_trimtail(H, c, 2 * BUFSIZE - 10), c); /* exactly to a boundary */
    CU_ASSERT(iw_chain_is(H, c, g_data, BUFSIZE));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 1u));
    CU_ASSERT_PTR_EQUAL(iob_trimtail(H, c, 0), c);
    ASSERT_BALANCED();
    /* The whole chain: freed, NULL. */
    CU_ASSERT_PTR_NULL(iob_trimtail(H, c, BUFSIZE));
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)COUNT);
    struct iob_s *d = iw_chain_from(H, g_data, 300, false);
    CU_ASSERT_PTR_NULL(iob_trimtail(H, d, 5000));
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Pack and contig ------------------------------------------------------------ */

/* A chain of several buffers, each partly consumed: data at odd offsets,
 * buffers partly filled.  Built by concatenating trimmed chains. */
static struct iob_s *partly_consumed(uint8_t *model, size_t *len)
{
    size_t n = 0;
    struct iob_s *head = NULL;
    static const uint32_t sizes[] = {50, 64, 3, 64, 40, 1, 64, 20};
    static const uint32_t trims[] = {7, 30, 1, 63, 0, 0, 10, 19};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        const uint8_t *src = g_data + 100 * i;
        struct iob_s *b = iw_chain_from(H, src, (size_t)sizes[i], false);
        b = iob_trimhead(H, b, trims[i]);
        memcpy(model + n, src + trims[i], (size_t)(sizes[i] - trims[i]));
        n += (size_t)(sizes[i] - trims[i]);
        if (head == NULL)
            head = b;
        else
            CU_ASSERT_EQUAL(iob_concat(H, head, b), 0);
    }
    *len = n;
    return head;
}

static void t_pack_partly_consumed(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(14);
    uint8_t model[1024];
    size_t len;
    struct iob_s *c = partly_consumed(model, &len);
    CU_ASSERT(iw_chain_is(H, c, model, len));
    uint32_t before = iw_chain_buffers(H, c);
    c = iob_pack(H, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(iw_chain_is(H, c, model, len));
    uint32_t after = iw_chain_buffers(H, c);
    CU_ASSERT_EQUAL(after, (len + BUFSIZE - 1u) / BUFSIZE);
    CU_ASSERT(after < before);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - after));
    /* Every buffer starts at 0; all but the last are full. */
    for (struct iob_s *b = c; b != NULL; b = iob_next(H, b)) {
        CU_ASSERT_EQUAL(iob_offset(H, b), 0);
        if (iob_next(H, b) != NULL)
            CU_ASSERT_EQUAL(iob_len(H, b), BUFSIZE);
    }
    ASSERT_BALANCED();
    iob_free_chain(H, c);

    /* A chain with no data at all: freed, NULL. */
    struct iob_s *e = iob_tryalloc(H, false), *e2 = iob_tryalloc(H, false);
    iob_concat(H, e, e2);
    CU_ASSERT_PTR_NULL(iob_pack(H, e));
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_contig_partly_consumed(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(15);
    uint8_t model[1024];
    size_t len;
    struct iob_s *c = partly_consumed(model, &len);
    CU_ASSERT_EQUAL(iob_contig(H, c, 10), 0); /* already there */
    CU_ASSERT_EQUAL(iob_contig(H, c, BUFSIZE), 0);
    CU_ASSERT_EQUAL(iob_offset(H, c), 0);
    CU_ASSERT(iob_len(H, c) >= BUFSIZE);
    CU_ASSERT_EQUAL(memcmp(iob_data(H, c), model, BUFSIZE), 0);
    CU_ASSERT(iw_chain_is(H, c, model, len));
    CU_ASSERT_EQUAL(iob_contig(H, c, BUFSIZE + 1), -MM_EINVAL);
    ASSERT_BALANCED();
    iob_free_chain(H, c);

    /* Not enough data: ENOSPC, chain intact. */
    c = iw_chain_from(H, g_data, 20, false);
    struct iob_s *d = iw_chain_from(H, g_data + 20, 10, false);
    iob_concat(H, c, d);
    CU_ASSERT_EQUAL(iob_contig(H, c, 31), -MM_ENOSPC);
    CU_ASSERT_EQUAL(iob_contig(H, c, 30), 0);
    CU_ASSERT_EQUAL(iob_len(H, c), 30);
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 1); /* the emptied buffer went back */
    CU_ASSERT(iw_chain_is(H, c, g_data, 30));
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Packet length and headroom -------------------------------------------------- */

static void t_update_pktlen(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob_s *c = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_update_pktlen(H, c, 3 * BUFSIZE + 1, false), (int)(3 * BUFSIZE + 1));
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 4);
    CU_ASSERT_EQUAL(iob_len(H, c), BUFSIZE);
    CU_ASSERT_EQUAL(iob_pktlen(H, c), 3 * BUFSIZE + 1);
    /* Fill through the data pointers: zero copy. */
    uint32_t i = 0;
    for (struct iob_s *b = c; b != NULL; b = iob_next(H, b))
        for (uint32_t k = 0; k < iob_len(H, b); k++)
            iob_data(H, b)[k] = (uint8_t)i++;
    uint8_t out[4 * BUFSIZE];
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, sizeof(out), 0), (int)(3 * BUFSIZE + 1));
    for (i = 0; i < 3 * BUFSIZE + 1; i++)
        CU_ASSERT_EQUAL_FATAL(out[i], (uint8_t)i);
    CU_ASSERT_EQUAL(iob_update_pktlen(H, c, 70, false), 70);
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 2);
    CU_ASSERT_EQUAL(iob_navail(H, false), (int)(COUNT - 2u));
    CU_ASSERT_EQUAL(iob_update_pktlen(H, c, 0, false), 0);
    CU_ASSERT_EQUAL(iw_chain_buffers(H, c), 1);
    /* Asking for more than the pool has: what there is. */
    CU_ASSERT_EQUAL(iob_update_pktlen(H, c, 100 * BUFSIZE, false), (int)(COUNT * BUFSIZE));
    CU_ASSERT_EQUAL(iob_navail(H, false), 0);
    ASSERT_BALANCED();
    iob_free_chain(H, c);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Queues --------------------------------------------------------------------- */

static void t_queue(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(16);
    struct iob_queue_s q = IOB_QUEUE_INIT;
    CU_ASSERT_PTR_NULL(iob_remove_queue(H, &q));
    CU_ASSERT_PTR_NULL(iob_peek_queue(H, &q));
    struct iob_s *c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = iw_chain_from(H, g_data + 10 * i, (size_t)(10 + i), false);
        CU_ASSERT_EQUAL(i % 2 ? iob_add_queue(H, c[i], &q) : iob_tryadd_queue(H, c[i], &q), 0);
    }
    CU_ASSERT_EQUAL(iob_qentry_navail(H), (int)(COUNT - 5u));
#if MM_CONFIG_MULTIPROCESS
    uint32_t nq;
    CU_ASSERT_EQUAL(iob_pool_owned(H, iob_pool_owner(H), &nq), 5);
    CU_ASSERT_EQUAL(nq, 5);
#endif
    CU_ASSERT_PTR_EQUAL(iob_peek_queue(H, &q), c[0]);
    for (int i = 0; i < 3; i++) {
        struct iob_s *r = iob_remove_queue(H, &q);
        CU_ASSERT_PTR_EQUAL(r, c[i]);
        CU_ASSERT(iw_chain_is(H, r, g_data + 10 * i, (size_t)(10 + i)));
        iob_free_chain(H, r);
    }
    CU_ASSERT_EQUAL(iob_qentry_navail(H), (int)(COUNT - 2u));
    ASSERT_BALANCED();
    iob_free_queue(H, &q);
    CU_ASSERT_EQUAL(q.qh_head, 0);
    CU_ASSERT_PTR_NULL(iob_remove_queue(H, &q));
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_queue_misuse(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob_queue_s q = IOB_QUEUE_INIT;
    struct iob_s *c = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_add_queue(H, c, NULL), -MM_EINVAL);
    uint8_t junk[64];
    CU_ASSERT_EQUAL(iob_add_queue(H, (struct iob_s *)(void *)junk, &q), -MM_EINVAL);
    iob_pool_set_owner(H, 777);
    CU_ASSERT_EQUAL(iob_add_queue(H, c, &q), -MM_EPERM);
    iob_pool_set_owner(H, 0);
    CU_ASSERT_EQUAL(iob_add_queue(H, c, &q), 0);
    /* A scribbled queue head is refused, not followed. */
    struct iob_queue_s bad = {COUNT + 5u, COUNT + 5u};
    CU_ASSERT_PTR_NULL(iob_remove_queue(H, &bad));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EUCLEAN);
    CU_ASSERT_EQUAL(iob_add_queue(H, c, &bad), -MM_EUCLEAN);
    iob_free_queue(H, &q);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Channels in one process -------------------------------------------------------- */

static void t_channel_admin(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    CU_ASSERT_EQUAL(iob_channel_create(H, "", 4, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_create(H, NULL, 4, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_create(H, "a", 3, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_create(H, "a", 0, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_create(H, "a", IOB_CONFIG_CHANNEL_DEPTH * 2u, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_create(H, "a", 4, 0x10), -MM_EINVAL);
    char longname[IOB_CHANNEL_NAME_MAX + 1];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CU_ASSERT_EQUAL(iob_channel_create(H, longname, 4, 0), -MM_EINVAL);
    longname[IOB_CHANNEL_NAME_MAX - 1] = '\0'; /* 31 bytes: fits */
    int ids[IOB_CONFIG_CHANNELS];
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "ch%" PRIu32, i);
        ids[i] = iob_channel_create(H, i == 0 ? longname : name, 4, 0);
        CU_ASSERT_EQUAL(ids[i], (int)i);
    }
    CU_ASSERT_EQUAL(iob_channel_create(H, "more", 4, 0), -MM_ENOSPC);
    CU_ASSERT_EQUAL(iob_channel_create(H, "ch1", 4, 0), -MM_EEXIST);
    CU_ASSERT_EQUAL(iob_channel_lookup(H, longname), 0);
    CU_ASSERT_EQUAL(iob_channel_lookup(H, "ch3"), 3);
    CU_ASSERT_EQUAL(iob_channel_lookup(H, "ch"), -MM_ENOENT);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, 3), 0);
    CU_ASSERT_EQUAL(iob_channel_lookup(H, "ch3"), -MM_ENOENT);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, 3), -MM_ENOENT);
    CU_ASSERT_EQUAL(iob_channel_create(H, "again", 8, 0), 3);
    /* Single ends: a second owner is refused until the first disconnects. */
    CU_ASSERT_EQUAL(iob_channel_connect(H, 3, IOB_CHANNEL_SEND), 0);
    CU_ASSERT_EQUAL(iob_channel_connect(H, 3, IOB_CHANNEL_SEND), 0); /* same owner */
    iob_pool_set_owner(H, 4242);
    CU_ASSERT_EQUAL(iob_channel_connect(H, 3, IOB_CHANNEL_SEND), -MM_EBUSY);
    CU_ASSERT_EQUAL(iob_channel_connect(H, 3, IOB_CHANNEL_RECV), 0);
#if MM_CONFIG_MULTIPROCESS /* who the ends are: mmsrvd reclaims dead ones */
    uint32_t snd = 1, rcv = 1;
    CU_ASSERT_EQUAL(iob_channel_ends(H, 3, &snd, &rcv), 0);
    CU_ASSERT_EQUAL(rcv, 4242);
    CU_ASSERT(snd != 0 && snd != 4242);
    CU_ASSERT_EQUAL(iob_channel_ends(H, 3, NULL, &rcv), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_ends(H, -1, &snd, &rcv), -MM_EINVAL);
#endif
    CU_ASSERT_EQUAL(iob_channel_destroy(H, 3), -MM_EBUSY);
    CU_ASSERT_EQUAL(iob_channel_disconnect(H, 3, IOB_CHANNEL_RECV), 0);
    iob_pool_set_owner(H, 0);
    CU_ASSERT_EQUAL(iob_channel_disconnect(H, 3, IOB_CHANNEL_SEND), 0);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, 3), 0);
    CU_ASSERT_EQUAL(iob_channel_connect(H, 3, IOB_CHANNEL_SEND), -MM_ENOENT);
#if MM_CONFIG_MULTIPROCESS
    CU_ASSERT_EQUAL(iob_channel_ends(H, 3, &snd, &rcv), -MM_ENOENT);
#endif
    CU_ASSERT_EQUAL(iob_channel_connect(H, -1, IOB_CHANNEL_SEND), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_channel_connect(H, 0, 0), -MM_EINVAL);
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++)
        if (i != 3)
            CU_ASSERT_EQUAL(iob_channel_destroy(H, (int)i), 0);
    pool_down();
}

static void t_channel_send_receive(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(17);
    int id = iob_channel_create(H, "pipe", 4, 0);
    CU_ASSERT_FATAL(id >= 0);
    struct iob_s *c = iw_chain_from(H, g_data, 300, false), *r = NULL;
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), -MM_EPERM); /* not connected */
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), -MM_EPERM);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), -MM_EAGAIN);
    uint64_t t0 = tu_now_ms();
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 30), TIMED_OUT);
#ifndef TU_TARGET /* no clock on the targets */
    CU_ASSERT(tu_now_ms() - t0 >= 29);
#else
    (void)t0;
#endif
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), 0);
    CU_ASSERT_EQUAL(iob_owner(H, c), 0); /* the channel's now */
    CU_ASSERT_EQUAL(iob_channel_count(H, id), 1);
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), -MM_EPERM); /* sent already */
    ASSERT_BALANCED();
    struct iob_census_s cs;
    iob_pool_check(H, &cs);
    CU_ASSERT_EQUAL(cs.queued, 5);
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), 0);
    CU_ASSERT_PTR_EQUAL(r, c);
    CU_ASSERT_EQUAL(iob_owner(H, r), iob_pool_owner(H));
    CU_ASSERT(iw_chain_is(H, r, g_data, 300));
    /* Fill it: the fifth waits, then times out. */
    struct iob_s *q[5];
    for (int i = 0; i < 5; i++)
        q[i] = iw_chain_from(H, g_data + i, (size_t)(i + 1), false);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(iob_send(H, id, q[i], 0), 0);
    CU_ASSERT_EQUAL(iob_send(H, id, q[4], 0), -MM_EAGAIN);
    CU_ASSERT_EQUAL(iob_send(H, id, q[4], 20), TIMED_OUT);
    CU_ASSERT_EQUAL(iob_channel_count(H, id), 4);
    for (int i = 0; i < 4; i++) {
        struct iob_s *x;
        CU_ASSERT_EQUAL(iob_receive(H, id, &x, -1), 0);
        CU_ASSERT_PTR_EQUAL(x, q[i]); /* in order */
        CU_ASSERT(iw_chain_is(H, x, g_data + i, (size_t)(i + 1)));
        iob_free_chain(H, x);
    }
    iob_free_chain(H, q[4]);
    iob_free_chain(H, r);
    /* Destroy frees what waits in it. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(iob_send(H, id, iw_chain_from(H, g_data, 100, false), 0), 0);
    CU_ASSERT_EQUAL(iob_channel_disconnect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, id), 3);
    ASSERT_ALL_FREE();
    pool_down();
}

static void t_channel_misuse(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    int id = iob_channel_create(H, "m", 4, IOB_CHANNEL_MULTI_SENDER | IOB_CHANNEL_MULTI_RECEIVER);
    CU_ASSERT_FATAL(id >= 0);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
    struct iob_s *c = iob_tryalloc(H, false), *r;
    uint8_t junk[64];
    CU_ASSERT_EQUAL(iob_send(H, id, (struct iob_s *)(void *)junk, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_send(H, 99, c, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_receive(H, id, NULL, 0), -MM_EINVAL);
    iob_pool_set_owner(H, 99);
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), -MM_EPERM);
    iob_pool_set_owner(H, 0);
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), 0);
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), 0);
    iob_free_chain(H, r);
    /* Multi ends need no exclusive registration. */
    iob_pool_set_owner(H, 4243);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND), 0);
    iob_pool_set_owner(H, 0);
    /* A handle that connected before a destroy and re-create is refused. */
    CU_ASSERT_EQUAL(iob_channel_disconnect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
#if MM_CONFIG_MULTIPROCESS
    struct iob_pool_s *h2 = iob_pool_attach(g_pool.mem, g_pool.size);
    CU_ASSERT_EQUAL(iob_channel_connect(h2, id, IOB_CHANNEL_SEND), 0);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, id), 0);
    CU_ASSERT_EQUAL(iob_channel_create(H, "m2", 4, 0), id);
    c = iob_tryalloc(h2, false);
    CU_ASSERT_EQUAL(iob_send(h2, id, c, 0), -MM_ENOENT);
    iob_free(h2, c);
    iob_pool_detach(h2);
#else
    CU_ASSERT_EQUAL(iob_channel_destroy(H, id), 0);
#endif
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Reclaim in one process (other owners played by owner ids) ---------------------- */

#if MM_CONFIG_MULTIPROCESS /* microcontrollers: one program, no dead owner to reclaim */
static void t_reclaim_owner(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(18);
    int id = iob_channel_create(H, "r", 8, 0);
    iob_pool_set_owner(H, 1001);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND), 0);
    struct iob_queue_s q = IOB_QUEUE_INIT;
    struct iob_s *a = iw_chain_from(H, g_data, 5 * BUFSIZE, false);
    struct iob_s *b = iw_chain_from(H, g_data, 2 * BUFSIZE, false);
    struct iob_s *s = iw_chain_from(H, g_data, 3 * BUFSIZE, false);
    CU_ASSERT_PTR_NOT_NULL(a); /* left to reclaim */
    CU_ASSERT_EQUAL(iob_add_queue(H, b, &q), 0);
    CU_ASSERT_EQUAL(iob_send(H, id, s, 0), 0);
    iob_pool_set_owner(H, 1002);
    struct iob_s *keep = iw_chain_from(H, g_data, 4 * BUFSIZE, false);
    CU_ASSERT_EQUAL(iob_pool_owned(H, 1001, NULL), 7);
    CU_ASSERT_EQUAL(iob_pool_owned(H, 1002, NULL), 4);
    CU_ASSERT_EQUAL(iob_pool_reclaim(H, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(iob_pool_reclaim(H, 1001), 7);
    CU_ASSERT_EQUAL(iob_pool_owned(H, 1001, NULL), 0);
    CU_ASSERT_EQUAL(iob_qentry_navail(H), (int)COUNT);
    CU_ASSERT(iw_chain_is(H, keep, g_data, 4 * BUFSIZE));
    struct iob_census_s cs;
    CU_ASSERT(iw_census_ok(H, &cs, g_msg));
    CU_ASSERT_EQUAL(cs.owned, 4);
    CU_ASSERT_EQUAL(cs.queued, 3); /* a sent chain stays for its receiver */
    CU_ASSERT_EQUAL(cs.free, COUNT - 7u);
    /* The dead sender's registration ended: another may connect. */
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
    struct iob_s *r;
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), 0);
    CU_ASSERT(iw_chain_is(H, r, g_data, 3 * BUFSIZE));
    iob_free_chain(H, r);
    iob_free_chain(H, keep);
    CU_ASSERT_EQUAL(iob_pool_reclaim(H, 1001), 0);
    struct iob_stats_s st = iob_pool_stats(H);
    CU_ASSERT_EQUAL(st.reclaims, 2);
    CU_ASSERT_EQUAL(st.reclaimed, 7);
    CU_ASSERT_EQUAL(st.frees, st.allocs);
    iob_pool_set_owner(H, 0);
    ASSERT_ALL_FREE();
    pool_down();
}
#endif

/* ---- Walking ---------------------------------------------------------------------- */

struct walk_tally {
    uint32_t chains, buffers, bytes, queued;
    uint32_t owner_seen;
};

static bool walk_count(void *arg, const struct iob_chain_info *ci)
{
    struct walk_tally *t = arg;
    t->chains++;
    t->buffers += ci->buffers;
    t->bytes += ci->bytes;
    if (ci->channel >= 0)
        t->queued++;
    else
        t->owner_seen = ci->owner;
    return ci->pktlen == ci->bytes; /* stop at the first inconsistent one */
}

static void t_walk(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(21);
    int id = iob_channel_create(H, "w", 4, 0);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND), 0);
    struct iob_s *a = iw_chain_from(H, g_data, 3 * BUFSIZE + 1, false);
    struct iob_s *b = iw_chain_from(H, g_data, 10, false);
    struct iob_s *c = iw_chain_from(H, g_data, 2 * BUFSIZE, false);
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), 0);
    struct walk_tally t;
    memset(&t, 0, sizeof(t));
    CU_ASSERT_EQUAL(iob_pool_walk(H, walk_count, &t), 3);
    CU_ASSERT_EQUAL(t.chains, 3);
    CU_ASSERT_EQUAL(t.buffers, 4u + 1u + 2u);
    CU_ASSERT_EQUAL(t.bytes, 3 * BUFSIZE + 1 + 10 + 2 * BUFSIZE);
    CU_ASSERT_EQUAL(t.queued, 1);
    CU_ASSERT_EQUAL(t.owner_seen, iob_pool_owner(H));
    iob_free_chain(H, a);
    iob_free_chain(H, b);
    CU_ASSERT_EQUAL(iob_channel_disconnect(H, id, IOB_CHANNEL_SEND), 0);
    CU_ASSERT_EQUAL(iob_channel_destroy(H, id), 1);
    CU_ASSERT_EQUAL(iob_pool_walk(H, walk_count, &t), 0);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Scribbled memory ------------------------------------------------------------- */

static void t_corrupt_free_list(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob__header *hd = (struct iob__header *)(void *)g_pool.mem;
#if MM_CONFIG_MULTIPROCESS /* heads from shared memory are validated, not a microcontroller's */
    uint64_t saved0 = hd->bufs.head[0], saved1 = hd->bufs.head[1];
    /* Top index beyond the pool. */
    hd->bufs.head[0] = iob__h_make(COUNT + 3u, 5, 9);
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, false));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EUCLEAN);
    /* Count beyond the pool. */
    hd->bufs.head[0] = iob__h_make(0, COUNT + 1u, 9);
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, false));
    CU_ASSERT(iob_navail(H, false) < 0);
    /* A last pop naming a slot beyond the pool. */
    hd->bufs.head[0] = saved0;
    hd->bufs.head[1] = iob__l_make(77, COUNT + 1u);
    CU_ASSERT_PTR_NULL(iob_tryalloc(H, false));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EUCLEAN);
    hd->bufs.head[1] = saved1;
#endif
    /* A cycle in the free list: allocation may hand out garbage order, but
     * check and reclaim see it and refuse. */
    struct iob__desc *d = (struct iob__desc *)(void *)(g_pool.mem + hd->desc_off);
    uint32_t saved_next = d[5].s.free_next;
    d[5].s.free_next = 2;
    struct iob_census_s cs;
    CU_ASSERT(iob_pool_check(H, &cs) > 0);
#if MM_CONFIG_MULTIPROCESS
    CU_ASSERT_EQUAL(iob_pool_reclaim(H, 12345), -MM_EUCLEAN);
#endif
    d[5].s.free_next = COUNT + 100u;
    CU_ASSERT(iob_pool_check(H, &cs) > 0);
    d[5].s.free_next = saved_next;
    ASSERT_ALL_FREE(); /* lists thawed as they were */
    pool_down();
}

/* A chain that ends in a link to a free buffer, or out of range, is
 * reported: once that buffer is allocated into another chain, the stale
 * chain's walks, frees and reclaims would reach it.  No holder killed at any
 * point leaves one; the link such a holder leaves, to a buffer it holds
 * itself, is sound. */
static void t_stale_link(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    struct iob__header *hd = (struct iob__header *)(void *)g_pool.mem;
    const struct iob__desc *base = (const struct iob__desc *)(void *)(g_pool.mem + hd->desc_off);
    struct iob_s *a = iob_tryalloc(H, false), *b = iob_tryalloc(H, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    struct iob__desc *da = (struct iob__desc *)(void *)a;
    uint32_t bi = (uint32_t)((const struct iob__desc *)(void *)b - base);
    struct iob_census_s cs;
    da->next = bi; /* b held by the same owner: what iob__link leaves */
    CU_ASSERT_EQUAL(iob_pool_check(H, &cs), 0);
    CU_ASSERT_PTR_NULL(iob_free(H, b));
    CU_ASSERT(iob_pool_check(H, &cs) > 0); /* now b is free */
    da->next = COUNT + 7u;
    CU_ASSERT(iob_pool_check(H, &cs) > 0);
    da->next = IOB__NIL;
    CU_ASSERT_EQUAL(iob_pool_check(H, &cs), 0);
    iob_free_chain(H, a);
    ASSERT_ALL_FREE();
    pool_down();
}

/* Links and lengths are checked where processes share the pool
 * (IOB__VALIDATE); a microcontroller trusts its own memory. */
#if IOB__VALIDATE
static void t_corrupt_chain(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    data_init(19);
    struct iob_s *c = iw_chain_from(H, g_data, 4 * BUFSIZE, false);
    struct iob__desc *d = (struct iob__desc *)(void *)c;
    struct iob__desc *d2 = (struct iob__desc *)(void *)iob_next(H, c);
    uint8_t out[8 * BUFSIZE];
    /* A link out of range. */
    uint32_t saved = d->next;
    d->next = COUNT + 7u;
    CU_ASSERT_PTR_NULL(iob_next(H, c));
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, sizeof(out), 0), -MM_EUCLEAN);
    CU_ASSERT_EQUAL(iob_copyin(H, c, g_data, 300, 0, false), -MM_EUCLEAN);
    d->next = saved;
    /* A cycle: walks end. */
    uint32_t saved2 = d2->next;
    d2->next = saved;                               /* second buffer points to itself */
    int r = iob_copyout(H, out, c, sizeof(out), 0); /* ends, one way or the other */
    CU_ASSERT(r == -MM_EUCLEAN || (r >= 0 && r <= (int)sizeof(out)));
    CU_ASSERT_PTR_NULL(iob_trimtail(H, c, 1));
    CU_ASSERT_EQUAL(iob_pool_error(H), -MM_EUCLEAN);
#if MM_CONFIG_MULTIPROCESS
    CU_ASSERT_EQUAL(iob_concat(H, c, iob_tryalloc(H, false)), -MM_EUCLEAN);
#else
    struct iob_s *stray = iob_tryalloc(H, false);
    CU_ASSERT_EQUAL(iob_concat(H, c, stray), -MM_EUCLEAN);
#endif
    struct iob_census_s cs;
    CU_ASSERT(iob_pool_check(H, &cs) > 0);
    d2->next = saved2;
    /* Lengths and offsets beyond the buffer. */
    uint32_t len = d->len, off = d->offset;
    d->len = BUFSIZE + 1u;
    CU_ASSERT_PTR_NULL(iob_data(H, c));
    CU_ASSERT_EQUAL(iob_len(H, c), 0);
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, sizeof(out), 0), -MM_EUCLEAN);
    CU_ASSERT_EQUAL(iob_contig(H, c, 10), -MM_EUCLEAN);
    d->len = 10;
    d->offset = BUFSIZE - 5u;
    CU_ASSERT_EQUAL(iob_copyout(H, out, c, sizeof(out), 0), -MM_EUCLEAN);
    CU_ASSERT_PTR_NULL(iob_pack(H, c));
    d->len = len;
    d->offset = off;
    CU_ASSERT(iw_chain_is(H, c, g_data, 4 * BUFSIZE));
    iob_free_chain(H, c);
    /* The stray empty buffer concat allocated before failing. */
#if MM_CONFIG_MULTIPROCESS
    CU_ASSERT_EQUAL(iob_pool_reclaim(H, iob_pool_owner(H)), 1);
#else
    iob_free(H, stray);
#endif
    ASSERT_ALL_FREE();
    pool_down();
}
#endif

static void t_corrupt_channel(void)
{
    pool_up(BUFSIZE, COUNT, THROTTLE);
    int id = iob_channel_create(H, "c", 4, 0);
    CU_ASSERT_EQUAL(iob_channel_connect(H, id, IOB_CHANNEL_SEND | IOB_CHANNEL_RECV), 0);
    struct iob__header *hd = (struct iob__header *)(void *)g_pool.mem;
    struct iob__chan *ch = (struct iob__chan *)(void *)(g_pool.mem + hd->chan_off) + id;
    struct iob_s *c = iob_tryalloc(H, false), *r;
    CU_ASSERT_EQUAL(iob_send(H, id, c, 0), 0);
    ch->tail += 100; /* more queued than the ring holds */
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), -MM_EUCLEAN);
    CU_ASSERT_EQUAL(iob_channel_count(H, id), -MM_EUCLEAN);
    ch->tail -= 100;
    uint32_t cell = ch->cell[0];
    ch->cell[0] = COUNT + 9u;
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), -MM_EUCLEAN);
    ch->cell[0] = (cell + 1u) % COUNT; /* another buffer: not queued here */
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), -MM_EUCLEAN);
    ch->cell[0] = cell;
    CU_ASSERT_EQUAL(iob_receive(H, id, &r, 0), 0);
    CU_ASSERT_PTR_EQUAL(r, c);
    iob_free(H, r);
    ASSERT_ALL_FREE();
    pool_down();
}

/* ---- Random operations against a model ------------------------------------------------ */

/* AVR (TU_RAM_TINY): fewer and shorter chains, in a smaller pool. */
#ifdef TU_RAM_TINY
#define MODEL_CHAINS 4
#define MODEL_MAX    (2 * BUFSIZE)
#define MODEL_POOL   24u
#else
#define MODEL_CHAINS 6
#define MODEL_MAX    (12 * BUFSIZE)
#define MODEL_POOL   96u
#endif

struct model_chain {
    struct iob_s *iob;
    uint8_t bytes[4 * MODEL_MAX];
    size_t len;
};

static void t_random_model(void)
{
    pool_up(BUFSIZE, MODEL_POOL, 8);
    static struct model_chain m[MODEL_CHAINS];
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0x10b);
    data_init(20);
    memset(m, 0, sizeof(m));
    uint8_t tmp[4 * MODEL_MAX];
    for (int step = 0; step < 20000; step++) {
        struct model_chain *x = &m[tu_rng_range(&rng, 0, MODEL_CHAINS - 1)];
        if (x->iob == NULL) {
            x->iob = iob_tryalloc(H, false);
            x->len = 0;
            if (x->iob == NULL)
                continue;
        }
        unsigned op = (unsigned)tu_rng_range(&rng, 0, 9);
        if (op == 0 || op == 1) { /* copyin */
            size_t off = (size_t)tu_rng_range(&rng, 0, x->len);
            size_t len = (size_t)tu_rng_range(&rng, 0, MODEL_MAX / 2);
            size_t src = (size_t)tu_rng_range(&rng, 0, sizeof(g_data) - len);
            int r = iob_trycopyin(H, x->iob, g_data + src, (uint32_t)len, (uint32_t)off, false);
            if (r >= 0) {
                CU_ASSERT_EQUAL(r, (int)len);
                memcpy(x->bytes + off, g_data + src, len);
                if (off + len > x->len)
                    x->len = off + len;
            } else {
                CU_ASSERT_EQUAL(r, -MM_ENOMEM);
                /* Partly done: read back what the chain holds now. */
                x->len = (size_t)iob_pktlen(H, x->iob);
                memcpy(tmp, x->bytes, x->len);
                size_t n = x->len > off ? x->len - off : 0;
                memcpy(tmp + off, g_data + src, n < len ? n : len);
                memcpy(x->bytes, tmp, x->len);
            }
        } else if (op == 2) { /* trimhead */
            size_t t = (size_t)tu_rng_range(&rng, 0, x->len + 10);
            x->iob = iob_trimhead(H, x->iob, (uint32_t)t);
            size_t cut = t < x->len ? t : x->len;
            memmove(x->bytes, x->bytes + cut, x->len - cut);
            x->len -= cut;
        } else if (op == 3) { /* trimtail */
            size_t t = (size_t)tu_rng_range(&rng, 0, x->len + 10);
            x->iob = iob_trimtail(H, x->iob, (uint32_t)t);
            x->len = t >= x->len ? 0 : x->len - t;
            if (x->iob == NULL)
                CU_ASSERT_EQUAL(x->len, 0);
        } else if (op == 4) {
            x->iob = iob_pack(H, x->iob);
            if (x->iob == NULL)
                CU_ASSERT_EQUAL(x->len, 0);
        } else if (op == 5) {
            uint32_t want = (uint32_t)tu_rng_range(&rng, 0, BUFSIZE);
            int r = iob_contig(H, x->iob, want);
            CU_ASSERT(r == 0 ? (iob_len(H, x->iob) >= want) : (r == -MM_ENOSPC && want > x->len));
            if (r == 0)
                CU_ASSERT_EQUAL(memcmp(iob_data(H, x->iob), x->bytes, (size_t)want), 0);
        } else if (op == 6) { /* concat another chain onto this one */
            struct model_chain *y = &m[tu_rng_range(&rng, 0, MODEL_CHAINS - 1)];
            if (y != x && y->iob != NULL && x->len + y->len <= 4 * MODEL_MAX - MODEL_MAX) {
                CU_ASSERT_EQUAL(iob_concat(H, x->iob, y->iob), 0);
                memcpy(x->bytes + x->len, y->bytes, y->len);
                x->len += y->len;
                y->iob = NULL;
                y->len = 0;
            }
        } else if (op == 7) { /* clone into an empty slot */
            struct model_chain *y = &m[tu_rng_range(&rng, 0, MODEL_CHAINS - 1)];
            if (y != x && y->iob == NULL) {
                y->iob = iob_tryalloc(H, false);
                if (y->iob != NULL) {
                    int r = iob_clone(H, x->iob, y->iob, false, false);
                    y->len = (size_t)iob_pktlen(H, y->iob);
                    memcpy(y->bytes, x->bytes, y->len);
                    CU_ASSERT(r == 0 ? y->len == x->len : r == -MM_ENOMEM);
                }
            }
        } else if (op == 8) {
            /* update_pktlen assumes a packed chain (as NuttX's): pack, then
             * shrink (growth would expose what the buffers held before). */
            x->iob = iob_pack(H, x->iob);
            if (x->iob == NULL) {
                x->len = 0;
                continue;
            }
            size_t n = (size_t)tu_rng_range(&rng, 0, x->len);
            CU_ASSERT_EQUAL(iob_update_pktlen(H, x->iob, (uint32_t)n, false), (int)n);
            x->len = n;
        } else { /* free */
            iob_free_chain(H, x->iob);
            x->iob = NULL;
            x->len = 0;
        }
        if (x->iob != NULL && !iw_chain_is(H, x->iob, x->bytes, x->len)) {
            fprintf(stderr, "\n  step %d op %u: chain differs from its model (len %zu)\n", step, op,
                    x->len);
            CU_FAIL_FATAL("chain differs from its model");
        }
        if (step % 500 == 0)
            ASSERT_BALANCED();
    }
    for (int i = 0; i < MODEL_CHAINS; i++)
        iob_free_chain(H, m[i].iob);
    ASSERT_ALL_FREE();
    pool_down();
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(t_pool_size),
        TU_TEST(t_initialize_args),
#if MM_CONFIG_MULTIPROCESS
        TU_TEST(t_attach_validates),
#endif
#ifndef TU_TARGET
        TU_TEST(t_position_independence),
#endif
        TU_TEST(t_alloc_exhaust),
        TU_TEST(t_throttled_exhaustion),
        TU_TEST(t_timedalloc),
        TU_TEST(t_free_returns_next),
        TU_TEST(t_free_misuse),
        TU_TEST(t_free_chain),
        TU_TEST(t_accessors),
        TU_TEST(t_copyin_across_boundaries),
        TU_TEST(t_trycopyin_runs_out),
        TU_TEST(t_copyout_edges),
        TU_TEST(t_clone),
        TU_TEST(t_concat),
        TU_TEST(t_concat_empty),
        TU_TEST(t_trimhead),
        TU_TEST(t_trimhead_whole_chain),
        TU_TEST(t_trimtail),
        TU_TEST(t_pack_partly_consumed),
        TU_TEST(t_contig_partly_consumed),
        TU_TEST(t_update_pktlen),
        TU_TEST(t_queue),
        TU_TEST(t_queue_misuse),
        TU_TEST(t_channel_admin),
        TU_TEST(t_channel_send_receive),
        TU_TEST(t_channel_misuse),
#if MM_CONFIG_MULTIPROCESS
        TU_TEST(t_reclaim_owner),
#endif
        TU_TEST(t_walk),
        TU_TEST(t_corrupt_free_list),
        TU_TEST(t_stale_link),
#if IOB__VALIDATE
        TU_TEST(t_corrupt_chain),
#endif
        TU_TEST(t_corrupt_channel),
        TU_TEST(t_random_model),
        TU_END,
    };
    return tu_main("iob", tests);
}
