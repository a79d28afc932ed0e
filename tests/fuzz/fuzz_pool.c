/*
 * fuzz_pool.c - fuzz target of the IOB pool's shared-memory image
 * (libFuzzer entry point).
 *
 * DESIGN.md invariant 2, for pools.  The input drives four steps:
 *   1. make a small pool (buffer size, count and throttle from the input)
 *      with a few channels, and run allocations, copies, sends, receives,
 *      queue additions and frees on it under a few owner ids;
 *   2. copy the image elsewhere as it is (its chains now belong to owners
 *      that died) and release the original;
 *   3. scribble over the copy, header included (not the locks: see
 *      fuzz_heap.c);
 *   4. iob_pool_attach the copy and run what mmsrvd and a client run on it:
 *      iob_pool_check, iob_pool_stats, iob_pool_walk, iob_pool_owned,
 *      iob_channel_lookup / ends / count / connect, iob_pool_reclaim,
 *      iob_tryalloc, iob_trycopyin, iob_copyout, iob_send and iob_receive
 *      without waiting, iob_free_chain; then detach.
 * What must hold, whatever the bytes:
 * - nothing reads or writes outside the image (ASan; the image is a heap
 *   allocation of exactly its size), and no call hangs (libFuzzer's
 *   -timeout; every call here is one that must not wait);
 * - every buffer a call hands out, and every chain iob_pool_walk reports,
 *   is a descriptor inside the image whose data lie inside it too;
 * - if iob_pool_check found the attached pool sound, chains built from
 *   then on keep their bytes, and the pool is still sound at the end.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "iob_internal.h"
#include "mm/iob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CHAINS 16
#define MAX_DATA   2048

/* Owner ids: of step 1 (dead after it), and of step 4 (never reclaimed). */
static const uint32_t owners[4] = {11, 12, 13, 14};
#define OWNER_LIVE 20u

struct chain {
    struct iob_s *head;
    uint32_t len;
    bool tracked; /* built in step 4 from a sound pool: contents known */
    uint8_t seed;
};

struct run {
    struct fz in;
    struct iob_pool_s *h;
    uint8_t *img;
    size_t size;
    bool sound;
    struct chain c[MAX_CHAINS];
    unsigned nc;
    struct iob_queue_s q;
};

static const char *const names[4] = {"c0", "c1", "c2", "c3"};

static void pattern(uint8_t *buf, uint32_t len, uint8_t seed)
{
    for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7u);
}

static bool inside(const struct run *r, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->img;
    return a >= b && a - b <= r->size && n <= r->size - (a - b);
}

/* A buffer some call handed out: its descriptor and data in the image,
 * its chain bounded by the count. */
static void check_buffer(struct run *r, const struct iob_s *iob)
{
    FZ_CHECK(inside(r, iob, 64));
    uint32_t count = iob_pool_count(r->h), n = 0;
    for (const struct iob_s *b = iob; b != NULL && n <= count; b = iob_next(r->h, b), n++) {
        FZ_CHECK(inside(r, b, 64));
        uint8_t *data = iob_data(r->h, b);
        /* NULL and 0 for a buffer whose offset or length is corrupt */
        FZ_CHECK(data == NULL || inside(r, data, iob_len(r->h, b)));
        FZ_CHECK(inside(r, iob_buffer(r->h, b), iob_pool_bufsize(r->h)));
    }
    FZ_CHECK(n <= count || !r->sound);
}

static void forget(struct run *r, const struct iob_s *head)
{
    for (unsigned i = 0; i < r->nc; i++)
        if (r->c[i].head == head)
            r->c[i] = r->c[--r->nc];
}

static void keep(struct run *r, struct iob_s *head, uint32_t len, bool tracked, uint8_t seed)
{
    forget(r, head);
    if (r->nc < MAX_CHAINS)
        r->c[r->nc++] = (struct chain){head, len, tracked, seed};
}

static void check_intact(struct run *r, const struct chain *c)
{
    if (!c->tracked)
        return;
    uint8_t want[MAX_DATA], got[MAX_DATA];
    pattern(want, c->len, c->seed);
    FZ_CHECK(iob_copyout(r->h, got, c->head, c->len, 0) == (int)c->len);
    FZ_CHECK(memcmp(want, got, c->len) == 0);
}

static bool walk_fn(void *arg, const struct iob_chain_info *info)
{
    struct run *r = arg;
    FZ_CHECK(inside(r, info->head, 64));
    FZ_CHECK(info->channel >= -1 && info->channel < IOB_CONFIG_CHANNELS);
    FZ_CHECK(info->buffers <= iob_pool_count(r->h));
    return true;
}

/* Allocate a chain and copy len bytes of pattern seed into it. */
static struct iob_s *fill_chain(struct run *r, uint32_t len, uint8_t seed, bool throttled)
{
    struct iob_s *head = iob_tryalloc(r->h, throttled);
    if (head == NULL)
        return NULL;
    uint8_t buf[MAX_DATA];
    pattern(buf, len, seed);
    if (iob_trycopyin(r->h, head, buf, len, 0, throttled) != (int)len) {
        iob_free_chain(r->h, head);
        return NULL;
    }
    return head;
}

/* Step 1 and step 4 share the operations; step 4 checks what they do. */
static void operate(struct run *r, bool attached)
{
    struct fz *f = &r->in;
    uint8_t op = fz_u8(f);
    struct chain *c = r->nc > 0 ? &r->c[fz_u8(f) % r->nc] : NULL;
    int id = fz_u8(f) % (IOB_CONFIG_CHANNELS + 1); /* one id past the last */
    switch (op % 12u) {
    case 0:
    case 1: {
        uint32_t len = fz_u16(f) % MAX_DATA;
        uint8_t seed = fz_u8(f);
        struct iob_s *head = fill_chain(r, len, seed, op & 0x10u);
        if (head != NULL) {
            if (attached)
                check_buffer(r, head);
            keep(r, head, len, attached && r->sound, seed);
        }
        break;
    }
    case 2:
        if (c != NULL) {
            check_intact(r, c);
            struct iob_s *head = c->head;
            forget(r, head);
            iob_free_chain(r->h, head);
        }
        break;
    case 3:
        if (c != NULL) {
            int rc = iob_send(r->h, id, c->head, 0);
            if (rc == 0)
                forget(r, c->head);
        }
        break;
    case 4: {
        struct iob_s *head = NULL;
        if (iob_receive(r->h, id, &head, 0) == 0) {
            if (attached)
                check_buffer(r, head);
            keep(r, head, 0, false, 0);
        }
        break;
    }
    case 5:
        (void)iob_channel_connect(r->h, id, 1u + fz_u8(f) % 3u);
        break;
    case 6:
        (void)iob_channel_create(r->h, names[fz_u8(f) & 3u], 1u << (fz_u8(f) % 5u), fz_u8(f) & 3u);
        break;
    case 7:
        if (c != NULL)
            (void)iob_tryadd_queue(r->h, c->head, &r->q);
        else
            iob_free_queue(r->h, &r->q);
        break;
    case 8:
        if (c != NULL) {
            uint8_t buf[MAX_DATA];
            uint32_t len = fz_u16(f) % MAX_DATA, off = fz_u16(f) % MAX_DATA;
            int n = iob_copyout(r->h, buf, c->head, len, off);
            FZ_CHECK(n <= (int)len);
        }
        break;
    case 9:
        if (!attached) {
            iob_pool_set_owner(r->h, owners[fz_u8(f) & 3u]);
        } else {
            uint32_t owner = (fz_u8(f) & 1u) ? owners[fz_u8(f) & 3u] : fz_u32(f);
            if (owner != OWNER_LIVE)
                (void)iob_pool_reclaim(r->h, owner);
        }
        break;
    case 10: {
        struct iob_census_s census;
        int problems = iob_pool_check(r->h, &census);
        FZ_CHECK(!attached || !r->sound || problems == 0);
        break;
    }
    default: {
        struct iob_stats_s st = iob_pool_stats(r->h);
        (void)st;
        (void)iob_pool_walk(r->h, walk_fn, r);
        (void)iob_pool_owned(r->h, owners[fz_u8(f) & 3u], NULL);
        uint32_t sender, receiver;
        (void)iob_channel_ends(r->h, id, &sender, &receiver);
        (void)iob_channel_count(r->h, id);
        (void)iob_channel_lookup(r->h, names[fz_u8(f) & 3u]);
        (void)iob_navail(r->h, true);
        (void)iob_qentry_navail(r->h);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return 0;
    r->in = (struct fz){data, size};
    uint32_t bufsize = 1u + fz_u16(&r->in) % 512u;
    uint32_t count = 1u + fz_u8(&r->in) % 32u;
    uint32_t throttle = fz_u8(&r->in) % count;
    size_t poolsize = iob_pool_size(bufsize, count);
    void *orig = NULL;
    if (poolsize == 0 || posix_memalign(&orig, IOB_POOL_ALIGN, poolsize) != 0) {
        free(r);
        return 0;
    }

    /* Step 1. */
    r->h = iob_pool_initialize(orig, poolsize, bufsize, count, throttle);
    FZ_CHECK(r->h != NULL);
    iob_pool_set_owner(r->h, owners[0]);
    r->img = orig;
    r->size = poolsize;
    unsigned nops = fz_u8(&r->in) % 48u;
    for (unsigned i = 0; i < nops; i++)
        operate(r, false);

    /* Step 2: the copy, mapped maybe shorter or longer than the pool. */
    r->size = fz_mapped_size(&r->in, poolsize);
    void *img = NULL;
    if (posix_memalign(&img, IOB_POOL_ALIGN, r->size) != 0) {
        iob_pool_detach(r->h);
        free(orig);
        free(r);
        return 0;
    }
    r->img = img;
    fz_copy_image(r->img, r->size, orig, poolsize);
    for (unsigned i = 0; i < r->nc; i++)
        r->c[i].head =
            (struct iob_s *)(void *)(r->img + ((uint8_t *)r->c[i].head - (uint8_t *)orig));
    struct iob_queue_s q = r->q;
    iob_pool_detach(r->h);
    free(orig);

    /* Step 3.  The locks: the admin lock and each channel's two. */
    size_t desc_off = sizeof(struct iob__header), chan_off = 0;
    {
        struct iob_pool_s *probe = iob_pool_attach(r->img, r->size);
        if (probe != NULL) {
            chan_off = (size_t)((uint8_t *)probe->chan - r->img);
            iob_pool_detach(probe);
        }
    }
    size_t hot[MAX_CHAINS + 8];
    size_t nhot = 0;
    hot[nhot++] = offsetof(struct iob__header, bufsize);
    hot[nhot++] = offsetof(struct iob__header, bufs);
    hot[nhot++] = offsetof(struct iob__header, qents);
    hot[nhot++] = desc_off;
    if (chan_off != 0) {
        hot[nhot++] = chan_off;
        hot[nhot++] = chan_off + offsetof(struct iob__chan, tail);
        hot[nhot++] = chan_off + offsetof(struct iob__chan, head);
        hot[nhot++] = chan_off + offsetof(struct iob__chan, cell);
    }
    for (unsigned i = 0; i < r->nc; i++)
        hot[nhot++] = (size_t)((uint8_t *)r->c[i].head - r->img);
    struct {
        size_t off;
        union iob__lock lock;
    } locks[1 + 2 * IOB_CONFIG_CHANNELS];
    unsigned nlocks = 0;
    locks[nlocks++].off = offsetof(struct iob__header, admin);
    for (unsigned i = 0; chan_off != 0 && i < IOB_CONFIG_CHANNELS; i++) {
        size_t ch = chan_off + i * sizeof(struct iob__chan);
        locks[nlocks++].off = ch + offsetof(struct iob__chan, send_lock);
        locks[nlocks++].off = ch + offsetof(struct iob__chan, recv_lock);
    }
    for (unsigned i = 0; i < nlocks; i++)
        if (locks[i].off + sizeof(union iob__lock) <= r->size)
            memcpy(&locks[i].lock, r->img + locks[i].off, sizeof(union iob__lock));
    fz_scribble(&r->in, r->img, r->size, hot, nhot);
    for (unsigned i = 0; i < nlocks; i++)
        if (locks[i].off + sizeof(union iob__lock) <= r->size)
            memcpy(r->img + locks[i].off, &locks[i].lock, sizeof(union iob__lock));

    /* Step 4. */
    r->h = iob_pool_attach(r->img, r->size);
    if (r->h != NULL) {
        iob_pool_set_owner(r->h, OWNER_LIVE);
        iob_pool_set_spin(r->h, 0);
        /* The old queue's entries name chains of the dead owners. */
        r->q = (fz_u8(&r->in) & 1u) ? q : (struct iob_queue_s)IOB_QUEUE_INIT;
        struct iob_census_s census;
        r->sound = iob_pool_check(r->h, &census) == 0;
        nops = fz_u8(&r->in) % 64u;
        for (unsigned i = 0; i < nops; i++)
            operate(r, true);
        for (unsigned i = 0; i < r->nc; i++)
            check_intact(r, &r->c[i]);
        if (r->sound)
            FZ_CHECK(iob_pool_check(r->h, &census) == 0);
        iob_pool_detach(r->h);
    }
    free(r->img);
    free(r);
    return 0;
}
