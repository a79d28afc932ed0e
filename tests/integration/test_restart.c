/*
 * test_restart.c - regions survive a restart of mmsrvd through systemd's
 * descriptor store (the harness stands in for systemd: it keeps what the
 * daemon stores with FDSTORE=1 and hands it to the next daemon as
 * LISTEN_FDS/LISTEN_FDNAMES).
 *
 * Before the restart: a heap region with a pattern in a block, an IOB region
 * with a chain waiting in a channel, a region destroyed, a region whose
 * header a client scribbled over.  A client stays attached through it all,
 * working in shared memory.  After: the same table (names, kinds, sizes,
 * owners, modes), the same memory, the chain still waiting; the attached
 * client never noticed in its data path, and reconnects; new regions can be
 * made; and it holds through a second restart.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "region.h"
#include "test_util.h"

#define HEAP        "keep-heap"
#define POOL        "keep-pool"
#define GONE        "gone"
#define SCRIBBLED   "scribbled"
#define CHANNEL     "kc"
#define HEAP_SIZE   (2u << 20)
#define BLOCK       (64u * 1024u)
#define CHAINLEN    1000u
#define HELD_CHAINS 3
#define POOL_COUNT  32u

static struct td_daemon g_d;

struct ctl {
    volatile int stop;
    volatile uint64_t ops;
    volatile uint32_t errors;
    volatile int reconnected;
    char msg[256];
};
static struct ctl *g_ctl;

static void fail(const char *what, long v)
{
    if (g_ctl->errors++ == 0)
        snprintf(g_ctl->msg, sizeof g_ctl->msg, "%s (%ld)", what, v);
}

static int create_regions(struct mmsrv_client *c)
{
    struct mmsrv_region_spec heap = {
        .name = HEAP, .kind = MMSRV_HEAP, .size = HEAP_SIZE, .uid = 0, .gid = 1234, .mode = 0640};
    struct mmsrv_channel_spec ch = {CHANNEL, 8};
    struct mmsrv_region_spec pool = {.name = POOL,
                                     .kind = MMSRV_IOB,
                                     .bufsize = 512,
                                     .count = POOL_COUNT,
                                     .channels = &ch,
                                     .nchannels = 1,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = 0600};
    struct mmsrv_region_spec gone = {
        .name = GONE, .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    struct mmsrv_region_spec scr = {
        .name = SCRIBBLED, .kind = MMSRV_HEAP, .size = 65536, .uid = 0, .gid = 0, .mode = 0600};
    if (mmsrv_create(c, &heap, NULL) != 0 || mmsrv_create(c, &pool, NULL) != 0 ||
        mmsrv_create(c, &gone, NULL) != 0 || mmsrv_create(c, &scr, NULL) != 0)
        return -1;
    return 0;
}

/* The table as ListRegions shows it, sorted by name, as text. */
static char *table_text(const struct td_daemon *d)
{
    int fd = td_connect(d);
    if (fd < 0)
        return NULL;
    json_t *r = it_call(fd, "{\"method\":\"io.mmsrvd.ListRegions\"}");
    close(fd);
    json_t *regions = it_param(r, "regions");
    if (!json_is_array(regions)) {
        json_decref(r);
        return NULL;
    }
    /* keep what the table decides; drop live counts */
    json_t *rows = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(regions, i, row)
    {
        json_t *copy = json_deep_copy(row);
        json_object_del(copy, "clients");
        json_object_set_new(rows, json_string_value(json_object_get(row, "name")), copy);
    }
    char *text = json_dumps(rows, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(rows);
    json_decref(r);
    return text;
}

/* ---- The client that stays attached through the restart ---------------------- */

static int stayer_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    struct mmsrv_region *r, *rp;
    if (mmsrv_connect(g_d.address, &c) != 0 || mmsrv_attach(c, HEAP, 0, &r) != 0 ||
        mmsrv_attach(c, POOL, 0, &rp) != 0)
        return 2;
    /* chains it holds across the restart, under the owner id it got */
    struct iob_s *held[HELD_CHAINS];
    for (int i = 0; i < HELD_CHAINS; i++) {
        uint8_t d[100];
        tu_pattern_fill(d, sizeof d, 700u + (unsigned)i);
        held[i] = iob_alloc(rp->pool, false);
        if (held[i] == NULL || iob_copyin(rp->pool, held[i], d, sizeof d, 0, false) != 100)
            return 3;
    }
    /* a block of its own, written before the restart */
    uint8_t *mine = mm_malloc(r->heap, 4096);
    if (mine == NULL)
        return 3;
    tu_pattern_fill(mine, 4096, 0x57a7);
    it_put(wr, mmsrv_offset(r, mine));

    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed() ^ 0x5ea);
    void *blk[8] = {0};
    size_t len[8] = {0};
    while (!g_ctl->stop && g_ctl->errors == 0) {
        /* the data path: shared memory only, daemon or not */
        int i = (int)tu_rng_range(&rng, 0, 7);
        if (blk[i] != NULL) {
            if (tu_pattern_check(blk[i], len[i], (uint64_t)i) != len[i])
                fail("block content", i);
            mm_free(r->heap, blk[i]);
            blk[i] = NULL;
        } else {
            len[i] = (size_t)tu_rng_range(&rng, 1, 2000);
            blk[i] = mm_malloc(r->heap, len[i]);
            if (blk[i] == NULL)
                fail("mm_malloc", (long)len[i]);
            else
                tu_pattern_fill(blk[i], len[i], (uint64_t)i);
        }
        if (tu_pattern_check(mine, 4096, 0x57a7) != 4096)
            fail("own block", 0);
        g_ctl->ops++;
    }
    for (int i = 0; i < 8; i++)
        mm_free(r->heap, blk[i]);

    /* Told that the daemon restarted: its old connection is gone (the first
     * call fails), a new one attaches the same memory. */
    uint64_t go;
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 4;
    /* New clients came and went after the restart: none of them was given
     * this one's owner id, so nothing of its was reclaimed. */
    for (int i = 0; i < HELD_CHAINS; i++) {
        uint8_t d[100];
        if (iob_owner(rp->pool, held[i]) != rp->owner)
            fail("held chain: owner changed (reclaimed under another client's id)",
                 (long)iob_owner(rp->pool, held[i]));
        else if (iob_copyout(rp->pool, d, held[i], sizeof d, 0) != 100 ||
                 tu_pattern_check(d, sizeof d, 700u + (unsigned)i) != sizeof d)
            fail("held chain content", i);
        else
            iob_free_chain(rp->pool, held[i]);
    }
    struct mmsrv_stats st;
    int rc = mmsrv_stats(c, HEAP, &st);
    if (rc == 0)
        fail("the old connection still answers", rc);
    struct mmsrv_client *c2;
    struct mmsrv_region *r2;
    if (mmsrv_connect(g_d.address, &c2) != 0 || mmsrv_attach(c2, HEAP, 0, &r2) != 0) {
        fail("reconnect", errno);
        return 5;
    }
    uint8_t *again = mmsrv_pointer(r2, mmsrv_offset(r, mine), 4096);
    if (again == NULL || tu_pattern_check(again, 4096, 0x57a7) != 4096)
        fail("own block through the new mapping", 0);
    /* one memory: a write through one mapping shows through the other */
    if (again != NULL) {
        again[0] ^= 0xff;
        if (mine[0] != again[0])
            fail("two mappings of one region differ", 0);
        again[0] ^= 0xff;
    }
    mm_free(r2->heap, again);
    if (mm_checkcorruption(r2->heap) != 0)
        fail("heap check after reconnect", 0);
    g_ctl->reconnected = 1;
    mmsrv_disconnect(c2);
    mmsrv_disconnect(c);
    return g_ctl->errors == 0 ? 0 : 6;
}

static int ops_advanced(void *p)
{
    return g_ctl->ops >= *(uint64_t *)p || g_ctl->errors != 0;
}

static bool stayer_runs(uint64_t n)
{
    uint64_t target = g_ctl->ops + n;
    return tu_wait_until(ops_advanced, &target, 20000) && g_ctl->errors == 0;
}

/* ---- The test ------------------------------------------------------------------- */

static void test_regions_survive_restart(void)
{
    IT_START(&g_d, NULL);
    g_ctl = it_shared(sizeof *g_ctl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_ctl);

    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create_regions(c), 0);

    /* A pattern in the heap, a chain waiting in the channel. */
    struct mmsrv_region *h, *p, *s;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &h), 0);
    uint8_t *blk = mm_malloc(h->heap, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blk);
    tu_pattern_fill(blk, BLOCK, tu_seed());
    uint64_t blk_off = mmsrv_offset(h, blk);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, POOL, 0, &p), 0);
    int id = iob_channel_lookup(p->pool, CHANNEL);
    CU_ASSERT_FATAL(id >= 0);
    CU_ASSERT_EQUAL_FATAL(iob_channel_connect(p->pool, id, IOB_CHANNEL_SEND), 0);
    uint8_t data[CHAINLEN];
    tu_pattern_fill(data, CHAINLEN, 0xc4a1);
    struct iob_s *chain = iob_alloc(p->pool, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chain);
    CU_ASSERT_EQUAL_FATAL(iob_copyin(p->pool, chain, data, CHAINLEN, 0, false), (int)CHAINLEN);
    CU_ASSERT_EQUAL_FATAL(iob_send(p->pool, id, chain, IT_CALL_MS), 0);

    /* A client scribbles over a region's header: it must not change the
     * table after the restart. */
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, SCRIBBLED, 0, &s), 0);
    struct region_header *hdr = s->base;
    snprintf(hdr->name, sizeof hdr->name, "%s", HEAP);
    hdr->kind = REGION_KIND_IOB;
    hdr->size = 1u << 30;
    memset(hdr->reserved, 0xff, sizeof hdr->reserved);
    CU_ASSERT_EQUAL(mmsrv_detach(c, s), 0);

    CU_ASSERT_EQUAL(mmsrv_destroy(c, GONE), 0);
    char *before = table_text(&g_d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(before);

    /* The client that stays attached, working. */
    struct it_child stayer;
    CU_ASSERT_EQUAL_FATAL(it_spawn(&stayer, stayer_child, NULL), 0);
    uint64_t stayer_off = 0;
    CU_ASSERT_EQUAL(it_get(stayer.from, &stayer_off, IT_WAIT_MS), 0);
    CU_ASSERT(stayer_runs(1000));

    /* What is stored: one descriptor per region and the table. */
    td_drain_notify(&g_d);
    printf("\n    stored before restart:");
    for (size_t i = 0; i < g_d.nstored; i++)
        printf(" %s", g_d.stored[i].name);
    CU_ASSERT(g_d.nstored >= 3); /* heap, pool, scribbled (+ the table) */

    /* Restart: SIGTERM, clean exit, a new daemon with the stored fds. */
    CU_ASSERT_EQUAL_FATAL(td_restart(&g_d), 0);
    CU_ASSERT(stayer_runs(1000)); /* the data path never stopped */

    char *after = table_text(&g_d);
    CU_ASSERT_PTR_NOT_NULL(after);
    if (before != NULL && after != NULL && strcmp(before, after) != 0)
        fprintf(stderr, "\n    table before: %s\n    table after:  %s\n", before, after);
    CU_ASSERT(after != NULL && strcmp(before, after) == 0);
    free(after);

    /* Our own old connection is gone; our mappings are not. */
    struct mmsrv_stats st;
    CU_ASSERT(mmsrv_stats(c, HEAP, &st) < 0);
    CU_ASSERT_EQUAL(tu_pattern_check(blk, BLOCK, tu_seed()), BLOCK);
    mmsrv_disconnect(c);

    /* A new client sees the same memory. */
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region *h2, *p2;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &h2), 0);
    uint8_t *blk2 = mmsrv_pointer(h2, blk_off, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blk2);
    CU_ASSERT_EQUAL(tu_pattern_check(blk2, BLOCK, tu_seed()), BLOCK);
    CU_ASSERT_EQUAL(mm_malloc_size(h2->heap, blk2) >= BLOCK, 1);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, POOL, 0, &p2), 0);
    id = iob_channel_lookup(p2->pool, CHANNEL);
    CU_ASSERT_EQUAL(iob_channel_connect(p2->pool, id, IOB_CHANNEL_RECV), 0);
    struct iob_s *got = NULL;
    CU_ASSERT_EQUAL(iob_receive(p2->pool, id, &got, IT_CALL_MS), 0);
    if (got != NULL) {
        uint8_t out[CHAINLEN];
        CU_ASSERT_EQUAL(iob_pktlen(p2->pool, got), CHAINLEN);
        CU_ASSERT_EQUAL(iob_copyout(p2->pool, out, got, CHAINLEN, 0), (int)CHAINLEN);
        CU_ASSERT_EQUAL(memcmp(out, data, CHAINLEN), 0);
        iob_free_chain(p2->pool, got);
    }
    /* the scribbled region: listed as it was; its memory fails its own
     * check, nothing else */
    struct mmsrv_region *s2 = NULL;
    CU_ASSERT(mmsrv_attach(c, SCRIBBLED, 0, &s2) < 0);
    CU_ASSERT_EQUAL(mmsrv_attach(c, GONE, 0, &s2), -ENOENT);

    /* Clients come and go: whatever owner ids they get, none may be one a
     * client attached before the restart still holds things under. */
    for (int i = 0; i < 20; i++) {
        struct mmsrv_client *t;
        struct mmsrv_region *tr;
        CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &t), 0);
        CU_ASSERT_EQUAL(mmsrv_attach(t, POOL, 0, &tr), 0);
        CU_ASSERT_EQUAL(mmsrv_attach(t, HEAP, 0, &tr), 0);
        mmsrv_disconnect(t);
    }
    CU_ASSERT(it_served(&g_d));
    json_t *ps = it_region_stats(&g_d, POOL);
    CU_ASSERT_EQUAL(it_int_at(ps, "parameters.pool.free", -1), POOL_COUNT - HELD_CHAINS);
    json_decref(ps);

    /* The attached client: its chains, then it reconnects and sees its own
     * block. */
    g_ctl->stop = 1;
    it_put(stayer.to, 1);
    CU_ASSERT(tu_exited_ok(it_finish(&stayer, IT_WAIT_MS)));
    if (g_ctl->errors != 0)
        fprintf(stderr, "\n    the attached client: %s\n", g_ctl->msg);
    CU_ASSERT_EQUAL(g_ctl->errors, 0);
    CU_ASSERT_EQUAL(g_ctl->reconnected, 1);

    /* New regions, and their memory is their own. */
    struct mmsrv_region_spec more = {
        .name = "after", .kind = MMSRV_HEAP, .size = 1u << 20, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL(mmsrv_create(c, &more, NULL), 0);
    struct mmsrv_region *a;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "after", 0, &a), 0);
    void *fill = mm_malloc(a->heap, 900 * 1024);
    CU_ASSERT_PTR_NOT_NULL(fill);
    if (fill != NULL)
        memset(fill, 0xee, 900 * 1024);
    CU_ASSERT_EQUAL(tu_pattern_check(blk2, BLOCK, tu_seed()), BLOCK);
    mm_free(a->heap, fill);

    /* Again: a second restart keeps it all. */
    mm_free(h2->heap, blk2);
    CU_ASSERT_EQUAL(mm_checkcorruption(h2->heap), 0);
    uint8_t *blk3 = mm_malloc(h2->heap, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blk3);
    tu_pattern_fill(blk3, BLOCK, 333);
    uint64_t off3 = mmsrv_offset(h2, blk3);
    mmsrv_disconnect(c);
    char *mid = table_text(&g_d);
    CU_ASSERT_EQUAL_FATAL(td_restart(&g_d), 0);
    char *last = table_text(&g_d);
    CU_ASSERT(mid != NULL && last != NULL && strcmp(mid, last) == 0);
    free(mid);
    free(last);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &h2), 0);
    uint8_t *b3 = mmsrv_pointer(h2, off3, BLOCK);
    CU_ASSERT(b3 != NULL && tu_pattern_check(b3, BLOCK, 333) == BLOCK);
    CU_ASSERT_EQUAL(mm_checkcorruption(h2->heap), 0);
    json_t *stats = it_region_stats(&g_d, HEAP);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(it_param(stats, "heap"), "state"))
            ? json_string_value(json_object_get(it_param(stats, "heap"), "state"))
            : "",
        "ok");
    json_decref(stats);
    mmsrv_disconnect(c);

    free(before);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
    munmap(g_ctl, sizeof *g_ctl);
}

/* A heap region HEAP with a block of BLOCK bytes of pattern seed in it:
 * the block's offset.  The client that made it is gone again. */
static uint64_t patterned_block(uint64_t seed)
{
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region_spec heap = {
        .name = HEAP, .kind = MMSRV_HEAP, .size = HEAP_SIZE, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &heap, NULL), 0);
    struct mmsrv_region *h;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &h), 0);
    uint8_t *blk = mm_malloc(h->heap, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blk);
    tu_pattern_fill(blk, BLOCK, seed);
    uint64_t off = mmsrv_offset(h, blk);
    mmsrv_disconnect(c);
    return off;
}

/* The block patterned_block made is there, whole, in a sound heap. */
static void patterned_block_check(uint64_t off, uint64_t seed)
{
    struct mmsrv_client *c;
    struct mmsrv_region *h;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, HEAP, 0, &h), 0);
    uint8_t *b = mmsrv_pointer(h, off, BLOCK);
    CU_ASSERT(b != NULL && tu_pattern_check(b, BLOCK, seed) == BLOCK);
    CU_ASSERT_EQUAL(mm_checkcorruption(h->heap), 0);
    mmsrv_disconnect(c);
}

/* A daemon killed outright (no SIGTERM, no goodbye) loses nothing either:
 * what is in the store is enough. */
static void test_regions_survive_a_crash(void)
{
    IT_START(&g_d, NULL);
    uint64_t off = patterned_block(99);
    char *before = table_text(&g_d);

    td_drain_notify(&g_d);
    kill(g_d.pid, SIGKILL);
    int status = tu_wait_child(g_d.pid, IT_WAIT_MS);
    CU_ASSERT(WIFSIGNALED(status));
    g_d.pid = 0;
    td_drain_notify(&g_d);
    /* Start again from the store, as systemd's Restart= would; the old
     * socket file is still there. */
    CU_ASSERT_EQUAL_FATAL(td_respawn(&g_d), 0);

    char *after = table_text(&g_d);
    CU_ASSERT(before != NULL && after != NULL && strcmp(before, after) == 0);
    free(before);
    free(after);
    patterned_block_check(off, 99);
    it_stop(&g_d);
}

/* Socket activation: the listening socket is systemd's (here the
 * harness's), passed to each daemon; a client that connects while the
 * daemon is down waits in the backlog and is answered by the next one. */
static void test_socket_activation(void)
{
    CU_ASSERT_EQUAL_FATAL(it_start_activated(&g_d, NULL), 0);
    uint64_t off = patterned_block(1234);

    /* Down: the socket is still there and takes connections. */
    int status = td_stop(&g_d);
    CU_ASSERT(tu_exited_ok(status));
    int fd = td_connect(&g_d);
    if (fd < 0)
        fprintf(stderr,
                "\n    cannot connect while the daemon is down: %s (did it unlink the "
                "socket it was passed?)\n",
                strerror(errno));
    CU_ASSERT_FATAL(fd >= 0);
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
    CU_ASSERT_EQUAL(td_send(fd, call, sizeof call), 0);
    char *none = td_recv(fd, 100, NULL);
    CU_ASSERT_PTR_NULL(none);
    free(none);

    /* Up again: the waiting client is answered, the region is there. */
    CU_ASSERT_EQUAL_FATAL(td_respawn(&g_d), 0);
    char *text = td_recv(fd, IT_CALL_MS, NULL);
    json_t *reply = it_parse(text);
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
    free(text);
    close(fd);
    patterned_block_check(off, 1234);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_regions_survive_restart),
        TU_TEST(test_regions_survive_a_crash),
        TU_TEST(test_socket_activation),
        TU_END,
    };
    return tu_main("restart", tests);
}
