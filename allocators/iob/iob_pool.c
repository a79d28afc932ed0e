/*
 * iob_pool.c - making, opening and releasing IOB pools, and what a handle
 * answers without walking: owner, geometry, counters, free counts.
 *
 * The layout of a pool follows from its buffer size and count alone
 * (iob_internal.h).  iob_pool_attach recomputes it from the header's two
 * numbers and refuses the memory unless every recorded offset matches and
 * the whole pool fits in the mapping; from then on the handle's copies of
 * count, buffer size and stride are what every bounds check uses, never the
 * header again.
 */
#include "iob_internal.h"

static struct iob_pool_s g_pools[IOB_CONFIG_MAX_POOLS];

/* ---- Layout -------------------------------------------------------------- */

#if SIZE_MAX > UINT32_MAX
/* Offsets in 64 bits: nothing below can overflow (the total < 2^50). */
typedef uint64_t iob__off_t;
#else
/* A 32-bit (or 16-bit) size_t: offsets in 32 bits, which is all a pool can
 * take there; the buffer data, the one part that can pass 2^32, is checked
 * before it is added. */
typedef uint32_t iob__off_t;
#endif

struct iob__layout {
    iob__off_t desc_off, qent_off, chan_off, data_off, total;
    uint32_t stride;
};

static iob__off_t iob__round_line(iob__off_t x)
{
    return (x + IOB__LINE - 1u) & ~(iob__off_t)(IOB__LINE - 1u);
}

static bool iob__layout(iob__off_t bufsize, uint32_t count, struct iob__layout *lo)
{
    if (bufsize == 0 || bufsize > IOB_MAX_BUFSIZE || count == 0 || count > IOB_MAX_BUFFERS)
        return false;
    lo->stride = (uint32_t)iob__round_line(bufsize);
    lo->desc_off = iob__round_line(sizeof(struct iob__header));
    lo->qent_off = lo->desc_off + (iob__off_t)count * sizeof(struct iob__desc);
    lo->chan_off = iob__round_line(lo->qent_off + (iob__off_t)count * sizeof(struct iob__qent));
    lo->data_off =
        iob__round_line(lo->chan_off + (iob__off_t)IOB_CONFIG_CHANNELS * sizeof(struct iob__chan));
#if SIZE_MAX > UINT32_MAX
    lo->total = lo->data_off + (uint64_t)count * lo->stride; /* < 2^50: no overflow */
    return lo->total <= (uint64_t)SIZE_MAX;
#else
    /* Everything before the data fits in 32 bits; the data must fit in
     * what SIZE_MAX leaves. */
    _Static_assert(IOB__LINE * 4ull +
                           IOB_MAX_BUFFERS *
                               (uint64_t)(sizeof(struct iob__desc) + sizeof(struct iob__qent)) +
                           IOB_CONFIG_CHANNELS * (uint64_t)sizeof(struct iob__chan) +
                           sizeof(struct iob__header) <=
                       UINT32_MAX,
                   "offsets before the data fit in 32 bits");
#if SIZE_MAX < UINT32_MAX
    if (lo->data_off > SIZE_MAX)
        return false;
#endif
    if (lo->stride > (SIZE_MAX - lo->data_off) / count)
        return false;
    lo->total = lo->data_off + count * lo->stride;
    return true;
#endif
}

size_t iob_pool_size(size_t bufsize, uint32_t count)
{
    struct iob__layout lo;
    return iob__layout(bufsize, count, &lo) ? (size_t)lo.total : 0u;
}

/* ---- Handles ------------------------------------------------------------- */

/* Why the calling thread's last iob_pool_initialize or iob_pool_attach
 * returned NULL (iob_pool_error(NULL)): there is no handle to keep it in. */
#if MM_CONFIG_PORT == MM_PORT_HOST
static MM_PORT_THREAD_LOCAL int g_open_error;
#else
static int g_open_error;
#endif

static struct iob_pool_s *iob__open_failed(int err)
{
    g_open_error = err;
    return NULL;
}

static struct iob_pool_s *iob__handle_claim(uint8_t *base, size_t size,
                                            const struct iob__layout *lo, uint32_t bufsize,
                                            uint32_t count, uint32_t throttle)
{
    for (unsigned i = 0; i < IOB_CONFIG_MAX_POOLS; i++) {
        struct iob_pool_s *h = &g_pools[i];
        if (mm_port_load32(&h->in_use) == 0 && mm_port_claim(&h->in_use)) {
            h->base = base;
            h->size = size;
            h->hdr = (struct iob__header *)(void *)base;
            h->desc = (struct iob__desc *)(void *)(base + lo->desc_off);
            h->qent = (struct iob__qent *)(void *)(base + lo->qent_off);
            h->chan = (struct iob__chan *)(void *)(base + lo->chan_off);
            h->data = base + lo->data_off;
            h->count = count;
            h->bufsize = bufsize;
            h->stride = lo->stride;
            h->throttle = throttle;
            h->owner = iob__owner_id(0);
            h->spin = IOB_CONFIG_SPIN;
            iob__set_error(h, 0);
            memset(h->ch, 0, sizeof(h->ch));
            g_open_error = 0;
            return h;
        }
    }
    return iob__open_failed(-MM_ENOSPC);
}

void iob_pool_detach(struct iob_pool_s *h)
{
    if (!iob__handle_ok(h))
        return;
    h->base = NULL;
    h->size = 0;
    h->count = 0;
    mm_port_release(&h->in_use);
}

/* ---- Making and opening -------------------------------------------------- */

static void iob__slot_init(struct iob__slot *s, uint32_t next)
{
    s->state = iob__st_make(IOB__FREE, 0, 0);
    s->free_next = next;
    s->mark = 0;
}

struct iob_pool_s *iob_pool_initialize(void *start, size_t size, size_t bufsize, uint32_t count,
                                       uint32_t throttle)
{
    struct iob__layout lo;
    if (start == NULL || ((uintptr_t)start & (IOB_POOL_ALIGN - 1u)) != 0 ||
        !iob__layout(bufsize, count, &lo) || lo.total > size || throttle >= count)
        return iob__open_failed(-MM_EINVAL);
    uint8_t *base = start;
    struct iob_pool_s *h = iob__handle_claim(base, size, &lo, (uint32_t)bufsize, count, throttle);
    if (h == NULL)
        return NULL;

    struct iob__header *hd = h->hdr;
    memset(hd, 0, sizeof(*hd));
    if (mm_port_lock_init(&hd->admin.lock) != 0) {
        iob_pool_detach(h);
        return iob__open_failed(-MM_EINVAL);
    }
    hd->version = IOB__VERSION;
    hd->header_size = (uint16_t)sizeof(*hd);
    hd->port = MM_CONFIG_PORT;
    hd->lock_size = (uint32_t)sizeof(mm_port_lock_t);
    hd->nchannels = IOB_CONFIG_CHANNELS;
    hd->chdepth = IOB_CONFIG_CHANNEL_DEPTH;
    hd->bufsize = (uint32_t)bufsize;
    hd->count = count;
    hd->throttle = throttle;
    hd->stride = lo.stride;
    hd->desc_off = lo.desc_off;
    hd->qent_off = lo.qent_off;
    hd->chan_off = lo.chan_off;
    hd->data_off = lo.data_off;
    hd->total = lo.total;
    hd->epoch = 0;
    hd->stats.lowest_free = count;

    for (uint32_t i = 0; i < count; i++) {
        uint32_t next = i + 1u < count ? i + 1u : IOB__NIL;
        struct iob__desc *d = &h->desc[i];
        memset(d, 0, sizeof(*d));
        iob__slot_init(&d->s, next);
        d->next = IOB__NIL;
        struct iob__qent *q = &h->qent[i];
        iob__slot_init(&q->s, next);
        q->next = IOB__NIL;
        q->chain = IOB__NIL;
    }
    memset(h->chan, 0, (size_t)IOB_CONFIG_CHANNELS * sizeof(struct iob__chan));
#if MM_CONFIG_MULTIPROCESS
    hd->bufs.head[0] = iob__h_make(0, count, 0);
    hd->bufs.head[1] = iob__l_make(0, IOB__NIL);
    hd->qents.head[0] = iob__h_make(0, count, 0);
    hd->qents.head[1] = iob__l_make(0, IOB__NIL);
#else
    (void)mm_port_lock_init(&hd->bufs.lock); /* the app and none ports cannot fail */
    (void)mm_port_lock_init(&hd->qents.lock);
    hd->bufs.nfree = count; /* top 0: the header was zeroed */
    hd->qents.nfree = count;
#endif
    /* The magic goes in last: until then iob_pool_attach refuses the memory. */
    mm_port_store32(&hd->magic, IOB__MAGIC);
    return h;
}

#if MM_CONFIG_MULTIPROCESS
struct iob_pool_s *iob_pool_attach(void *start, size_t size)
{
    if (start == NULL || ((uintptr_t)start & (IOB_POOL_ALIGN - 1u)) != 0)
        return iob__open_failed(-MM_EINVAL);
    if (size < sizeof(struct iob__header))
        return iob__open_failed(-MM_EBADMSG);
    const struct iob__header *hd = start;
    struct iob__layout lo;
    uint32_t bufsize = hd->bufsize, count = hd->count, throttle = hd->throttle;
    if (mm_port_load32(&hd->magic) != IOB__MAGIC || hd->version != IOB__VERSION ||
        hd->header_size != sizeof(struct iob__header) || hd->port != MM_CONFIG_PORT ||
        hd->lock_size != sizeof(mm_port_lock_t) || hd->nchannels != IOB_CONFIG_CHANNELS ||
        hd->chdepth != IOB_CONFIG_CHANNEL_DEPTH || !iob__layout(bufsize, count, &lo) ||
        throttle >= count || hd->stride != lo.stride || hd->desc_off != lo.desc_off ||
        hd->qent_off != lo.qent_off || hd->chan_off != lo.chan_off || hd->data_off != lo.data_off ||
        hd->total != lo.total || lo.total > size)
        return iob__open_failed(-MM_EBADMSG);
    return iob__handle_claim(start, size, &lo, bufsize, count, throttle);
}
#endif

/* ---- Handle settings ------------------------------------------------------ */

void iob_pool_set_owner(struct iob_pool_s *h, uint32_t owner)
{
    if (iob__handle_ok(h))
        h->owner = iob__owner_id(owner);
}

uint32_t iob_pool_owner(struct iob_pool_s *h)
{
    return iob__handle_ok(h) ? iob__me(h) : 0u;
}

void iob_pool_set_spin(struct iob_pool_s *h, uint32_t spins)
{
    if (iob__handle_ok(h))
        h->spin = spins;
}

int iob_pool_error(const struct iob_pool_s *h)
{
    return h != NULL ? iob__error(h) : g_open_error;
}

uint32_t iob_pool_bufsize(const struct iob_pool_s *h)
{
    return iob__handle_ok(h) ? h->bufsize : 0u;
}

uint32_t iob_pool_count(const struct iob_pool_s *h)
{
    return iob__handle_ok(h) ? h->count : 0u;
}

/* ---- Counters ------------------------------------------------------------- */

struct iob_stats_s iob_pool_stats(struct iob_pool_s *h)
{
    struct iob_stats_s st;
    memset(&st, 0, sizeof(st));
    if (!iob__handle_ok(h))
        return st;
    const struct iob__hstats *hs = &h->hdr->stats;
    uint32_t nfree = iob__nfree(&h->hdr->bufs);
    if (IOB__VALIDATE && nfree > h->count)
        nfree = h->count;
#if MM_CONFIG_MULTIPROCESS
    uint64_t frees = 0;
    for (uint32_t i = 0; i < h->count; i++)
        frees += mm_port_load64(&h->desc[i].nfreed);
#else
    uint64_t frees = h->hdr->bufs.pushed;
#endif
    st.count = h->count;
    st.bufsize = h->bufsize;
    st.throttle = h->throttle;
    st.nfree = nfree;
    st.lowest_free = mm_port_load32(&hs->lowest_free);
    st.waits = mm_port_load32(&hs->waits);
    st.failures = mm_port_load32(&hs->failures);
    st.misuse = mm_port_load32(&hs->misuse);
    st.frees = frees;
    st.allocs = frees + (h->count - nfree);
#if MM_CONFIG_MULTIPROCESS /* a microcontroller has no dead owners to reclaim */
    st.reclaims = mm_port_load32(&hs->reclaims);
    st.reclaimed = mm_port_load32(&hs->reclaimed);
#endif
    return st;
}

int iob_navail(struct iob_pool_s *h, bool throttled)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t n = iob__nfree(&h->hdr->bufs);
    if (IOB__VALIDATE && n > h->count)
        return -MM_EUCLEAN;
    if (throttled)
        n = n > h->throttle ? n - h->throttle : 0u;
    return (int)n;
}

int iob_qentry_navail(struct iob_pool_s *h)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t n = iob__nfree(&h->hdr->qents);
    return IOB__VALIDATE && n > h->count ? -MM_EUCLEAN : (int)n;
}

/* ---- Crash points ----------------------------------------------------- */

#if MM_CONFIG_CRASH_HOOKS
static iob_crash_fn g_crash_fn;

void iob_set_crash_hook(iob_crash_fn fn)
{
    g_crash_fn = fn;
}

void iob__crash_point(int point)
{
    iob_crash_fn fn = g_crash_fn;
    if (fn != NULL)
        fn(point);
}
#endif
