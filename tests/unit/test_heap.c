/*
 * test_heap.c - unit tests of the mm heap's public API (mm/mm.h), one or
 * more per function and per edge: creating, attaching and releasing heaps,
 * regions, every allocation call with its sizes and alignments, the
 * diagnostics (mallinfo, stats, checkcorruption, memdump, errors) and misuse
 * (foreign and double frees, huge sizes, bad alignments).
 *
 * Built once per variant (small and large model, with and without debug
 * records).  Expected sizes come from hw_chunk_for() (heap_work.h): the
 * public MM_ALIGN and MM_OVERHEAD, plus in debug builds the record and
 * guard.  Only that and the tests that scribble over a chunk header on
 * purpose use the internal layout (heap_internal.h).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef TU_TARGET /* microcontroller builds: tests/target */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "heap_internal.h"
#include "heap_work.h"
#include "mm/mm.h"
#include "test_util.h"

/* ---- Sizes of this variant ---------------------------------------------- */

/* White-box: the header of the chunk that holds user pointer p. */
static struct mm__chunk *chunk_of(void *p)
{
    return (struct mm__chunk *)(void *)((uint8_t *)p - MM__USER_OFFSET);
}

/* ---- Test heaps ------------------------------------------------------------ */

static uint8_t *map_mem(size_t size)
{
    void *p = tu_mem_alloc(size);
    CU_ASSERT_FATAL(p != NULL);
    return p;
}

struct th {
    uint8_t *mem;
    size_t size;
    struct mm_heap_s *h;
    struct mm_mallinfo_s mi0; /* right after mm_initialize */
};

static void th_open(struct th *t, size_t size)
{
    t->mem = map_mem(size);
    t->size = size;
    t->h = mm_initialize("unit", t->mem, size);
    CU_ASSERT_FATAL(t->h != NULL);
    /* These tests check where blocks land; the per-thread cache would keep
     * freed blocks out of the chain (test_heap_cache.c covers it). */
    mm_cache_limit(t->h, 0);
    t->mi0 = mm_mallinfo(t->h);
}

/* Release the handle and the memory; the heap must check clean unless the
 * test broke it on purpose. */
static void th_close(struct th *t, bool expect_clean)
{
    if (expect_clean)
        CU_ASSERT_EQUAL(mm_checkcorruption(t->h), 0);
    mm_detach(t->h);
    tu_mem_free(t->mem, t->size);
    t->h = NULL;
}

#define ASSERT_MALLINFO_EQ(a, b)                                                                   \
    do {                                                                                           \
        struct mm_mallinfo_s a_ = (a), b_ = (b);                                                   \
        CU_ASSERT_EQUAL(a_.arena, b_.arena);                                                       \
        CU_ASSERT_EQUAL(a_.ordblks, b_.ordblks);                                                   \
        CU_ASSERT_EQUAL(a_.aordblks, b_.aordblks);                                                 \
        CU_ASSERT_EQUAL(a_.mxordblk, b_.mxordblk);                                                 \
        CU_ASSERT_EQUAL(a_.uordblks, b_.uordblks);                                                 \
        CU_ASSERT_EQUAL(a_.fordblks, b_.fordblks);                                                 \
    } while (0)

/* ---- Misuse callback recorder --------------------------------------------- */

/* ---- Creating, attaching, releasing ------------------------------------ */

/* Handles, mm_attach: where processes share heaps (MM_CONFIG_MULTIPROCESS);
 * on a microcontroller the handle is the heap itself. */
#if MM_CONFIG_MULTIPROCESS && !defined(TU_RAM_TINY) /* two heaps: more than AVR's RAM */
/* First in the list: it counts every handle this process can hold, so no
 * other test may hold one. */
static void test_handles_exhaust_and_release(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    static struct mm_heap_s *hs[MM_CONFIG_MAX_HEAPS + 1];
    size_t n = 0;
    while (n < MM_CONFIG_MAX_HEAPS + 1) {
        hs[n] = mm_attach(t.mem, t.size);
        if (hs[n] == NULL)
            break;
        n++;
    }
    /* One handle is t.h. */
    CU_ASSERT_EQUAL(n, MM_CONFIG_MAX_HEAPS - 1);
    /* No handle left: neither attach nor initialize can succeed. */
    uint8_t *other = map_mem(HW_HEAP_SIZE);
    CU_ASSERT_PTR_NULL(mm_initialize("x", other, HW_HEAP_SIZE));
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, t.size));
    /* Handles are distinct and all work. */
    for (size_t i = 1; i < n; i++)
        CU_ASSERT(hs[i] != hs[i - 1] && hs[i] != t.h);
    void *p = mm_malloc(hs[n / 2], 32);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT(mm_malloc_size(t.h, p) >= 32);
    mm_free(hs[0], p);
    /* Detaching one gives one back. */
    if (n > 0) {
        mm_detach(hs[n - 1]);
        hs[n - 1] = mm_attach(t.mem, t.size);
        CU_ASSERT_PTR_NOT_NULL(hs[n - 1]);
        CU_ASSERT_PTR_NULL(mm_attach(t.mem, t.size));
    }
    for (size_t i = 0; i < n; i++)
        mm_detach(hs[i]);
    /* All back: a new heap can be made again. */
    struct mm_heap_s *h2 = mm_initialize("x", other, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL(h2);
    mm_detach(h2);
    tu_mem_free(other, HW_HEAP_SIZE);
    th_close(&t, true);
}
#endif

static void test_initialize_bad_args(void)
{
    uint8_t *mem = map_mem(HW_HEAP_SIZE + 4096);
    CU_ASSERT_PTR_NULL(mm_initialize("x", NULL, HW_HEAP_SIZE));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, 0));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, 1));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, 64));
    /* Misaligned start. */
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem + 1, HW_HEAP_SIZE));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem + MM_ALIGN / 2, HW_HEAP_SIZE));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem + MM_ALIGN - 1, HW_HEAP_SIZE));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem + MM_START_ALIGN / 2, HW_HEAP_SIZE));
#if MM_CONFIG_SMALL
    /* Beyond the small model's 64 KiB. */
#if SIZE_MAX > MM_MAX_HEAPSIZE /* else no size_t is beyond the model */
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, MM_MAX_HEAPSIZE + MM_ALIGN));
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, (size_t)MM_MAX_HEAPSIZE + 4096));
#endif
#endif
#if MM_CONFIG_MULTIPROCESS
    /* None of those may have left a heap behind. */
    CU_ASSERT_PTR_NULL(mm_attach(mem, HW_HEAP_SIZE));
#endif
    /* A name longer than 31 bytes is truncated, not refused; NULL is fine. */
    struct mm_heap_s *h =
        mm_initialize("a-name-much-longer-than-thirty-one-bytes", mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL(h);
    mm_detach(h);
    h = mm_initialize(NULL, mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);
    /* A start aligned to MM_START_ALIGN but not to a page works. */
    h = mm_initialize("x", mem + MM_START_ALIGN, HW_HEAP_SIZE - MM_START_ALIGN);
    CU_ASSERT_PTR_NOT_NULL(h);
    void *p = mm_malloc(h, 100);
    CU_ASSERT(p != NULL && (uintptr_t)p % MM_ALIGN == 0);
    mm_free(h, p);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);
    tu_mem_free(mem, HW_HEAP_SIZE + 4096);
}

/* The smallest heap that works holds one chunk; a size that is not a
 * multiple of the alignment stays inside its bytes. */
static void test_initialize_sizes(void)
{
    uint8_t *mem = map_mem(HW_HEAP_SIZE);
    size_t smallest = 0;
    for (size_t s = 0; s <= 16384 && smallest == 0; s += MM_ALIGN) {
        struct mm_heap_s *h = mm_initialize("x", mem, s);
        if (h != NULL) {
            smallest = s;
            struct mm_mallinfo_s mi = mm_mallinfo(h);
            CU_ASSERT_EQUAL(mi.ordblks, 1);
            CU_ASSERT(mi.fordblks >= HW_MINCHUNK);
            CU_ASSERT(mi.arena <= s);
#if !MM_CONFIG_DEBUG
            /* Its one chunk can be allocated (a debug record needs more). */
            void *p = mm_malloc(h, 0);
            CU_ASSERT_PTR_NOT_NULL(p);
            mm_free(h, p);
#endif
            CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
            mm_detach(h);
        }
    }
    CU_ASSERT(smallest > 0 && smallest < 16384);

    /* An odd size: everything handed out lies inside it. */
    memset(mem, 0xee, HW_HEAP_SIZE);
    size_t odd = 4096 + MM_ALIGN + 3;
    struct mm_heap_s *h = mm_initialize("x", mem, odd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    CU_ASSERT(mi.arena <= odd);
    void *p = mm_malloc(h, mi.mxordblk - hw_chunk_extra());
    CU_ASSERT_PTR_NOT_NULL(p);
    if (p != NULL) {
        size_t usable = mm_malloc_size(h, p);
        CU_ASSERT((uint8_t *)p + usable <= mem + odd);
        memset(p, 0, usable);
    }
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    /* Not one byte past the heap was written. */
    for (size_t i = odd; i < odd + 64; i++)
        CU_ASSERT_EQUAL_FATAL(mem[i], 0xee);
    mm_detach(h);
    tu_mem_free(mem, HW_HEAP_SIZE);
}

/* The largest heap of the model works; one alignment step more is refused. */
/* On targets: the small model only (the large one's 4 GiB is no target's),
 * and only where 64 KiB of RAM are free (not on AVR). */
#if !defined(TU_TARGET) || (MM_CONFIG_SMALL && !defined(TU_RAM_TINY))
#define HAVE_MODEL_LIMIT_TEST 1
static void test_initialize_model_limit(void)
{
#if MM_CONFIG_SMALL
    size_t max = MM_MAX_HEAPSIZE;
#else
    /* 4 GiB of address space; only the pages touched get memory. */
    size_t max = (size_t)MM_MAX_HEAPSIZE;
#endif
    size_t maplen = max + 4096;
#ifdef TU_TARGET
    void *m = map_mem(maplen); /* the small model's 64 KiB */
#else
    void *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CU_ASSERT_FATAL(m != MAP_FAILED);
#endif
    uint8_t *mem = m;
    CU_ASSERT_PTR_NULL(mm_initialize("x", mem, max + MM_ALIGN));
    struct mm_heap_s *h = mm_initialize("x", mem, max);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    CU_ASSERT(mi.arena <= max && mi.arena > max - 8192);
    /* One block of (nearly) the whole heap, then nothing is left... */
    void *big = mm_malloc(h, mi.mxordblk - hw_chunk_extra());
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT((uint8_t *)big + mm_malloc_size(h, big) <= mem + max);
    CU_ASSERT_PTR_NULL(mm_malloc(h, 1));
    /* ... and the end of the block is writable and inside the heap. */
    ((uint8_t *)big)[mi.mxordblk - hw_chunk_extra() - 1] = 1;
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
#if MM_CONFIG_DEBUG && !MM_CONFIG_SMALL
    /* Freeing fills the block in debug builds: no giant frees here. */
    mm_detach(h);
    tu_mem_free(m, maplen);
    return;
#endif
    mm_free(h, big);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi);
    /* A block at the very end of the heap. */
    void *a = mm_malloc(h, mi.mxordblk / 2);
    void *b = mm_malloc(h, mi.mxordblk - hw_chunk_for(mi.mxordblk / 2) - hw_chunk_extra());
    CU_ASSERT(a != NULL && b != NULL);
    if (b != NULL)
        ((uint8_t *)b)[mm_malloc_size(h, b) - 1] = 2;
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_free(h, a);
    mm_free(h, b);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi);
    mm_detach(h);
    tu_mem_free(m, maplen);
}
#endif

#if MM_CONFIG_MULTIPROCESS && !defined(TU_RAM_TINY) /* two heaps: more than AVR's RAM */
static void test_attach(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *p = mm_malloc(t.h, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    tu_pattern_fill(p, 100, 1);

    /* Valid: another handle on the same memory sees the same heap. */
    struct mm_heap_s *h2 = mm_attach(t.mem, t.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h2);
    CU_ASSERT(h2 != t.h);
    CU_ASSERT(mm_malloc_size(h2, p) >= 100);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h2), mm_mallinfo(t.h));
    void *q = mm_malloc(h2, 50);
    CU_ASSERT(mm_heapmember(t.h, q));
    mm_free(t.h, q);
    /* A mapping larger than the heap is fine. */
    uint8_t *big = map_mem(HW_HEAP_SIZE);
    struct mm_heap_s *h3 = mm_initialize("half", big, HW_HEAP_SIZE / 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h3);
    void *r = mm_malloc(h3, 10);
    mm_detach(h3);
    h3 = mm_attach(big, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL(h3);
    CU_ASSERT(mm_malloc_size(h3, r) >= 10);
    CU_ASSERT_EQUAL(mm_checkcorruption(h3), 0);
    mm_detach(h3);
    CU_ASSERT_PTR_NULL(mm_attach(big, HW_HEAP_SIZE / 2 - MM_ALIGN));
    tu_mem_free(big, HW_HEAP_SIZE);

    /* Smaller than the heap: refused. */
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, t.size - MM_ALIGN));
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, t.size / 2));
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, 64));
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, 0));
    /* Not at the heap's start. */
    CU_ASSERT_PTR_NULL(mm_attach(t.mem + MM_START_ALIGN, t.size - MM_START_ALIGN));
    CU_ASSERT_PTR_NULL(mm_attach(t.mem + 1, t.size - 1));
    CU_ASSERT_PTR_NULL(mm_attach(NULL, t.size));

    /* Detaching h2 leaves the heap alone. */
    mm_detach(h2);
    CU_ASSERT_EQUAL(tu_pattern_check(p, 100, 1), 100);
    CU_ASSERT(mm_malloc_size(t.h, p) >= 100);
    mm_free(t.h, p);
    th_close(&t, true);
}
#endif

#if MM_CONFIG_MULTIPROCESS
static void test_attach_garbage(void)
{
    uint8_t *mem = map_mem(HW_HEAP_SIZE);
    /* Zeros, ones, random bytes. */
    CU_ASSERT_PTR_NULL(mm_attach(mem, HW_HEAP_SIZE));
    memset(mem, 0xff, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NULL(mm_attach(mem, HW_HEAP_SIZE));
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (int round = 0; round < 20; round++) {
        tu_pattern_fill(mem, HW_HEAP_SIZE, tu_rng_next(&rng));
        CU_ASSERT_PTR_NULL(mm_attach(mem, HW_HEAP_SIZE));
    }
    /* A valid heap whose every header byte is flipped in turn: attach either
     * refuses it or gives a handle that works without crashing. */
    struct mm_heap_s *h = mm_initialize("g", mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mm_detach(h);
    for (size_t i = 0; i < 32; i++) {
        mem[i] ^= 0x5a;
        h = mm_attach(mem, HW_HEAP_SIZE);
        if (h != NULL) {
            void *p = mm_malloc(h, 16);
            mm_free(h, p);
            (void)mm_checkcorruption(h);
            mm_detach(h);
        }
        mem[i] ^= 0x5a;
    }
    /* The first words (magic, version, model) must be checked. */
    for (size_t i = 0; i < 8; i++) {
        mem[i] ^= 0x5a;
        CU_ASSERT_PTR_NULL(mm_attach(mem, HW_HEAP_SIZE));
        mem[i] ^= 0x5a;
    }
    h = mm_attach(mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL(h);
    mm_detach(h);
    tu_mem_free(mem, HW_HEAP_SIZE);
}

#endif

static void test_uninitialize(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
#if MM_CONFIG_MULTIPROCESS
    struct mm_heap_s *h2 = mm_attach(t.mem, t.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h2);
    void *p = mm_malloc(h2, 10);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_uninitialize(t.h);
    /* Later attaches fail. */
    CU_ASSERT_PTR_NULL(mm_attach(t.mem, t.size));
    /* Other handles fail from then on, without crashing, and without
     * locking the destroyed lock. */
    CU_ASSERT_PTR_NULL(mm_malloc(h2, 10));
    CU_ASSERT_EQUAL(mm_last_error(h2), MM_ERR_NOTHEAP);
    mm_free(h2, p);
    CU_ASSERT_EQUAL(mm_malloc_size(h2, p), 0);
    CU_ASSERT(mm_heap_state(h2) != MM_OK);
    mm_detach(h2);
#else
    /* The handle (the heap itself) fails from then on, without crashing. */
    void *p = mm_malloc(t.h, 10);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_uninitialize(t.h);
    CU_ASSERT_PTR_NULL(mm_malloc(t.h, 10));
    mm_free(t.h, p);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, p), 0);
    CU_ASSERT(mm_heap_state(t.h) != MM_OK);
#endif
    /* The memory can hold a new heap. */
    struct mm_heap_s *h = mm_initialize("again", t.mem, t.size);
    CU_ASSERT_PTR_NOT_NULL(h);
    CU_ASSERT_EQUAL(mm_mallinfo(h).aordblks, 0);
    mm_detach(h);
    tu_mem_free(t.mem, t.size);
}

#if MM_CONFIG_MULTIPROCESS
/* A failure through one handle is that handle's, not another's. */
static void test_last_error_per_handle(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_heap_s *h2 = mm_attach(t.mem, t.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h2);
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_OK);
    CU_ASSERT_EQUAL(mm_last_error(h2), MM_OK);
    CU_ASSERT_PTR_NULL(mm_malloc(t.h, t.mi0.mxordblk));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    CU_ASSERT_EQUAL(mm_last_error(h2), MM_OK);
    CU_ASSERT_PTR_NULL(mm_memalign(h2, 3, 8));
    CU_ASSERT_EQUAL(mm_last_error(h2), MM_ERR_INVAL);
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    CU_ASSERT_EQUAL(mm_heap_state(t.h), MM_OK);
    mm_detach(h2);
    th_close(&t, true);
}
#endif

/* ---- Regions ------------------------------------------------------------ */

#if MM_CONFIG_SMALL
#define REGION_SIZE ((size_t)0x4000)
#else
#define REGION_SIZE ((size_t)0x40000)
#endif

#ifndef TU_RAM_TINY /* regions of 16 KiB and more */
static void test_addregion_used_when_first_full(void)
{
    /* [heap | gap | region], all within the model's reach. */
    size_t total = 2 * REGION_SIZE;
    uint8_t *mem = map_mem(total);
    struct mm_heap_s *h = mm_initialize("r", mem, REGION_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);

    /* Fill the first region completely. */
    static void *blocks[8192];
    size_t n = 0;
    for (size_t sz = 1024; sz > 0 && n < 8192; sz /= 2)
        while (n < 8192 && (blocks[n] = mm_malloc(h, sz)) != NULL) {
            tu_pattern_fill(blocks[n], sz, n);
            n++;
        }
    while (n < 8192 && (blocks[n] = mm_malloc(h, 0)) != NULL)
        n++;
    CU_ASSERT_EQUAL(mm_last_error(h), MM_ERR_NOMEM);
    struct mm_mallinfo_s full = mm_mallinfo(h);
    CU_ASSERT(full.mxordblk < hw_chunk_for(0));
#if !MM_CONFIG_DEBUG
    CU_ASSERT_EQUAL(full.ordblks, 0);
#endif

    uint8_t *rstart = mem + REGION_SIZE + 256;
    size_t rsize = REGION_SIZE - 256;
    mm_addregion(h, rstart, rsize);
    struct mm_mallinfo_s mi1 = mm_mallinfo(h);
    CU_ASSERT(mi1.arena > mi0.arena + rsize - 256 && mi1.arena <= mi0.arena + rsize);
    CU_ASSERT_EQUAL(mi1.ordblks, full.ordblks + 1);
    size_t rfree = mi1.fordblks - full.fordblks;
    CU_ASSERT(rfree > rsize - 256 && rfree == mi1.mxordblk);

    /* The next allocation comes from the new region. */
    void *p = mm_malloc(h, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT((uint8_t *)p >= rstart && (uint8_t *)p + 100 <= rstart + rsize);
    CU_ASSERT(mm_heapmember(h, p));
    CU_ASSERT(mm_malloc_size(h, p) >= 100);
    /* The gap between the regions is not the heap's. */
    CU_ASSERT(!mm_heapmember(h, mem + REGION_SIZE + 8));
    CU_ASSERT(!mm_heapmember(h, rstart + rsize));
    /* A block as big as the new region's free chunk. */
    void *q = mm_malloc(h, mi1.mxordblk - hw_chunk_for(100) - hw_chunk_extra());
    CU_ASSERT_PTR_NOT_NULL(q);
    if (q != NULL)
        memset(q, 0x77, mi1.mxordblk - hw_chunk_for(100) - hw_chunk_extra());
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
#if MM_CONFIG_MULTIPROCESS
    /* Another handle (attach with a mapping covering both) sees it all. */
    struct mm_heap_s *h2 = mm_attach(mem, total);
    CU_ASSERT_PTR_NOT_NULL(h2);
    CU_ASSERT(mm_heapmember(h2, p));
    CU_ASSERT_EQUAL(mm_mallinfo(h2).arena, mi1.arena);
    /* ... but a mapping covering only the first region is refused. */
    CU_ASSERT_PTR_NULL(mm_attach(mem, REGION_SIZE));
    mm_detach(h2);
#endif

    for (size_t i = 0; i < n; i++) {
        size_t sz = mm_malloc_size(h, blocks[i]);
        CU_ASSERT(sz > 0);
        mm_free(h, blocks[i]);
    }
    mm_free(h, p);
    mm_free(h, q);
    struct mm_mallinfo_s mi2 = mm_mallinfo(h);
    CU_ASSERT_EQUAL(mi2.ordblks, 2); /* one free chunk per region */
    CU_ASSERT_EQUAL(mi2.aordblks, 0);
    CU_ASSERT_EQUAL(mi2.uordblks, 0);
    CU_ASSERT_EQUAL(mi2.fordblks, rfree + mi0.fordblks);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);
    tu_mem_free(mem, total);
}
#endif

#ifndef TU_RAM_TINY /* regions of 16 KiB and more */
static void test_addregion_rejects(void)
{
#if MM_CONFIG_SMALL
    size_t total = 0x20000; /* twice the model's reach */
#else
    size_t total = 4 * REGION_SIZE;
#endif
    uint8_t *mem = map_mem(total);
    uint8_t *hbase = mem + REGION_SIZE;
    struct mm_heap_s *h = mm_initialize("r", hbase, REGION_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);

    /* Below the heap's start. */
    mm_addregion(h, mem, REGION_SIZE / 2);
    CU_ASSERT_EQUAL(mm_last_error(h), MM_ERR_INVAL);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi0);
    /* Overlapping the heap itself, at its start, middle and across its end. */
    mm_addregion(h, hbase, REGION_SIZE);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    mm_addregion(h, hbase + REGION_SIZE / 2, REGION_SIZE / 4);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    mm_addregion(h, hbase + REGION_SIZE - 1024, 2048);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi0);
    /* Too small to hold a chunk. */
    mm_addregion(h, hbase + REGION_SIZE + 64, MM_ALIGN);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    mm_addregion(h, hbase + REGION_SIZE + 64, 0);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi0);
    /* NULL start: ignored. */
    mm_addregion(h, NULL, 4096);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi0);
#if MM_CONFIG_SMALL
    /* Out of the small model's reach (offsets are 16-bit). */
    mm_addregion(h, mem + 0x1c000, 0x2000);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    ASSERT_MALLINFO_EQ(mm_mallinfo(h), mi0);
#endif
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);

    /* A misaligned start is either refused or aligned up inside the range. */
    uint8_t *rs = hbase + REGION_SIZE + 1;
    size_t rlen = 2048 - 1;
    mm_addregion(h, rs, rlen);
    struct mm_mallinfo_s mi1 = mm_mallinfo(h);
    if (mm_last_error(h) == MM_OK && mi1.arena != mi0.arena) {
        CU_ASSERT(mi1.arena - mi0.arena <= rlen);
        void *p;
        while ((p = mm_malloc(h, 8)) != NULL) {
            CU_ASSERT((uintptr_t)p % MM_ALIGN == 0);
            if ((uint8_t *)p >= rs)
                CU_ASSERT((uint8_t *)p + 8 <= rs + rlen);
        }
    } else {
        ASSERT_MALLINFO_EQ(mi1, mi0);
    }
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);

    /* At most MM_CONFIG_REGIONS regions in all. */
    h = mm_initialize("r", hbase, 8192);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    size_t arena = mm_mallinfo(h).arena;
    for (unsigned i = 1; i < MM_CONFIG_REGIONS; i++) {
        mm_addregion(h, hbase + 8192 * i + 512, 2048);
        size_t a = mm_mallinfo(h).arena;
        CU_ASSERT(a > arena);
        arena = a;
    }
    mm_addregion(h, hbase + 8192 * MM_CONFIG_REGIONS + 512, 2048);
    CU_ASSERT_NOT_EQUAL(mm_last_error(h), MM_OK);
    CU_ASSERT_EQUAL(mm_mallinfo(h).arena, arena);
    CU_ASSERT_EQUAL(mm_mallinfo(h).ordblks, MM_CONFIG_REGIONS);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);
    tu_mem_free(mem, total);
}
#endif

/* ---- malloc ----------------------------------------------------------------- */

static void test_malloc_sizes_and_alignment(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
#if MM_CONFIG_SMALL
    enum { N = 120 };
#else
    enum { N = 1000 };
#endif
    static void *p[N];
    for (size_t n = 0; n < N; n++) {
        p[n] = mm_malloc(t.h, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[n]);
        CU_ASSERT_EQUAL((uintptr_t)p[n] % MM_ALIGN, 0);
        CU_ASSERT(mm_malloc_size(t.h, p[n]) >= n);
        CU_ASSERT(mm_heapmember(t.h, p[n]));
        tu_pattern_fill(p[n], n, n);
    }
    /* No block overlaps another: every pattern is intact. */
    for (size_t n = 0; n < N; n++)
        CU_ASSERT_EQUAL(tu_pattern_check(p[n], n, n), n);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.aordblks, N);
    size_t sum = 0;
    for (size_t n = 0; n < N; n++)
        sum += hw_chunk_for(n);
    CU_ASSERT_EQUAL(mi.uordblks, sum);
    /* Free every other one, then the rest. */
    for (size_t n = 0; n < N; n += 2)
        mm_free(t.h, p[n]);
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    for (size_t n = 1; n < N; n += 2)
        CU_ASSERT_EQUAL(tu_pattern_check(p[n], n, n), n);
    for (size_t n = 1; n < N; n += 2)
        mm_free(t.h, p[n]);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_malloc_zero(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 0);
    void *b = mm_malloc(t.h, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT(a != b);
    CU_ASSERT_EQUAL((uintptr_t)a % MM_ALIGN, 0);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).aordblks, 2);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).uordblks, 2 * hw_chunk_for(0));
    /* A zero-size block is still a live allocation. */
    CU_ASSERT(mm_heapmember(t.h, a));
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    mm_free(t.h, a);
    mm_free(t.h, b);
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.frees, s0.frees + 2);
    CU_ASSERT_EQUAL(s1.double_frees + s1.foreign_frees, s0.double_frees + s0.foreign_frees);
    /* The same through calloc, zalloc and memalign. */
    void *c = mm_calloc(t.h, 0, 0), *d = mm_calloc(t.h, 0, 16), *e = mm_calloc(t.h, 16, 0);
    void *f = mm_zalloc(t.h, 0), *g = mm_memalign(t.h, 64, 0);
    CU_ASSERT(c != NULL && d != NULL && e != NULL && f != NULL && g != NULL);
    CU_ASSERT(c != d && d != e && e != f && f != g && c != g);
    CU_ASSERT_EQUAL((uintptr_t)g % 64, 0);
    mm_free(t.h, c);
    mm_free(t.h, d);
    mm_free(t.h, e);
    mm_free(t.h, f);
    mm_free(t.h, g);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* The model's limit as a size_t, or the largest size_t where that cannot
 * hold it (32-bit targets in the large model, AVR in the small one). */
#define MODEL_LIMIT                                                                                \
    ((uint64_t)MM_MAX_HEAPSIZE <= (uint64_t)SIZE_MAX ? (size_t)MM_MAX_HEAPSIZE : SIZE_MAX)

/* A function, not an inline comparison: where size_t cannot exceed the
 * limit the comparison is always false, and -Wtype-limits says so. */
static bool beyond_model(uint64_t n)
{
    return n > (uint64_t)MM_MAX_HEAPSIZE;
}

/* What a request of n bytes aligned to align fails with when no heap could
 * hold it: MM_ERR_INVAL beyond the model, else MM_ERR_NOMEM.  On 64-bit
 * hosts every huge size_t is beyond the model; on 32-bit targets SIZE_MAX / 2
 * is within the large model's 4 GiB, and only the heap is too small. */
static enum mm_error huge_error(size_t n, size_t align)
{
    if (n > MM__MAX_REQUEST)
        return MM_ERR_INVAL;
    uint64_t c = mm__chunk_size_for(n);
    if (align > MM_ALIGN && c + align + MM__MINCHUNK > MM__MAX_CHUNK)
        return MM_ERR_INVAL;
    return MM_ERR_NOMEM;
}

static void test_malloc_too_large(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    /* Bigger than the heap but within the model: no memory. */
    CU_ASSERT_PTR_NULL(mm_malloc(t.h, t.mi0.mxordblk));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    CU_ASSERT_PTR_NULL(mm_malloc(t.h, t.mi0.mxordblk - hw_chunk_extra() + 1));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    /* The biggest that fits does fit. */
    void *p = mm_malloc(t.h, t.mi0.mxordblk - hw_chunk_extra());
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_free(t.h, p);
    /* Beyond the model: no chunk size can hold it. */
    size_t beyond[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX - MM_ALIGN, MODEL_LIMIT, MODEL_LIMIT - 1};
    for (size_t i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
        CU_ASSERT_PTR_NULL(mm_malloc(t.h, beyond[i]));
        enum mm_error e = mm_last_error(t.h);
        CU_ASSERT(e == MM_ERR_INVAL || e == MM_ERR_NOMEM);
        if (beyond_model(beyond[i]))
            CU_ASSERT_EQUAL(e, MM_ERR_INVAL);
    }
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    /* Every allocation that returned NULL counts as a failure. */
    CU_ASSERT_EQUAL(s1.failures, s0.failures + 2 + sizeof(beyond) / sizeof(beyond[0]));
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* Overhead: 16-byte blocks from a fresh heap sit hw_chunk_for(16) apart, which
 * in release builds is 24 bytes (large) or 20 (small). */
static void test_malloc_adjacency(void)
{
#if !MM_CONFIG_DEBUG
    CU_ASSERT_EQUAL(hw_chunk_for(16), MM_CONFIG_SMALL ? 20u : 24u);
#endif
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    enum { N = 64 };
    uint8_t *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = mm_malloc(t.h, 16);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        memset(p[i], i, 16);
    }
    for (int i = 1; i < N; i++)
        CU_ASSERT_EQUAL((size_t)(p[i] - p[i - 1]), hw_chunk_for(16));
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.uordblks, N * hw_chunk_for(16));
    CU_ASSERT_EQUAL(mi.fordblks, t.mi0.fordblks - N * hw_chunk_for(16));
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 16; j++)
            CU_ASSERT_EQUAL_FATAL(p[i][j], i);
        mm_free(t.h, p[i]);
    }
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* ---- calloc and zalloc ---------------------------------------------------- */

/* Dirty the heap's free memory, so zeroing cannot be luck. */
static void dirty_free_memory(struct mm_heap_s *h)
{
    void *p[64];
    int n = 0;
    for (size_t sz = 4096; sz >= 8 && n < 64; sz /= 2)
        while (n < 64 && (p[n] = mm_malloc(h, sz)) != NULL) {
            memset(p[n], 0xa5, sz);
            n++;
            if (n % 4 == 0)
                break;
        }
    for (int i = 0; i < n; i++)
        mm_free(h, p[i]);
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static void test_calloc(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    dirty_free_memory(t.h);
    size_t sizes[][2] = {{1, 1}, {3, 7}, {10, 100}, {1, 2000}, {256, 4}, {4, 256}};
    void *p[6];
    for (int i = 0; i < 6; i++) {
        size_t n = sizes[i][0] * sizes[i][1];
        p[i] = mm_calloc(t.h, sizes[i][0], sizes[i][1]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        CU_ASSERT_EQUAL((uintptr_t)p[i] % MM_ALIGN, 0);
        CU_ASSERT(mm_malloc_size(t.h, p[i]) >= n);
        CU_ASSERT(all_zero(p[i], n));
    }
    for (int i = 0; i < 6; i++)
        mm_free(t.h, p[i]);

    /* n * size overflows: NULL, whatever the factors. */
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    size_t half = (size_t)1 << (sizeof(size_t) * 4);
    size_t bad[][2] = {{SIZE_MAX, 2},        {2, SIZE_MAX},         {half, half},
                       {half + 1, half - 1}, {SIZE_MAX / 3 + 1, 3}, {SIZE_MAX, SIZE_MAX}};
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_PTR_NULL(mm_calloc(t.h, bad[i][0], bad[i][1]));
        CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    }
    /* A product that does not overflow but exceeds the heap: no memory. */
    CU_ASSERT_PTR_NULL(mm_calloc(t.h, t.mi0.mxordblk / 4 + 1, 4));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.mallocs, s0.mallocs);
    CU_ASSERT_EQUAL(s1.failures, s0.failures + 7);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_zalloc(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    dirty_free_memory(t.h);
    for (size_t n = 1; n <= 4096; n = n * 3 + 1) {
        void *p = mm_zalloc(t.h, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT(all_zero(p, n));
        memset(p, 0xa5, n);
        mm_free(t.h, p);
    }
    CU_ASSERT_PTR_NULL(mm_zalloc(t.h, SIZE_MAX));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    CU_ASSERT_PTR_NULL(mm_zalloc(t.h, t.mi0.mxordblk));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* ---- realloc ------------------------------------------------------------- */

static void test_realloc_null_and_zero(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    void *p = mm_realloc(t.h, NULL, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(mm_malloc_size(t.h, p) >= 100);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, s0.mallocs + 1);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).aordblks, 1);
    /* realloc(p, 0) frees p and returns NULL. */
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, p, 0));
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).frees, s0.frees + 1);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, p), 0);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    /* realloc(NULL, 0) is malloc(0). */
    p = mm_realloc(t.h, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_free(t.h, p);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_realloc_grow_in_place(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    /* a | b | c: free b, then grow a into it. */
    void *a = mm_malloc(t.h, 64), *b = mm_malloc(t.h, 64), *c = mm_malloc(t.h, 64);
    CU_ASSERT_FATAL(a != NULL && b != NULL && c != NULL);
    tu_pattern_fill(a, 64, 11);
    tu_pattern_fill(c, 64, 13);
    mm_free(t.h, b);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    void *a2 = mm_realloc(t.h, a, 100);
    CU_ASSERT_PTR_EQUAL(a2, a);
    CU_ASSERT(mm_malloc_size(t.h, a2) >= 100);
    CU_ASSERT_EQUAL(tu_pattern_check(a2, 64, 11), 64);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, s0.mallocs); /* no move */
    /* The rest of b stays a free chunk between a and c. */
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.aordblks, 2);
    CU_ASSERT_EQUAL(mi.uordblks, hw_chunk_for(100) + hw_chunk_for(64));
    CU_ASSERT_EQUAL(mi.ordblks, 2);
    /* Exactly filling the gap: a keeps a and c touching. */
    tu_pattern_fill(a2, 100, 12);
    void *a3 = mm_realloc(t.h, a2, 2 * hw_chunk_for(64) - hw_chunk_extra());
    CU_ASSERT_PTR_EQUAL(a3, a);
    CU_ASSERT_EQUAL(tu_pattern_check(a3, 100, 12), 100);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).ordblks, 1);
    CU_ASSERT_EQUAL(tu_pattern_check(c, 64, 13), 64);

    /* The last block grows into the big free tail. */
    tu_pattern_fill(c, 64, 14);
    void *c2 = mm_realloc(t.h, c, 3000);
    CU_ASSERT_PTR_EQUAL(c2, c);
    CU_ASSERT_EQUAL(tu_pattern_check(c2, 64, 14), 64);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).uordblks,
                    hw_chunk_for(2 * hw_chunk_for(64) - hw_chunk_extra()) + hw_chunk_for(3000));
    /* Growing to the same size or by less than the alignment slack keeps it. */
    CU_ASSERT_PTR_EQUAL(mm_realloc(t.h, c2, 3000), c);
    CU_ASSERT_EQUAL(tu_pattern_check(c2, 64, 14), 64);
    mm_free(t.h, a3);
    mm_free(t.h, c2);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_realloc_shrink_in_place(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 1000), *g = mm_malloc(t.h, 16);
    CU_ASSERT_FATAL(a != NULL && g != NULL);
    tu_pattern_fill(a, 1000, 21);
    struct mm_mallinfo_s mi0 = mm_mallinfo(t.h);
    void *a2 = mm_realloc(t.h, a, 100);
    CU_ASSERT_PTR_EQUAL(a2, a);
    CU_ASSERT_EQUAL(tu_pattern_check(a2, 100, 21), 100);
    CU_ASSERT(mm_malloc_size(t.h, a2) >= 100 && mm_malloc_size(t.h, a2) < 1000);
    struct mm_mallinfo_s mi1 = mm_mallinfo(t.h);
    /* The tail went back to the heap as a free chunk of its own. */
    CU_ASSERT_EQUAL(mi1.uordblks, mi0.uordblks - hw_chunk_for(1000) + hw_chunk_for(100));
    CU_ASSERT_EQUAL(mi1.ordblks, mi0.ordblks + 1);
    CU_ASSERT_EQUAL(mi1.fordblks, mi0.fordblks + hw_chunk_for(1000) - hw_chunk_for(100));
    /* Shrinking by less than a minimum chunk may keep the size, never move. */
    void *a3 = mm_realloc(t.h, a2, 96);
    CU_ASSERT_PTR_EQUAL(a3, a);
    CU_ASSERT_EQUAL(tu_pattern_check(a3, 96, 21), 96);
    /* Shrinking next to a free chunk merges the tail into it. */
    mm_free(t.h, g);
    void *a4 = mm_realloc(t.h, a3, 8);
    CU_ASSERT_PTR_EQUAL(a4, a);
    CU_ASSERT_EQUAL(tu_pattern_check(a4, 8, 21), 8);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).ordblks, 1);
    mm_free(t.h, a4);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* Growing into a free previous chunk moves the bytes down; when the
 * previous chunk is smaller than the block, source and destination overlap
 * (memmove, not memcpy). */
static void test_realloc_grow_backward(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    size_t prevs[] = {0, 16, 200, 1000};
    for (int i = 0; i < 4; i++) {
        size_t old = 600;
        void *x = mm_malloc(t.h, prevs[i]), *b = mm_malloc(t.h, old), *g = mm_malloc(t.h, 8);
        CU_ASSERT_FATAL(x != NULL && b != NULL && g != NULL);
        tu_pattern_fill(b, old, 30 + (uint64_t)i);
        tu_pattern_fill(g, 8, 40);
        mm_free(t.h, x);
        /* Needs more than b's chunk, at most b's and x's together. */
        size_t grow = old + hw_chunk_for(prevs[i]) - MM_ALIGN;
        void *b2 = mm_realloc(t.h, b, grow);
        CU_ASSERT_PTR_EQUAL(b2, x);
        CU_ASSERT_EQUAL(tu_pattern_check(b2, old, 30 + (uint64_t)i), old);
        CU_ASSERT(mm_malloc_size(t.h, b2) >= grow);
        CU_ASSERT_EQUAL(tu_pattern_check(g, 8, 40), 8);
        CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
        mm_free(t.h, b2);
        mm_free(t.h, g);
        ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    }
    /* Both neighbours free and each too small alone: next first, then prev. */
    void *x = mm_malloc(t.h, 100), *b = mm_malloc(t.h, 300), *y = mm_malloc(t.h, 100);
    void *g = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(x != NULL && b != NULL && y != NULL && g != NULL);
    tu_pattern_fill(b, 300, 50);
    mm_free(t.h, x);
    mm_free(t.h, y);
    size_t grow = 300 + 2 * hw_chunk_for(100) - MM_ALIGN;
    void *b2 = mm_realloc(t.h, b, grow);
    CU_ASSERT_PTR_EQUAL(b2, x);
    CU_ASSERT_EQUAL(tu_pattern_check(b2, 300, 50), 300);
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    mm_free(t.h, b2);
    mm_free(t.h, g);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_realloc_move(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 200), *g = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(a != NULL && g != NULL);
    tu_pattern_fill(a, 200, 60);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    void *a2 = mm_realloc(t.h, a, 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a2);
    CU_ASSERT(a2 != a);
    CU_ASSERT_EQUAL(tu_pattern_check(a2, 200, 60), 200);
    CU_ASSERT(mm_malloc_size(t.h, a2) >= 2000);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, a), 0); /* the old block is free */
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, s0.mallocs + 1);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.aordblks, 2);
    CU_ASSERT_EQUAL(mi.uordblks, hw_chunk_for(8) + hw_chunk_for(2000));
    /* The freed old chunk is reused. */
    void *b = mm_malloc(t.h, 200);
    CU_ASSERT_PTR_EQUAL(b, a);
    mm_free(t.h, b);
    mm_free(t.h, a2);
    mm_free(t.h, g);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_realloc_failure_keeps_block(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 300), *g = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(a != NULL && g != NULL);
    tu_pattern_fill(a, 300, 70);
    size_t usable = mm_malloc_size(t.h, a);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    size_t sizes[] = {t.mi0.mxordblk, mi.fordblks + 300, SIZE_MAX, SIZE_MAX / 2};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_PTR_NULL(mm_realloc(t.h, a, sizes[i]));
        enum mm_error e = mm_last_error(t.h);
        CU_ASSERT(i < 2 ? e == MM_ERR_NOMEM : e == huge_error(sizes[i], MM_ALIGN));
        CU_ASSERT_EQUAL(tu_pattern_check(a, 300, 70), 300);
        CU_ASSERT_EQUAL(mm_malloc_size(t.h, a), usable);
        ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), mi);
    }
    /* Also when the previous chunk is free but together still too small. */
    void *x = mm_malloc(t.h, 100), *b = mm_malloc(t.h, 100), *g2 = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(x != NULL && b != NULL && g2 != NULL);
    tu_pattern_fill(b, 100, 71);
    mm_free(t.h, x);
    /* Fill the rest so no move is possible either. */
    void *rest = mm_malloc(t.h, mm_mallinfo(t.h).mxordblk - hw_chunk_extra());
    CU_ASSERT_PTR_NOT_NULL(rest);
    struct mm_mallinfo_s mi2 = mm_mallinfo(t.h);
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, b, 100 + hw_chunk_for(100) + 64));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    CU_ASSERT_EQUAL(tu_pattern_check(b, 100, 71), 100);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), mi2);
    mm_free(t.h, rest);
    mm_free(t.h, b);
    mm_free(t.h, g2);
    mm_free(t.h, a);
    mm_free(t.h, g);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* realloc of something that is not a live allocation fails and leaves the
 * heap alone. */
static void test_realloc_bad_pointer(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 64), *g = mm_malloc(t.h, 64);
    CU_ASSERT_FATAL(a != NULL && g != NULL);
    mm_free(t.h, a);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    int local = 0;
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, a, 32));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, &local, 32));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, (uint8_t *)g + 8, 32));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), mi);
    mm_free(t.h, g);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* ---- memalign ------------------------------------------------------------- */

static void test_memalign(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
#if defined(TU_RAM_TINY)
    size_t maxalign = 2048; /* a quarter of AVR's test heap */
#elif MM_CONFIG_SMALL
    size_t maxalign = 8192;
#else
    size_t maxalign = 65536;
#endif
    size_t sizes[] = {0, 1, 24, 100, 1000};
    for (size_t al = 1; al <= maxalign; al *= 2) {
        for (int i = 0; i < 5; i++) {
            void *p = mm_memalign(t.h, al, sizes[i]);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p);
            CU_ASSERT_EQUAL((uintptr_t)p % al, 0);
            CU_ASSERT_EQUAL((uintptr_t)p % MM_ALIGN, 0);
            CU_ASSERT(mm_malloc_size(t.h, p) >= sizes[i]);
            tu_pattern_fill(p, sizes[i], al);
            /* A neighbour keeps the next one from landing in the same spot. */
            void *q = mm_malloc(t.h, 8);
            CU_ASSERT_EQUAL(tu_pattern_check(p, sizes[i], al), sizes[i]);
            CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
            mm_free(t.h, p);
            mm_free(t.h, q);
        }
        ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    }
    /* Many aligned blocks live at once, freed in another order. */
#if defined(TU_RAM_TINY)
    enum { MANY = 16 };
#else
    enum { MANY = 40 };
#endif
    void *p[MANY];
    size_t al[MANY];
    for (int i = 0; i < MANY; i++) {
        al[i] = (size_t)1 << (i % 10);
        p[i] = mm_memalign(t.h, al[i], 40 + (size_t)i * 8);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        CU_ASSERT_EQUAL((uintptr_t)p[i] % al[i], 0);
        tu_pattern_fill(p[i], 40 + (size_t)i * 8, 100 + (uint64_t)i);
    }
    for (int i = 0; i < MANY; i++)
        CU_ASSERT_EQUAL(tu_pattern_check(p[i], 40 + (size_t)i * 8, 100 + (uint64_t)i),
                        40 + (size_t)i * 8);
    for (int i = 0; i < MANY; i += 3)
        mm_free(t.h, p[i]);
    for (int i = 0; i < MANY; i++)
        if (i % 3 != 0)
            mm_free(t.h, p[i]);
    /* After freeing everything the heap is as new: no gap was lost. */
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

static void test_memalign_bad(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    size_t bad[] = {0, 3, 5, 6, 12, 24, 48, 100, 4097, SIZE_MAX, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, bad[i], 16));
        CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    }
    /* A power of two larger than the heap, or a size beyond the model. */
    CU_ASSERT_PTR_NULL(mm_memalign(t.h, (size_t)1 << (sizeof(size_t) * 8 - 1), 16));
    CU_ASSERT(mm_last_error(t.h) == MM_ERR_INVAL || mm_last_error(t.h) == MM_ERR_NOMEM);
    CU_ASSERT_PTR_NULL(mm_memalign(t.h, t.size * 2, 16));
    CU_ASSERT(mm_last_error(t.h) == MM_ERR_INVAL || mm_last_error(t.h) == MM_ERR_NOMEM);
    CU_ASSERT_PTR_NULL(mm_memalign(t.h, 64, SIZE_MAX));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    CU_ASSERT_PTR_NULL(mm_memalign(t.h, 64, SIZE_MAX - 64));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
    CU_ASSERT_PTR_NULL(mm_memalign(t.h, 64, t.mi0.mxordblk));
    CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_NOMEM);
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.mallocs, s0.mallocs);
    CU_ASSERT_EQUAL(s1.failures, s0.failures + sizeof(bad) / sizeof(bad[0]) + 5);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* The waste is at most one minimum chunk beside the alignment gap, and the
 * gap goes back to the heap as a free chunk. */
static void test_memalign_waste(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    for (size_t al = MM_ALIGN * 2; al <= 4096; al *= 2) {
        for (size_t off = 0; off < 4; off++) {
            /* Shift the free tail's start so the gaps differ. */
            void *pad = mm_malloc(t.h, off * 8);
            CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
            struct mm_mallinfo_s before = mm_mallinfo(t.h);
            size_t n = 100;
            void *p = mm_memalign(t.h, al, n);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p);
            CU_ASSERT_EQUAL((uintptr_t)p % al, 0);
            struct mm_mallinfo_s after = mm_mallinfo(t.h);
            size_t used = after.uordblks - before.uordblks;
            CU_ASSERT(used >= hw_chunk_for(n));
            CU_ASSERT(used <= hw_chunk_for(n) + HW_MINCHUNK);
            /* Whatever is not used is still free (the gap included). */
            CU_ASSERT_EQUAL(after.fordblks, before.fordblks - used);
            CU_ASSERT_EQUAL(after.aordblks, before.aordblks + 1);
            mm_free(t.h, p);
            mm_free(t.h, pad);
            ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
        }
    }
    /* Alignment no stricter than MM_ALIGN is plain malloc. */
    for (size_t al = 1; al <= MM_ALIGN; al *= 2) {
        void *p = mm_memalign(t.h, al, 16);
        void *q = mm_memalign(t.h, al, 16);
        CU_ASSERT_EQUAL((size_t)((uint8_t *)q - (uint8_t *)p), hw_chunk_for(16));
        mm_free(t.h, p);
        mm_free(t.h, q);
    }
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* ---- Size and membership ------------------------------------------------- */

#ifndef TU_RAM_TINY /* two heaps at once: more than AVR's RAM */
static void test_malloc_size(void)
{
    struct th t, u;
    th_open(&t, HW_HEAP_SIZE);
    th_open(&u, HW_HEAP_SIZE);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, NULL), 0);
    for (size_t n = 0; n < 300; n += 7) {
        void *p = mm_malloc(t.h, n);
        size_t s = mm_malloc_size(t.h, p);
        CU_ASSERT(s >= n);
#if MM_CONFIG_DEBUG
        CU_ASSERT_EQUAL(s, n);
#else
        /* The whole chunk but its header is usable, and no more was taken
         * than alignment and the minimum chunk require. */
        CU_ASSERT_EQUAL(s, hw_chunk_for(n) - MM_OVERHEAD);
#endif
        memset(p, 0x3c, s);
        mm_free(t.h, p);
        CU_ASSERT_EQUAL(mm_malloc_size(t.h, p), 0);
    }
    void *a = mm_malloc(t.h, 256), *g = mm_malloc(t.h, 8), *o = mm_malloc(u.h, 256);
    int local;
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, &local), 0);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, (uint8_t *)a + MM_ALIGN), 0);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, (uint8_t *)a + 128), 0);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, (uint8_t *)a + 1), 0);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, o), 0);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, t.mem), 0);
    CU_ASSERT(mm_malloc_size(u.h, o) >= 256);
    mm_free(t.h, a);
    mm_free(t.h, g);
    mm_free(u.h, o);
    th_close(&u, true);
    th_close(&t, true);
}
#endif

#ifndef TU_RAM_TINY /* two heaps at once: more than AVR's RAM */
static void test_heapmember(void)
{
    struct th t, u;
    th_open(&t, HW_HEAP_SIZE);
    th_open(&u, HW_HEAP_SIZE);
    void *p = mm_malloc(t.h, 100), *o = mm_malloc(u.h, 100);
    int local;
    CU_ASSERT(mm_heapmember(t.h, p));
    CU_ASSERT(mm_heapmember(t.h, (uint8_t *)p + 50));                    /* inside an allocation */
    CU_ASSERT(mm_heapmember(t.h, t.mem + t.size - 2 * MM_OVERHEAD - 1)); /* free memory */
    CU_ASSERT(!mm_heapmember(t.h, NULL));
    CU_ASSERT(!mm_heapmember(t.h, &local));
    CU_ASSERT(!mm_heapmember(t.h, o));
    CU_ASSERT(!mm_heapmember(t.h, t.mem + t.size));
    CU_ASSERT(!mm_heapmember(t.h, t.mem - 1));
    CU_ASSERT(mm_heapmember(u.h, o));
    mm_free(t.h, p);
    /* Membership is about the address, not about being allocated. */
    CU_ASSERT(mm_heapmember(t.h, p));
    mm_free(u.h, o);
    th_close(&u, true);
    th_close(&t, true);
}
#endif

/* ---- mallinfo and stats ----------------------------------------------------- */

static void test_mallinfo_exact(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_mallinfo_s m0 = t.mi0;
    CU_ASSERT(m0.arena <= t.size);
    CU_ASSERT(m0.arena + 8192 > t.size);
    CU_ASSERT_EQUAL(m0.ordblks, 1);
    CU_ASSERT_EQUAL(m0.aordblks, 0);
    CU_ASSERT_EQUAL(m0.uordblks, 0);
    CU_ASSERT_EQUAL(m0.mxordblk, m0.fordblks);
    CU_ASSERT(m0.fordblks <= m0.arena);

    size_t sizes[] = {1, 7, 16, 17, 100, 1000, 4000, 0};
    void *p[8];
    size_t sum = 0;
    for (int i = 0; i < 8; i++) {
        p[i] = mm_malloc(t.h, sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        sum += hw_chunk_for(sizes[i]);
        struct mm_mallinfo_s m = mm_mallinfo(t.h);
        CU_ASSERT_EQUAL(m.aordblks, (size_t)i + 1);
        CU_ASSERT_EQUAL(m.uordblks, sum);
        CU_ASSERT_EQUAL(m.ordblks, 1);
        CU_ASSERT_EQUAL(m.fordblks, m0.fordblks - sum);
        CU_ASSERT_EQUAL(m.mxordblk, m.fordblks);
        CU_ASSERT_EQUAL(m.arena, m0.arena);
    }
    /* Two holes: two more free chunks, the tail still the largest. */
    mm_free(t.h, p[1]);
    mm_free(t.h, p[4]);
    struct mm_mallinfo_s m = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(m.aordblks, 6);
    CU_ASSERT_EQUAL(m.ordblks, 3);
    CU_ASSERT_EQUAL(m.uordblks, sum - hw_chunk_for(7) - hw_chunk_for(100));
    CU_ASSERT_EQUAL(m.fordblks, m0.fordblks - m.uordblks);
    CU_ASSERT_EQUAL(m.mxordblk, m0.fordblks - sum);
    /* Freeing the neighbours merges: p[0..2] is one free chunk. */
    mm_free(t.h, p[0]);
    mm_free(t.h, p[2]);
    m = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(m.ordblks, 3);
    CU_ASSERT_EQUAL(m.aordblks, 4);
    for (int i = 3; i < 8; i++)
        if (i != 4)
            mm_free(t.h, p[i]);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), m0);
    th_close(&t, true);
}

static void test_stats_counters(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s0.mallocs, 0);
    CU_ASSERT_EQUAL(s0.frees, 0);
    CU_ASSERT_EQUAL(s0.failures, 0);
    CU_ASSERT_EQUAL(s0.double_frees, 0);
    CU_ASSERT_EQUAL(s0.foreign_frees, 0);
    CU_ASSERT_EQUAL(s0.guard_errors, 0);
    CU_ASSERT_EQUAL(s0.recoveries, 0);
    CU_ASSERT_EQUAL(s0.repairs, 0);
    void *a = mm_malloc(t.h, 10), *b = mm_calloc(t.h, 2, 10), *c = mm_zalloc(t.h, 10);
    void *d = mm_memalign(t.h, 256, 10);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, 4);
    CU_ASSERT_PTR_NULL(mm_malloc(t.h, t.mi0.mxordblk));
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).failures, 1);
    mm_free(t.h, a);
    mm_free(t.h, b);
    mm_free(t.h, c);
    mm_free(t.h, d);
    mm_free(t.h, NULL);
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.mallocs, 4);
    CU_ASSERT_EQUAL(s1.frees, 4);
    CU_ASSERT_EQUAL(s1.failures, 1);
#if MM_CONFIG_MULTIPROCESS
    /* Shared by every handle of the heap. */
    struct mm_heap_s *h2 = mm_attach(t.mem, t.size);
    CU_ASSERT_EQUAL(mm_heap_stats(h2).mallocs, 4);
    mm_free(h2, mm_malloc(h2, 1));
    mm_detach(h2);
#else
    mm_free(t.h, mm_malloc(t.h, 1));
#endif
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, 5);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).frees, 5);

    /* realloc: NULL is a malloc, 0 a free, a move a malloc and a free, in
     * place neither; so mallocs - frees is always the live count. */
    void *r = mm_realloc(t.h, NULL, 64), *g = mm_malloc(t.h, 8);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, 7);
    r = mm_realloc(t.h, r, 32); /* shrinks in place */
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, 7);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).frees, 5);
    r = mm_realloc(t.h, r, 4000); /* moves */
    s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.mallocs, 8);
    CU_ASSERT_EQUAL(s1.frees, 6);
    CU_ASSERT_EQUAL(s1.mallocs - s1.frees, mm_mallinfo(t.h).aordblks);
    r = mm_realloc(t.h, r, 5000); /* grows in place into the tail */
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).mallocs, 8);
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, r, 0));
    mm_free(t.h, g);
    s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(s1.mallocs, 8);
    CU_ASSERT_EQUAL(s1.frees, 8);
    CU_ASSERT_EQUAL(s1.failures, 1);
    th_close(&t, true);
}

/* ---- checkcorruption --------------------------------------------------------- */

/* A heap with a | b | c | d allocated and the free tail, for scribbling. */
struct scribble {
    struct th t;
    uint8_t *p[4];
};

static void scribble_open(struct scribble *s)
{
    th_open(&s->t, HW_HEAP_SIZE);
    for (int i = 0; i < 4; i++) {
        s->p[i] = mm_malloc(s->t.h, 64);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s->p[i]);
        memset(s->p[i], 0, 64);
    }
    CU_ASSERT_EQUAL(mm_checkcorruption(s->t.h), 0);
}

static void test_checkcorruption_detects(void)
{
    struct scribble s;

    /* b's size made to point into c's payload. */
    scribble_open(&s);
    chunk_of(s.p[1])->size = (mmsize_t)(chunk_of(s.p[1])->size + 4 * MM_ALIGN);
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* b's size made zero (a walk that trusts it would never end). */
    scribble_open(&s);
    chunk_of(s.p[1])->size = MM__ALLOC_BIT;
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* b's size beyond the heap's end. */
    scribble_open(&s);
    chunk_of(s.p[1])->size = (mmsize_t)(MM__SIZE_MASK | MM__ALLOC_BIT);
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* c's prev_size wrong while the chain is whole. */
    scribble_open(&s);
    chunk_of(s.p[2])->prev_size = (mmsize_t)(chunk_of(s.p[2])->prev_size + MM_ALIGN);
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* b marked free behind the lists' back. */
    scribble_open(&s);
    chunk_of(s.p[1])->size = mm__size_of(chunk_of(s.p[1]));
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* A free chunk's list link pointing elsewhere. */
    scribble_open(&s);
    mm_free(s.t.h, s.p[1]);
    CU_ASSERT_EQUAL(mm_checkcorruption(s.t.h), 0);
    chunk_of(s.p[1])->next = (mmsize_t)((uint8_t *)chunk_of(s.p[3]) - s.t.mem);
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* A free chunk unlinked from its list (the list head now empty). */
    scribble_open(&s);
    mm_free(s.t.h, s.p[1]);
    struct mm__header *hd = (struct mm__header *)(void *)s.t.mem;
    hd->heads[mm__class(mm__size_of(chunk_of(s.p[1])))] = 0;
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

#if MM_CONFIG_DEBUG
    /* A guard overwritten. */
    scribble_open(&s);
    s.p[1][64] ^= 0xff;
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    th_close(&s.t, false);

    /* b cut to an allocated chunk too small for a debug record (as a
     * process that dies splitting a chunk leaves one): nothing takes a
     * size from where its record would be. */
    scribble_open(&s);
    struct mm__chunk *b = chunk_of(s.p[1]);
    struct mm__chunk *rest = (struct mm__chunk *)(void *)((uint8_t *)b + MM__MINCHUNK);
    rest->prev_size = MM__MINCHUNK;
    rest->size = (mmsize_t)((mm__size_of(b) - MM__MINCHUNK) | MM__ALLOC_BIT);
    b->size = (mmsize_t)(MM__MINCHUNK | MM__ALLOC_BIT);
    CU_ASSERT(mm_checkcorruption(s.t.h) > 0);
    CU_ASSERT_EQUAL(mm_malloc_size(s.t.h, s.p[1]), 0);
    th_close(&s.t, false);
#endif
}

/* ---- Misuse --------------------------------------------------------------- */

/* After misuse the heap must look exactly as before and keep working. */
static void assert_untouched(struct th *t, struct mm_mallinfo_s before)
{
    ASSERT_MALLINFO_EQ(mm_mallinfo(t->h), before);
    CU_ASSERT_EQUAL(mm_checkcorruption(t->h), 0);
    CU_ASSERT_EQUAL(mm_heap_state(t->h), MM_OK);
    void *p = mm_malloc(t->h, 40);
    CU_ASSERT_PTR_NOT_NULL(p);
    mm_free(t->h, p);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t->h), before);
}

#ifndef TU_RAM_TINY
/* Free mem and expect it reported as foreign. */
static void expect_foreign_free(struct th *t, void *mem)
{
    struct hw_misuse_log log = {0};
    mm_set_misuse_callback(hw_misuse_record, &log);
    struct mm_heap_stats s0 = mm_heap_stats(t->h);
    struct mm_mallinfo_s mi = mm_mallinfo(t->h);
    mm_free(t->h, mem);
    struct mm_heap_stats s1 = mm_heap_stats(t->h);
    CU_ASSERT_EQUAL(s1.foreign_frees, s0.foreign_frees + 1);
    CU_ASSERT_EQUAL(s1.double_frees, s0.double_frees);
    CU_ASSERT_EQUAL(s1.frees, s0.frees);
    CU_ASSERT_EQUAL(log.count, 1);
    CU_ASSERT_EQUAL(log.what, MM_MISUSE_FOREIGN_FREE);
    CU_ASSERT_PTR_EQUAL(log.heap, t->h);
    CU_ASSERT_PTR_EQUAL(log.mem, mem);
    mm_set_misuse_callback(NULL, NULL);
    assert_untouched(t, mi);
}
#endif

#ifndef TU_RAM_TINY /* two heaps at once: more than AVR's RAM */
static void test_free_foreign(void)
{
    struct th t, u;
    th_open(&t, HW_HEAP_SIZE);
    th_open(&u, HW_HEAP_SIZE);
    uint8_t *a = mm_malloc(t.h, 256), *b = mm_malloc(t.h, 256), *g = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(a != NULL && b != NULL && g != NULL);
    int local[16] = {0};
    static uint64_t global[16];
    expect_foreign_free(&t, local);
    expect_foreign_free(&t, &local[8]);
    expect_foreign_free(&t, global);
    expect_foreign_free(&t, t.mem);                   /* the heap's header */
    expect_foreign_free(&t, t.mem + MM__USER_OFFSET); /* ... a chunk's place in it */
    expect_foreign_free(&t, t.mem + t.size - MM_ALIGN);
    expect_foreign_free(&t, t.mem + t.size + 4096);
    expect_foreign_free(&t, (void *)(uintptr_t)MM_ALIGN);
    /* Interior pointers, whatever the block holds. */
    uint8_t fills[] = {0x00, 0xff, 0x11};
    for (int f = 0; f < 4; f++) {
        if (f < 3)
            memset(a, fills[f], 256);
        else
            tu_pattern_fill(a, 256, 99);
        size_t offs[] = {1, MM_ALIGN, 2 * MM_ALIGN, 16, 64, 128, 248};
        for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
            expect_foreign_free(&t, a + offs[i]);
    }
    /* A live block of another heap, and free memory of this one. */
    uint8_t *o = mm_malloc(u.h, 256);
    expect_foreign_free(&t, o);
    CU_ASSERT(mm_malloc_size(u.h, o) >= 256);
    expect_foreign_free(&t, g + 512);
    /* The blocks are still live and whole. */
    memset(a, 0x42, 256);
    mm_free(t.h, a);
    mm_free(t.h, b);
    mm_free(t.h, g);
    mm_free(u.h, o);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    ASSERT_MALLINFO_EQ(mm_mallinfo(u.h), u.mi0);
    CU_ASSERT_EQUAL(mm_heap_stats(u.h).foreign_frees, 0);
    th_close(&u, true);
    th_close(&t, true);
}
#endif

/* Free p a second time: reported once, as a double free when wanted (else
 * as either kind: a block merged into a free neighbour has no header of its
 * own any more). */
static void expect_double_free(struct th *t, void *p, bool must_be_double)
{
    struct hw_misuse_log log = {0};
    mm_set_misuse_callback(hw_misuse_record, &log);
    struct mm_heap_stats s0 = mm_heap_stats(t->h);
    struct mm_mallinfo_s mi = mm_mallinfo(t->h);
    mm_free(t->h, p);
    struct mm_heap_stats s1 = mm_heap_stats(t->h);
    CU_ASSERT_EQUAL(s1.frees, s0.frees);
    CU_ASSERT_EQUAL(s1.double_frees + s1.foreign_frees, s0.double_frees + s0.foreign_frees + 1);
    CU_ASSERT_EQUAL(log.count, 1);
    CU_ASSERT_PTR_EQUAL(log.heap, t->h);
    CU_ASSERT_PTR_EQUAL(log.mem, p);
    if (must_be_double) {
        CU_ASSERT_EQUAL(s1.double_frees, s0.double_frees + 1);
        CU_ASSERT_EQUAL(log.what, MM_MISUSE_DOUBLE_FREE);
    } else {
        CU_ASSERT(log.what == MM_MISUSE_DOUBLE_FREE || log.what == MM_MISUSE_FOREIGN_FREE);
        CU_ASSERT_EQUAL(log.what == MM_MISUSE_DOUBLE_FREE ? s1.double_frees : s1.foreign_frees,
                        (log.what == MM_MISUSE_DOUBLE_FREE ? s0.double_frees : s0.foreign_frees) +
                            1);
    }
    mm_set_misuse_callback(NULL, NULL);
    assert_untouched(t, mi);
}

static void test_double_free(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = mm_malloc(t.h, 64);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
    }
    /* Both neighbours allocated: the chunk is free on its own. */
    mm_free(t.h, p[1]);
    expect_double_free(&t, p[1], true);
    expect_double_free(&t, p[1], true); /* and again */
    /* Merged with the next free chunk: p[3]'s header heads the merge. */
    mm_free(t.h, p[4]);
    mm_free(t.h, p[3]);
    expect_double_free(&t, p[3], true);
    /* Merged into the previous free chunk: p[4] is inside it now. */
    expect_double_free(&t, p[4], false);
    /* The last block, merged into the free tail. */
    mm_free(t.h, p[5]);
    expect_double_free(&t, p[5], false);
    /* A double free of a realloc'd-away block. */
    void *q = mm_malloc(t.h, 32), *g = mm_malloc(t.h, 8);
    void *q2 = mm_realloc(t.h, q, 4000);
    CU_ASSERT_FATAL(q2 != NULL && q2 != q);
    expect_double_free(&t, q, false);
    mm_free(t.h, q2);
    mm_free(t.h, g);
    mm_free(t.h, p[0]);
    mm_free(t.h, p[2]);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    CU_ASSERT(mm_heap_stats(t.h).double_frees >= 3);
    th_close(&t, true);
}

/* The callback runs without the heap's lock: it may call into the heap.
 * Run in a child, so that a deadlock is a bounded failure. */
static struct mm_heap_s *g_cb_heap;
static int g_cb_calls, g_cb_ok;

static void misuse_calls_heap(void *arg, struct mm_heap_s *heap, enum mm_misuse what,
                              const void *mem)
{
    (void)arg, (void)what, (void)mem;
    g_cb_calls++;
    void *p = mm_malloc(heap, 16);
    if (heap == g_cb_heap && p != NULL && mm_mallinfo(heap).aordblks > 0)
        g_cb_ok++;
    mm_free(heap, p);
}

/* The callback may call into the heap: it runs unlocked. */
static bool misuse_callback_run(struct mm_heap_s *h)
{
    g_cb_heap = h;
    mm_set_misuse_callback(misuse_calls_heap, NULL);
    void *a = mm_malloc(h, 64), *b = mm_malloc(h, 64);
    mm_free(h, a);
    mm_free(h, a);
    int local;
    mm_free(h, &local);
    bool ok = g_cb_calls == 2 && g_cb_ok == 2 && mm_checkcorruption(h) == 0;
    /* Removed: no more calls. */
    mm_set_misuse_callback(NULL, NULL);
    mm_free(h, a);
    ok = ok && g_cb_calls == 2;
    mm_free(h, b);
    return ok;
}

static void test_misuse_callback_unlocked(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
#ifndef TU_TARGET
    /* In a child: the callback is process-wide. */
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(misuse_callback_run(t.h) ? 0 : 1);
    int status = tu_wait_child(pid, 10000);
    CU_ASSERT(tu_exited_ok(status));
#else
    CU_ASSERT(misuse_callback_run(t.h));
#endif
    th_close(&t, true);
}

static void test_free_null(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *a = mm_malloc(t.h, 10);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    struct hw_misuse_log log = {0};
    mm_set_misuse_callback(hw_misuse_record, &log);
    mm_free(t.h, NULL);
    mm_set_misuse_callback(NULL, NULL);
    struct mm_heap_stats s1 = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(memcmp(&s0, &s1, sizeof(s0)), 0);
    CU_ASSERT_EQUAL(log.count, 0);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), mi);
    mm_free(t.h, a);
    th_close(&t, true);
}

/* Every entry point with absurd sizes and alignments: NULL, a reason, and a
 * heap as it was. */
static void test_huge_sizes_and_bad_alignments(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    void *live = mm_malloc(t.h, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(live);
    tu_pattern_fill(live, 100, 5);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX - MM_OVERHEAD,
                     SIZE_MAX - 2 * MM_OVERHEAD + 1};
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        CU_ASSERT_PTR_NULL(mm_malloc(t.h, huge[i]));
        CU_ASSERT_EQUAL(mm_last_error(t.h), huge_error(huge[i], MM_ALIGN));
        CU_ASSERT_PTR_NULL(mm_zalloc(t.h, huge[i]));
        CU_ASSERT_PTR_NULL(mm_calloc(t.h, huge[i], 1));
        CU_ASSERT_PTR_NULL(mm_calloc(t.h, 1, huge[i]));
        CU_ASSERT_PTR_NULL(mm_realloc(t.h, NULL, huge[i]));
        CU_ASSERT_PTR_NULL(mm_realloc(t.h, live, huge[i]));
        CU_ASSERT_EQUAL(mm_last_error(t.h), huge_error(huge[i], MM_ALIGN));
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, 16, huge[i]));
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, 4096, huge[i]));
        CU_ASSERT_EQUAL(mm_last_error(t.h), huge_error(huge[i], 4096));
    }
    size_t aligns[] = {0, 3, 24, 7, 1000, SIZE_MAX};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, aligns[i], 16));
        CU_ASSERT_EQUAL(mm_last_error(t.h), MM_ERR_INVAL);
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, aligns[i], 0));
        CU_ASSERT_PTR_NULL(mm_memalign(t.h, aligns[i], SIZE_MAX));
    }
    CU_ASSERT_EQUAL(tu_pattern_check(live, 100, 5), 100);
    assert_untouched(&t, mi);
    mm_free(t.h, live);
    ASSERT_MALLINFO_EQ(mm_mallinfo(t.h), t.mi0);
    th_close(&t, true);
}

/* Calls with a NULL handle do nothing and do not crash. */
static void test_null_handle(void)
{
    int x;
    CU_ASSERT_PTR_NULL(mm_malloc(NULL, 16));
    CU_ASSERT_PTR_NULL(mm_calloc(NULL, 1, 16));
    CU_ASSERT_PTR_NULL(mm_zalloc(NULL, 16));
    CU_ASSERT_PTR_NULL(mm_realloc(NULL, NULL, 16));
    CU_ASSERT_PTR_NULL(mm_memalign(NULL, 16, 16));
    mm_free(NULL, &x);
    CU_ASSERT_EQUAL(mm_malloc_size(NULL, &x), 0);
    CU_ASSERT(!mm_heapmember(NULL, &x));
    mm_detach(NULL);
    mm_uninitialize(NULL);
    mm_addregion(NULL, &x, sizeof(x));
}

static void test_strerror(void)
{
    enum mm_error all[] = {MM_OK,       MM_ERR_NOMEM,   MM_ERR_INVAL,  MM_ERR_BROKEN,
                           MM_ERR_LOCK, MM_ERR_HANDLES, MM_ERR_NOTHEAP};
    size_t n = sizeof(all) / sizeof(all[0]);
    for (size_t i = 0; i < n; i++) {
        const char *s = mm_strerror(all[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            CU_ASSERT(strcmp(s, mm_strerror(all[j])) != 0);
    }
    CU_ASSERT_PTR_NOT_NULL(mm_strerror((enum mm_error)99));
    CU_ASSERT_PTR_NOT_NULL(mm_strerror((enum mm_error) - 1));
}

/* ---- memdump (what every build shows; debug records: test_heap_debug.c) ---- */

struct dump_log {
    size_t n, stop_after;
    size_t allocated, free;
    void *mem[64];
    struct mm_block_info info[64];
};

static bool dump_record(void *arg, const struct mm_block_info *b)
{
    struct dump_log *log = arg;
    if (log->n < 64) {
        log->mem[log->n] = b->mem;
        log->info[log->n] = *b;
    }
    log->n++;
    if (b->allocated)
        log->allocated++;
    else
        log->free++;
    return log->stop_after == 0 || log->n < log->stop_after;
}

static void test_memdump(void)
{
    struct th t;
    th_open(&t, HW_HEAP_SIZE);
    size_t sizes[] = {10, 200, 30, 4000, 1};
    void *p[5];
    for (int i = 0; i < 5; i++)
        p[i] = mm_malloc(t.h, sizes[i]);
    mm_free(t.h, p[1]);

    /* NULL filter: the allocated chunks, in address order. */
    struct dump_log log = {0};
    CU_ASSERT_EQUAL(mm_memdump(t.h, NULL, dump_record, &log), 4);
    CU_ASSERT_EQUAL(log.n, 4);
    CU_ASSERT_EQUAL(log.allocated, 4);
    int k = 0;
    for (int i = 0; i < 5; i++) {
        if (i == 1)
            continue;
        CU_ASSERT_PTR_EQUAL(log.mem[k], p[i]);
        CU_ASSERT(log.info[k].allocated);
        CU_ASSERT(log.info[k].size >= sizes[i]);
#if MM_CONFIG_DEBUG
        CU_ASSERT_EQUAL(log.info[k].size, sizes[i]);
#else
        CU_ASSERT_EQUAL(log.info[k].size, mm_malloc_size(t.h, p[i]));
        CU_ASSERT_EQUAL(log.info[k].owner, 0);
        CU_ASSERT_EQUAL(log.info[k].seq, 0);
        CU_ASSERT_EQUAL(log.info[k].line, 0);
        CU_ASSERT_EQUAL(log.info[k].file[0], '\0');
#endif
        k++;
    }
    /* Free chunks only: the hole and the tail. */
    struct mm_dump_filter f = {.kinds = MM_DUMP_FREE};
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(mm_memdump(t.h, &f, dump_record, &log), 2);
    CU_ASSERT_EQUAL(log.free, 2);
    CU_ASSERT_EQUAL(log.allocated, 0);
    CU_ASSERT_EQUAL(log.n, mm_mallinfo(t.h).ordblks);
    /* Both kinds. */
    f.kinds = MM_DUMP_FREE | MM_DUMP_ALLOCATED;
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(mm_memdump(t.h, &f, dump_record, &log), 6);
    CU_ASSERT(log.allocated == 4 && log.free == 2);
    /* No kinds: nothing. */
    f.kinds = 0;
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(mm_memdump(t.h, &f, dump_record, &log), 0);
    CU_ASSERT_EQUAL(log.n, 0);
    /* The callback stops the walk. */
    f.kinds = MM_DUMP_FREE | MM_DUMP_ALLOCATED;
    memset(&log, 0, sizeof(log));
    log.stop_after = 2;
    CU_ASSERT_EQUAL(mm_memdump(t.h, &f, dump_record, &log), 2);
    CU_ASSERT_EQUAL(log.n, 2);
    for (int i = 0; i < 5; i++)
        if (i != 1)
            mm_free(t.h, p[i]);
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(mm_memdump(t.h, NULL, dump_record, &log), 0);
    th_close(&t, true);
}

int main(void)
{
    static const struct tu_test tests[] = {
#if MM_CONFIG_MULTIPROCESS && !defined(TU_RAM_TINY)
        TU_TEST(test_handles_exhaust_and_release),
#endif
        TU_TEST(test_initialize_bad_args),
        TU_TEST(test_initialize_sizes),
#if HAVE_MODEL_LIMIT_TEST
        TU_TEST(test_initialize_model_limit),
#endif
#if MM_CONFIG_MULTIPROCESS && !defined(TU_RAM_TINY)
        TU_TEST(test_attach),
#endif
#if MM_CONFIG_MULTIPROCESS
        TU_TEST(test_attach_garbage),
#endif
        TU_TEST(test_uninitialize),
#if MM_CONFIG_MULTIPROCESS
        TU_TEST(test_last_error_per_handle),
#endif
#ifndef TU_RAM_TINY
        TU_TEST(test_addregion_used_when_first_full),
#endif
#ifndef TU_RAM_TINY
        TU_TEST(test_addregion_rejects),
#endif
        TU_TEST(test_malloc_sizes_and_alignment),
        TU_TEST(test_malloc_zero),
        TU_TEST(test_malloc_too_large),
        TU_TEST(test_malloc_adjacency),
        TU_TEST(test_calloc),
        TU_TEST(test_zalloc),
        TU_TEST(test_realloc_null_and_zero),
        TU_TEST(test_realloc_grow_in_place),
        TU_TEST(test_realloc_shrink_in_place),
        TU_TEST(test_realloc_grow_backward),
        TU_TEST(test_realloc_move),
        TU_TEST(test_realloc_failure_keeps_block),
        TU_TEST(test_realloc_bad_pointer),
        TU_TEST(test_memalign),
        TU_TEST(test_memalign_bad),
        TU_TEST(test_memalign_waste),
#ifndef TU_RAM_TINY
        TU_TEST(test_malloc_size),
#endif
#ifndef TU_RAM_TINY
        TU_TEST(test_heapmember),
#endif
        TU_TEST(test_mallinfo_exact),
        TU_TEST(test_stats_counters),
        TU_TEST(test_checkcorruption_detects),
#ifndef TU_RAM_TINY
        TU_TEST(test_free_foreign),
#endif
        TU_TEST(test_double_free),
        TU_TEST(test_misuse_callback_unlocked),
        TU_TEST(test_free_null),
        TU_TEST(test_huge_sizes_and_bad_alignments),
        TU_TEST(test_null_handle),
        TU_TEST(test_strerror),
        TU_TEST(test_memdump),
        TU_END,
    };
    return tu_main("heap", tests);
}
