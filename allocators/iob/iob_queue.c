/*
 * iob_queue.c - NuttX's queues of buffer chains, with their entries in the
 * pool.
 *
 * A queue (struct iob_queue_s) is two entry indices kept by its owner; the
 * entries come from the pool's second free list (as many as buffers) and
 * are OWNED by the queue's owner, like the chains they hold.  A queue is a
 * private structure of one process, so adding and removing take no lock;
 * only taking and returning an entry touch shared state (lock-free, as
 * buffers).  If the owner dies, reclaim returns its entries and its chains,
 * whichever half of an add or a remove it was in: nothing else refers to
 * them.
 */
#include "iob_internal.h"

static int iob__own_qent(struct iob_pool_s *h, uint32_t e, uint32_t me)
{
    if (e >= h->count)
        return -MM_EUCLEAN;
    iob__st_t st = iob__st_load(&h->qent[e].s);
    return iob__st_kind(st) == IOB__OWNED && iob__st_owner(st) == me ? 0 : -MM_EUCLEAN;
}

static int iob__add_queue(struct iob_pool_s *h, struct iob_s *iob, struct iob_queue_s *q,
                          bool can_block)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), b, e;
    if (q == NULL || !iob__index(h, iob, &b))
        return iob__fail(h, -MM_EINVAL);
    iob__st_t st = iob__st_load(&iob__desc(h, b)->s);
    if (iob__st_kind(st) != IOB__OWNED || iob__st_owner(st) != me)
        return iob__fail(h, -MM_EPERM);
    if (q->qh_head != 0 && iob__own_qent(h, q->qh_tail - 1u, me) < 0)
        return iob__fail(h, -MM_EUCLEAN);

    struct iob__list l = iob__qents(h);
    int r = iob__take(h, &l, me, 0, can_block ? IOB__FOREVER : 0, &e);
    if (r < 0)
        return iob__fail(h, r == -MM_EAGAIN ? -MM_ENOMEM : r);
    struct iob__qent *qe = &h->qent[e];
    qe->chain = b;
    qe->next = IOB__NIL;
    IOB__CRASH(IOB_CRASH_QUEUE_ADD);
    if (q->qh_head == 0)
        q->qh_head = e + 1u;
    else
        h->qent[q->qh_tail - 1u].next = e;
    q->qh_tail = e + 1u;
    return 0;
}

int iob_add_queue(struct iob_pool_s *h, struct iob_s *iob, struct iob_queue_s *q)
{
    return iob__add_queue(h, iob, q, true);
}

int iob_tryadd_queue(struct iob_pool_s *h, struct iob_s *iob, struct iob_queue_s *q)
{
    return iob__add_queue(h, iob, q, false);
}

/* The first entry of q and its chain, validated. */
static int iob__queue_first(struct iob_pool_s *h, const struct iob_queue_s *q, uint32_t me,
                            uint32_t *e, uint32_t *chain)
{
    if (q->qh_head == 0)
        return -MM_EAGAIN;
    *e = q->qh_head - 1u;
    if (iob__own_qent(h, *e, me) < 0)
        return iob__fail(h, -MM_EUCLEAN);
    *chain = h->qent[*e].chain;
    if (IOB__VALIDATE && *chain >= h->count)
        return iob__fail(h, -MM_EUCLEAN);
    return 0;
}

struct iob_s *iob_remove_queue(struct iob_pool_s *h, struct iob_queue_s *q)
{
    if (!iob__handle_ok(h) || q == NULL)
        return NULL;
    uint32_t me = iob__me(h), e, chain;
    if (iob__queue_first(h, q, me, &e, &chain) < 0)
        return NULL;
    struct iob__qent *qe = &h->qent[e];
    uint32_t nx = qe->next;
    if (IOB__VALIDATE && nx != IOB__NIL && iob__own_qent(h, nx, me) < 0) {
        iob__fail(h, -MM_EUCLEAN);
        return NULL;
    }
    q->qh_head = nx == IOB__NIL ? 0u : nx + 1u;
    if (nx == IOB__NIL)
        q->qh_tail = 0;
    iob__st_t st = iob__st_load(&qe->s);
    qe->next = IOB__NIL;
    qe->chain = IOB__NIL;
    iob__st_store(&qe->s, iob__st_with(st, IOB__FREE, me));
    struct iob__list l = iob__qents(h);
    (void)iob__give(h, &l, e, e, 1);
    return iob__ptr(h, chain);
}

struct iob_s *iob_peek_queue(struct iob_pool_s *h, const struct iob_queue_s *q)
{
    if (!iob__handle_ok(h) || q == NULL)
        return NULL;
    uint32_t e, chain;
    if (iob__queue_first(h, q, iob__me(h), &e, &chain) < 0)
        return NULL;
    return iob__ptr(h, chain);
}

void iob_free_queue(struct iob_pool_s *h, struct iob_queue_s *q)
{
    if (!iob__handle_ok(h) || q == NULL)
        return;
    for (uint32_t n = 0; q->qh_head != 0 && (!IOB__VALIDATE || n <= h->count); n++) {
        struct iob_s *iob = iob_remove_queue(h, q);
        if (iob == NULL)
            break;
        iob_free_chain(h, iob);
    }
    q->qh_head = 0;
    q->qh_tail = 0;
}
