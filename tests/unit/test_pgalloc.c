/*
 * test_pgalloc.c - unit tests of the page allocator (mm/pgalloc.h).
 *
 * The page allocator is one global: the tests run in order, each starting
 * with its own mm_pginitialize over its own memory, and the first one checks
 * the state before any.  Addresses are checked against the page size as
 * absolute addresses, and counts against a model kept by the test.
 */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/mm_errno.h"
#include "mm/pgalloc.h"
#include "test_util.h"

/* Memory for a page allocator: size bytes at offset past a 64 KiB boundary,
 * so that page alignment is never an accident of malloc. */
struct pgmem {
    void *buf;
    uint8_t *mem;
    size_t size;
};

static uint8_t *pgmem_make(struct pgmem *m, size_t size, size_t offset)
{
    m->buf = aligned_alloc(65536, (size + offset + 65535u) & ~(size_t)65535u);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->buf);
    m->mem = (uint8_t *)m->buf + offset;
    m->size = size;
    return m->mem;
}

static void pgmem_free(struct pgmem *m)
{
    free(m->buf);
    m->buf = NULL;
}

static struct pginfo_s info_now(void)
{
    struct pginfo_s i;
    memset(&i, 0x5a, sizeof(i));
    mm_pginfo(&i);
    return i;
}

/* Initialize over m with the given page size and check the layout: the
 * state in the first page(s), every whole page after it managed. */
/* Fewer bytes than the state can take: on the host its lock alone (a
 * process-shared mutex) is 40; a microcontroller's state is six words of
 * size_t and a lock word. */
#ifdef TU_TARGET
#define STATE_MIN (6u * sizeof(size_t))
#else
#define STATE_MIN 64u
#endif

static bool init_checked(struct pgmem *m, size_t pagesize)
{
    CU_ASSERT_EQUAL(mm_pgsetsize(pagesize), 0);
    CU_ASSERT_EQUAL_FATAL(mm_pginitialize(m->mem, m->size), 0);
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.pagesize, pagesize);
    CU_ASSERT_EQUAL(i.nfree, i.ntotal);
    CU_ASSERT_EQUAL(i.mxfree, i.ntotal);
    /* Whole page frames (absolute) in the memory; the state (a header of
     * at most 256 bytes and a bit per page) takes the first ones, or fits
     * in the partial frame before them. */
    uintptr_t start = (uintptr_t)m->mem, end = start + m->size;
    uintptr_t first_frame = (start + pagesize - 1u) & ~(uintptr_t)(pagesize - 1u);
    size_t frames = (size_t)((end & ~(uintptr_t)(pagesize - 1u)) - first_frame) / pagesize;
    size_t state = 256u + frames / 8u + 16u;
    size_t state_frames = state <= first_frame - start ? 0 : (state + pagesize - 1u) / pagesize;
    CU_ASSERT_TRUE(i.ntotal >= frames - state_frames && i.ntotal <= frames);
    if (first_frame - start < STATE_MIN) {
        CU_ASSERT_TRUE(i.ntotal < frames);
    }
    return i.ntotal > 0;
}

static void test_pginfo_before_init(void)
{
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.ntotal, 0);
    CU_ASSERT_EQUAL(i.nfree, 0);
    CU_ASSERT_EQUAL(i.mxfree, 0);
    CU_ASSERT_EQUAL(i.pagesize, 0);
    CU_ASSERT_EQUAL(mm_pgalloc(1), 0);
    mm_pgfree(4096, 1);
    mm_pgreserve((void *)4096, 4096);
    mm_pginfo(NULL);
}

static void test_pgsetsize(void)
{
    static const size_t bad[] = {
        0, 1, 32, 63, 65, 100, 4095, 4097, 12288, (size_t)1 << 31, SIZE_MAX,
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        CU_ASSERT_EQUAL(mm_pgsetsize(bad[k]), -MM_EINVAL);
    static const size_t good[] = {64, 128, 4096, 16384, 65536, (size_t)1 << 30};
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
        CU_ASSERT_EQUAL(mm_pgsetsize(good[k]), 0);
    CU_ASSERT_EQUAL(mm_pgsetsize(MM_PGSIZE_DEFAULT), 0);

    /* The size applies to the next mm_pginitialize only. */
    struct pgmem m;
    pgmem_make(&m, 1 << 20, 0);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, 4096);
    CU_ASSERT_EQUAL(info_now().ntotal, 255);
    CU_ASSERT_EQUAL(mm_pgsetsize(16384), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, 4096);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, 16384);
    CU_ASSERT_EQUAL(info_now().ntotal, 63);
    CU_ASSERT_EQUAL(mm_pgsetsize(64), 0);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, 64);
    /* 16384 pages; the state (header and a 2 KiB bitmap) takes some. */
    CU_ASSERT_TRUE(info_now().ntotal > 16384u - 40u && info_now().ntotal < 16384u);
    pgmem_free(&m);
    CU_ASSERT_EQUAL(mm_pgsetsize(4096), 0);
}

static void test_pginitialize(void)
{
    struct pgmem m;
    pgmem_make(&m, 1 << 20, 100); /* not page aligned */
    CU_ASSERT_EQUAL(mm_pgsetsize(4096), 0);

    CU_ASSERT_EQUAL(mm_pginitialize(NULL, m.size), -MM_EINVAL);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, 4096), -MM_EINVAL);
    init_checked(&m, 4096);
    /* A failure does not replace a working allocator. */
    size_t before = info_now().ntotal;
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, 100), -MM_EINVAL);
    CU_ASSERT_EQUAL(info_now().ntotal, before);

    /* From 100 bytes past a 64 KiB boundary: the state fits in the partial
     * frame 0 (bytes 100..4095), so frames 1..255 are all pages. */
    CU_ASSERT_EQUAL(before, 255);
    uintptr_t p = mm_pgalloc(1);
    CU_ASSERT_EQUAL(p, (uintptr_t)m.buf + 4096u);

    /* Replacing: a new allocator over other memory. */
    struct pgmem m2;
    pgmem_make(&m2, 1 << 18, 0);
    CU_ASSERT_TRUE(init_checked(&m2, 4096));
    CU_ASSERT_EQUAL(info_now().ntotal, 63);
    p = mm_pgalloc(1);
    CU_ASSERT_EQUAL(p, (uintptr_t)m2.mem + 4096u);
    pgmem_free(&m2);
    pgmem_free(&m);
}

static void test_pgalloc_alignment(void)
{
#ifdef TU_TARGET /* 64 pages of 64 KiB are more than the targets' RAM */
    static const size_t sizes[] = {4096, 16384, 64};
#else
    static const size_t sizes[] = {4096, 16384, 64, 65536};
#endif
    static const size_t offsets[] = {0, 1, 4095, 12345};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++) {
            struct pgmem m;
            pgmem_make(&m, (size_t)64 * sizes[s] + 3u, offsets[o]);
            if (!init_checked(&m, sizes[s])) {
                pgmem_free(&m);
                continue;
            }
            uintptr_t lo = (uintptr_t)m.mem, hi = lo + m.size;
            unsigned n = 1;
            for (;;) {
                uintptr_t p = mm_pgalloc(n);
                if (p == 0)
                    break;
                CU_ASSERT_EQUAL(p % sizes[s], 0);
                CU_ASSERT_TRUE(p > lo && p + n * sizes[s] <= hi);
                memset((void *)p, 0x77, n * sizes[s]);
                n = n % 5u + 1u;
            }
            pgmem_free(&m);
        }
    }
    CU_ASSERT_EQUAL(mm_pgsetsize(4096), 0);
}

static void test_pgreserve(void)
{
    struct pgmem m;
    pgmem_make(&m, 1 << 20, 0);
    if (!init_checked(&m, 4096))
        return;
    const uintptr_t base = (uintptr_t)m.mem;
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.ntotal, 255);

    /* Pages 10..12 of the memory, by a range that starts and ends inside
     * them: rounded out. */
    mm_pgreserve((void *)(base + 10u * 4096u + 100u), 2u * 4096u + 10u);
    CU_ASSERT_EQUAL(info_now().nfree, 252);
    /* Overlapping, outside, across the end, size 0: nothing reserved. */
    mm_pgreserve((void *)(base + 12u * 4096u), 2u * 4096u);
    mm_pgreserve((void *)base, 4096);
    mm_pgreserve((void *)(base + 255u * 4096u), 2u * 4096u);
    mm_pgreserve((void *)(base + 256u * 4096u), 4096);
    mm_pgreserve((void *)(base + 40u * 4096u), 0);
    CU_ASSERT_EQUAL(info_now().nfree, 252);
    CU_ASSERT_EQUAL(info_now().mxfree, 255 - 12);

    /* Allocations go around it: 9 pages fit before (1..9), 10 do not. */
    uintptr_t a = mm_pgalloc(10);
    CU_ASSERT_EQUAL(a, base + 13u * 4096u);
    uintptr_t b = mm_pgalloc(9);
    CU_ASSERT_EQUAL(b, base + 1u * 4096u);
    /* Freed like an allocation. */
    mm_pgfree(base + 10u * 4096u, 3);
    CU_ASSERT_EQUAL(mm_pgalloc(3), base + 10u * 4096u);
    CU_ASSERT_EQUAL(info_now().nfree, 255 - 22);
    pgmem_free(&m);
}

static void test_pgexhaustion(void)
{
    struct pgmem m;
    pgmem_make(&m, 1 << 20, 0);
    if (!init_checked(&m, 16384))
        return;
    CU_ASSERT_EQUAL(info_now().ntotal, 63);
    CU_ASSERT_EQUAL(mm_pgalloc(0), 0);
    CU_ASSERT_EQUAL(mm_pgalloc(64), 0);
    CU_ASSERT_EQUAL(mm_pgalloc(~0u), 0);
    uintptr_t all = mm_pgalloc(63);
    CU_ASSERT_EQUAL(all, (uintptr_t)m.mem + 16384u);
    CU_ASSERT_EQUAL(mm_pgalloc(1), 0);
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.nfree, 0);
    CU_ASSERT_EQUAL(i.mxfree, 0);
    mm_pgfree(all, 63);
    CU_ASSERT_EQUAL(info_now().nfree, 63);

    unsigned count = 0;
    uintptr_t prev = 0;
    for (uintptr_t p; (p = mm_pgalloc(1)) != 0; count++) {
        if (prev != 0) {
            CU_ASSERT_EQUAL(p, prev + 16384u);
        }
        prev = p;
    }
    CU_ASSERT_EQUAL(count, 63);
    CU_ASSERT_EQUAL(info_now().nfree, 0);
    pgmem_free(&m);
}

static void test_pgfree_realloc(void)
{
    struct pgmem m;
    pgmem_make(&m, 1 << 20, 0);
    if (!init_checked(&m, 4096))
        return;
    const uintptr_t p0 = (uintptr_t)m.mem + 4096u;

    uintptr_t a = mm_pgalloc(2), b = mm_pgalloc(3), c = mm_pgalloc(4);
    CU_ASSERT_EQUAL(a, p0);
    CU_ASSERT_EQUAL(b, p0 + 2u * 4096u);
    CU_ASSERT_EQUAL(c, p0 + 5u * 4096u);
    CU_ASSERT_EQUAL(info_now().nfree, 255 - 9);

    /* Free b: a 3-page hole; 4 pages go after c, 3 into the hole. */
    mm_pgfree(b, 3);
    CU_ASSERT_EQUAL(info_now().nfree, 255 - 6);
    CU_ASSERT_EQUAL(mm_pgalloc(4), p0 + 9u * 4096u);
    CU_ASSERT_EQUAL(mm_pgalloc(3), b);
    /* Free a and the new b: 5 pages fit again at the start. */
    mm_pgfree(a, 2);
    mm_pgfree(b, 3);
    CU_ASSERT_EQUAL(mm_pgalloc(5), p0);

    /* Misuse leaves everything as it was: double free, unaligned, foreign,
     * too many pages, 0 pages, address 0. */
    struct pginfo_s before = info_now();
    mm_pgfree(c, 4);
    mm_pgfree(c, 4);
    mm_pgfree(c + 1u, 4);
    mm_pgfree(c, 5);
    mm_pgfree(p0 + 100u * 4096u, 1);
    mm_pgfree((uintptr_t)&before, 1);
    mm_pgfree(p0 + 9u * 4096u, 0);
    mm_pgfree(p0 + 9u * 4096u, ~0u);
    mm_pgfree(0, 1);
    struct pginfo_s after = info_now();
    /* c (4 pages) was freed once, for real. */
    CU_ASSERT_EQUAL(after.nfree, before.nfree + 4u);
    CU_ASSERT_EQUAL(mm_pgalloc(4), c);
    CU_ASSERT_EQUAL(info_now().nfree, before.nfree);

    /* Random churn against a model of the pages. */
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0x9a6e);
    enum { MAXLIVE = 64 };
    uintptr_t live[MAXLIVE];
    unsigned np[MAXLIVE], nlive = 0;
    size_t used = 255 - info_now().nfree;
    for (unsigned op = 0; op < 5000; op++) {
        if (nlive < MAXLIVE && tu_rng_range(&rng, 0, 1) == 0) {
            unsigned n = (unsigned)tu_rng_range(&rng, 1, 16);
            uintptr_t p = mm_pgalloc(n);
            if (p != 0) {
                CU_ASSERT_EQUAL(p % 4096u, 0);
                memset((void *)p, (int)(nlive + 1u), (size_t)n * 4096u);
                live[nlive] = p;
                np[nlive++] = n;
                used += n;
            } else {
                CU_ASSERT_TRUE(info_now().mxfree < n);
            }
        } else if (nlive > 0) {
            unsigned k = (unsigned)tu_rng_range(&rng, 0, nlive - 1u);
            mm_pgfree(live[k], np[k]);
            used -= np[k];
            live[k] = live[--nlive];
            np[k] = np[nlive];
        }
        CU_ASSERT_EQUAL(info_now().nfree, 255 - used);
        if (info_now().nfree != 255 - used) {
            printf("\nop %u: nfree %zu, model %zu\n", op, info_now().nfree, 255 - used);
            break;
        }
    }
    while (nlive > 0) {
        nlive--;
        mm_pgfree(live[nlive], np[nlive]);
        used -= np[nlive];
    }
    CU_ASSERT_EQUAL(info_now().nfree, 255 - used);
    pgmem_free(&m);
}

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_pginfo_before_init),
        TU_TEST(test_pgsetsize),
        TU_TEST(test_pginitialize),
        TU_TEST(test_pgalloc_alignment),
        TU_TEST(test_pgreserve),
        TU_TEST(test_pgexhaustion),
        TU_TEST(test_pgfree_realloc),
        TU_END,
    };
    // clang-format on
    return tu_main("pgalloc", tests);
}
