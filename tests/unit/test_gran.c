/*
 * test_gran.c - unit tests of the granule allocator (mm/gran.h).
 *
 * The main idea: the test keeps its own model of the pool, one byte per
 * granule, and checks every answer of the allocator against it: the address
 * first fit must give (computed naively from the model), gran_info's counts,
 * and the bitmap itself, read back through the public interface (a granule
 * is free exactly when a one-granule gran_reserve of it succeeds).
 */
#include <CUnit/CUnit.h>
#ifndef TU_TARGET /* microcontroller builds: tests/target */
#include <pthread.h>
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/gran.h"
#include "test_util.h"

/* ---- Sizes ---------------------------------------------------------------- */

/* AVR (TU_RAM_TINY) has 16 KiB of RAM for a pool, the test's model of it (3
 * bytes a granule) and the stack: pools of a few KiB there, with counts to
 * match; the host and the larger targets test pools of up to 256 KiB.
 * avr-libc has no aligned_alloc: pools come from tu_mem_alloc, 64-byte
 * aligned, which the offsets below (< 64 but one) still misalign. */
#ifdef TU_RAM_TINY
#define INIT_MEM     1024u /* the static memory of the init tests */
#define ROUNDS_POOL  4096u
#define SPAN_POOL    6656u
#define SPAN_SINGLES 80u /* single granules after the runs */
#define ALIGN_POOL   2048u
#define RESERVE_POOL 4096u
#define EXHAUST_POOL 4096u
#define FRAG_POOL    3072u
#define SMALL_POOL   2048u
#define RANDOM_POOL  4096u
#define RANDOM_LONG  100u /* the longest run a random allocation asks */
#define RANDOM_LIVE  64
#define RANDOM_OPS   4000u
#else
#define INIT_MEM     4096u
#define ROUNDS_POOL  ((size_t)1 << 16)
#define SPAN_POOL    ((size_t)1 << 16)
#define SPAN_SINGLES 200u
#define ALIGN_POOL   ((size_t)1 << 19)
#define RESERVE_POOL ((size_t)1 << 16)
#define EXHAUST_POOL ((size_t)1 << 15)
#define FRAG_POOL    ((size_t)1 << 18)
#define SMALL_POOL   ((size_t)1 << 14)
#define RANDOM_POOL  ((size_t)160000u)
#define RANDOM_LONG  600u
#define RANDOM_LIVE  512
/* Operations per pool: fewer in an emulator (tests/target). */
#ifdef TU_TARGET
#define RANDOM_OPS 4000u
#else
#define RANDOM_OPS 20000u
#endif
#endif

/* ---- A pool and its model ------------------------------------------------ */

struct pool {
    void *buf;    /* what malloc gave */
    uint8_t *mem; /* what gran_initialize got */
    size_t size;  /* its size */
    GRAN_HANDLE h;
    unsigned lg, la; /* log2gran, log2align */
    size_t gsize;    /* bytes per granule */
    size_t agran;    /* alignment in granules */
    uintptr_t g0;    /* address of granule 0 */
    size_t ng;       /* granules */
    uint8_t *used;   /* the model: 1 = allocated */
    size_t *run;     /* scratch: free run starting at each granule */
};

/* Make a pool of size bytes starting offset bytes past a 4 KiB boundary.
 * Finds granule 0 as the first fit of a one-granule allocation. */
static bool pool_make(struct pool *p, size_t size, size_t offset, unsigned lg, unsigned la)
{
    memset(p, 0, sizeof(*p));
#ifdef TU_RAM_TINY
    p->buf = tu_mem_alloc(size + offset);
#else
    p->buf = aligned_alloc(4096, (size + offset + 4095u) & ~(size_t)4095u);
#endif
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->buf);
    p->mem = (uint8_t *)p->buf + offset;
    p->size = size;
    p->lg = lg;
    p->la = la;
    p->gsize = (size_t)1 << lg;
    p->agran = la > lg ? (size_t)1 << (la - lg) : 1u;
    p->h = gran_initialize(p->mem, size, (uint8_t)lg, (uint8_t)la);
    CU_ASSERT_PTR_NOT_NULL(p->h);
    if (p->h == NULL)
        return false;
    struct graninfo_s info;
    gran_info(p->h, &info);
    p->ng = info.ngranules;
    void *first = gran_alloc(p->h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    p->g0 = (uintptr_t)first;
    gran_free(p->h, first, 1);
    p->used = calloc(p->ng + 1u, 1);
    p->run = calloc(p->ng + 1u, sizeof(size_t));
    CU_ASSERT_FATAL(p->used != NULL && p->run != NULL);
    return true;
}

static void pool_destroy(struct pool *p)
{
    if (p->h != NULL)
        gran_release(p->h);
    free(p->used);
    free(p->run);
#ifdef TU_RAM_TINY
    tu_mem_free(p->buf, 0);
#else
    free(p->buf);
#endif
    memset(p, 0, sizeof(*p));
}

static uintptr_t addr_of(const struct pool *p, size_t i)
{
    return p->g0 + i * p->gsize;
}

#ifndef TU_TARGET /* used by tests too large for the targets */
static size_t index_of(const struct pool *p, const void *mem)
{
    return (size_t)(((uintptr_t)mem - p->g0) / p->gsize);
}
#endif

static size_t granules_for(const struct pool *p, size_t size)
{
    return (size + p->gsize - 1u) / p->gsize;
}

/* First fit of n granules in the model, naively; SIZE_MAX if none. */
static size_t model_first_fit(struct pool *p, size_t n)
{
    p->run[p->ng] = 0;
    for (size_t i = p->ng; i-- > 0;)
        p->run[i] = p->used[i] ? 0 : p->run[i + 1] + 1u;
    for (size_t i = 0; i < p->ng; i += p->agran)
        if (p->run[i] >= n)
            return i;
    return SIZE_MAX;
}

static void model_mark(struct pool *p, size_t i, size_t n, uint8_t v)
{
    memset(p->used + i, v, n);
}

static void model_counts(const struct pool *p, size_t *nfree, size_t *mxfree)
{
    size_t f = 0, best = 0, cur = 0;
    for (size_t i = 0; i < p->ng; i++) {
        if (p->used[i]) {
            cur = 0;
        } else {
            f++;
            cur++;
            if (cur > best)
                best = cur;
        }
    }
    *nfree = f;
    *mxfree = best;
}

/* gran_info against the model. */
static bool check_info(const struct pool *p)
{
    struct graninfo_s info;
    size_t nfree, mxfree;
    gran_info(p->h, &info);
    model_counts(p, &nfree, &mxfree);
    CU_ASSERT_EQUAL(info.log2gran, p->lg);
    CU_ASSERT_EQUAL(info.log2align, p->la);
    CU_ASSERT_EQUAL(info.ngranules, p->ng);
    CU_ASSERT_EQUAL(info.nfree, nfree);
    CU_ASSERT_EQUAL(info.mxfree, mxfree);
    return info.nfree == nfree && info.mxfree == mxfree && info.ngranules == p->ng;
}

/* Read the bitmap back through the interface into out (1 = allocated). */
static void read_bitmap(const struct pool *p, uint8_t *out)
{
    for (size_t i = 0; i < p->ng; i++) {
        void *r = gran_reserve(p->h, addr_of(p, i), 1);
        out[i] = r == NULL;
        if (r != NULL) {
            CU_ASSERT_EQUAL((uintptr_t)r, addr_of(p, i));
            gran_free(p->h, r, 1);
        }
    }
}

/* The bitmap equals the model. */
static bool check_bitmap(const struct pool *p)
{
    uint8_t *bm = malloc(p->ng);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bm);
    size_t before = gran_misuse_count(p->h);
    read_bitmap(p, bm);
    bool same = memcmp(bm, p->used, p->ng) == 0;
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(gran_misuse_count(p->h), before);
    free(bm);
    return same;
}

/* Allocate size bytes, check the result is the model's first fit, update the
 * model.  Returns the index or SIZE_MAX. */
static size_t alloc_checked(struct pool *p, size_t size)
{
    size_t n = granules_for(p, size);
    size_t want = model_first_fit(p, n);
    void *mem = gran_alloc(p->h, size);
    if (want == SIZE_MAX) {
        CU_ASSERT_PTR_NULL(mem);
        return SIZE_MAX;
    }
    CU_ASSERT_EQUAL((uintptr_t)mem, addr_of(p, want));
    if ((uintptr_t)mem != addr_of(p, want))
        return SIZE_MAX;
    CU_ASSERT_EQUAL((uintptr_t)mem % ((size_t)1 << (p->la > p->lg ? p->la : p->lg)), 0);
    model_mark(p, want, n, 1);
    return want;
}

static void free_checked(struct pool *p, size_t i, size_t size)
{
    size_t before = gran_misuse_count(p->h);
    gran_free(p->h, (void *)addr_of(p, i), size);
    CU_ASSERT_EQUAL(gran_misuse_count(p->h), before);
    model_mark(p, i, granules_for(p, size), 0);
}

/* ---- Tests ----------------------------------------------------------------- */

static void test_init_rejects_bad_arguments(void)
{
    static _Alignas(64) uint8_t mem[INIT_MEM];

    CU_ASSERT_PTR_NULL(gran_initialize(NULL, sizeof(mem), 4, 4));
    CU_ASSERT_PTR_NULL(gran_initialize(mem, sizeof(mem), 31, 4));
    CU_ASSERT_PTR_NULL(gran_initialize(mem, sizeof(mem), 4, 31));
    CU_ASSERT_PTR_NULL(gran_initialize(mem, sizeof(mem), 255, 255));
    CU_ASSERT_PTR_NULL(gran_initialize(mem, 0, 4, 4));
    CU_ASSERT_PTR_NULL(gran_initialize(mem, 16, 4, 4));
    /* Room for the state but for no granule of 4 KiB. */
    CU_ASSERT_PTR_NULL(gran_initialize(mem, sizeof(mem), 12, 12));
    /* A range that wraps around the address space is refused before any
     * byte of it is touched. */
    CU_ASSERT_PTR_NULL(gran_initialize((void *)(UINTPTR_MAX - 255u), 4096, 4, 4));

    /* The smallest memory that works holds exactly one granule. */
    size_t lo = 1, hi = sizeof(mem);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        GRAN_HANDLE h = gran_initialize(mem, mid, 6, 6);
        if (h != NULL)
            hi = mid;
        else
            lo = mid + 1;
        if (h != NULL)
            gran_release(h);
    }
    GRAN_HANDLE h = gran_initialize(mem, lo, 6, 6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct graninfo_s info;
    gran_info(h, &info);
    CU_ASSERT_EQUAL(info.ngranules, 1);
    CU_ASSERT_EQUAL(info.nfree, 1);
    CU_ASSERT_EQUAL(info.mxfree, 1);
    void *a = gran_alloc(h, 64);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_TRUE((uint8_t *)a + 64 <= mem + lo);
    CU_ASSERT_PTR_NULL(gran_alloc(h, 1));
    gran_release(h);
}

static void test_init_layout(void)
{
    static const struct {
        unsigned lg, la;
        size_t offset, size;
    } cases[] = {
#ifdef TU_RAM_TINY
        {4, 4, 0, 4096}, {4, 4, 3, 4096},   {0, 0, 1, 1000},   {3, 0, 5, 2048},
        {6, 9, 7, 3000}, {10, 10, 0, 4096}, {5, 9, 100, 3000}, {10, 4, 1, 5000},
#else
        {4, 4, 0, 65536},   {4, 4, 3, 65536},     {0, 0, 1, 10000},   {3, 0, 5, 8192},
        {6, 12, 7, 200000}, {12, 12, 0, 1 << 20}, {5, 9, 100, 50000}, {10, 4, 1, 100000},
#endif
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct pool p;
        if (!pool_make(&p, cases[c].size, cases[c].offset, cases[c].lg, cases[c].la))
            continue;
        uintptr_t start = (uintptr_t)p.mem, end = start + p.size;
        size_t first_align = (size_t)1 << (p.la > p.lg ? p.la : p.lg);

        /* The state sits at the start, the granules after it, aligned. */
        CU_ASSERT_TRUE((uintptr_t)p.h >= start && (uintptr_t)p.h < start + 64);
        CU_ASSERT_TRUE(p.g0 > (uintptr_t)p.h);
        CU_ASSERT_EQUAL(p.g0 % first_align, 0);
        CU_ASSERT_TRUE(p.g0 + p.ng * p.gsize <= end);
        /* Every granule that fits is used: what is left over is less than a
         * granule, unless one more granule would have needed one more bitmap
         * word and so pushed granule 0 to the next alignment boundary. */
        CU_ASSERT_TRUE(end - (p.g0 + p.ng * p.gsize) < p.gsize + first_align + 8u);
        /* The state costs a header (a few hundred bytes at most), one bit per
         * granule rounded up to a word or two, and the alignment gap. */
        size_t state = (size_t)(p.g0 - start);
        size_t bitmap = (p.ng + 7u) / 8u;
        CU_ASSERT_TRUE(state <= 256u + bitmap + 2u * sizeof(uintptr_t) + first_align);

        struct graninfo_s info;
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(info.log2gran, cases[c].lg);
        CU_ASSERT_EQUAL(info.log2align, cases[c].la);
        CU_ASSERT_EQUAL(info.nfree, p.ng);
        CU_ASSERT_EQUAL(info.mxfree, p.ng);
        CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);

        /* The whole pool is usable and writable: one allocation of all of it. */
        void *all = gran_alloc(p.h, p.ng * p.gsize);
        CU_ASSERT_EQUAL((uintptr_t)all, p.g0);
        if (all != NULL)
            memset(all, 0xa5, p.ng * p.gsize);
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(info.nfree, 0);
        CU_ASSERT_EQUAL(info.mxfree, 0);
        /* The state survived the write. */
        CU_ASSERT_EQUAL(info.ngranules, p.ng);
        gran_free(p.h, all, p.ng * p.gsize);
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(info.nfree, p.ng);
        CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);
        pool_destroy(&p);
    }
}

static void test_alloc_rounds_to_granules(void)
{
    struct pool p;
    if (!pool_make(&p, ROUNDS_POOL, 0, 5, 5))
        return;
    struct graninfo_s info;

    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 0));
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.nfree, p.ng);

    static const size_t sizes[] = {1, 31, 32, 33, 63, 64, 65, 1000, 1024, 1025};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        gran_info(p.h, &info);
        size_t before = info.nfree;
        size_t i = alloc_checked(&p, sizes[k]);
        CU_ASSERT_NOT_EQUAL(i, SIZE_MAX);
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(before - info.nfree, (sizes[k] + 31u) / 32u);
    }
    check_info(&p);
    check_bitmap(&p);
    /* Too big for the pool, and the largest size_t. */
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, p.ng * p.gsize + 1u));
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, SIZE_MAX));
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, SIZE_MAX - 30u));
    check_info(&p);
    pool_destroy(&p);
}

#ifndef TU_TARGET /* more memory than the targets have */
static void test_alloc_1_to_1000_granules(void)
{
    /* 16-byte granules; 1 + 2 + ... + 1000 = 500500 granules fit in 8 MiB
     * plus the bitmap. */
    struct pool p;
    if (!pool_make(&p, (size_t)9 << 20, 0, 4, 4))
        return;
    CU_ASSERT_TRUE_FATAL(p.ng >= 500500u);

    /* One at a time: each allocated, written, counted, freed. */
    for (size_t n = 1; n <= 1000; n++) {
        size_t size = n * 16u - (n % 16u); /* not always whole granules */
        uint8_t *m = gran_alloc(p.h, size);
        CU_ASSERT_EQUAL_FATAL((uintptr_t)m, p.g0);
        memset(m, (int)n, size);
        struct graninfo_s info;
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(info.nfree, p.ng - n);
        CU_ASSERT_EQUAL(info.mxfree, p.ng - n);
        gran_free(p.h, m, size);
    }
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);

    /* All kept: first fit packs them one after the other. */
    uintptr_t expect = p.g0;
    for (size_t n = 1; n <= 1000; n++) {
        uint8_t *m = gran_alloc(p.h, n * 16u);
        CU_ASSERT_EQUAL_FATAL((uintptr_t)m, expect);
        memset(m, (int)(n & 0xff), n * 16u);
        model_mark(&p, index_of(&p, m), n, 1);
        expect += n * 16u;
    }
    check_info(&p);
    /* Contents intact: no allocation overlapped another. */
    uintptr_t at = p.g0;
    for (size_t n = 1; n <= 1000; n++) {
        const uint8_t *m = (const uint8_t *)at;
        size_t bad = 0;
        for (size_t b = 0; b < n * 16u; b++)
            bad += m[b] != (uint8_t)(n & 0xff);
        CU_ASSERT_EQUAL(bad, 0);
        at += n * 16u;
    }
    /* Free in reverse: the pool is whole again. */
    for (size_t n = 1000; n >= 1; n--) {
        at -= n * 16u;
        free_checked(&p, index_of(&p, (void *)at), n * 16u);
    }
    check_info(&p);
    struct graninfo_s info;
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.nfree, p.ng);
    pool_destroy(&p);
}
#endif

static void test_alloc_spanning_words(void)
{
    struct pool p;
    if (!pool_make(&p, SPAN_POOL, 0, 4, 4))
        return;

    /* Offset by one granule so that every run below straddles words. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 16), 0);
#ifdef TU_RAM_TINY /* 16-bit words */
    static const size_t runs[] = {17, 31, 32, 33, 47, 63, 65};
#else
    static const size_t runs[] = {33, 63, 64, 65, 127, 128, 129, 200, 1000};
#endif
    size_t next = 1;
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        CU_ASSERT_EQUAL(alloc_checked(&p, runs[k] * 16u), next);
        next += runs[k];
    }
    check_info(&p);

    /* A hole across a word boundary (granules 60..70 of a region of single
     * granules): 11 granules fit exactly, 12 must go past the end. */
    size_t base = next;
    for (size_t i = 0; i < SPAN_SINGLES; i++)
        CU_ASSERT_EQUAL(alloc_checked(&p, 16), base + i);
    for (size_t i = 60; i <= 70; i++)
        free_checked(&p, base + i, 16);
    check_info(&p);
    CU_ASSERT_EQUAL(alloc_checked(&p, 12u * 16u), base + SPAN_SINGLES);
    CU_ASSERT_EQUAL(alloc_checked(&p, 11u * 16u), base + 60);
    /* A hole of exactly 64 aligned on a word and one of 64 that is not. */
    for (size_t i = 0; i < 64; i++)
        free_checked(&p, base + 1 + i, 16);
    CU_ASSERT_EQUAL(alloc_checked(&p, 64u * 16u), base + 1);
    check_info(&p);
    check_bitmap(&p);
    pool_destroy(&p);
}

static void test_alignment(void)
{
#ifdef TU_RAM_TINY /* five aligned slots in ALIGN_POOL */
    static const unsigned cases[][2] = {{4, 6}, {4, 8}, {6, 8}, {3, 8}, {5, 5}, {6, 4}, {0, 6}};
#else
    static const unsigned cases[][2] = {{4, 6}, {4, 8}, {6, 12}, {3, 10}, {5, 5}, {6, 4}, {0, 7}};
#endif
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0xa11);

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct pool p;
        if (!pool_make(&p, ALIGN_POOL, 24, cases[c][0], cases[c][1]))
            continue;
        size_t align = (size_t)1 << (p.la > p.lg ? p.la : p.lg);
        CU_ASSERT_EQUAL(p.g0 % align, 0);

        /* One granule each: consecutive aligned slots. */
        for (size_t k = 0; k < 5; k++) {
            size_t i = alloc_checked(&p, 1);
            CU_ASSERT_EQUAL(i, k * p.agran);
        }
        /* Random sizes, some freed, every result aligned and first fit. */
        size_t live[64], lsize[64], nlive = 0;
        for (size_t op = 0; op < 400; op++) {
            if (nlive < 64 && tu_rng_range(&rng, 0, 2) != 0) {
                size_t size = (size_t)tu_rng_range(&rng, 1, 40) * p.gsize -
                              (size_t)tu_rng_range(&rng, 0, p.gsize - 1u);
                size_t i = alloc_checked(&p, size);
                if (i != SIZE_MAX) {
                    CU_ASSERT_EQUAL(addr_of(&p, i) % align, 0);
                    live[nlive] = i;
                    lsize[nlive++] = size;
                }
            } else if (nlive > 0) {
                size_t k = (size_t)tu_rng_range(&rng, 0, nlive - 1u);
                free_checked(&p, live[k], lsize[k]);
                live[k] = live[--nlive];
                lsize[k] = lsize[nlive];
            }
        }
        check_info(&p);
        check_bitmap(&p);
        pool_destroy(&p);
    }
}

static void test_reserve(void)
{
    struct pool p;
    if (!pool_make(&p, RESERVE_POOL, 0, 6, 6))
        return;
    const size_t g = p.gsize;
    struct graninfo_s info;

    /* Inside, on granule boundaries. */
    void *r = gran_reserve(p.h, addr_of(&p, 10), 3 * g);
    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, 10));
    model_mark(&p, 10, 3, 1);
    check_info(&p);

    /* Partial granules round out: bytes 20..20+g+10 of granule 20 touch
     * granules 20 and 21; a single byte at the end of 30 only 30. */
    r = gran_reserve(p.h, addr_of(&p, 20) + 20u, g + 10u);
    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, 20));
    model_mark(&p, 20, 2, 1);
    r = gran_reserve(p.h, addr_of(&p, 30) + g - 1u, 1);
    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, 30));
    model_mark(&p, 30, 1, 1);
    check_info(&p);

    /* Overlapping allocated granules: nothing at all is reserved, not even
     * the free granules of the range. */
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 5), 6 * g));   /* 5..10, 10 taken */
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 12), 2 * g));  /* 12..13 */
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 19) + 1u, g)); /* 19..20 */
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 10), 3 * g));  /* itself again */
    check_info(&p);
    check_bitmap(&p);

    /* Outside the pool: the state, before the memory, past the end, across
     * the end, across the start, and sizes that wrap. */
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, (uintptr_t)p.mem, 8));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, p.g0 - 1u, 1));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, p.g0 - 1u, 2));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, p.ng), 1));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, p.ng - 1u), g + 1u));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, p.ng - 1u), SIZE_MAX));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, 0, 1));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, UINTPTR_MAX, 1));
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 40), 0));
    check_info(&p);

    /* The last granule, exactly, works. */
    r = gran_reserve(p.h, addr_of(&p, p.ng - 1u), g);
    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, p.ng - 1u));
    model_mark(&p, p.ng - 1u, 1, 1);

    /* gran_alloc goes around reserved granules (10..12, 20..21, 30): runs
     * of 10, 7, 8 and 9 land in 0..9, 13..19, 22..29 and after 30. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 10 * g), 0);
    CU_ASSERT_EQUAL(alloc_checked(&p, 7 * g), 13);
    CU_ASSERT_EQUAL(alloc_checked(&p, 8 * g), 22);
    CU_ASSERT_EQUAL(alloc_checked(&p, 9 * g), 31);
    check_info(&p);

    /* Reserved granules can be freed (as the round-out says) and reused. */
    free_checked(&p, 20, 2 * g);
    free_checked(&p, 10, 3 * g);
    CU_ASSERT_EQUAL(alloc_checked(&p, 3 * g), 10);
    check_info(&p);
    check_bitmap(&p);

    /* The whole pool at once, when free. */
    gran_info(p.h, &info);
    CU_ASSERT_NOT_EQUAL(info.nfree, p.ng);
    pool_destroy(&p);
    if (!pool_make(&p, RESERVE_POOL, 0, 6, 6))
        return;
    r = gran_reserve(p.h, p.g0, p.ng * p.gsize);
    CU_ASSERT_EQUAL((uintptr_t)r, p.g0);
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.nfree, 0);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 1));
    pool_destroy(&p);
}

static void test_exhaustion(void)
{
    struct pool p;
    if (!pool_make(&p, EXHAUST_POOL, 8, 5, 5))
        return;
    struct graninfo_s info;

    /* Exactly ngranules one-granule allocations, then none. */
    size_t count = 0;
    while (gran_alloc(p.h, 1) != NULL)
        count++;
    CU_ASSERT_EQUAL(count, p.ng);
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.nfree, 0);
    CU_ASSERT_EQUAL(info.mxfree, 0);
    model_mark(&p, 0, p.ng, 1);

    /* One granule back in the middle: 2 do not fit, 1 lands there. */
    size_t mid = p.ng / 2u;
    free_checked(&p, mid, 1);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 2 * p.gsize));
    CU_ASSERT_EQUAL(alloc_checked(&p, 1), mid);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 1));
    /* The last granule too (the tail of the last bitmap word stays used). */
    free_checked(&p, p.ng - 1u, 1);
    CU_ASSERT_EQUAL(alloc_checked(&p, 1), p.ng - 1u);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 1));
    check_bitmap(&p);

    /* Free everything; a whole-pool allocation fits, one more byte not. */
    free_checked(&p, 0, p.ng * p.gsize);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, p.ng * p.gsize + 1u));
    CU_ASSERT_EQUAL(alloc_checked(&p, p.ng * p.gsize), 0);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 1));
    check_info(&p);
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);
    pool_destroy(&p);
}

static void test_fragmentation(void)
{
    struct pool p;
    if (!pool_make(&p, FRAG_POOL, 0, 4, 4))
        return;

    /* Fill with pairs (hole-to-be, separator): holes of 3 granules, every
     * fourth one of 12; separators of 1. */
    size_t hole[256], hsize[256], nh = 0;
    for (;;) {
        size_t n = nh % 4u == 0 ? 12u : 3u;
        size_t i = alloc_checked(&p, n * 16u);
        if (i == SIZE_MAX)
            break;
        hole[nh] = i;
        hsize[nh] = n;
        if (alloc_checked(&p, 16) == SIZE_MAX) {
            nh++;
            break;
        }
        nh++;
        if (nh == 256)
            break;
    }
    CU_ASSERT_TRUE_FATAL(nh >= 16);
    for (size_t k = 0; k < nh; k++)
        free_checked(&p, hole[k], hsize[k] * 16u);
    check_info(&p);
    struct graninfo_s info;
    gran_info(p.h, &info);
    size_t tail = p.ng - (hole[nh - 1u] + hsize[nh - 1u] + 1u);
    CU_ASSERT_EQUAL(info.mxfree, tail > 12u ? tail : 12u);

    /* Runs of 5 fit only in the 12-granule holes: the first one takes the
     * head of hole 0, the next the rest of it (7 left), then hole 4. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 5 * 16u), hole[0]);
    CU_ASSERT_EQUAL(alloc_checked(&p, 5 * 16u), hole[0] + 5u);
    CU_ASSERT_EQUAL(alloc_checked(&p, 5 * 16u), hole[4]);
    /* A 3-granule run takes the first 3 free: the 2 left in hole 0 are too
     * few, so hole 1. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 3 * 16u), hole[1]);
    /* 2 granules: the tail of hole 0. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 2 * 16u), hole[0] + 10u);
    /* 8 granules: hole 8 (hole 4 has 7 left). */
    CU_ASSERT_EQUAL(alloc_checked(&p, 8 * 16u), hole[8]);
    /* 13 granules fit in no hole: the tail after the last separator, or
     * nothing. */
    size_t big = alloc_checked(&p, 13 * 16u);
    size_t want = tail >= 13u ? hole[nh - 1u] + hsize[nh - 1u] + 1u : SIZE_MAX;
    CU_ASSERT_EQUAL(big, want);
    check_info(&p);
    check_bitmap(&p);
    pool_destroy(&p);
}

static void test_free_partial_range(void)
{
    struct pool p;
    if (!pool_make(&p, SMALL_POOL, 0, 5, 5))
        return;
    CU_ASSERT_EQUAL(alloc_checked(&p, 10 * 32u), 0);
    /* The middle of an allocation may be freed on its own... */
    free_checked(&p, 3, 4 * 32u);
    check_info(&p);
    /* ...and its ends later. */
    free_checked(&p, 0, 3 * 32u);
    free_checked(&p, 7, 3 * 32u);
    check_info(&p);
    check_bitmap(&p);
    pool_destroy(&p);
}

static void test_misuse_refused_and_counted(void)
{
    struct pool p;
    if (!pool_make(&p, SMALL_POOL, 0, 5, 7))
        return;
    const size_t g = p.gsize;
    uint8_t foreign[64];

    size_t a = alloc_checked(&p, 3 * g);
    size_t b = alloc_checked(&p, 2 * g);
    size_t c = alloc_checked(&p, 1 * g);
    CU_ASSERT_FATAL(a != SIZE_MAX && b != SIZE_MAX && c != SIZE_MAX);
    free_checked(&p, b, 2 * g); /* b is now a free hole between a and c */
    check_bitmap(&p);

    struct {
        void *mem;
        size_t size;
    } bad[] = {
        {(void *)addr_of(&p, b), 2 * g},         /* double free */
        {(void *)addr_of(&p, b), 1},             /* part of it */
        {(void *)addr_of(&p, a), 4 * g},         /* past the allocation into free */
        {(void *)addr_of(&p, a), SIZE_MAX},      /* far past the pool */
        {(void *)(addr_of(&p, a) + 1u), g},      /* unaligned */
        {(void *)(addr_of(&p, a) + g / 2u), 1},  /* unaligned, inside */
        {(void *)addr_of(&p, a), 0},             /* size 0 */
        {foreign, sizeof(foreign)},              /* foreign pointer */
        {p.mem, 16},                             /* the state */
        {(void *)(p.g0 - g), g},                 /* just before the pool */
        {(void *)addr_of(&p, p.ng), g},          /* just past it */
        {(void *)addr_of(&p, p.ng - 1u), 2 * g}, /* across the end */
        {(void *)UINTPTR_MAX, 1},                /* nowhere */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        size_t before = gran_misuse_count(p.h);
        gran_free(p.h, bad[k].mem, bad[k].size);
        CU_ASSERT_EQUAL(gran_misuse_count(p.h), before + 1u);
        if (gran_misuse_count(p.h) != before + 1u)
            printf("\nmisuse case %zu not counted\n", k);
    }
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), sizeof(bad) / sizeof(bad[0]));
    /* Nothing changed. */
    check_info(&p);
    check_bitmap(&p);

    /* NULL is not misuse: nothing happens. */
    gran_free(p.h, NULL, g);
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), sizeof(bad) / sizeof(bad[0]));

    /* The real frees still work. */
    free_checked(&p, a, 3 * g);
    free_checked(&p, c, g);
    check_info(&p);
    check_bitmap(&p);
    pool_destroy(&p);
}

static void test_bad_handles_and_release(void)
{
    static _Alignas(64) uint8_t junk[512];
    struct graninfo_s info;
    memset(&info, 0x5a, sizeof(info));

    /* NULL, zeroed memory, misaligned pointers, random bytes. */
    void *handles[] = {NULL, junk, junk + 1, junk + 8};
    memset(junk, 0, sizeof(junk));
    for (int round = 0; round < 2; round++) {
        for (size_t k = 0; k < sizeof(handles) / sizeof(handles[0]); k++) {
            CU_ASSERT_PTR_NULL(gran_alloc(handles[k], 16));
            CU_ASSERT_PTR_NULL(gran_reserve(handles[k], (uintptr_t)junk, 16));
            gran_free(handles[k], junk, 16);
            CU_ASSERT_EQUAL(gran_misuse_count(handles[k]), 0);
            gran_info(handles[k], &info);
            CU_ASSERT_EQUAL(info.ngranules, 0);
            CU_ASSERT_EQUAL(info.nfree, 0);
            CU_ASSERT_EQUAL(info.log2gran, 0);
            gran_release(handles[k]);
        }
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)(i * 37u + 11u);
    }
    gran_info(NULL, NULL);

    /* A copy of a live state at another address is not a handle. */
    struct pool p;
    if (!pool_make(&p, INIT_MEM, 0, 4, 4))
        return;
    static _Alignas(64) uint8_t copy[INIT_MEM];
    memcpy(copy, p.mem, sizeof(copy));
    CU_ASSERT_PTR_NULL(gran_alloc(copy, 16));

    /* After release the handle is dead; the memory can be made again. */
    void *mem = gran_alloc(p.h, 16);
    CU_ASSERT_PTR_NOT_NULL(mem);
    gran_release(p.h);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 16));
    gran_free(p.h, mem, 16);
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.ngranules, 0);
    gran_release(p.h); /* twice: ignored */
    p.h = gran_initialize(p.mem, p.size, 4, 4);
    CU_ASSERT_PTR_NOT_NULL(p.h);
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.ngranules, p.ng);
    CU_ASSERT_EQUAL(info.nfree, p.ng);
    pool_destroy(&p);
}

#ifndef TU_TARGET /* more memory than the targets have */
static void test_large_pool(void)
{
    struct graninfo_s info;

    /* 16-byte granules over 4 MiB: about 250,000 granules. */
    struct pool p;
    if (!pool_make(&p, (size_t)4 << 20, 0, 4, 4))
        return;
    CU_ASSERT_TRUE_FATAL(p.ng > 200000u);
    /* One allocation of 100,000 granules, one of 70,000, then what is left. */
    CU_ASSERT_EQUAL(alloc_checked(&p, 100000u * 16u), 0);
    CU_ASSERT_EQUAL(alloc_checked(&p, 70000u * 16u), 100000u);
    size_t rest = p.ng - 170000u;
    CU_ASSERT_EQUAL(alloc_checked(&p, rest * 16u), 170000u);
    CU_ASSERT_PTR_NULL(gran_alloc(p.h, 1));
    check_info(&p);
    /* Granules past 65,535 are reserved and freed like any other. */
    free_checked(&p, 100000u, 70000u * 16u);
    CU_ASSERT_PTR_NULL(gran_reserve(p.h, addr_of(&p, 65536u), 16)); /* in the first */
    void *r = gran_reserve(p.h, addr_of(&p, 131071u), 3 * 16u);
    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, 131071u));
    model_mark(&p, 131071u, 3, 1);
    CU_ASSERT_EQUAL(alloc_checked(&p, 31071u * 16u), 100000u);
    CU_ASSERT_EQUAL(alloc_checked(&p, 100u * 16u), 131074u);
    check_info(&p);
    gran_info(p.h, &info);
    CU_ASSERT_EQUAL(info.mxfree, 170000u - 131174u);
    pool_destroy(&p);

    /* 1-byte granules: 200,000 of them, and a 70,000-granule allocation at an
     * odd index. */
    if (!pool_make(&p, 230000u, 1, 0, 0))
        return;
    CU_ASSERT_TRUE(p.ng > 200000u);
    CU_ASSERT_EQUAL(alloc_checked(&p, 3), 0);
    CU_ASSERT_EQUAL(alloc_checked(&p, 70000u), 3);
    CU_ASSERT_EQUAL(alloc_checked(&p, 70000u), 70003u);
    check_info(&p);
    pool_destroy(&p);
}
#endif

static void test_random_against_shadow(void)
{
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed());

    static const unsigned cases[][2] = {{5, 5}, {5, 7}, {3, 3}, {4, 10}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct pool p;
        if (!pool_make(&p, RANDOM_POOL, (size_t)tu_rng_range(&rng, 0, 63), cases[c][0],
                       cases[c][1]))
            continue;
        enum { MAXLIVE = RANDOM_LIVE };
        size_t live[MAXLIVE], lsize[MAXLIVE], nlive = 0;
        size_t nfail = 0;
        for (size_t op = 0; op < RANDOM_OPS; op++) {
            unsigned kind = (unsigned)tu_rng_range(&rng, 0, 99);
            if (kind < 50 && nlive < MAXLIVE) {
                /* Mostly small, sometimes long runs. */
                size_t n = tu_rng_range(&rng, 0, 9) == 0
                               ? (size_t)tu_rng_range(&rng, 33, RANDOM_LONG)
                               : (size_t)tu_rng_range(&rng, 1, 32);
                size_t size = n * p.gsize - (size_t)tu_rng_range(&rng, 0, p.gsize - 1u);
                size_t i = alloc_checked(&p, size);
                if (i != SIZE_MAX) {
                    live[nlive] = i;
                    lsize[nlive++] = size;
                }
            } else if (kind < 90 && nlive > 0) {
                size_t k = (size_t)tu_rng_range(&rng, 0, nlive - 1u);
                free_checked(&p, live[k], lsize[k]);
                live[k] = live[--nlive];
                lsize[k] = lsize[nlive];
            } else if (kind < 95 && nlive < MAXLIVE) {
                /* Reserve an arbitrary byte range: succeeds exactly when the
                 * model says all its granules are free. */
                size_t first = (size_t)tu_rng_range(&rng, 0, p.ng - 1u);
                size_t n = (size_t)tu_rng_range(&rng, 1, 20);
                if (first + n > p.ng)
                    n = p.ng - first;
                size_t skew = (size_t)tu_rng_range(&rng, 0, p.gsize - 1u);
                size_t bytes =
                    (n - 1u) * p.gsize + 1u + (size_t)tu_rng_range(&rng, 0, p.gsize - 1u - skew);
                bool free_all = true;
                for (size_t i = first; i < first + n; i++)
                    free_all = free_all && !p.used[i];
                void *r = gran_reserve(p.h, addr_of(&p, first) + skew, bytes);
                if (free_all) {
                    CU_ASSERT_EQUAL((uintptr_t)r, addr_of(&p, first));
                    model_mark(&p, first, n, 1);
                    live[nlive] = first;
                    lsize[nlive++] = n * p.gsize;
                } else {
                    CU_ASSERT_PTR_NULL(r);
                }
            } else if (nlive > 0) {
                /* A double free or a misaligned free: refused. */
                size_t before = gran_misuse_count(p.h);
                size_t k = (size_t)tu_rng_range(&rng, 0, nlive - 1u);
                gran_free(p.h, (void *)(addr_of(&p, live[k]) + 1u), lsize[k]);
                CU_ASSERT_EQUAL(gran_misuse_count(p.h), before + 1u);
                nfail++;
            }
            if (op % 10 == 0 && !check_info(&p)) {
                printf("\ncase %zu: info differs after op %zu\n", c, op);
                break;
            }
            if (op % 5000 == 4999 && !check_bitmap(&p))
                break;
        }
        CU_ASSERT_EQUAL(gran_misuse_count(p.h), nfail);
        while (nlive > 0) {
            nlive--;
            free_checked(&p, live[nlive], lsize[nlive]);
        }
        check_info(&p);
        struct graninfo_s info;
        gran_info(p.h, &info);
        CU_ASSERT_EQUAL(info.nfree, p.ng);
        pool_destroy(&p);
    }
}

#ifndef TU_TARGET
/* Threads allocate, fill, verify and free concurrently: the lock keeps the
 * bitmap consistent, so no two live blocks overlap. */
struct worker {
    GRAN_HANDLE h;
    uint64_t seed;
    unsigned id;
    size_t errors;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct tu_rng rng;
    tu_rng_init(&rng, w->seed);
    uint8_t *live[16] = {0};
    size_t size[16] = {0};
    for (unsigned op = 0; op < 20000; op++) {
        unsigned k = (unsigned)tu_rng_range(&rng, 0, 15);
        if (live[k] != NULL) {
            for (size_t b = 0; b < size[k]; b++)
                if (live[k][b] != (uint8_t)(w->id + k))
                    w->errors++;
            gran_free(w->h, live[k], size[k]);
            live[k] = NULL;
        } else {
            size[k] = (size_t)tu_rng_range(&rng, 1, 300);
            live[k] = gran_alloc(w->h, size[k]);
            if (live[k] != NULL)
                memset(live[k], (int)(w->id + k), size[k]);
        }
    }
    for (unsigned k = 0; k < 16; k++)
        if (live[k] != NULL)
            gran_free(w->h, live[k], size[k]);
    return NULL;
}

static void test_threads(void)
{
    struct pool p;
    if (!pool_make(&p, 1 << 16, 0, 4, 4))
        return;
    enum { NT = 4 };
    pthread_t t[NT];
    struct worker w[NT];
    for (unsigned i = 0; i < NT; i++) {
        w[i] = (struct worker){p.h, tu_seed() + i, i * 16u, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].errors, 0);
    }
    CU_ASSERT_EQUAL(gran_misuse_count(p.h), 0);
    check_info(&p); /* the model is all free */
    pool_destroy(&p);
}
#endif /* !TU_TARGET */

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_init_rejects_bad_arguments),
        TU_TEST(test_init_layout),
        TU_TEST(test_alloc_rounds_to_granules),
#ifndef TU_TARGET
        TU_TEST(test_alloc_1_to_1000_granules),
#endif
        TU_TEST(test_alloc_spanning_words),
        TU_TEST(test_alignment),
        TU_TEST(test_reserve),
        TU_TEST(test_exhaustion),
        TU_TEST(test_fragmentation),
        TU_TEST(test_free_partial_range),
        TU_TEST(test_misuse_refused_and_counted),
        TU_TEST(test_bad_handles_and_release),
#ifndef TU_TARGET
        TU_TEST(test_large_pool),
#endif
        TU_TEST(test_random_against_shadow),
#ifndef TU_TARGET
        TU_TEST(test_threads),
#endif
        TU_END,
    };
    // clang-format on
    return tu_main("gran", tests);
}
