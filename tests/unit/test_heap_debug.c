/*
 * test_heap_debug.c - the debug records of MM_CONFIG_DEBUG builds: what
 * mm_memdump reports per block (owner, sequence, file and line, size asked
 * for) and how its filter selects blocks; the fill of freed memory; the
 * guard after each block, checked on free and by mm_checkcorruption.
 *
 * Runs in the debug variants only.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap_work.h"
#include "mm/mm.h"
#include "test_util.h"

#if !MM_CONFIG_DEBUG
#error "test_heap_debug.c is for MM_CONFIG_DEBUG builds"
#endif

/* A heap in shared memory, so that a child's blocks are the parent's to see. */
struct th {
    int fd;
    uint8_t *mem;
    struct mm_heap_s *h;
    struct mm_mallinfo_s mi0;
};

static void th_open(struct th *t)
{
    t->fd = tu_shm_create(HW_HEAP_SIZE);
    CU_ASSERT_FATAL(t->fd >= 0);
    t->mem = tu_shm_map(t->fd, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->mem);
    t->h = mm_initialize("debug", t->mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->h);
    t->mi0 = mm_mallinfo(t->h);
}

static void th_close(struct th *t)
{
    CU_ASSERT_EQUAL(mm_checkcorruption(t->h), 0);
    mm_detach(t->h);
    tu_shm_unmap(t->mem, HW_HEAP_SIZE);
    close(t->fd);
}

/* The file and line arguments of a call, noting the line in var. */
#define HERE(var) __FILE__, ((var) = __LINE__)

static size_t dump(struct mm_heap_s *h, const struct mm_dump_filter *f, struct hw_dump *d)
{
    memset(d, 0, sizeof(*d));
    size_t n = mm_memdump(h, f, hw_dump_record, d);
    CU_ASSERT_EQUAL(n, d->n);
    return n;
}

static void test_records(void)
{
    struct th t;
    th_open(&t);
    char file[16];
    hw_record_file(file, __FILE__);
    uint32_t pid = (uint32_t)getpid();

    int l1, l2, l3, l4;
    void *a = mm_malloc_at(t.h, 10, HERE(l1));
    void *b = mm_malloc_at(t.h, 333, HERE(l2));
    void *c = mm_memalign_at(t.h, 256, 50, HERE(l3));
    void *d = mm_malloc(t.h, 7);
    void *e = mm_calloc(t.h, 3, 9);
    void *g = mm_malloc_at(t.h, 1, "/a/very/long/path/to/some_source_file_name.c", 77);
    void *n = mm_malloc_at(t.h, 1, NULL, 5);
    CU_ASSERT_FATAL(a && b && c && d && e && g && n);

    struct hw_dump dd;
    CU_ASSERT_EQUAL(dump(t.h, NULL, &dd), 7);
    const void *order[7] = {a, b, c, d, e, g, n};
    size_t sizes[7] = {10, 333, 50, 7, 27, 1, 1};
    uint32_t seq_prev = 0;
    for (int i = 0; i < 7; i++) {
        const struct mm_block_info *r = hw_dump_find(&dd, order[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT(r->allocated);
        CU_ASSERT_EQUAL(r->owner, pid);
        CU_ASSERT_EQUAL(r->size, sizes[i]);
        CU_ASSERT(r->seq > seq_prev); /* allocation order */
        seq_prev = r->seq;
    }
    const struct mm_block_info *r;
    r = hw_dump_find(&dd, a);
    CU_ASSERT_STRING_EQUAL(r->file, file);
    CU_ASSERT_EQUAL(r->line, l1);
    r = hw_dump_find(&dd, b);
    CU_ASSERT_STRING_EQUAL(r->file, file);
    CU_ASSERT_EQUAL(r->line, l2);
    r = hw_dump_find(&dd, c);
    CU_ASSERT_STRING_EQUAL(r->file, file);
    CU_ASSERT_EQUAL(r->line, l3);
    /* No file given: none recorded. */
    r = hw_dump_find(&dd, d);
    CU_ASSERT_STRING_EQUAL(r->file, "");
    CU_ASSERT_EQUAL(r->line, 0);
    r = hw_dump_find(&dd, e);
    CU_ASSERT_STRING_EQUAL(r->file, "");
    r = hw_dump_find(&dd, n);
    CU_ASSERT_STRING_EQUAL(r->file, "");
    /* A long path: its base name, truncated and terminated. */
    r = hw_dump_find(&dd, g);
    CU_ASSERT_STRING_EQUAL(r->file, "some_source_fil");
    CU_ASSERT_EQUAL(r->line, 77);

    /* realloc records the new size and, when it moves, the new place. */
    uint32_t seq_b = hw_dump_find(&dd, b)->seq;
    void *b2 = mm_realloc_at(t.h, b, 5000, HERE(l4));
    CU_ASSERT_FATAL(b2 != NULL && b2 != b);
    void *a2 = mm_realloc_at(t.h, a, 5, __FILE__, __LINE__); /* shrinks in place */
    CU_ASSERT_PTR_EQUAL(a2, a);
    dump(t.h, NULL, &dd);
    CU_ASSERT_PTR_NULL(hw_dump_find(&dd, b));
    r = hw_dump_find(&dd, b2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->size, 5000);
    CU_ASSERT_EQUAL(r->line, l4);
    CU_ASSERT(r->seq > seq_b);
    CU_ASSERT_EQUAL(hw_dump_find(&dd, a)->size, 5);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, a), 5);

    mm_free(t.h, a);
    mm_free(t.h, b2);
    mm_free(t.h, c);
    mm_free(t.h, d);
    mm_free(t.h, e);
    mm_free(t.h, g);
    mm_free(t.h, n);
    CU_ASSERT_EQUAL(dump(t.h, NULL, &dd), 0);
    th_close(&t);
}

/* A child's allocations, to filter by owner. */
static int child_allocates(struct mm_heap_s *h, int lines[3])
{
    for (int i = 0; i < 3; i++)
        if (mm_malloc_at(h, 40 + (size_t)i, __FILE__, lines[i]) == NULL)
            return 1;
    return 0;
}

static void test_filters(void)
{
    struct th t;
    th_open(&t);
    uint32_t pid = (uint32_t)getpid();
    void *mine[5];
    for (int i = 0; i < 5; i++)
        mine[i] = mm_malloc_at(t.h, 16 + (size_t)i, __FILE__, 1000 + i);
    int lines[3] = {2001, 2002, 2003};
    fflush(stdout);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0)
        _exit(child_allocates(t.h, lines));
    CU_ASSERT(tu_exited_ok(tu_wait_child(child, 10000)));
    mm_free(t.h, mine[1]); /* a hole */

    struct hw_dump d;
    /* Everything allocated, by anyone. */
    CU_ASSERT_EQUAL(dump(t.h, NULL, &d), 7);
    struct mm_dump_filter f = {.kinds = MM_DUMP_ALLOCATED};
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 7);
    /* By owner. */
    f.owner = pid;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 4);
    for (size_t i = 0; i < d.n; i++)
        CU_ASSERT_EQUAL(d.b[i].owner, pid);
    f.owner = (uint32_t)child;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 3);
    for (size_t i = 0; i < d.n; i++) {
        CU_ASSERT_EQUAL(d.b[i].owner, (uint32_t)child);
        CU_ASSERT_EQUAL(d.b[i].line, 2001 + (int)i);
        CU_ASSERT_EQUAL(d.b[i].size, 40 + i);
    }
    uint32_t child_seq0 = d.b[0].seq;
    f.owner = 0x7ffffff0u; /* nobody */
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 0);

    /* By sequence: the child's came after the parent's five. */
    f.owner = 0;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 7);
    uint32_t seq[7];
    for (int i = 0; i < 7; i++)
        seq[i] = d.b[i].seq;
    for (int i = 1; i < 7; i++)
        CU_ASSERT(seq[i] > seq[i - 1]);
    CU_ASSERT_EQUAL(seq[4], child_seq0); /* after m0, m2, m3, m4 */
    f.seq_min = seq[2];
    f.seq_max = seq[4];
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 3);
    for (size_t i = 0; i < d.n; i++)
        CU_ASSERT(d.b[i].seq >= seq[2] && d.b[i].seq <= seq[4]);
    f.seq_min = seq[5];
    f.seq_max = UINT32_MAX;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 2);
    f.seq_min = 0;
    f.seq_max = seq[1];
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 2);
    f.seq_min = seq[3];
    f.seq_max = seq[3];
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 1);
    CU_ASSERT_EQUAL(d.b[0].seq, seq[3]);
    f.seq_min = seq[6] + 1;
    f.seq_max = seq[6] + 100;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 0);
    /* Owner and sequence together: m2, m3, m4. */
    f.owner = pid;
    f.seq_min = seq[1];
    f.seq_max = seq[6];
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 3);

    /* Free chunks: the hole and the tail, with no records. */
    memset(&f, 0, sizeof(f));
    f.kinds = MM_DUMP_FREE;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 2);
    CU_ASSERT_EQUAL(d.n, mm_mallinfo(t.h).ordblks);
    for (size_t i = 0; i < d.n; i++) {
        CU_ASSERT(!d.b[i].allocated);
        CU_ASSERT_EQUAL(d.b[i].owner, 0);
        CU_ASSERT_EQUAL(d.b[i].seq, 0);
        CU_ASSERT_EQUAL(d.b[i].line, 0);
        CU_ASSERT_STRING_EQUAL(d.b[i].file, "");
    }
    f.kinds = MM_DUMP_FREE | MM_DUMP_ALLOCATED;
    CU_ASSERT_EQUAL(dump(t.h, &f, &d), 9);

    /* Clean up, the child's blocks too (found through the dump). */
    f.kinds = MM_DUMP_ALLOCATED;
    dump(t.h, &f, &d);
    for (size_t i = 0; i < d.n; i++)
        mm_free(t.h, d.b[i].mem);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.fordblks, t.mi0.fordblks);
    th_close(&t);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void test_free_fill(void)
{
    struct th t;
    th_open(&t);
    const uint8_t fill = (uint8_t)MM_CONFIG_FREE_FILL;
    size_t sizes[] = {32, 100, 256, 4096};
    for (int i = 0; i < 4; i++) {
        size_t n = sizes[i];
        uint8_t *g1 = mm_malloc(t.h, 8), *p = mm_malloc(t.h, n), *g2 = mm_malloc(t.h, 24);
        CU_ASSERT_FATAL(g1 && p && g2);
        memset(p, 0xaa, n);
        memset(g2, 0xbb, 24);
        /* Freed, not reused yet: filled past the list links. */
        mm_free(t.h, p);
        CU_ASSERT(all_bytes(p + 16, n - 16, fill));
        /* Merged into a free neighbour: that one's bytes are filled too. */
        mm_free(t.h, g2);
        CU_ASSERT(all_bytes(p + 16, n - 16, fill));
        CU_ASSERT(all_bytes(g2, 24, fill));
        mm_free(t.h, g1);
        CU_ASSERT(all_bytes(p + 16, n - 16, fill));
        CU_ASSERT(all_bytes(g2, 24, fill));
    }
    /* The fill says nothing wrong to the checker. */
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).fordblks, t.mi0.fordblks);
    th_close(&t);
}

static void test_guard(void)
{
    struct th t;
    th_open(&t);
    struct hw_misuse_log log;
    mm_set_misuse_callback(hw_misuse_record, &log);
    /* Sizes on and off the alignment: the guard starts right after the
     * bytes asked for. */
    size_t sizes[] = {1, 13, 16, 100, 1023};
    for (int i = 0; i < 5; i++) {
        size_t n = sizes[i];
        for (size_t past = 0; past < 4; past++) {
            uint8_t *p = mm_malloc(t.h, n), *g = mm_malloc(t.h, 8);
            CU_ASSERT_FATAL(p && g);
            /* Every usable byte may be written. */
            memset(p, 0x11, mm_malloc_size(t.h, p));
            CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
            p[n + past] ^= 0x5a;
            CU_ASSERT(mm_checkcorruption(t.h) > 0);
            struct mm_heap_stats s0 = mm_heap_stats(t.h);
            memset(&log, 0, sizeof(log));
            mm_free(t.h, p);
            struct mm_heap_stats s1 = mm_heap_stats(t.h);
            CU_ASSERT_EQUAL(s1.guard_errors, s0.guard_errors + 1);
            CU_ASSERT_EQUAL(log.count, 1);
            CU_ASSERT_EQUAL(log.what, MM_MISUSE_GUARD);
            CU_ASSERT_PTR_EQUAL(log.mem, p);
            CU_ASSERT_PTR_EQUAL(log.heap, t.h);
            /* Reported, not spread: the heap checks clean and works. */
            CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
            mm_free(t.h, g);
            CU_ASSERT_EQUAL(mm_mallinfo(t.h).aordblks, 0);
            void *q = mm_malloc(t.h, n);
            CU_ASSERT_PTR_NOT_NULL(q);
            mm_free(t.h, q);
            CU_ASSERT_EQUAL(log.count, 1);
        }
    }
    /* A block written exactly to its end frees without complaint. */
    memset(&log, 0, sizeof(log));
    uint8_t *p = mm_malloc(t.h, 77);
    memset(p, 0x22, 77);
    mm_free(t.h, p);
    CU_ASSERT_EQUAL(log.count, 0);
    mm_set_misuse_callback(NULL, NULL);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).fordblks, t.mi0.fordblks);
    th_close(&t);
}

/* realloc keeps the guard after the new size: writing past it is caught. */
static void test_guard_after_realloc(void)
{
    struct th t;
    th_open(&t);
    uint8_t *p = mm_malloc(t.h, 100), *g = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(p && g);
    p = mm_realloc(t.h, p, 40); /* in place */
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    p[40] ^= 1;
    CU_ASSERT(mm_checkcorruption(t.h) > 0);
    p[40] ^= 1;
    p = mm_realloc(t.h, p, 3000); /* moves */
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    p[3000] ^= 1;
    CU_ASSERT(mm_checkcorruption(t.h) > 0);
    struct mm_heap_stats s0 = mm_heap_stats(t.h);
    mm_free(t.h, p);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).guard_errors, s0.guard_errors + 1);
    /* A block overrun and then moved by realloc: the old block is freed,
     * so its guard is checked too. */
    p = mm_malloc(t.h, 100);
    uint8_t *g2 = mm_malloc(t.h, 8);
    CU_ASSERT_FATAL(p && g2);
    tu_pattern_fill(p, 100, 3);
    p[100] ^= 1;
    struct hw_misuse_log log = {0};
    mm_set_misuse_callback(hw_misuse_record, &log);
    s0 = mm_heap_stats(t.h);
    uint8_t *p2 = mm_realloc(t.h, p, 2000);
    mm_set_misuse_callback(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p2);
    CU_ASSERT(p2 != p);
    CU_ASSERT_EQUAL(tu_pattern_check(p2, 100, 3), 100);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).guard_errors, s0.guard_errors + 1);
    CU_ASSERT_EQUAL(log.count, 1);
    CU_ASSERT_EQUAL(log.what, MM_MISUSE_GUARD);
    CU_ASSERT_EQUAL(mm_checkcorruption(t.h), 0);
    mm_free(t.h, p2);
    mm_free(t.h, g2);
    mm_free(t.h, g);
    CU_ASSERT_EQUAL(mm_mallinfo(t.h).fordblks, t.mi0.fordblks);
    th_close(&t);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_records),
        TU_TEST(test_filters),
        TU_TEST(test_free_fill),
        TU_TEST(test_guard),
        TU_TEST(test_guard_after_realloc),
        TU_END,
    };
    return tu_main("heap_debug", tests);
}
