/*
 * test_orphans.c - what a client holds comes back when it dies, even across
 * a restart of mmsrvd that took its connection away (daemon/orphans.c).
 *
 * A client process attaches an IOB pool and a heap, holds chains, registers
 * as the receiver of a channel and leaves blocks in its heap cache; then the
 * daemon stops and starts again from systemd's descriptor store (the harness
 * stands in for it).  The client never reconnects.  If it died while no
 * daemon ran, the new daemon reclaims all of it at start; if it lives on,
 * the daemon leaves its things alone and reclaims them when it exits.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define POOL       "orphan-pool"
#define HEAP       "orphan-heap"
#define CHANNEL    "oc"
#define POOL_COUNT 32u
#define HELD       5u  /* chains the client holds */
#define CACHED     20u /* blocks it frees into its cache */

static struct td_daemon g_d;

/* ---- The client ------------------------------------------------------------------- */

/* Attach both regions, hold HELD chains, register as CHANNEL's receiver,
 * cache CACHED freed blocks; report its owner id, then wait to be killed
 * (or told to go). */
static int holder_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    struct mmsrv_region *pool, *heap;
    if (mmsrv_connect(g_d.address, &c) != 0 || mmsrv_attach(c, POOL, 0, &pool) != 0 ||
        mmsrv_attach(c, HEAP, 0, &heap) != 0)
        return 2;
    for (unsigned i = 0; i < HELD; i++)
        if (iob_tryalloc(pool->pool, false) == NULL)
            return 3;
    int ch = iob_channel_lookup(pool->pool, CHANNEL);
    if (ch < 0 || iob_channel_connect(pool->pool, ch, IOB_CHANNEL_RECV) != 0)
        return 4;
    void *blocks[CACHED];
    for (unsigned i = 0; i < CACHED; i++)
        if ((blocks[i] = mm_malloc(heap->heap, 100u + 40u * i)) == NULL)
            return 5;
    for (unsigned i = 0; i < CACHED; i++)
        mm_free(heap->heap, blocks[i]); /* into this thread's cache */
    it_put(wr, pool->owner);
    uint64_t go;
    (void)it_get(rd, &go, 60000);
    return 0;
}

/* ---- Figures ------------------------------------------------------------------------ */

static long long pool_free(void)
{
    json_t *r = it_region_stats(&g_d, POOL);
    long long n = it_int_at(r, "parameters.pool.free", -1);
    json_decref(r);
    return n;
}

static long long heap_free_bytes(void)
{
    json_t *r = it_region_stats(&g_d, HEAP);
    long long n = it_int_at(r, "parameters.heap.fordblks", -1);
    json_decref(r);
    return n;
}

struct whole {
    long long heap_free;
};

/* The pool and the heap are as before the client came. */
static int all_back(void *arg)
{
    const struct whole *w = arg;
    return pool_free() == POOL_COUNT && heap_free_bytes() == w->heap_free;
}

/* The channel's receiver end is free: another process can take it. */
static bool receiver_end_free(void)
{
    struct mmsrv_client *c;
    struct mmsrv_region *pool;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return false;
    bool ok = false;
    if (mmsrv_attach(c, POOL, 0, &pool) == 0) {
        int ch = iob_channel_lookup(pool->pool, CHANNEL);
        ok = ch >= 0 && iob_channel_connect(pool->pool, ch, IOB_CHANNEL_RECV) == 0;
        if (ok)
            iob_channel_disconnect(pool->pool, ch, IOB_CHANNEL_RECV);
    }
    mmsrv_disconnect(c);
    return ok;
}

/* ---- Set-up --------------------------------------------------------------------------- */

/* A daemon with the two regions; the heap's free bytes before any client. */
static void start_with_regions(struct whole *w)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_channel_spec ch = {CHANNEL, 8};
    struct mmsrv_region_spec pool = {.name = POOL,
                                     .kind = MMSRV_IOB,
                                     .bufsize = 256,
                                     .count = POOL_COUNT,
                                     .channels = &ch,
                                     .nchannels = 1,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    struct mmsrv_region_spec heap = {
        .name = HEAP, .kind = MMSRV_HEAP, .size = 1u << 20, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &pool, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &heap, NULL), 0);
    mmsrv_disconnect(c);
    w->heap_free = heap_free_bytes();
    CU_ASSERT_FATAL(w->heap_free > 0);
    CU_ASSERT_EQUAL_FATAL(pool_free(), POOL_COUNT);
}

/* Start the holder and wait until it holds everything. */
static uint64_t start_holder(struct it_child *holder, const struct whole *w)
{
    CU_ASSERT_EQUAL_FATAL(it_spawn(holder, holder_child, NULL), 0);
    uint64_t owner = 0;
    CU_ASSERT_EQUAL_FATAL(it_get(holder->from, &owner, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(owner, (uint64_t)holder->pid);
    CU_ASSERT_EQUAL(pool_free(), POOL_COUNT - HELD);
    CU_ASSERT(heap_free_bytes() < w->heap_free); /* cached blocks are in use to the heap */
    CU_ASSERT(!receiver_end_free());
    return owner;
}

/* ---- Tests ------------------------------------------------------------------------------ */

/* The client dies while no daemon runs: the next one reclaims at start. */
static void test_died_while_daemon_down(void)
{
    struct whole w;
    start_with_regions(&w);
    struct it_child holder;
    (void)start_holder(&holder, &w);

    CU_ASSERT(tu_exited_ok(td_stop(&g_d))); /* its connection goes, it lives */
    CU_ASSERT_EQUAL(kill(holder.pid, SIGKILL), 0);
    int status = it_finish(&holder, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    td_drain_notify(&g_d);
    CU_ASSERT_EQUAL_FATAL(td_respawn(&g_d), 0);

    CU_ASSERT(tu_wait_until(all_back, &w, IT_WAIT_MS));
    CU_ASSERT(receiver_end_free());
    it_stop(&g_d);
}

/* A daemon with the regions, a holder, and a restart it lives through
 * without reconnecting: returns once the new daemon watches it. */
static void restart_under_holder(struct it_child *holder, struct whole *w)
{
    start_with_regions(w);
    uint64_t owner = start_holder(holder, w);
    CU_ASSERT_EQUAL_FATAL(td_restart(&g_d), 0);
    char watching[128];
    snprintf(watching, sizeof watching,
             "orphan owner=%llu regions=2: the process lives; watching it",
             (unsigned long long)owner);
    CU_ASSERT_FATAL(it_wait_log(&g_d, watching, IT_WAIT_MS));
}

/* The client lives through the restart without reconnecting: its things
 * stay its own until it dies, and then come back. */
static void test_dies_after_restart_without_reconnecting(void)
{
    struct whole w;
    struct it_child holder;
    restart_under_holder(&holder, &w);
    CU_ASSERT_EQUAL(pool_free(), POOL_COUNT - HELD); /* still the living client's */
    CU_ASSERT(!receiver_end_free());

    CU_ASSERT_EQUAL(kill(holder.pid, SIGKILL), 0);
    int status = it_finish(&holder, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status));
    CU_ASSERT(tu_wait_until(all_back, &w, IT_WAIT_MS));
    CU_ASSERT(receiver_end_free());
    it_stop(&g_d);
}

/* A daemon stopped while it watches a client stops cleanly, and leaves the
 * client alone. */
static void test_watch_ends_cleanly_at_stop(void)
{
    struct whole w;
    struct it_child holder;
    restart_under_holder(&holder, &w);
    it_stop(&g_d); /* must exit 0 within its grace period, watch and all */
    CU_ASSERT_EQUAL(it_put(holder.to, 1), 0);
    CU_ASSERT(tu_exited_ok(it_finish(&holder, IT_WAIT_MS)));
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_died_while_daemon_down),
        TU_TEST(test_dies_after_restart_without_reconnecting),
        TU_TEST(test_watch_ends_cleanly_at_stop),
        TU_END,
    };
    return tu_main("orphans", tests);
}
