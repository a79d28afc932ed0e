/*
 * iob_freelist.c - the free lists: taking and returning buffers (and queue
 * entries), lock-free between any number of processes, and waiting for one
 * when none is free.
 *
 * The algorithm and the argument that no process death loses a buffer are
 * in iob_internal.h ("The free lists").  In short: the head is two words
 * changed together by one 16-byte compare-and-swap, and a pop writes into
 * it who took which buffer; until the popper has written that into the
 * buffer's state, the next pop (or reclaim) does it for it.  A pop costs
 * one compare-and-swap and a plain store, a push one compare-and-swap.
 *
 * Waiting: an allocator that finds nothing free spins a while, then takes
 * a sleeper slot (its bit in the list's sleepmask), reads the futex word
 * seq, checks the list once more and sleeps on seq.  A push that finds a
 * bit set bumps seq and wakes every sleeper (each retries; throttled and
 * unthrottled waiters want different counts, so waking one could wake the
 * wrong one).  Both sides write one word and then read the other's with
 * sequentially consistent operations, so a push never misses a sleeper;
 * a push with nobody asleep pays one load of a word on the line it just
 * changed.
 */
#include "iob_internal.h"

/* ---- Deadlines and sleeping -------------------------------------------- */

#if IOB__CLOCK
uint64_t iob__deadline(int64_t timeout_ms)
{
    if (timeout_ms == 0)
        return 0;
    if (timeout_ms < 0)
        return UINT64_MAX;
    uint64_t now = mm_port_now_ms();
    return now + (uint64_t)timeout_ms + (now == 0 ? 1u : 0u);
}

/* Milliseconds left for mm_port_wait: -1 forever, 0 when due. */
static int32_t iob__remaining(iob__dl_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = mm_port_now_ms();
    if (now == 0)
        return (int32_t)(deadline > 0x7fffffffu ? 0x7fffffff : deadline); /* no clock: wait once */
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > 0x7fffffffu ? 0x7fffffff : (int32_t)left;
}
#else
/* No clock: the deadline is the wait (-1 forever, never 0 here). */
static int32_t iob__remaining(iob__dl_t deadline)
{
    return deadline;
}
#endif

#if MM_CONFIG_MULTIPROCESS
/* Claim a sleeper slot (owner first, bit after); -1 if all are taken. */
static int iob__sleeper_in(uint32_t *mask, struct iob__sleepers *sl, uint32_t me)
{
    for (unsigned i = 0; i < IOB__SLEEPERS; i++) {
        uint32_t zero = 0;
        if (mm_port_load32(&sl->owner[i]) == 0 && mm_port_cas32(&sl->owner[i], &zero, me)) {
            (void)mm_port_fetch_or32(mask, (uint32_t)1 << i); /* not 1u: 16 bits on AVR */
            return (int)i;
        }
    }
    return -1;
}

/* Give it back: bit first, owner after. */
static void iob__sleeper_out(uint32_t *mask, struct iob__sleepers *sl, int i)
{
    if (i < 0)
        return;
    (void)mm_port_fetch_and32(mask, ~((uint32_t)1 << (unsigned)i));
    mm_port_store32(&sl->owner[i], 0);
}

void iob__sleepers_reclaim(uint32_t *mask, struct iob__sleepers *sl, uint32_t owner)
{
    for (unsigned i = 0; i < IOB__SLEEPERS; i++)
        if (mm_port_load32(&sl->owner[i]) == owner)
            iob__sleeper_out(mask, sl, (int)i);
}
#else
/* One program: the mask counts sleepers; nobody dies asleep. */
static int iob__sleeper_in(uint32_t *mask, struct iob__sleepers *sl, uint32_t me)
{
    (void)sl, (void)me;
    (void)mm_port_fetch_add32(mask, 1u);
    return 0;
}

static void iob__sleeper_out(uint32_t *mask, struct iob__sleepers *sl, int i)
{
    (void)sl, (void)i;
    (void)mm_port_fetch_add32(mask, UINT32_MAX); /* minus one */
}
#endif

/* Without a slot nobody knows we sleep: poll in short sleeps. */
#define IOB__POLL_MS 2

int iob__sleep(uint32_t *word, uint32_t expected, uint32_t *mask, struct iob__sleepers *sl,
               uint32_t me, iob__dl_t deadline)
{
    int32_t left = iob__remaining(deadline);
    if (left == 0)
        return -MM_ETIMEDOUT;
    int slot = iob__sleeper_in(mask, sl, me);
    bool poll = slot < 0 && (left < 0 || left > IOB__POLL_MS);
    int r = 0;
    /* The mask update above is sequentially consistent, and so is this
     * load: a waker that stores the word and then reads the mask cannot
     * miss us. */
    if (mm_port_load32_sc(word) == expected)
        r = mm_port_wait(word, expected, poll ? IOB__POLL_MS : left);
    iob__sleeper_out(mask, sl, slot);
    if (r == -MM_ETIMEDOUT && poll)
        return 0;
    return r == -MM_EAGAIN || r == -MM_ETIMEDOUT ? r : 0;
}

/* ---- The lock-free stack --------------------------------------------------- */

#if MM_CONFIG_MULTIPROCESS
static void iob__note_low(struct iob_pool_s *h, uint32_t n)
{
    uint32_t *low = &h->hdr->stats.lowest_free;
    uint32_t lo = mm_port_load32(low);
    while (n < lo && !mm_port_cas32(low, &lo, n))
        ;
}

/* A consistent copy of the head: word 1 changes only with a pop, and every
 * pop changes word 0, so word 0 read twice the same brackets word 1. */
IOB__HOT void iob__snap(struct iob__stack *stk, uint64_t *w)
{
    for (;;) {
        w[0] = mm_port_load64(&stk->head[0]);
        w[1] = mm_port_load64(&stk->head[1]);
        if (MM_LIKELY(mm_port_load64(&stk->head[0]) == w[0]))
            return;
    }
}

/* Make sure the pop named in head w (a consistent copy) is written in its
 * slot's state: normally its popper did it; if it died (or is slow) we do.
 * 0, or -MM_EUCLEAN for a head naming a slot beyond the list. */
static __attribute__((noinline)) int iob__record(struct iob_pool_s *h, bool buffers, uint64_t w0,
                                                 uint64_t w1)
{
    struct iob__list l = buffers ? iob__bufs(h) : iob__qents(h);
    uint32_t lb = iob__l_idx(w1), v = iob__h_pops(w0);
    if (lb >= l.count)
        return iob__fail(h, -MM_EUCLEAN);
    struct iob__slot *s = iob__slot(&l, lb);
    uint64_t st = mm_port_load64(&s->state);
    /* While the head still shows this pop (no pop since: word 0 unchanged),
     * the state is either the one the slot had on the list or one written
     * since the pop, which carries version v.  Checked after reading the
     * state, so that a state of a later life (after later pops) is never
     * taken for an unrecorded one; and if anything changes between here and
     * the CAS, the state changed too (recording comes first), and the CAS
     * fails. */
    if (iob__st_ver(st) != v && mm_port_load64(&l.st->head[0]) == w0)
        (void)mm_port_cas64(&s->state, &st, iob__st_make(IOB__OWNED, iob__l_owner(w1), v));
    return 0;
}

/* Whether the latest pop of head w still needs recording. */
IOB__HOT bool iob__unrecorded(const struct iob__list *l, const uint64_t *w)
{
    uint32_t lb = iob__l_idx(w[1]);
    if (lb == IOB__NIL)
        return false;
    if (MM_UNLIKELY(lb >= l->count))
        return true; /* iob__record reports it */
    return iob__st_ver(mm_port_load64(&iob__slot(l, lb)->state)) != iob__h_pops(w[0]);
}

/* One pop: 0 and *out, -MM_EAGAIN (no more than `reserve` free), or
 * -MM_EUCLEAN.  One compare-and-swap, and a plain store that records it. */
IOB__HOT int iob__pop(struct iob_pool_s *h, const struct iob__list *l, uint32_t me,
                      uint32_t reserve, uint32_t *out)
{
    struct iob__stack *stk = l->st;
    const uint32_t count = l->count;
    for (;;) {
        uint64_t w[2];
        iob__snap(stk, w);
        uint32_t b = iob__h_idx(w[0]), n = iob__h_nfree(w[0]);
        if (MM_UNLIKELY(b == IOB__FROZEN)) {
            int r = iob__wait_thaw(h);
            if (r < 0)
                return r;
            continue;
        }
        if (MM_UNLIKELY(iob__unrecorded(l, w))) {
            int r = iob__record(h, l->buffers, w[0], w[1]);
            if (r < 0)
                return r;
        }
        if (n <= reserve)
            return n > count ? iob__fail(h, -MM_EUCLEAN) : -MM_EAGAIN;
        if (MM_UNLIKELY(b >= count || n > count))
            return iob__fail(h, -MM_EUCLEAN);
        struct iob__slot *s = iob__slot(l, b);
        uint32_t nx = mm_port_load32(&s->free_next);
        if (MM_UNLIKELY(nx == IOB__NIL ? n != 1u : (nx >= count || n == 1u))) {
            if (mm_port_load64(&stk->head[0]) == w[0])
                return iob__fail(h, -MM_EUCLEAN);
            continue; /* read from a slot that left the list meanwhile */
        }
        uint64_t w0 = ((w[0] & ~(uint64_t)IOB__IDX_MASK) - IOB__H_NFREE_ONE + IOB__H_POP_ONE) | nx;
        /* Everything read from the handle is read before the stores below:
         * a load that follows a store to an address equal modulo 4 KiB
         * waits for it on many cores. */
        bool low = l->buffers && n - 1u < mm_port_load32(l->lowest);
        if (MM_LIKELY(mm_port_cas128(stk->head, w, w0, iob__l_make(me, b)))) {
            IOB__CRASH(IOB_CRASH_POP);
            mm_port_store64(&s->state, iob__st_make(IOB__OWNED, me, iob__h_pops(w0)));
            if (MM_UNLIKELY(low))
                iob__note_low(h, n - 1u);
            *out = b;
            return 0;
        }
    }
}

IOB__HOT int iob__push(struct iob_pool_s *h, const struct iob__list *l, uint32_t first,
                       uint32_t last, uint32_t k)
{
    struct iob__stack *stk = l->st;
    uint64_t w[2] = {mm_port_load64(&stk->head[0]), mm_port_load64(&stk->head[1])};
    for (;;) {
        uint32_t top = iob__h_idx(w[0]);
        if (MM_UNLIKELY(top == IOB__FROZEN)) {
            int r = iob__wait_thaw(h);
            if (r < 0)
                return r;
            iob__snap(stk, w);
            continue;
        }
        if (MM_UNLIKELY(iob__h_nfree(w[0]) + k > l->count))
            return iob__fail(h, -MM_EUCLEAN);
        mm_port_store32(&iob__slot(l, last)->free_next, top);
        uint64_t w0 = ((w[0] & ~(uint64_t)IOB__IDX_MASK) + (uint64_t)k * IOB__H_NFREE_ONE) | first;
        if (MM_LIKELY(mm_port_cas128(stk->head, w, w0, w[1])))
            break;
    }
    if (MM_UNLIKELY(mm_port_load32_sc(&stk->sleepmask) != 0)) {
        (void)mm_port_fetch_add32(&stk->seq, 1u);
        mm_port_wake(&stk->seq, UINT32_MAX);
    }
    return 0;
}

#else /* !MM_CONFIG_MULTIPROCESS */

/* One program: a pop and a push are a few stores under the list's lock,
 * and nobody can die between taking a buffer and recording its owner. */
IOB__HOT int iob__pop(struct iob_pool_s *h, const struct iob__list *l, uint32_t me,
                      uint32_t reserve, uint32_t *out)
{
    struct iob__stack *stk = l->st;
    mm_port_lock(&stk->lock);
    uint32_t b = stk->top, n = stk->nfree;
    if (n <= reserve) {
        mm_port_unlock(&stk->lock);
        return -MM_EAGAIN;
    }
    struct iob__slot *s = iob__slot(l, b);
    stk->top = s->free_next;
    stk->nfree = --n;
    iob__st_store(s, iob__st_make(IOB__OWNED, me, 0));
    if (l->buffers && n < h->hdr->stats.lowest_free)
        h->hdr->stats.lowest_free = n;
    mm_port_unlock(&stk->lock);
    *out = b;
    return 0;
}

IOB__HOT int iob__push(struct iob_pool_s *h, const struct iob__list *l, uint32_t first,
                       uint32_t last, uint32_t k)
{
    (void)h;
    struct iob__stack *stk = l->st;
    mm_port_lock(&stk->lock);
    iob__slot(l, last)->free_next = stk->top;
    stk->top = first;
    stk->nfree += k;
    stk->pushed += k;
    mm_port_unlock(&stk->lock);
    iob__wake_list(stk);
    return 0;
}
#endif

/* Spin, then sleep until the list may hold more than `reserve` or the
 * deadline passes.  0: look again. */
static int iob__wait_free(struct iob_pool_s *h, const struct iob__list *l, uint32_t me,
                          uint32_t reserve, iob__dl_t deadline)
{
    struct iob__stack *st = l->st;
    for (uint32_t i = 0; i < h->spin; i++) {
        mm_port_relax();
        if (iob__nfree(st) > reserve)
            return 0;
    }
    int32_t left = iob__remaining(deadline);
    if (left == 0)
        return -MM_ETIMEDOUT;
    int slot = iob__sleeper_in(&st->sleepmask, iob__list_sleepers(l), me);
    bool poll = slot < 0 && (left < 0 || left > IOB__POLL_MS);
    uint32_t seq = mm_port_load32_sc(&st->seq);
    int r = 0;
#if MM_CONFIG_MULTIPROCESS
    uint32_t n = iob__h_nfree(mm_port_load64_sc(&st->head[0]));
#else
    uint32_t n = mm_port_load32_sc(&st->nfree);
#endif
    if (n <= reserve)
        r = mm_port_wait(&st->seq, seq, poll ? IOB__POLL_MS : left);
    iob__sleeper_out(&st->sleepmask, iob__list_sleepers(l), slot);
    if (r == -MM_ETIMEDOUT && poll)
        return 0;
    return r == -MM_EAGAIN || r == -MM_ETIMEDOUT ? r : 0;
}

/* The waiting half of iob__take: the list had nothing for us. */
static __attribute__((noinline)) int iob__take_wait(struct iob_pool_s *h, bool buffers, uint32_t me,
                                                    uint32_t reserve, iob__dl_t deadline,
                                                    uint32_t *out)
{
    struct iob__list lst = buffers ? iob__bufs(h) : iob__qents(h);
    const struct iob__list *l = &lst;
    if (buffers)
        iob__count(&h->hdr->stats.waits);
    for (;;) {
        int r = iob__wait_free(h, l, me, reserve, deadline);
        if (r < 0)
            return r;
        r = iob__pop(h, l, me, reserve, out);
        if (r != -MM_EAGAIN)
            return r;
    }
}

IOB__HOT int iob__take_inline(struct iob_pool_s *h, const struct iob__list *l, uint32_t me,
                              uint32_t reserve, iob__dl_t deadline, uint32_t *out)
{
    int r = iob__pop(h, l, me, reserve, out);
    if (MM_UNLIKELY(r == -MM_EAGAIN) && deadline != 0)
        r = iob__take_wait(h, l->buffers, me, reserve, deadline, out);
    return r;
}

int iob__take(struct iob_pool_s *h, const struct iob__list *l, uint32_t me, uint32_t reserve,
              iob__dl_t deadline, uint32_t *out)
{
    return iob__take_inline(h, l, me, reserve, deadline, out);
}

int iob__give(struct iob_pool_s *h, const struct iob__list *l, uint32_t first, uint32_t last,
              uint32_t k)
{
    return iob__push(h, l, first, last, k);
}

/* ---- Freezing, for reclaim and check ----------------------------------- */

#if MM_CONFIG_MULTIPROCESS

int iob__freeze(struct iob_pool_s *h, const struct iob__list *l, uint32_t *top, uint32_t *nfree)
{
    struct iob__stack *stk = l->st;
    for (;;) {
        uint64_t w[2];
        iob__snap(stk, w);
        if (iob__h_idx(w[0]) == IOB__FROZEN) { /* left so by a reclaimer that died */
            *top = mm_port_load32(&stk->frozen_top);
            *nfree = iob__h_nfree(w[0]);
            return 0;
        }
        if (iob__unrecorded(l, w)) {
            int r = iob__record(h, l->buffers, w[0], w[1]);
            if (r < 0)
                return r;
        }
        mm_port_store32(&stk->frozen_top, iob__h_idx(w[0]));
        uint64_t f = (w[0] & ~(uint64_t)IOB__IDX_MASK) | IOB__FROZEN;
        uint32_t t = iob__h_idx(w[0]), n = iob__h_nfree(w[0]);
        if (mm_port_cas128(stk->head, w, f, w[1])) {
            *top = t;
            *nfree = n;
            return 0;
        }
    }
}

void iob__thaw(struct iob_pool_s *h, const struct iob__list *l, uint32_t top, uint32_t nfree)
{
    (void)h;
    struct iob__stack *stk = l->st;
    /* A top read back from frozen_top (shared memory) may name FROZEN: that
     * would leave the list frozen for good, and every pop and push waiting
     * for a thaw in a loop.  Without a top, pops report the list corrupted. */
    if ((top & IOB__IDX_MASK) == IOB__FROZEN)
        top = IOB__NIL;
    uint64_t w[2];
    iob__snap(stk, w);
    /* Frozen: nobody else changes the head until this CAS. */
    while (!mm_port_cas128(stk->head, w, iob__h_make(top, nfree, iob__h_pops(w[0])), w[1]))
        ;
    if (mm_port_load32_sc(&stk->sleepmask) != 0) {
        (void)mm_port_fetch_add32(&stk->seq, 1u);
        mm_port_wake(&stk->seq, UINT32_MAX);
    }
}

#endif

/* ---- Buffers ---------------------------------------------------------------- */

IOB__HOT int iob__alloc_inline(struct iob_pool_s *h, uint32_t me, bool throttled,
                               iob__dl_t deadline, uint32_t *out)
{
    struct iob__list l = iob__bufs(h);
    uint32_t b = 0; /* set on success; avr-gcc 5 cannot tell */
    int r = iob__take_inline(h, &l, me, throttled ? h->throttle : 0u, deadline, &b);
    if (MM_UNLIKELY(r < 0)) {
        iob__set_error(h, r);
        iob__count(&h->hdr->stats.failures);
        return r;
    }
    struct iob__desc *d = (struct iob__desc *)(void *)iob__slot(&l, b);
    d->next = IOB__NIL;
    d->len = 0;
    d->offset = 0;
    d->pktlen = 0;
    *out = b;
    return 0;
}

int iob__alloc_idx(struct iob_pool_s *h, uint32_t me, bool throttled, iob__dl_t deadline,
                   uint32_t *out)
{
    return iob__alloc_inline(h, me, throttled, deadline, out);
}

IOB__HOT struct iob_s *iob__alloc(struct iob_pool_s *h, bool throttled, iob__dl_t deadline)
{
    if (MM_UNLIKELY(!iob__handle_ok(h)))
        return NULL;
    struct iob__desc *descs = h->desc;
    uint32_t b = 0; /* set on success; avr-gcc 5 cannot tell */
#if defined(__OPTIMIZE_SIZE__)
    if (iob__alloc_idx(h, iob__me(h), throttled, deadline, &b) < 0) /* one copy under -Os */
        return NULL;
#else
    if (iob__alloc_inline(h, iob__me(h), throttled, deadline, &b) < 0)
        return NULL;
#endif
    return (struct iob_s *)(void *)&descs[b];
}

struct iob_s *iob_tryalloc(struct iob_pool_s *h, bool throttled)
{
    return iob__alloc(h, throttled, 0);
}

struct iob_s *iob_alloc(struct iob_pool_s *h, bool throttled)
{
    return iob__alloc(h, throttled, IOB__FOREVER);
}

struct iob_s *iob_timedalloc(struct iob_pool_s *h, bool throttled, uint32_t timeout_ms)
{
    return iob__alloc(h, throttled, iob__deadline((int64_t)timeout_ms));
}

/* Mark buffer b (state st, the caller's) free: the state is written last,
 * after the chain link is cleared, so that no walk starts from a stale
 * link. */
IOB__HOT void iob__mark_free(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me)
{
    struct iob__desc *d = iob__desc(h, b);
    d->next = IOB__NIL;
    iob__count_free(d);
    iob__st_store(&d->s, iob__st_with(st, IOB__FREE, me));
}

/* The buffer after b, promoted to the head of the rest of the chain (with
 * pktlen as its packet length), or IOB__NIL.  A corrupt link ends the chain
 * (the buffers behind it stay where they are: reclaim or check reports
 * them). */
static uint32_t iob__promote_next(struct iob_pool_s *h, uint32_t b, uint32_t me, uint32_t pktlen)
{
    uint32_t nx;
    if (!iob__follow(h, b, &nx)) {
        iob__set_error(h, -MM_EUCLEAN);
        return IOB__NIL;
    }
    if (nx != IOB__NIL) {
        struct iob__desc *dn = iob__desc(h, nx);
        dn->pktlen = pktlen;
        iob__st_store(&dn->s, iob__st_with(iob__st_load(&dn->s), IOB__OWNED, me));
    }
    return nx;
}

void iob__free_one(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me)
{
    iob__mark_free(h, b, st, me);
    IOB__CRASH(IOB_CRASH_FREE_STATE);
    struct iob__list l = iob__bufs(h);
    (void)iob__push(h, &l, b, b, 1);
}

uint32_t iob__free_head(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me)
{
    struct iob__desc *d = iob__desc(h, b);
    uint32_t pk = d->pktlen, ln = d->len;
    uint32_t nx = iob__promote_next(h, b, me, pk > ln ? pk - ln : 0u);
    iob__free_one(h, b, st, me);
    return nx;
}

static __attribute__((noinline)) struct iob_s *iob__refuse(struct iob_pool_s *h, int err)
{
    iob__count(&h->hdr->stats.misuse);
    iob__set_error(h, err);
    return NULL;
}

struct iob_s *iob_free(struct iob_pool_s *h, struct iob_s *iob)
{
    uint32_t b = 0; /* set by iob__index; avr-gcc 5 cannot tell */
    if (MM_UNLIKELY(!iob__handle_ok(h)))
        return NULL;
    if (MM_UNLIKELY(!iob__index(h, iob, &b)))
        return iob__refuse(h, -MM_EINVAL);
    uint32_t me = iob__me(h);
#if defined(__OPTIMIZE_SIZE__)
    /* -Os: the shared slow path (a call more, half the code). */
    iob__st_t st = iob__st_load(&iob__desc(h, b)->s);
    if (MM_UNLIKELY(iob__st_kind(st) != IOB__OWNED || iob__st_owner(st) != me))
        return iob__refuse(h, -MM_EPERM);
    uint32_t nx = iob__free_head(h, b, st, me);
    return nx == IOB__NIL ? NULL : iob__ptr(h, nx);
#else
    struct iob__list l = iob__bufs(h); /* before the stores: see iob__pop */
    struct iob__desc *d = (struct iob__desc *)(void *)iob__slot(&l, b);
    iob__st_t st = iob__st_load(&d->s);
    if (MM_UNLIKELY(iob__st_kind(st) != IOB__OWNED || iob__st_owner(st) != me))
        return iob__refuse(h, -MM_EPERM);
    struct iob_s *next = NULL;
    if (MM_UNLIKELY(d->next != IOB__NIL)) {
        uint32_t pk = d->pktlen, ln = d->len;
        uint32_t nx = iob__promote_next(h, b, me, pk > ln ? pk - ln : 0u);
        next = nx == IOB__NIL ? NULL : iob__ptr(h, nx);
    }
    uint64_t nf = d->nfreed;
    d->next = IOB__NIL;
    d->nfreed = nf + 1u;
    iob__st_store(&d->s, iob__st_with(st, IOB__FREE, me));
    IOB__CRASH(IOB_CRASH_FREE_STATE);
    (void)iob__push(h, &l, b, b, 1);
    return next;
#endif
}

void iob__free_chain_at(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me)
{
    uint32_t first = b, last = b, k = 0;
    for (;;) {
        uint32_t nx = iob__promote_next(h, b, me, 0);
        iob__mark_free(h, b, st, me);
        if (k++ > 0)
            mm_port_store32(&iob__desc(h, last)->s.free_next, b);
        last = b;
        if (nx == IOB__NIL || (IOB__VALIDATE && k >= h->count))
            break;
        IOB__CRASH(IOB_CRASH_FREE_CHAIN);
        b = nx;
        st = iob__st_load(&iob__desc(h, b)->s);
    }
    struct iob__list l = iob__bufs(h);
    (void)iob__push(h, &l, first, last, k);
}

void iob_free_chain(struct iob_pool_s *h, struct iob_s *iob)
{
    if (iob == NULL || !iob__handle_ok(h))
        return;
    uint32_t b, me = iob__me(h);
    if (!iob__index(h, iob, &b)) {
        (void)iob__refuse(h, -MM_EINVAL);
        return;
    }
    iob__st_t st = iob__st_load(&iob__desc(h, b)->s);
    if (iob__st_kind(st) != IOB__OWNED || iob__st_owner(st) != me) {
        (void)iob__refuse(h, -MM_EPERM);
        return;
    }
    iob__free_chain_at(h, b, st, me);
}
