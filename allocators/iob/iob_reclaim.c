/*
 * iob_reclaim.c - returning what a dead owner held, checking a pool,
 * walking its chains, and the admin lock that reclaim and check run under.
 *
 * Reclaim (the argument is in iob_internal.h): freeze both free lists, mark
 * what is on them, repair the channels where the dead owner was a
 * registered end, then scan every descriptor and take back, off the lists,
 * what the owner held: chains it heads (each buffer once, whatever joins
 * half-finished operations left between them), buffers it was freeing,
 * queue entries.  The taken buffers are made FREE before the lists thaw
 * with them on top, so a reclaimer that dies midway leaves only FREE(owner)
 * buffers off the lists and a frozen head; the next holder of the admin
 * lock (a robust lock) finds its previous owner dead and runs the same
 * reclaim again (header.reclaim_owner says for whom).
 *
 * Processes that keep working meanwhile only wait when they pop or push
 * (on the admin lock, until the thaw); their chains are not touched: a
 * walk from a dead owner's head only follows LINKED buffers, which by the
 * chain rules belong to that head.
 */
#include "iob_internal.h"

/* ---- Admin lock --------------------------------------------------------------- */

#if MM_CONFIG_MULTIPROCESS
static int iob__reclaim_locked(struct iob_pool_s *h, uint32_t owner);

/* Thaw a list a dead holder left frozen, as it was. */
static void iob__thaw_if_frozen(struct iob_pool_s *h, const struct iob__list *l)
{
    uint64_t w = mm_port_load64(&l->st->head[0]);
    if (iob__h_idx(w) == IOB__FROZEN)
        iob__thaw(h, l, mm_port_load32(&l->st->frozen_top), iob__h_nfree(w));
}

/* With the lock held and its previous holder found dead (or a list found
 * frozen with nobody holding the lock): finish what it was doing. */
static void iob__admin_repair(struct iob_pool_s *h)
{
    uint32_t owner = h->hdr->reclaim_owner;
    if (owner != 0 && iob__reclaim_locked(h, owner) >= 0)
        return;
    struct iob__list b = iob__bufs(h), q = iob__qents(h);
    iob__thaw_if_frozen(h, &b);
    iob__thaw_if_frozen(h, &q);
    h->hdr->reclaim_owner = 0;
}

static bool iob__any_frozen(const struct iob_pool_s *h)
{
    return iob__h_idx(mm_port_load64(&h->hdr->bufs.head[0])) == IOB__FROZEN ||
           iob__h_idx(mm_port_load64(&h->hdr->qents.head[0])) == IOB__FROZEN;
}

int iob__admin_lock(struct iob_pool_s *h)
{
    mm_port_lock_t *lk = &h->hdr->admin.lock;
    int r = mm_port_lock(lk);
    if (r < 0)
        return iob__fail(h, r == -MM_ETIMEDOUT ? r : -MM_EUCLEAN);
    /* A frozen list with the lock free means its freezer died. */
    if (r == MM_PORT_LOCKED_OWNER_DIED || iob__any_frozen(h))
        iob__admin_repair(h);
    if (r == MM_PORT_LOCKED_OWNER_DIED)
        mm_port_lock_mark_consistent(lk);
    return 0;
}

void iob__admin_unlock(struct iob_pool_s *h)
{
    mm_port_unlock(&h->hdr->admin.lock);
}

int iob__wait_thaw(struct iob_pool_s *h)
{
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    iob__admin_unlock(h);
    return 0;
}

#endif

/* ---- Walking ----------------------------------------------------------------------- */

static uint32_t iob__next_epoch(struct iob_pool_s *h)
{
    uint32_t e = h->hdr->epoch + 1u;
    if (e == 0) { /* wrapped: old marks could match again */
        for (uint32_t i = 0; i < h->count; i++) {
            h->desc[i].s.mark = 0;
            h->qent[i].s.mark = 0;
        }
        e = 1;
    }
    h->hdr->epoch = e;
    return e;
}

/* Mark every slot on a frozen list.  0, or -MM_EUCLEAN if the list does not
 * hold exactly nfree distinct valid slots. */
static int iob__mark_list(const struct iob__list *l, uint32_t top, uint32_t nfree, uint32_t epoch)
{
    uint32_t x = top, k = 0;
    while (x != IOB__NIL) {
        if (x >= l->count || k >= nfree)
            return -MM_EUCLEAN;
        struct iob__slot *s = iob__slot(l, x);
        if (s->mark == epoch)
            return -MM_EUCLEAN; /* a cycle */
        s->mark = epoch;
        k++;
        x = mm_port_load32(&s->free_next);
    }
    return k == nfree ? 0 : -MM_EUCLEAN;
}

#if MM_CONFIG_MULTIPROCESS /* reclaim: what a dead process held */
/* A batch of slots to push, linked through free_next. */
struct iob__batch {
    uint32_t first, last, n;
};

static void iob__batch_add(const struct iob__list *l, struct iob__batch *bt, uint32_t x)
{
    if (bt->n++ == 0)
        bt->first = x;
    else
        mm_port_store32(&iob__slot(l, bt->last)->free_next, x);
    bt->last = x;
}

/* Take back the chain of dead owner `owner` headed by b, buffer by buffer:
 * the next one is promoted to OWNED before this one is freed, so that a
 * reclaimer that dies here leaves a chain the next run finds. */
static void iob__take_chain(struct iob_pool_s *h, const struct iob__list *l, struct iob__batch *bt,
                            uint32_t b, uint32_t owner, uint32_t epoch)
{
    for (uint32_t steps = 0; steps < h->count; steps++) {
        struct iob__desc *d = iob__desc(h, b);
        d->s.mark = epoch;
        uint32_t nx = d->next;
        iob__st_t nst = nx < h->count ? iob__st_load(&h->desc[nx].s) : 0;
        bool more =
            nx < h->count && h->desc[nx].s.mark != epoch && iob__st_kind(nst) == IOB__LINKED;
        if (more)
            iob__st_store(&h->desc[nx].s, iob__st_with(nst, IOB__OWNED, owner));
        d->next = IOB__NIL;
        d->nfreed++;
        iob__st_store(&d->s, iob__st_with(iob__st_load(&d->s), IOB__FREE, owner));
        iob__batch_add(l, bt, b);
        IOB__CRASH(IOB_CRASH_RECLAIM);
        if (!more)
            return;
        b = nx;
    }
}

static int iob__reclaim_locked(struct iob_pool_s *h, uint32_t owner)
{
    struct iob__header *hd = h->hdr;
    struct iob__list lb = iob__bufs(h), lq = iob__qents(h);
    uint32_t btop, bfree, qtop, qfree;
    hd->reclaim_owner = owner;
    int r = iob__freeze(h, &lb, &btop, &bfree);
    if (r < 0)
        return r;
    r = iob__freeze(h, &lq, &qtop, &qfree);
    if (r < 0) {
        iob__thaw(h, &lb, btop, bfree);
        return r;
    }
    uint32_t epoch = iob__next_epoch(h);
    if (iob__mark_list(&lb, btop, bfree, epoch) < 0 ||
        iob__mark_list(&lq, qtop, qfree, epoch) < 0) {
        iob__thaw(h, &lb, btop, bfree);
        iob__thaw(h, &lq, qtop, qfree);
        hd->reclaim_owner = 0;
        return iob__fail(h, -MM_EUCLEAN);
    }

    /* Channels: finish the dead end's half-done send or receive, end its
     * registration; on multi sides the robust lock tells. */
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++) {
        struct iob__chan *c = &h->chan[i];
        if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
            continue;
        if (c->flags & IOB_CHANNEL_MULTI_SENDER) {
            int lr = mm_port_lock(&c->send_lock.lock);
            if (lr == MM_PORT_LOCKED_OWNER_DIED) {
                iob__chan_repair_send(h, i);
                mm_port_lock_mark_consistent(&c->send_lock.lock);
            }
            if (lr >= 0) /* not held when the wait gave up */
                mm_port_unlock(&c->send_lock.lock);
        } else if (c->sender == owner) {
            iob__chan_repair_send(h, i);
            c->sender = 0;
        }
        if (c->flags & IOB_CHANNEL_MULTI_RECEIVER) {
            int lr = mm_port_lock(&c->recv_lock.lock);
            if (lr == MM_PORT_LOCKED_OWNER_DIED) {
                iob__chan_repair_recv(h, i);
                mm_port_lock_mark_consistent(&c->recv_lock.lock);
            }
            if (lr >= 0)
                mm_port_unlock(&c->recv_lock.lock);
        } else if (c->receiver == owner) {
            iob__chan_repair_recv(h, i);
            c->receiver = 0;
        }
    }

    /* Sleeper slots it left by dying asleep. */
    iob__sleepers_reclaim(&hd->bufs.sleepmask, &hd->bufs_sleepers, owner);
    iob__sleepers_reclaim(&hd->qents.sleepmask, &hd->qents_sleepers, owner);
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++) {
        struct iob__chan *c = &h->chan[i];
        if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
            continue;
        iob__sleepers_reclaim(&c->recv_mask, &c->recv_sleepers, owner);
        iob__sleepers_reclaim(&c->send_mask, &c->send_sleepers, owner);
    }

    struct iob__batch bb = {IOB__NIL, IOB__NIL, 0}, bq = {IOB__NIL, IOB__NIL, 0};
    for (uint32_t i = 0; i < h->count; i++) {
        struct iob__desc *d = &h->desc[i];
        iob__st_t st = iob__st_load(&d->s);
        if (d->s.mark != epoch && iob__st_owner(st) == owner) {
            if (iob__st_kind(st) == IOB__OWNED) {
                iob__take_chain(h, &lb, &bb, i, owner, epoch);
            } else if (iob__st_kind(st) == IOB__FREE) { /* died freeing it */
                d->s.mark = epoch;
                d->next = IOB__NIL;
                iob__batch_add(&lb, &bb, i);
            }
        }
        struct iob__qent *q = &h->qent[i];
        st = iob__st_load(&q->s);
        if (q->s.mark != epoch && iob__st_owner(st) == owner &&
            (iob__st_kind(st) == IOB__OWNED || iob__st_kind(st) == IOB__FREE)) {
            q->s.mark = epoch;
            q->next = IOB__NIL;
            q->chain = IOB__NIL;
            iob__st_store(&q->s, iob__st_with(st, IOB__FREE, owner));
            iob__batch_add(&lq, &bq, i);
        }
    }

    /* Commit: the lists thaw with the reclaimed slots on top. */
    if (bb.n > 0) {
        mm_port_store32(&iob__slot(&lb, bb.last)->free_next, btop);
        iob__thaw(h, &lb, bb.first, bfree + bb.n);
    } else {
        iob__thaw(h, &lb, btop, bfree);
    }
    if (bq.n > 0) {
        mm_port_store32(&iob__slot(&lq, bq.last)->free_next, qtop);
        iob__thaw(h, &lq, bq.first, qfree + bq.n);
    } else {
        iob__thaw(h, &lq, qtop, qfree);
    }
    hd->reclaim_owner = 0;
    iob__count(&hd->stats.reclaims);
    (void)mm_port_fetch_add32(&hd->stats.reclaimed, bb.n);
    return (int)bb.n;
}

int iob_pool_reclaim(struct iob_pool_s *h, uint32_t owner)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (owner == 0)
        return iob__fail(h, -MM_EINVAL);
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    r = iob__reclaim_locked(h, owner);
    iob__admin_unlock(h);
    return r;
}
#endif

/* ---- Checking ------------------------------------------------------------------------- */

/* Whether a chain headed by a buffer in state head may end in a link to
 * nx, a buffer that is not LINKED: no link, or the buffer that a holder
 * killed inside a link or an unlink left OWNED by the same owner
 * (iob_chain.c).  A link out of range, to a free buffer or to another
 * holder's buffer is stale: once that buffer is allocated into a chain, the
 * stale chain's walks, frees and reclaims would take it from there. */
static bool iob__chain_end_ok(const struct iob_pool_s *h, iob__st_t head, uint32_t nx)
{
    if (nx == IOB__NIL)
        return true;
    if (nx >= h->count)
        return false;
    iob__st_t st = iob__st_load(&h->desc[nx].s);
    return iob__st_kind(head) == IOB__OWNED && iob__st_kind(st) == IOB__OWNED &&
           iob__st_owner(st) == iob__st_owner(head);
}

/* Walk the chain headed by b (in state head), marking it: its length,
 * whether it runs into a buffer another walk already reached, and whether
 * it ends in a stale link. */
static uint32_t iob__walk_chain(struct iob_pool_s *h, uint32_t b, iob__st_t head, uint32_t epoch,
                                uint32_t *dups, uint32_t *stale)
{
    uint32_t n = 0;
    for (uint32_t x = b; n < h->count;) {
        h->desc[x].s.mark = epoch;
        n++;
        uint32_t nx = h->desc[x].next;
        if (nx == IOB__NIL || nx >= h->count ||
            iob__st_kind(iob__st_load(&h->desc[nx].s)) != IOB__LINKED) {
            if (!iob__chain_end_ok(h, head, nx))
                (*stale)++;
            break;
        }
        if (h->desc[nx].s.mark == epoch) {
            (*dups)++;
            break;
        }
        x = nx;
    }
    return n;
}

/* Whether a queued head sits where its state says: in its channel's ring,
 * between head and tail. */
static bool iob__queued_ok(const struct iob_pool_s *h, uint32_t b, iob__st_t st)
{
    uint32_t arg = iob__st_owner(st), id = arg >> 24, mask;
    if (id >= IOB_CONFIG_CHANNELS)
        return false;
    const struct iob__chan *c = &h->chan[id];
    if (c->state != IOB__CH_ACTIVE || c->depth == 0 || c->depth > IOB_CONFIG_CHANNEL_DEPTH ||
        (c->depth & (c->depth - 1u)) != 0)
        return false;
    mask = c->depth - 1u;
    uint32_t hd = c->head, t = c->tail;
    for (uint32_t pos = hd; pos != t && pos - hd <= mask; pos++)
        if ((pos & 0xffffffu) == (arg & 0xffffffu) && c->cell[pos & mask] == b)
            return true;
    return false;
}

int iob_pool_check(struct iob_pool_s *h, struct iob_census_s *census)
{
    struct iob_census_s cs;
    memset(&cs, 0, sizeof(cs));
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    struct iob__list lb = iob__bufs(h), lq = iob__qents(h);
    uint32_t btop, bfree, qtop, qfree;
    r = iob__freeze(h, &lb, &btop, &bfree);
    if (r < 0) {
        iob__admin_unlock(h);
        return r;
    }
    r = iob__freeze(h, &lq, &qtop, &qfree);
    if (r < 0) {
        iob__thaw(h, &lb, btop, bfree);
        iob__admin_unlock(h);
        return r;
    }
    uint32_t epoch = iob__next_epoch(h);
    cs.count = h->count;
    if (iob__mark_list(&lb, btop, bfree, epoch) < 0)
        cs.problems++;
    if (iob__mark_list(&lq, qtop, qfree, epoch) < 0)
        cs.problems++;
    cs.free = bfree;
    cs.qentries_free = qfree;

    for (uint32_t i = 0; i < h->count; i++) {
        if (h->desc[i].s.mark == epoch)
            continue;
        iob__st_t st = iob__st_load(&h->desc[i].s);
        uint32_t kind = iob__st_kind(st);
        if (kind == IOB__FREE) {
            cs.freeing++;
        } else if (kind == IOB__OWNED || kind == IOB__QUEUED) {
            /* one walk for both kinds of head: inlined once, it keeps the
             * check 34 B smaller on Cortex-M */
            if (kind == IOB__QUEUED && !iob__queued_ok(h, i, st))
                cs.problems++;
            uint32_t n = iob__walk_chain(h, i, st, epoch, &cs.duplicates, &cs.problems);
            *(kind == IOB__OWNED ? &cs.owned : &cs.queued) += n;
        } else if (kind != IOB__LINKED) {
            cs.problems++;
        }
    }
    for (uint32_t i = 0; i < h->count; i++) {
        if (h->desc[i].s.mark != epoch && iob__st_kind(iob__st_load(&h->desc[i].s)) == IOB__LINKED)
            cs.orphans++;
        if (h->qent[i].s.mark != epoch) {
            iob__st_t st = iob__st_load(&h->qent[i].s);
            if (iob__st_kind(st) == IOB__OWNED)
                cs.qentries_owned++;
            else
                cs.problems++; /* a free entry off the list */
        }
    }
    cs.problems += cs.freeing + cs.orphans + cs.duplicates;
    if (cs.free + cs.freeing + cs.owned + cs.queued + cs.orphans != cs.count)
        cs.problems++;

    iob__thaw(h, &lb, btop, bfree);
    iob__thaw(h, &lq, qtop, qfree);
    iob__admin_unlock(h);
    if (census != NULL)
        *census = cs;
    return (int)cs.problems;
}

#if MM_CONFIG_MULTIPROCESS
uint32_t iob_pool_owned(struct iob_pool_s *h, uint32_t owner, uint32_t *nqentries)
{
    uint32_t n = 0, nq = 0;
    if (iob__handle_ok(h) && owner != 0) {
        for (uint32_t i = 0; i < h->count; i++) {
            iob__st_t st = iob__st_load(&h->desc[i].s);
            if (iob__st_kind(st) == IOB__OWNED && iob__st_owner(st) == owner) {
                uint32_t x = i;
                for (uint32_t k = 0; k < h->count; k++) {
                    n++;
                    uint32_t nx = h->desc[x].next;
                    if (nx == IOB__NIL || nx >= h->count ||
                        iob__st_kind(iob__st_load(&h->desc[nx].s)) != IOB__LINKED)
                        break;
                    x = nx;
                }
            }
            st = iob__st_load(&h->qent[i].s);
            if (iob__st_kind(st) == IOB__OWNED && iob__st_owner(st) == owner)
                nq++;
        }
    }
    if (nqentries != NULL)
        *nqentries = nq;
    return n;
}
#endif

uint32_t iob_pool_walk(struct iob_pool_s *h, iob_walk_fn fn, void *arg)
{
    uint32_t n = 0;
    if (!iob__handle_ok(h) || fn == NULL)
        return 0;
    for (uint32_t i = 0; i < h->count; i++) {
        iob__st_t st = iob__st_load(&h->desc[i].s);
        uint32_t kind = iob__st_kind(st);
        if (kind != IOB__OWNED && kind != IOB__QUEUED)
            continue;
        struct iob_chain_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.head = iob__ptr(h, i);
        ci.owner = kind == IOB__OWNED ? iob__st_owner(st) : 0u;
        /* The channel id comes from shared memory: one past the table is -1. */
        uint32_t chan = iob__st_owner(st) >> 24;
        ci.channel = kind == IOB__QUEUED && chan < IOB_CONFIG_CHANNELS ? (int)chan : -1;
        ci.pktlen = h->desc[i].pktlen;
        for (uint32_t x = i, k = 0; k < h->count; k++) {
            uint32_t off, len, nx;
            ci.buffers++;
            if (iob__extent(h, &h->desc[x], &off, &len))
                ci.bytes += len;
            if (!iob__follow(h, x, &nx) || nx == IOB__NIL)
                break;
            x = nx;
        }
        n++;
        if (!fn(arg, &ci))
            break;
    }
    return n;
}
