/*
 * test_share.c - processes share a heap region through mmsrvd.
 *
 * One client process allocates blocks in a heap region and writes a pattern
 * into each; it tells another process where they are by offset (a pipe);
 * that one attaches the region on its own, maps it at another address,
 * checks every byte and frees the blocks.  The daemon's figures and the
 * heap's own check must come back clean.  Also: one process mapping the
 * same region twice, and a region destroyed while attached.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define REGION    "shared-heap"
#define HEAP_SIZE (1u << 20)
#define NBLOCKS   32

static struct td_daemon g_d;

static int create_heap(struct mmsrv_client *c, const char *name, uint64_t size)
{
    struct mmsrv_region_spec spec = {
        .name = name, .kind = MMSRV_HEAP, .size = size, .uid = -1, .gid = -1, .mode = -1};
    struct mmsrv_region_info info;
    int rc = mmsrv_create(c, &spec, &info);
    if (rc != 0) {
        fprintf(stderr, "\n    create %s: %d %s\n", name, rc,
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
        return rc;
    }
    if (strcmp(info.name, name) != 0 || info.kind != MMSRV_HEAP || info.size < size)
        return -EPROTO;
    return 0;
}

/* ---- The writer: allocate, fill, tell the offsets -------------------------- */

static int writer_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    struct mmsrv_region *r;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return 2;
    if (mmsrv_attach(c, REGION, 0, &r) != 0)
        return 3;
    IT_CHECK(r->writable);
    IT_CHECK(r->heap != NULL);
    IT_CHECK(r->pool == NULL);
    IT_CHECK(r->size >= HEAP_SIZE);
    IT_CHECK(r->info.kind == MMSRV_HEAP);
    if (r->heap == NULL)
        return 4;

    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    void *blocks[NBLOCKS];
    for (int i = 0; i < NBLOCKS; i++) {
        size_t len = (size_t)tu_rng_range(&rng, 1, 6000);
        uint64_t key = tu_seed() + (uint64_t)i;
        blocks[i] = mm_malloc(r->heap, len);
        IT_CHECK(blocks[i] != NULL);
        if (blocks[i] == NULL)
            return 5;
        tu_pattern_fill(blocks[i], len, key);
        uint64_t off = mmsrv_offset(r, blocks[i]);
        IT_CHECK(off != UINT64_MAX && off < r->size);
        IT_CHECK(mmsrv_pointer(r, off, len) == blocks[i]);
        it_put(wr, off);
        it_put(wr, len);
        it_put(wr, key);
    }
    it_put(wr, (uint64_t)(uintptr_t)r->base);

    /* The reader has freed them and detached: they are free here too. */
    uint64_t go;
    IT_CHECK(it_get(rd, &go, IT_WAIT_MS) == 0);
    for (int i = 0; i < NBLOCKS; i++)
        IT_CHECK_EQ(mm_malloc_size(r->heap, blocks[i]), 0);
    IT_CHECK_EQ(mm_checkcorruption(r->heap), 0);
    IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    mmsrv_disconnect(c);
    return 0;
}

/* ---- The reader: attach elsewhere, check, free ------------------------------ */

static int reader_child(void *arg, int rd, int wr)
{
    (void)arg;
    /* Take the address range the writer's mapping got, so that this one
     * maps the region somewhere else. */
    void *hole = mmap(NULL, 4u * HEAP_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    IT_CHECK(hole != MAP_FAILED);

    struct mmsrv_client *c;
    struct mmsrv_region *r;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return 2;
    if (mmsrv_attach(c, REGION, 0, &r) != 0)
        return 3;
    if (r->heap == NULL)
        return 4;

    uint64_t writer_base = 0;
    for (int i = 0; i < NBLOCKS; i++) {
        uint64_t off, len, key;
        if (it_get(rd, &off, IT_WAIT_MS) != 0 || it_get(rd, &len, IT_WAIT_MS) != 0 ||
            it_get(rd, &key, IT_WAIT_MS) != 0)
            return 5;
        uint8_t *p = mmsrv_pointer(r, off, len);
        IT_CHECK(p != NULL);
        if (p == NULL)
            continue;
        IT_CHECK_EQ(tu_pattern_check(p, len, key), len);
        IT_CHECK(mm_malloc_size(r->heap, p) >= len);
        IT_CHECK(mm_heapmember(r->heap, p));
        mm_free(r->heap, p);
    }
    IT_CHECK(it_get(rd, &writer_base, IT_WAIT_MS) == 0);
    if ((uintptr_t)r->base == writer_base)
        fprintf(stderr, "    (note: reader mapped the region where the writer did)\n");

    /* Offsets outside the region are refused both ways. */
    int local = 0;
    IT_CHECK(mmsrv_pointer(r, r->size, 1) == NULL);
    IT_CHECK(mmsrv_pointer(r, r->size - 8, 16) == NULL);
    IT_CHECK(mmsrv_pointer(r, UINT64_MAX - 4, 8) == NULL);
    IT_CHECK_EQ(mmsrv_offset(r, (char *)r->base + r->size), UINT64_MAX);
    IT_CHECK_EQ(mmsrv_offset(r, &local), UINT64_MAX);
    IT_CHECK_EQ(mmsrv_offset(r, r->base), 0);

    IT_CHECK_EQ(mm_checkcorruption(r->heap), 0);
    it_put(wr, 1); /* freed, still attached */
    uint64_t go;
    IT_CHECK(it_get(rd, &go, IT_WAIT_MS) == 0);
    IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    mmsrv_disconnect(c);
    if (hole != MAP_FAILED)
        munmap(hole, 4u * HEAP_SIZE);
    return 0;
}

struct attached_arg {
    struct mmsrv_client *c;
    uint32_t want;
};

static int attached_is(void *p)
{
    struct attached_arg *a = p;
    struct mmsrv_stats st;
    return mmsrv_stats(a->c, REGION, &st) == 0 && st.nattached == a->want;
}

static void test_two_processes_share_a_heap(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, REGION, HEAP_SIZE), 0);

    struct mmsrv_stats st0, st;
    CU_ASSERT_EQUAL_FATAL(mmsrv_stats(c, REGION, &st0), 0);
    CU_ASSERT_STRING_EQUAL(st0.heap_state, "ok");
    CU_ASSERT_EQUAL(st0.nattached, 0);
    CU_ASSERT(st0.arena > 0 && st0.arena <= HEAP_SIZE + 4096);
    CU_ASSERT(st0.fordblks > HEAP_SIZE / 2);

    struct it_child w, r;
    CU_ASSERT_EQUAL_FATAL(it_spawn(&w, writer_child, NULL), 0);
    uint64_t msgs[NBLOCKS * 3 + 1];
    bool got_all = true;
    for (size_t i = 0; i < NBLOCKS * 3 + 1 && got_all; i++)
        got_all = it_get(w.from, &msgs[i], IT_WAIT_MS) == 0;
    CU_ASSERT(got_all);

    if (got_all) {
        /* The writer's blocks count in the daemon's figures. */
        CU_ASSERT_EQUAL(mmsrv_stats(c, REGION, &st), 0);
        CU_ASSERT(st.uordblks > st0.uordblks);
        CU_ASSERT_EQUAL(st.nattached, 1);

        CU_ASSERT_EQUAL_FATAL(it_spawn(&r, reader_child, NULL), 0);
        for (size_t i = 0; i < NBLOCKS * 3 + 1; i++)
            it_put(r.to, msgs[i]);
        uint64_t freed = 0;
        CU_ASSERT_EQUAL(it_get(r.from, &freed, IT_WAIT_MS), 0);
        CU_ASSERT_EQUAL(freed, 1);
        struct attached_arg two = {c, 2};
        CU_ASSERT(tu_wait_until(attached_is, &two, IT_WAIT_MS));
        it_put(r.to, 1);
        CU_ASSERT(tu_exited_ok(it_finish(&r, IT_WAIT_MS)));
    }
    it_put(w.to, 1);
    CU_ASSERT(tu_exited_ok(it_finish(&w, IT_WAIT_MS)));

    /* Both gone: nobody attached, every block back, the heap sound. */
    struct attached_arg none = {c, 0};
    CU_ASSERT(tu_wait_until(attached_is, &none, IT_WAIT_MS));
    CU_ASSERT_EQUAL(mmsrv_stats(c, REGION, &st), 0);
    CU_ASSERT_STRING_EQUAL(st.heap_state, "ok");
    CU_ASSERT_EQUAL(st.uordblks, st0.uordblks);
    CU_ASSERT_EQUAL(st.fordblks, st0.fordblks);
    CU_ASSERT_EQUAL(st.ordblks, st0.ordblks);

    struct mmsrv_region *mine;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, REGION, 0, &mine), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mine->heap);
    CU_ASSERT_EQUAL(mm_checkcorruption(mine->heap), 0);
    struct mm_heap_stats hs = mm_heap_stats(mine->heap);
    CU_ASSERT_EQUAL(hs.mallocs, NBLOCKS);
    CU_ASSERT_EQUAL(hs.frees, NBLOCKS);
    CU_ASSERT_EQUAL(hs.double_frees + hs.foreign_frees + hs.recoveries, 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, mine), 0);

    CU_ASSERT_EQUAL(mmsrv_destroy(c, REGION), 0);
    CU_ASSERT_EQUAL(mmsrv_stats(c, REGION, &st), -ENOENT);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

/* One process, two connections, two mappings of one region: what one
 * writes the other reads at the same offset. */
static void test_one_process_two_mappings(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c1, *c2;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c1), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c2), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c1, REGION, HEAP_SIZE), 0);
    struct mmsrv_region *r1, *r2;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c1, REGION, 0, &r1), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c2, REGION, 0, &r2), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r1->heap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r2->heap);
    CU_ASSERT(r1->base != r2->base);
    CU_ASSERT_EQUAL(r1->size, r2->size);

    for (int i = 0; i < 100; i++) {
        size_t len = 8 + (size_t)i * 37;
        uint8_t *p = mm_malloc(r1->heap, len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        tu_pattern_fill(p, len, (uint64_t)i);
        uint8_t *q = mmsrv_pointer(r2, mmsrv_offset(r1, p), len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        CU_ASSERT(q != p);
        CU_ASSERT_EQUAL(tu_pattern_check(q, len, (uint64_t)i), len);
        mm_free(r2->heap, q);
    }
    CU_ASSERT_EQUAL(mm_checkcorruption(r1->heap), 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(r2->heap), 0);
    struct mmsrv_stats st;
    CU_ASSERT_EQUAL(mmsrv_stats(c1, REGION, &st), 0);
    CU_ASSERT_EQUAL(st.nattached, 2);
    mmsrv_disconnect(c2);
    mmsrv_disconnect(c1);
    it_stop(&g_d);
}

/* DestroyRegion while a client holds it: the name is free at once, the
 * holder's mapping keeps working, a new region of that name is new memory. */
static void test_destroy_while_attached(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c, *other;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &other), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, REGION, HEAP_SIZE), 0);
    struct mmsrv_region *old;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, REGION, 0, &old), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old->heap);
    uint8_t *p = mm_malloc(old->heap, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    tu_pattern_fill(p, 4096, 77);
    uint64_t off = mmsrv_offset(old, p);

    CU_ASSERT_EQUAL(mmsrv_destroy(other, REGION), 0);
    struct mmsrv_region *none = NULL;
    CU_ASSERT_EQUAL(mmsrv_attach(other, REGION, 0, &none), -ENOENT);
    CU_ASSERT_STRING_EQUAL(mmsrv_error_name() != NULL ? mmsrv_error_name() : "",
                           "io.mmsrvd.RegionNotFound");
    CU_ASSERT_EQUAL(mmsrv_destroy(other, REGION), -ENOENT);

    /* The name is free at once. */
    CU_ASSERT_EQUAL_FATAL(create_heap(other, REGION, HEAP_SIZE), 0);
    struct mmsrv_region *fresh;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(other, REGION, 0, &fresh), 0);
    uint8_t *q = mmsrv_pointer(fresh, off, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT(tu_pattern_check(q, 4096, 77) != 4096);

    /* The old mapping still works, and the old memory is still there. */
    CU_ASSERT_EQUAL(tu_pattern_check(p, 4096, 77), 4096);
    void *more = mm_malloc(old->heap, 1000);
    CU_ASSERT_PTR_NOT_NULL(more);
    mm_free(old->heap, more);
    mm_free(old->heap, p);
    CU_ASSERT_EQUAL(mm_checkcorruption(old->heap), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, old), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(other, fresh), 0);

    /* One live region of that name (the old one may be listed as
     * destroying until the daemon has reclaimed what its clients owned). */
    struct mmsrv_region_info *list = NULL;
    int n = mmsrv_list(other, &list);
    int live = 0;
    for (int i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL(list[i].name, REGION);
        live += !list[i].destroying;
    }
    CU_ASSERT(n >= 1 && n <= 2);
    CU_ASSERT_EQUAL(live, 1);
    free(list);
    mmsrv_disconnect(other);
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
}

/* Destroy takes effect when the last client detaches: its pages go back
 * to the segment then, while the clients are still connected. */
static void test_destroy_frees_space_at_last_detach(void)
{
    IT_START(&g_d, NULL); /* a 64 MiB segment */
    struct mmsrv_client *a, *b;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &a), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &b), 0);
    CU_ASSERT_EQUAL_FATAL(create_heap(a, "big", 40u << 20), 0);
    struct mmsrv_region *ra, *rb;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(a, "big", 0, &ra), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(b, "big", 0, &rb), 0);
    void *p = mm_malloc(ra->heap, 1000);
    mm_free(rb->heap, p);
    CU_ASSERT_EQUAL(mmsrv_destroy(a, "big"), 0);
    /* still held: no room for another */
    struct mmsrv_region_spec spec = {
        .name = "big", .kind = MMSRV_HEAP, .size = 40u << 20, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL(mmsrv_create(a, &spec, NULL), -ENOSPC);
    CU_ASSERT_EQUAL(mmsrv_detach(a, ra), 0);
    CU_ASSERT_EQUAL(mmsrv_create(a, &spec, NULL), -ENOSPC);
    /* the last one detaches, both stay connected */
    CU_ASSERT_EQUAL(mmsrv_detach(b, rb), 0);
    int rc = mmsrv_create(a, &spec, NULL);
    if (rc != 0)
        fprintf(stderr, "\n    after the last detach: create %d %s\n", rc,
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
    CU_ASSERT_EQUAL(rc, 0);
    mmsrv_disconnect(b);
    mmsrv_disconnect(a);
    it_stop(&g_d);
}

/* A small IOB region (4 buffers of 64 bytes), owned by its creator. */
static struct mmsrv_region_spec small_pool(const char *name)
{
    return (struct mmsrv_region_spec){.name = name,
                                      .kind = MMSRV_IOB,
                                      .bufsize = 64,
                                      .count = 4,
                                      .uid = -1,
                                      .gid = -1,
                                      .mode = -1};
}

/* The region table holds max_regions regions (256 by default) of either
 * kind, IOB pools included (the daemon holds a pool handle per pool: its
 * table once ran out at 64, and creates failed as "no space"); the next one
 * gets ResourceUnavailable naming the regions, and a destroy makes room. */
#define TABLE_REGIONS 256

static void test_region_table_limit(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    char name[32];
    int made = 0;
    for (int i = 0; i < TABLE_REGIONS; i++) {
        snprintf(name, sizeof name, "%s-%d", i % 2 ? "heap" : "pool", i);
        struct mmsrv_region_spec spec = small_pool(name);
        if (i % 2) {
            spec.kind = MMSRV_HEAP;
            spec.size = 4096;
        }
        int rc = mmsrv_create(c, &spec, NULL);
        if (rc != 0) {
            fprintf(stderr, "\n    region %d: create %d %s\n", i, rc,
                    mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
            break;
        }
        made++;
    }
    CU_ASSERT_EQUAL(made, TABLE_REGIONS);
    struct mmsrv_region_spec one_more = small_pool("one-more");
    CU_ASSERT_EQUAL(mmsrv_create(c, &one_more, NULL), -EAGAIN);
    const char *err = mmsrv_error_name();
    CU_ASSERT(err != NULL && strcmp(err, "io.mmsrvd.ResourceUnavailable") == 0);
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "pool-0"), 0);
    CU_ASSERT_EQUAL(mmsrv_create(c, &one_more, NULL), 0);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

/* A process that attaches more regions than the allocators have handles
 * for gets -EMFILE (it once got -EUCLEAN, "the memory is corrupt"), and
 * attaches again once it detached one. */
static void test_out_of_handles(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region_spec spec = small_pool("handles");
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &spec, NULL), 0);
    static struct mmsrv_region *r[IOB_CONFIG_MAX_POOLS + 1];
    size_t n = 0;
    int rc = 0;
    while (n <= IOB_CONFIG_MAX_POOLS && (rc = mmsrv_attach(c, "handles", 0, &r[n])) == 0)
        n++;
    CU_ASSERT_EQUAL(rc, -EMFILE);
    CU_ASSERT(n > IOB_CONFIG_MAX_POOLS / 2 && n <= IOB_CONFIG_MAX_POOLS);
    CU_ASSERT_EQUAL(mmsrv_detach(c, r[--n]), 0);
    CU_ASSERT_EQUAL(mmsrv_attach(c, "handles", 0, &r[n]), 0);
    n++;
    while (n > 0)
        CU_ASSERT_EQUAL(mmsrv_detach(c, r[--n]), 0);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_two_processes_share_a_heap),
        TU_TEST(test_one_process_two_mappings),
        TU_TEST(test_destroy_while_attached),
        TU_TEST(test_destroy_frees_space_at_last_detach),
        TU_TEST(test_region_table_limit),
        TU_TEST(test_out_of_handles),
        TU_END,
    };
    return tu_main("share", tests);
}
