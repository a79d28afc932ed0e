/*
 * test_heap_stress.c - randomized stress of the mm heap against a shadow
 * model: a million mixed operations (malloc, calloc, zalloc, realloc,
 * memalign, free) on one heap, every live block's bytes checked before it
 * is freed or moved, mm_mallinfo checked against the shadow every thousand
 * operations and mm_checkcorruption every hundred thousand; then the same
 * over two regions, and with threads sharing the heap.
 *
 * Seeded with tu_seed(); a failure prints the seed (MMSRV_TEST_SEED=...)
 * and the operation number, so it can be replayed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef TU_TARGET /* microcontroller builds: tests/target */
#include <pthread.h>
#endif

#include "heap_work.h"
#include "mm/mm.h"
#include "test_util.h"

#if defined(TU_RAM_TINY)
/* A microcontroller with a few KiB of RAM (AVR): a shadow to match. */
#define STRESS_HEAP ((size_t)0x1000)
#define STRESS_LIVE 32
#elif MM_CONFIG_SMALL
#define STRESS_HEAP ((size_t)0x10000)
#define STRESS_LIVE 128
#elif defined(TU_TARGET)
/* Microcontrollers with megabytes (Cortex-M and RISC-V boards in QEMU). */
#define STRESS_HEAP ((size_t)1 << 20)
#define STRESS_LIVE 1000
#else
#define STRESS_HEAP ((size_t)64 << 20)
#define STRESS_LIVE 4000
#endif
/* Two regions in a heap small enough to fill up in the large model too. */
#if defined(TU_RAM_TINY)
#define REGIONS_HEAP ((size_t)0x1000)
#elif MM_CONFIG_SMALL
#define REGIONS_HEAP ((size_t)0x10000)
#elif defined(TU_TARGET)
#define REGIONS_HEAP ((size_t)1 << 20)
#else
#define REGIONS_HEAP ((size_t)4 << 20)
#endif
/* The gap between the two regions. */
#define REGIONS_GAP (REGIONS_HEAP / 16 < 4096 ? REGIONS_HEAP / 16 : 4096)
/* Microcontrollers run a shortened stress: an emulator is slower. */
#if defined(TU_RAM_TINY)
#define STRESS_OPS     4000L
#define MALLINFO_EVERY 250
#define CHECK_EVERY    1000
#elif defined(TU_TARGET)
#define STRESS_OPS     50000L
#define MALLINFO_EVERY 1000
#define CHECK_EVERY    10000
#else
#define STRESS_OPS     1000000L
#define MALLINFO_EVERY 1000
#define CHECK_EVERY    100000
#endif

static uint8_t *map_mem(size_t size)
{
    void *p = tu_mem_alloc(size);
    CU_ASSERT_FATAL(p != NULL);
    return p;
}

/* Print the worker's first problem and fail the test there. */
#define ASSERT_WORKER(w, cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("\n    worker %llu: %s\n", (unsigned long long)(w)->id, (w)->err);              \
            CU_FAIL_FATAL(#cond);                                                                  \
        }                                                                                          \
    } while (0)

/* mm_mallinfo against the shadow: counts, byte totals, and the sum of used
 * and free bytes that no operation changes. */
static void check_mallinfo(struct hw_worker *w, const struct mm_mallinfo_s *mi0)
{
    struct mm_mallinfo_s mi = mm_mallinfo(w->h);
    size_t least = 0, most = 0;
    for (size_t i = 0; i < w->live; i++) {
        least += hw_chunk_for(w->blocks[i].size);
        most += hw_chunk_max(w->blocks[i].size);
    }
#if !MM_CONFIG_DEBUG
    /* Release builds: each chunk is its usable bytes plus the header. */
    size_t exact = 0;
    for (size_t i = 0; i < w->live; i++)
        exact += mm_malloc_size(w->h, w->blocks[i].p) + MM_OVERHEAD;
    if (mi.uordblks != exact)
        printf("\n    op %llu: uordblks %zu, chunks of the live blocks %zu\n",
               (unsigned long long)w->ops, mi.uordblks, exact);
    CU_ASSERT_EQUAL_FATAL(mi.uordblks, exact);
#endif
    if (mi.aordblks != w->live || mi.uordblks < least || mi.uordblks > most ||
        mi.uordblks + mi.fordblks != mi0->fordblks)
        printf("\n    op %llu: live %zu aordblks %zu uordblks %zu (%zu..%zu) fordblks %zu "
               "(sum %zu, was %zu)\n",
               (unsigned long long)w->ops, w->live, mi.aordblks, mi.uordblks, least, most,
               mi.fordblks, mi.uordblks + mi.fordblks, mi0->fordblks);
    CU_ASSERT_EQUAL_FATAL(mi.aordblks, w->live);
    CU_ASSERT_FATAL(mi.uordblks >= least && mi.uordblks <= most);
    CU_ASSERT_EQUAL_FATAL(mi.uordblks + mi.fordblks, mi0->fordblks);
    CU_ASSERT_EQUAL_FATAL(mi.arena, mi0->arena);
    CU_ASSERT_FATAL(mi.mxordblk <= mi.fordblks);
    CU_ASSERT_FATAL((mi.ordblks == 0) == (mi.fordblks == 0));
    CU_ASSERT_FATAL(mi.ordblks <= w->live + mi0->ordblks);
}

/* The heap after everything was freed: as new, clean, no misuse seen. */
static void check_empty(struct mm_heap_s *h, const struct mm_mallinfo_s *mi0)
{
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    CU_ASSERT_EQUAL(mi.arena, mi0->arena);
    CU_ASSERT_EQUAL(mi.ordblks, mi0->ordblks);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.uordblks, 0);
    CU_ASSERT_EQUAL(mi.fordblks, mi0->fordblks);
    CU_ASSERT_EQUAL(mi.mxordblk, mi0->mxordblk);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    struct mm_heap_stats st = mm_heap_stats(h);
    CU_ASSERT_EQUAL(st.double_frees, 0);
    CU_ASSERT_EQUAL(st.foreign_frees, 0);
    CU_ASSERT_EQUAL(st.guard_errors, 0);
    CU_ASSERT_EQUAL(st.recoveries, 0);
    CU_ASSERT_EQUAL(st.repairs, 0);
}

/* Run ops operations of one exclusive worker with every check. */
static void run_single(struct mm_heap_s *h, size_t heap_size, size_t max_live, long ops,
                       uint64_t id)
{
    static struct hw_block blocks[STRESS_LIVE];
    struct hw_config cfg;
    hw_config_default(&cfg, heap_size, max_live);
    cfg.exclusive = true;
    struct hw_worker w;
    hw_init(&w, h, &cfg, blocks, id, tu_seed());
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);
    uint64_t t0 = tu_now_ms();
    for (long i = 1; i <= ops; i++) {
        ASSERT_WORKER(&w, hw_step(&w));
        if (i % MALLINFO_EVERY == 0)
            check_mallinfo(&w, &mi0);
        if (i % CHECK_EVERY == 0) {
            CU_ASSERT_EQUAL_FATAL(mm_checkcorruption(h), 0);
            ASSERT_WORKER(&w, hw_verify_all(&w));
        }
    }
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    ASSERT_WORKER(&w, hw_free_all(&w));
    check_empty(h, &mi0);
    struct mm_heap_stats st = mm_heap_stats(h);
    /* unsigned long: AVR's printf has no %llu */
    printf("\n    %ld ops in %lu ms, %lu refused for lack of memory, mallocs %lu frees %lu ", ops,
           (unsigned long)(tu_now_ms() - t0), (unsigned long)w.nomem, (unsigned long)st.mallocs,
           (unsigned long)st.frees);
}

static void test_stress_one_region(void)
{
    uint8_t *mem = map_mem(STRESS_HEAP);
    struct mm_heap_s *h = mm_initialize("stress", mem, STRESS_HEAP);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    run_single(h, STRESS_HEAP, STRESS_LIVE, STRESS_OPS, 1);
    mm_detach(h);
    tu_mem_free(mem, STRESS_HEAP);
}

/* The same over two regions with a gap between them: chunks never cross. */
static void test_stress_two_regions(void)
{
    uint8_t *mem = map_mem(REGIONS_HEAP);
    size_t half = REGIONS_HEAP / 2;
    struct mm_heap_s *h = mm_initialize("stress2", mem, half - REGIONS_GAP);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    mm_addregion(h, mem + half, half);
    CU_ASSERT_EQUAL_FATAL(mm_mallinfo(h).ordblks, 2);
    run_single(h, REGIONS_HEAP, STRESS_LIVE, STRESS_OPS / 5, 2);
    CU_ASSERT_EQUAL(mm_mallinfo(h).ordblks, 2);
    mm_detach(h);
    tu_mem_free(mem, REGIONS_HEAP);
}

#ifndef TU_TARGET
/* Threads: two share the creator's handle, two attach handles of their own. */
#define NTHREADS   4
#define THREAD_OPS 100000
#if MM_CONFIG_SMALL
#define THREAD_LIVE 24
#else
#define THREAD_LIVE 500
#endif

struct thread_arg {
    struct hw_worker w;
    struct hw_block blocks[THREAD_LIVE];
    uint8_t *mem;
    struct mm_heap_s *shared;
    int own_handle;
    bool ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    struct mm_heap_s *h = a->own_handle ? mm_attach(a->mem, STRESS_HEAP) : a->shared;
    if (h == NULL) {
        snprintf(a->w.err, sizeof(a->w.err), "mm_attach failed");
        return NULL;
    }
    a->w.h = h;
    bool ok = true;
    for (long i = 0; i < THREAD_OPS && ok; i++)
        ok = hw_step(&a->w);
    ok = ok && hw_free_all(&a->w);
    if (a->own_handle)
        mm_detach(h);
    a->ok = ok;
    return NULL;
}

static void test_stress_threads(void)
{
    uint8_t *mem = map_mem(STRESS_HEAP);
    struct mm_heap_s *h = mm_initialize("threads", mem, STRESS_HEAP);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);
    static struct thread_arg args[NTHREADS];
    pthread_t tid[NTHREADS];
    struct hw_config cfg;
    hw_config_default(&cfg, STRESS_HEAP / NTHREADS, THREAD_LIVE);
    cfg.phase_ops = 5000;
    for (int i = 0; i < NTHREADS; i++) {
        hw_init(&args[i].w, h, &cfg, args[i].blocks, 10 + (uint64_t)i, tu_seed());
        args[i].mem = mem;
        args[i].shared = h;
        args[i].own_handle = i % 2;
        args[i].ok = false;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&tid[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(tid[i], NULL);
        ASSERT_WORKER(&args[i].w, args[i].ok);
    }
    check_empty(h, &mi0);
    mm_detach(h);
    tu_mem_free(mem, STRESS_HEAP);
}
#endif /* !TU_TARGET */

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_stress_one_region),
        TU_TEST(test_stress_two_regions),
#ifndef TU_TARGET
        TU_TEST(test_stress_threads),
#endif
        TU_END,
    };
    return tu_main("heap_stress", tests);
}
