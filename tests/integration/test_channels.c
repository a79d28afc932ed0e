/*
 * test_channels.c - two client processes pass IOB chains through a channel
 * of a region mmsrvd made, while a third watches the region's figures
 * through the daemon (RegionStats) and sees them move.
 *
 * The steps are staged so that each figure the watcher waits for is exact:
 * 8 chains of 3 buffers sent and waiting (free count - 24, queued 8),
 * received and held (queued 0), freed (free back to count); then a stream
 * of chains of random length, each checked byte by byte and in order, while
 * the watcher samples the figures and checks that they stay coherent.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define REGION   "chan-pool"
#define CHANNEL  "c"
#define BUFSIZE  256u
#define COUNT    64u
#define DEPTH    16u
#define BURST    8u
#define BURSTLEN 600u /* three buffers of 256 */
#define STREAM   3000u
#define MAXLEN   2000u

static struct td_daemon g_d;

/* Commands to the watcher. */
enum { W_EXIT, W_EXPECT, W_STREAM, W_STOP };

static uint32_t chain_buffers(struct iob_pool_s *pool, struct iob_s *iob)
{
    uint32_t n = 0;
    for (; iob != NULL; iob = iob_next(pool, iob))
        n++;
    return n;
}

static struct iob_s *make_chain(struct iob_pool_s *pool, uint32_t len, uint64_t key, uint64_t seq)
{
    static uint8_t data[MAXLEN + 8];
    tu_pattern_fill(data, len, key);
    if (len >= 8)
        memcpy(data, &seq, 8);
    struct iob_s *head = iob_timedalloc(pool, false, IT_CALL_MS);
    if (head == NULL)
        return NULL;
    if (iob_copyin(pool, head, data, len, 0, false) != (int)len) {
        iob_free_chain(pool, head);
        return NULL;
    }
    return head;
}

static bool check_chain(struct iob_pool_s *pool, struct iob_s *iob, uint32_t len, uint64_t key,
                        uint64_t seq)
{
    static uint8_t want[MAXLEN + 8], got[MAXLEN + 8];
    if (iob_pktlen(pool, iob) != len)
        return false;
    tu_pattern_fill(want, len, key);
    if (len >= 8)
        memcpy(want, &seq, 8);
    return iob_copyout(pool, got, iob, len, 0) == (int)len && memcmp(want, got, len) == 0;
}

static struct mmsrv_region *attach_pool(struct mmsrv_client **c, int *id, uint32_t role)
{
    struct mmsrv_region *r;
    if (mmsrv_connect(g_d.address, c) != 0)
        return NULL;
    if (mmsrv_attach(*c, REGION, 0, &r) != 0 || r->pool == NULL)
        return NULL;
    *id = iob_channel_lookup(r->pool, CHANNEL);
    if (*id < 0 || iob_channel_connect(r->pool, *id, role) != 0)
        return NULL;
    return r;
}

static int sender_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    int id;
    struct mmsrv_region *r = attach_pool(&c, &id, IOB_CHANNEL_SEND);
    if (r == NULL)
        return 2;
    struct iob_pool_s *pool = r->pool;
    IT_CHECK_EQ(iob_pool_bufsize(pool), BUFSIZE);
    IT_CHECK_EQ(iob_pool_count(pool), COUNT);

    uint32_t used = 0;
    for (uint32_t i = 0; i < BURST; i++) {
        struct iob_s *chain = make_chain(pool, BURSTLEN, 1000 + i, i);
        IT_CHECK(chain != NULL);
        if (chain == NULL)
            return 3;
        IT_CHECK_EQ(iob_owner(pool, chain), r->owner);
        used += chain_buffers(pool, chain);
        IT_CHECK_EQ(iob_send(pool, id, chain, IT_CALL_MS), 0);
    }
    it_put(wr, used);

    uint64_t go;
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 4;
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (uint32_t i = 0; i < STREAM; i++) {
        uint32_t len = (uint32_t)tu_rng_range(&rng, 8, MAXLEN);
        struct iob_s *chain = make_chain(pool, len, 5000 + i, i);
        IT_CHECK(chain != NULL);
        if (chain == NULL)
            return 5;
        int rc = iob_send(pool, id, chain, IT_CALL_MS);
        IT_CHECK_EQ(rc, 0);
        if (rc != 0)
            return 6;
    }
    it_put(wr, STREAM);
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 7;
    IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    mmsrv_disconnect(c);
    return 0;
}

static int receiver_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    int id;
    struct mmsrv_region *r = attach_pool(&c, &id, IOB_CHANNEL_RECV);
    if (r == NULL)
        return 2;
    struct iob_pool_s *pool = r->pool;
    uint64_t go;

    /* Take the burst and hold it. */
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 3;
    struct iob_s *held[BURST];
    for (uint32_t i = 0; i < BURST; i++) {
        held[i] = NULL;
        IT_CHECK_EQ(iob_receive(pool, id, &held[i], IT_CALL_MS), 0);
        if (held[i] == NULL)
            return 4;
        IT_CHECK(check_chain(pool, held[i], BURSTLEN, 1000 + i, i));
        IT_CHECK_EQ(iob_owner(pool, held[i]), r->owner);
    }
    IT_CHECK_EQ(iob_receive(pool, id, &(struct iob_s *){NULL}, 0), -MM_EAGAIN);
    it_put(wr, BURST);

    /* Free it. */
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 5;
    for (uint32_t i = 0; i < BURST; i++)
        iob_free_chain(pool, held[i]);
    it_put(wr, 0);

    /* The stream, in order. */
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 6;
    struct tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (uint32_t i = 0; i < STREAM; i++) {
        uint32_t len = (uint32_t)tu_rng_range(&rng, 8, MAXLEN);
        struct iob_s *chain = NULL;
        int rc = iob_receive(pool, id, &chain, IT_CALL_MS);
        IT_CHECK_EQ(rc, 0);
        if (rc != 0)
            return 7;
        if (!check_chain(pool, chain, len, 5000 + i, i)) {
            IT_CHECK(!"chain content");
            fprintf(stderr, "    chain %u of %u bytes differs\n", i, len);
            return 8;
        }
        iob_free_chain(pool, chain);
    }
    it_put(wr, STREAM);
    if (it_get(rd, &go, IT_WAIT_MS) != 0)
        return 9;
    IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    mmsrv_disconnect(c);
    return 0;
}

/* ---- The watcher ------------------------------------------------------ */

struct figures {
    long long free, queued, attached, count, bufsize, depth, nchannels;
};

/* RegionStats through libmmsrv (free, attached) and raw (the channel's
 * queued count, which libmmsrv's struct does not carry). */
static bool read_figures(struct mmsrv_client *c, struct figures *f)
{
    struct mmsrv_stats st;
    if (mmsrv_stats(c, REGION, &st) != 0)
        return false;
    f->free = st.free;
    f->count = st.count;
    f->bufsize = st.bufsize;
    f->attached = st.nattached;
    f->nchannels = st.nchannels;
    json_t *reply = it_region_stats(&g_d, REGION);
    json_t *arr = json_object_get(it_param(reply, "pool"), "channels");
    f->queued = -1;
    f->depth = -1;
    size_t i;
    json_t *ch;
    json_array_foreach(arr, i, ch)
    {
        const char *name = json_string_value(json_object_get(ch, "name"));
        if (name != NULL && strcmp(name, CHANNEL) == 0) {
            f->queued = it_int_at(ch, "queued", -1);
            f->depth = it_int_at(ch, "depth", -1);
        }
    }
    bool ok =
        reply != NULL && f->queued >= 0 && it_int_at(it_param(reply, "pool"), "free", -1) >= 0;
    json_decref(reply);
    return ok;
}

static int watcher_child(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return 2;
    for (;;) {
        uint64_t cmd;
        if (it_get(rd, &cmd, 60000) != 0)
            return 3;
        if (cmd == W_EXIT)
            break;
        if (cmd == W_EXPECT) {
            uint64_t want_free, want_queued, want_attached;
            if (it_get(rd, &want_free, IT_WAIT_MS) != 0 ||
                it_get(rd, &want_queued, IT_WAIT_MS) != 0 ||
                it_get(rd, &want_attached, IT_WAIT_MS) != 0)
                return 4;
            struct figures f = {0};
            uint64_t deadline = tu_now_ms() + IT_WAIT_MS;
            bool seen = false;
            while (!seen && tu_now_ms() < deadline) {
                seen = read_figures(c, &f) && f.free == (long long)want_free &&
                       f.queued == (long long)want_queued && f.attached == (long long)want_attached;
                if (!seen)
                    usleep(2000);
            }
            if (!seen)
                fprintf(stderr,
                        "\n    watcher: wanted free %llu queued %llu attached %llu, "
                        "saw free %lld queued %lld attached %lld\n",
                        (unsigned long long)want_free, (unsigned long long)want_queued,
                        (unsigned long long)want_attached, f.free, f.queued, f.attached);
            IT_CHECK(f.count == COUNT && f.bufsize == BUFSIZE && f.depth == DEPTH &&
                     f.nchannels == 1);
            it_put(wr, seen ? 1 : 0);
        } else if (cmd == W_STREAM) {
            /* Sample until told to stop: every figure coherent, and the free
             * count seen to move. */
            uint64_t samples = 0, bad = 0, moved = 0;
            long long last_free = -1;
            for (;;) {
                struct pollfd p = {.fd = rd, .events = POLLIN};
                if (poll(&p, 1, 0) > 0)
                    break;
                struct figures f;
                if (!read_figures(c, &f)) {
                    bad++;
                    break;
                }
                samples++;
                if (f.free < 0 || f.free > COUNT || f.queued < 0 || f.queued > DEPTH ||
                    f.attached != 2)
                    bad++;
                if (last_free >= 0 && f.free != last_free)
                    moved++;
                last_free = f.free;
            }
            uint64_t stop;
            if (it_get(rd, &stop, IT_WAIT_MS) != 0 || stop != W_STOP)
                return 5;
            it_put(wr, samples);
            it_put(wr, bad);
            it_put(wr, moved);
        }
    }
    mmsrv_disconnect(c);
    return 0;
}

static bool watcher_sees(struct it_child *w, uint64_t free, uint64_t queued, uint64_t attached)
{
    uint64_t ok = 0;
    it_put(w->to, W_EXPECT);
    it_put(w->to, free);
    it_put(w->to, queued);
    it_put(w->to, attached);
    return it_get(w->from, &ok, 2 * IT_WAIT_MS) == 0 && ok == 1;
}

static void test_chains_through_a_channel(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_channel_spec ch = {CHANNEL, DEPTH};
    struct mmsrv_region_spec spec = {.name = REGION,
                                     .kind = MMSRV_IOB,
                                     .bufsize = BUFSIZE,
                                     .count = COUNT,
                                     .channels = &ch,
                                     .nchannels = 1,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    struct mmsrv_region_info info;
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &spec, &info), 0);
    CU_ASSERT_EQUAL(info.kind, MMSRV_IOB);

    struct it_child w, s, r;
    CU_ASSERT_EQUAL_FATAL(it_spawn(&w, watcher_child, NULL), 0);
    CU_ASSERT(watcher_sees(&w, COUNT, 0, 0));

    CU_ASSERT_EQUAL_FATAL(it_spawn(&r, receiver_child, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(it_spawn(&s, sender_child, NULL), 0);
    uint64_t used = 0, n = 0;
    CU_ASSERT_EQUAL(it_get(s.from, &used, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(used, BURST * 3);
    /* sent, waiting in the channel */
    CU_ASSERT(watcher_sees(&w, COUNT - BURST * 3, BURST, 2));
    /* received, held by the receiver */
    it_put(r.to, 1);
    CU_ASSERT(it_get(r.from, &n, IT_WAIT_MS) == 0 && n == BURST);
    CU_ASSERT(watcher_sees(&w, COUNT - BURST * 3, 0, 2));
    /* freed */
    it_put(r.to, 1);
    CU_ASSERT(it_get(r.from, &n, IT_WAIT_MS) == 0 && n == 0);
    CU_ASSERT(watcher_sees(&w, COUNT, 0, 2));

    /* The stream, watched. */
    it_put(w.to, W_STREAM);
    it_put(r.to, 1);
    it_put(s.to, 1);
    uint64_t sent = 0, received = 0;
    CU_ASSERT_EQUAL(it_get(s.from, &sent, 40000), 0);
    CU_ASSERT_EQUAL(it_get(r.from, &received, 40000), 0);
    CU_ASSERT_EQUAL(sent, STREAM);
    CU_ASSERT_EQUAL(received, STREAM);
    it_put(w.to, W_STOP);
    uint64_t samples = 0, bad = 1, moved = 0;
    CU_ASSERT_EQUAL(it_get(w.from, &samples, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(it_get(w.from, &bad, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(it_get(w.from, &moved, IT_WAIT_MS), 0);
    CU_ASSERT(samples > 0);
    CU_ASSERT_EQUAL(bad, 0);
    printf("\n    stream: %llu stats samples, free count moved %llu times ",
           (unsigned long long)samples, (unsigned long long)moved);

    /* Everything back; then both leave. */
    CU_ASSERT(watcher_sees(&w, COUNT, 0, 2));
    it_put(s.to, 1);
    it_put(r.to, 1);
    CU_ASSERT(tu_exited_ok(it_finish(&s, IT_WAIT_MS)));
    CU_ASSERT(tu_exited_ok(it_finish(&r, IT_WAIT_MS)));
    CU_ASSERT(watcher_sees(&w, COUNT, 0, 0));
    it_put(w.to, W_EXIT);
    CU_ASSERT(tu_exited_ok(it_finish(&w, IT_WAIT_MS)));

    /* The pool checks sound from here too. */
    struct mmsrv_region *mine;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, REGION, 0, &mine), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mine->pool);
    struct iob_census_s census;
    CU_ASSERT_EQUAL(iob_pool_check(mine->pool, &census), 0);
    CU_ASSERT_EQUAL(census.free, COUNT);
    struct iob_stats_s ps = iob_pool_stats(mine->pool);
    CU_ASSERT_EQUAL(ps.misuse, 0);
    CU_ASSERT(ps.allocs >= (uint64_t)STREAM + BURST * 3);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_chains_through_a_channel),
        TU_END,
    };
    return tu_main("channels", tests);
}
