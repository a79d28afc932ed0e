/*
 * test_pgalloc.c - unit tests of the page allocator (mm/pgalloc.h).
 *
 * The page allocator is one global: the tests run in order, each starting
 * with its own mm_pginitialize over its own memory, and the first one checks
 * the state before any.  Addresses are checked against the page size as
 * absolute addresses, and counts against a model kept by the test.
 */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/mm_errno.h"
#include "mm/pgalloc.h"
#include "test_util.h"

/* Pages and memories: on the host and the larger targets pages of 4 KiB
 * (PG) and 16 KiB (PG_BIG) over 1 MiB (PG_MEM, PG_NFR page frames); on AVR
 * (TU_RAM_TINY, 16 KiB of RAM) the same counts of frames would not fit, so
 * pages of 128 and 512 bytes over 4 KiB.  PG_ALIGN is a boundary aligned
 * for every page size the tests use. */
#ifdef TU_RAM_TINY
#define PG       128u
#define PG_BIG   512u
#define PG_MEM   ((size_t)4096)
#define PG_ALIGN 512u
#define PG_ODD   10u /* an offset that leaves room for the state before frame 1 */
#define PG_CHURN 4u  /* the most pages a random allocation asks */
#else
#define PG       4096u
#define PG_BIG   16384u
#define PG_MEM   ((size_t)1 << 20)
#define PG_ALIGN 65536u
#define PG_ODD   100u
#define PG_CHURN 16u
#endif
#define PG_NFR (PG_MEM / PG)

/* Memory for a page allocator: size bytes at offset past a PG_ALIGN
 * boundary, so that page alignment is never an accident of malloc. */
struct pgmem {
    void *raw; /* what the allocation gave */
    void *buf; /* the boundary */
    uint8_t *mem;
    size_t size;
};

static uint8_t *pgmem_make(struct pgmem *m, size_t size, size_t offset)
{
#ifdef TU_RAM_TINY /* avr-libc has no aligned_alloc */
    m->raw = tu_mem_alloc(size + offset + PG_ALIGN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->raw);
    m->buf = (void *)(((uintptr_t)m->raw + PG_ALIGN - 1u) & ~(uintptr_t)(PG_ALIGN - 1u));
#else
    m->raw = aligned_alloc(PG_ALIGN, (size + offset + PG_ALIGN - 1u) & ~(size_t)(PG_ALIGN - 1u));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->raw);
    m->buf = m->raw;
#endif
    m->mem = (uint8_t *)m->buf + offset;
    m->size = size;
    return m->mem;
}

static void pgmem_free(struct pgmem *m)
{
#ifdef TU_RAM_TINY
    tu_mem_free(m->raw, 0);
#else
    free(m->raw);
#endif
    m->raw = m->buf = NULL;
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
        0,
        1,
        32,
        63,
        65,
        100,
        4095,
        4097,
        12288,
#if SIZE_MAX > 0xffffu
        (size_t)1 << 31,
#else
        0xc000u,
#endif
        SIZE_MAX,
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        CU_ASSERT_EQUAL(mm_pgsetsize(bad[k]), -MM_EINVAL);
#if SIZE_MAX > 0xffffu
    static const size_t good[] = {64, 128, 4096, 16384, 65536, (size_t)1 << 30};
#else /* the largest page with a 16-bit size_t is 2^15 */
    static const size_t good[] = {64, 128, 4096, 16384, 32768};
#endif
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
        CU_ASSERT_EQUAL(mm_pgsetsize(good[k]), 0);
    CU_ASSERT_EQUAL(mm_pgsetsize(MM_PGSIZE_DEFAULT), 0);
#if PG != MM_PGSIZE_DEFAULT
    CU_ASSERT_EQUAL(mm_pgsetsize(PG), 0);
#endif

    /* The size applies to the next mm_pginitialize only. */
    struct pgmem m;
    pgmem_make(&m, PG_MEM, 0);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, PG);
    CU_ASSERT_EQUAL(info_now().ntotal, PG_NFR - 1u);
    CU_ASSERT_EQUAL(mm_pgsetsize(PG_BIG), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, PG);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, PG_BIG);
    CU_ASSERT_EQUAL(info_now().ntotal, PG_MEM / PG_BIG - 1u);
    CU_ASSERT_EQUAL(mm_pgsetsize(64), 0);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, m.size), 0);
    CU_ASSERT_EQUAL(info_now().pagesize, 64);
    /* PG_MEM / 64 pages (16384 on the host); the state (header and a bitmap
     * of 2 KiB there) takes some. */
    CU_ASSERT_TRUE(info_now().ntotal > PG_MEM / 64u - 40u && info_now().ntotal < PG_MEM / 64u);
    pgmem_free(&m);
    CU_ASSERT_EQUAL(mm_pgsetsize(PG), 0);
}

static void test_pginitialize(void)
{
    struct pgmem m;
    pgmem_make(&m, PG_MEM, PG_ODD); /* not page aligned */
    CU_ASSERT_EQUAL(mm_pgsetsize(PG), 0);

    CU_ASSERT_EQUAL(mm_pginitialize(NULL, m.size), -MM_EINVAL);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, 0), -MM_EINVAL);
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, PG), -MM_EINVAL);
    init_checked(&m, PG);
    /* A failure does not replace a working allocator. */
    size_t before = info_now().ntotal;
    CU_ASSERT_EQUAL(mm_pginitialize(m.mem, 100), -MM_EINVAL);
    CU_ASSERT_EQUAL(info_now().ntotal, before);

    /* From PG_ODD bytes past a boundary: the state fits in the partial
     * frame 0 (bytes 100..4095 on the host), so frames 1..255 are all
     * pages. */
    CU_ASSERT_EQUAL(before, PG_NFR - 1u);
    uintptr_t p = mm_pgalloc(1);
    CU_ASSERT_EQUAL(p, (uintptr_t)m.buf + PG);

    /* Replacing: a new allocator over other memory. */
    struct pgmem m2;
    pgmem_make(&m2, PG_MEM / 4u, 0);
    CU_ASSERT_TRUE(init_checked(&m2, PG));
    CU_ASSERT_EQUAL(info_now().ntotal, PG_NFR / 4u - 1u);
    p = mm_pgalloc(1);
    CU_ASSERT_EQUAL(p, (uintptr_t)m2.mem + PG);
    pgmem_free(&m2);
    pgmem_free(&m);
}

static void test_pgalloc_alignment(void)
{
#ifdef TU_TARGET /* 64 pages of 64 KiB are more than the targets' RAM */
    static const size_t sizes[] = {PG, PG_BIG, 64};
#else
    static const size_t sizes[] = {PG, PG_BIG, 64, 65536};
#endif
    /* 0, 1, 4095, 12345 on the host */
    static const size_t offsets[] = {0, 1, PG - 1u, 3u * PG + 57u};
#ifdef TU_RAM_TINY
    const size_t npages = 8;
#else
    const size_t npages = 64;
#endif
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++) {
            struct pgmem m;
            pgmem_make(&m, npages * sizes[s] + 3u, offsets[o]);
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
    CU_ASSERT_EQUAL(mm_pgsetsize(PG), 0);
}

static void test_pgreserve(void)
{
    struct pgmem m;
    pgmem_make(&m, PG_MEM, 0);
    if (!init_checked(&m, PG))
        return;
    const uintptr_t base = (uintptr_t)m.mem;
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.ntotal, PG_NFR - 1u);

    /* Pages 10..12 of the memory, by a range that starts and ends inside
     * them: rounded out. */
    mm_pgreserve((void *)(base + 10u * PG + 100u), 2u * PG + 10u);
    CU_ASSERT_EQUAL(info_now().nfree, PG_NFR - 4u);
    /* Overlapping, outside, across the end, size 0: nothing reserved. */
    mm_pgreserve((void *)(base + 12u * PG), 2u * PG);
    mm_pgreserve((void *)base, PG);
    mm_pgreserve((void *)(base + (PG_NFR - 1u) * PG), 2u * PG);
    mm_pgreserve((void *)(base + PG_NFR * PG), PG);
    mm_pgreserve((void *)(base + 20u * PG), 0);
    CU_ASSERT_EQUAL(info_now().nfree, PG_NFR - 4u);
    CU_ASSERT_EQUAL(info_now().mxfree, PG_NFR - 1u - 12u);

    /* Allocations go around it: 9 pages fit before (1..9), 10 do not. */
    uintptr_t a = mm_pgalloc(10);
    CU_ASSERT_EQUAL(a, base + 13u * PG);
    uintptr_t b = mm_pgalloc(9);
    CU_ASSERT_EQUAL(b, base + 1u * PG);
    /* Freed like an allocation. */
    mm_pgfree(base + 10u * PG, 3);
    CU_ASSERT_EQUAL(mm_pgalloc(3), base + 10u * PG);
    CU_ASSERT_EQUAL(info_now().nfree, PG_NFR - 1u - 22u);
    pgmem_free(&m);
}

static void test_pgexhaustion(void)
{
    struct pgmem m;
    pgmem_make(&m, PG_MEM, 0);
    if (!init_checked(&m, PG_BIG))
        return;
    CU_ASSERT_EQUAL(info_now().ntotal, PG_MEM / PG_BIG - 1u);
    CU_ASSERT_EQUAL(mm_pgalloc(0), 0);
    CU_ASSERT_EQUAL(mm_pgalloc(PG_MEM / PG_BIG), 0);
    CU_ASSERT_EQUAL(mm_pgalloc(~0u), 0);
#if SIZE_MAX <= UINT_MAX
    /* A count whose size in bytes wraps a 16- or 32-bit size_t around to
     * one page: refused, not one page. */
    CU_ASSERT_EQUAL(mm_pgalloc((unsigned)(SIZE_MAX / PG_BIG) + 2u), 0);
#endif
    uintptr_t all = mm_pgalloc(PG_MEM / PG_BIG - 1u);
    CU_ASSERT_EQUAL(all, (uintptr_t)m.mem + PG_BIG);
    CU_ASSERT_EQUAL(mm_pgalloc(1), 0);
    struct pginfo_s i = info_now();
    CU_ASSERT_EQUAL(i.nfree, 0);
    CU_ASSERT_EQUAL(i.mxfree, 0);
    mm_pgfree(all, PG_MEM / PG_BIG - 1u);
    CU_ASSERT_EQUAL(info_now().nfree, PG_MEM / PG_BIG - 1u);

    unsigned count = 0;
    uintptr_t prev = 0;
    for (uintptr_t p; (p = mm_pgalloc(1)) != 0; count++) {
        if (prev != 0) {
            CU_ASSERT_EQUAL(p, prev + PG_BIG);
        }
        prev = p;
    }
    CU_ASSERT_EQUAL(count, PG_MEM / PG_BIG - 1u);
    CU_ASSERT_EQUAL(info_now().nfree, 0);
    pgmem_free(&m);
}

static void test_pgfree_realloc(void)
{
    struct pgmem m;
    pgmem_make(&m, PG_MEM, 0);
    if (!init_checked(&m, PG))
        return;
    const uintptr_t p0 = (uintptr_t)m.mem + PG;

    uintptr_t a = mm_pgalloc(2), b = mm_pgalloc(3), c = mm_pgalloc(4);
    CU_ASSERT_EQUAL(a, p0);
    CU_ASSERT_EQUAL(b, p0 + 2u * PG);
    CU_ASSERT_EQUAL(c, p0 + 5u * PG);
    CU_ASSERT_EQUAL(info_now().nfree, (PG_NFR - 1u) - 9);

    /* Free b: a 3-page hole; 4 pages go after c, 3 into the hole. */
    mm_pgfree(b, 3);
    CU_ASSERT_EQUAL(info_now().nfree, (PG_NFR - 1u) - 6);
    CU_ASSERT_EQUAL(mm_pgalloc(4), p0 + 9u * PG);
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
    mm_pgfree(p0 + 20u * PG, 1);
    mm_pgfree((uintptr_t)&before, 1);
    mm_pgfree(p0 + 9u * PG, 0);
    mm_pgfree(p0 + 9u * PG, ~0u);
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
    size_t used = (PG_NFR - 1u) - info_now().nfree;
    for (unsigned op = 0; op < 5000; op++) {
        if (nlive < MAXLIVE && tu_rng_range(&rng, 0, 1) == 0) {
            unsigned n = (unsigned)tu_rng_range(&rng, 1, PG_CHURN);
            uintptr_t p = mm_pgalloc(n);
            if (p != 0) {
                CU_ASSERT_EQUAL(p % PG, 0);
                memset((void *)p, (int)(nlive + 1u), (size_t)n * PG);
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
        CU_ASSERT_EQUAL(info_now().nfree, (PG_NFR - 1u) - used);
        if (info_now().nfree != (PG_NFR - 1u) - used) {
            printf("\nop %u: nfree %zu, model %zu\n", op, info_now().nfree, (PG_NFR - 1u) - used);
            break;
        }
    }
    while (nlive > 0) {
        nlive--;
        mm_pgfree(live[nlive], np[nlive]);
        used -= np[nlive];
    }
    CU_ASSERT_EQUAL(info_now().nfree, (PG_NFR - 1u) - used);
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
