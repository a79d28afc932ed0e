/*
 * iob_channel.c - named channels: bounded rings of buffer chains, passed
 * from senders to receivers without copying.
 *
 * A channel is a ring of `depth` cells holding chain heads, with two
 * free-running counters: tail (chains published, written by the sender) and
 * head (chains taken, written by the receiver), each on its own cache line.
 * With one sender and one receiver (the default, registered by connect)
 * neither side takes a lock: the sender writes the cell and then publishes
 * tail, the receiver reads the cell and then advances head.  A channel made
 * with IOB_CHANNEL_MULTI_SENDER (RECEIVER) serializes that side with a
 * robust process-shared lock; the other side stays lock-free.
 *
 * Sending is O(1) whatever the chain's length: only the head's state word
 * changes, OWNED(sender) -> QUEUED(channel, position) -> OWNED(receiver).
 * The order of the steps makes a death at any point repairable:
 *
 *   send:    cell[tail] = head; state = QUEUED(id, tail); publish tail + 1
 *   receive: check state == QUEUED(id, head); state = OWNED(me); head + 1
 *
 * A sender that dies before the QUEUED store still owns its chain (reclaim
 * frees it); one that dies after it left a chain that is complete but
 * unpublished: repair publishes it.  A receiver that dies after its OWNED
 * store left head behind a chain it owns: repair advances head (and
 * reclaim frees the chain).  Repair runs in reclaim for a dead registered
 * sender or receiver, and in the next locker of a multi side's lock when its
 * owner died there.
 *
 * Waiting.  A receiver with nothing to take spins for a while (the handle's
 * spin count) and then sleeps on the tail word (a futex), after setting its
 * bit in recv_mask; the sender publishes tail and then reads recv_mask, both
 * sequentially consistent, so the wake is never lost and a sender with
 * nobody asleep pays one load of a word on its own line.  A sender facing a
 * full ring does the same on head.  Each bit has an owner slot, so reclaim
 * clears the bit of a process that died asleep.
 */
#include "iob_internal.h"

/* 0 if h is a live handle and id names a channel slot, else the error
 * (recorded in the handle when there is one). */
static int iob__channel_id_bad(struct iob_pool_s *h, int id)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (id < 0 || id >= (int)IOB_CONFIG_CHANNELS)
        return iob__fail(h, -MM_EINVAL);
    return 0;
}

/* ---- Helpers --------------------------------------------------------------- */

static bool iob__chan_mask(const struct iob__chan *c, uint32_t *mask)
{
    uint32_t depth = c->depth;
    if (depth == 0 || depth > IOB_CONFIG_CHANNEL_DEPTH || (depth & (depth - 1u)) != 0)
        return false;
    *mask = depth - 1u;
    return true;
}

static bool iob__name_ok(const char *name, size_t *len)
{
    if (name == NULL)
        return false;
    size_t n = 0;
    while (n < IOB_CHANNEL_NAME_MAX && name[n] != '\0')
        n++;
    *len = n;
    return n > 0 && n < IOB_CHANNEL_NAME_MAX;
}

static bool iob__name_is(const struct iob__chan *c, const char *name, size_t len)
{
    return memcmp(c->name, name, len) == 0 && c->name[len] == '\0';
}

/* A chain head at ring position pos of channel id, as a queued state says. */
static bool iob__queued_at(iob__st_t st, uint32_t id, uint32_t pos)
{
    return iob__st_kind(st) == IOB__QUEUED && iob__st_owner(st) == iob__q_arg(id, pos);
}

/* The channel and this handle's view of it, for a call in role. */
static int iob__chan_use(struct iob_pool_s *h, int id, uint32_t role, struct iob__chan **c,
                         struct iob__chcache **k)
{
    int bad = iob__channel_id_bad(h, id);
    if (bad != 0)
        return bad;
    *k = &h->ch[id];
    *c = &h->chan[id];
    if ((*k)->gen == 0 || ((*k)->roles & role) == 0)
        return iob__fail(h, -MM_EPERM);
    if (mm_port_load32(&(*c)->state) != IOB__CH_ACTIVE || mm_port_load32(&(*c)->gen) != (*k)->gen)
        return iob__fail(h, -MM_ENOENT);
    return 0;
}

#if MM_CONFIG_MULTIPROCESS
void iob__chan_repair_send(struct iob_pool_s *h, uint32_t id)
{
    struct iob__chan *c = &h->chan[id];
    uint32_t mask;
    if (!iob__chan_mask(c, &mask))
        return;
    uint32_t t = mm_port_load32(&c->tail), b = mm_port_load32(&c->cell[t & mask]);
    if (b < h->count && iob__queued_at(iob__st_load(&h->desc[b].s), id, t)) {
        mm_port_store32_sc(&c->tail, t + 1u);
        iob__wake(&c->tail, &c->recv_mask);
    }
}

void iob__chan_repair_recv(struct iob_pool_s *h, uint32_t id)
{
    struct iob__chan *c = &h->chan[id];
    uint32_t mask;
    if (!iob__chan_mask(c, &mask))
        return;
    uint32_t hd = mm_port_load32(&c->head), t = mm_port_load32(&c->tail);
    if (hd == t || t - hd > mask + 1u)
        return;
    uint32_t b = mm_port_load32(&c->cell[hd & mask]);
    if (b >= h->count || !iob__queued_at(iob__st_load(&h->desc[b].s), id, hd)) {
        mm_port_store32_sc(&c->head, hd + 1u);
        iob__wake(&c->head, &c->send_mask);
    }
}
#endif

/* Lock one side of a multi channel, repairing after a holder that died. */
static int iob__chan_lock(struct iob_pool_s *h, uint32_t id, bool send)
{
    struct iob__chan *c = &h->chan[id];
    mm_port_lock_t *lk = send ? &c->send_lock.lock : &c->recv_lock.lock;
    int r = mm_port_lock(lk);
#if MM_CONFIG_MULTIPROCESS
    if (r == MM_PORT_LOCKED_OWNER_DIED) {
        if (send)
            iob__chan_repair_send(h, id);
        else
            iob__chan_repair_recv(h, id);
        mm_port_lock_mark_consistent(lk);
        return 0;
    }
#endif
    return r < 0 ? iob__fail(h, r == -MM_ETIMEDOUT ? r : -MM_EUCLEAN) : 0;
}

static void iob__chan_unlock(struct iob_pool_s *h, uint32_t id, bool send)
{
    struct iob__chan *c = &h->chan[id];
    mm_port_unlock(send ? &c->send_lock.lock : &c->recv_lock.lock);
}

/* ---- Administration (admin lock) -------------------------------------------- */

int iob_channel_create(struct iob_pool_s *h, const char *name, uint32_t depth, uint32_t flags)
{
    size_t len;
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (!iob__name_ok(name, &len) || depth == 0 || depth > IOB_CONFIG_CHANNEL_DEPTH ||
        (depth & (depth - 1u)) != 0 ||
        (flags & ~(IOB_CHANNEL_MULTI_SENDER | IOB_CHANNEL_MULTI_RECEIVER)) != 0)
        return iob__fail(h, -MM_EINVAL);
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    int slot = -1;
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++) {
        struct iob__chan *c = &h->chan[i];
        if (mm_port_load32(&c->state) == IOB__CH_ACTIVE) {
            if (iob__name_is(c, name, len)) {
                r = -MM_EEXIST;
                break;
            }
        } else if (slot < 0) {
            slot = (int)i;
        }
    }
    if (r == 0 && slot < 0)
        r = -MM_ENOSPC;
    if (r == 0) {
        struct iob__chan *c = &h->chan[slot];
        uint32_t gen = c->gen + 1u;
        memset(c, 0, sizeof(*c));
        c->gen = gen != 0 ? gen : 1u;
        c->flags = flags;
        c->depth = depth;
        memcpy(c->name, name, len);
        if (mm_port_lock_init(&c->send_lock.lock) != 0 ||
            mm_port_lock_init(&c->recv_lock.lock) != 0)
            r = -MM_EUCLEAN;
        else
            mm_port_store32(&c->state, IOB__CH_ACTIVE);
    }
    iob__admin_unlock(h);
    return r < 0 ? iob__fail(h, r) : slot;
}

int iob_channel_lookup(struct iob_pool_s *h, const char *name)
{
    size_t len;
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (!iob__name_ok(name, &len))
        return iob__fail(h, -MM_EINVAL);
    for (uint32_t i = 0; i < IOB_CONFIG_CHANNELS; i++) {
        struct iob__chan *c = &h->chan[i];
        if (mm_port_load32(&c->state) == IOB__CH_ACTIVE && iob__name_is(c, name, len))
            return (int)i;
    }
    return -MM_ENOENT;
}

int iob_channel_connect(struct iob_pool_s *h, int id, uint32_t roles)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (id < 0 || id >= (int)IOB_CONFIG_CHANNELS || roles == 0 ||
        (roles & ~(IOB_CHANNEL_SEND | IOB_CHANNEL_RECV)) != 0)
        return iob__fail(h, -MM_EINVAL);
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    struct iob__chan *c = &h->chan[id];
    struct iob__chcache *k = &h->ch[id];
    uint32_t me = iob__me(h), mask = 0;
    bool single_send = (c->flags & IOB_CHANNEL_MULTI_SENDER) == 0;
    bool single_recv = (c->flags & IOB_CHANNEL_MULTI_RECEIVER) == 0;
    if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
        r = -MM_ENOENT;
    else if (!iob__chan_mask(c, &mask))
        r = -MM_EUCLEAN;
    else if (((roles & IOB_CHANNEL_SEND) && single_send && c->sender != 0 && c->sender != me) ||
             ((roles & IOB_CHANNEL_RECV) && single_recv && c->receiver != 0 && c->receiver != me))
        r = -MM_EBUSY;
    if (r == 0) {
        if ((roles & IOB_CHANNEL_SEND) && single_send)
            c->sender = me;
        if ((roles & IOB_CHANNEL_RECV) && single_recv)
            c->receiver = me;
        if (k->gen != c->gen)
            k->roles = 0;
        k->gen = c->gen;
        k->roles |= roles;
        k->flags = c->flags;
        k->mask = mask;
        k->seen_head = mm_port_load32(&c->head);
        k->seen_tail = mm_port_load32(&c->tail);
    }
    iob__admin_unlock(h);
    return r < 0 ? iob__fail(h, r) : 0;
}

int iob_channel_disconnect(struct iob_pool_s *h, int id, uint32_t roles)
{
    int bad = iob__channel_id_bad(h, id);
    if (bad != 0)
        return bad;
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    struct iob__chan *c = &h->chan[id];
    struct iob__chcache *k = &h->ch[id];
    uint32_t me = iob__me(h);
    if (k->gen == c->gen && mm_port_load32(&c->state) == IOB__CH_ACTIVE) {
        if ((roles & IOB_CHANNEL_SEND) && c->sender == me)
            c->sender = 0;
        if ((roles & IOB_CHANNEL_RECV) && c->receiver == me)
            c->receiver = 0;
    }
    k->roles &= ~roles;
    if (k->roles == 0)
        k->gen = 0;
    iob__admin_unlock(h);
    return 0;
}

int iob_channel_destroy(struct iob_pool_s *h, int id)
{
    int bad = iob__channel_id_bad(h, id);
    if (bad != 0)
        return bad;
    int r = iob__admin_lock(h);
    if (r < 0)
        return r;
    struct iob__chan *c = &h->chan[id];
    uint32_t me = iob__me(h), mask, freed = 0;
    if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
        r = -MM_ENOENT;
    else if (c->sender != 0 || c->receiver != 0)
        r = -MM_EBUSY;
    else if (!iob__chan_mask(c, &mask))
        r = -MM_EUCLEAN;
    if (r == 0) {
        /* Take every queued chain as a receiver would, then free it. */
        uint32_t hd = mm_port_load32(&c->head), t = mm_port_load32(&c->tail);
        for (uint32_t n = 0; hd != t && n <= mask; n++, hd++) {
            uint32_t b = mm_port_load32(&c->cell[hd & mask]);
            iob__st_t st = b < h->count ? iob__st_load(&h->desc[b].s) : 0;
            bool ok = b < h->count && iob__queued_at(st, (uint32_t)id, hd);
            if (ok) {
                st = iob__st_with(st, IOB__OWNED, me);
                iob__st_store(&h->desc[b].s, st);
            }
            mm_port_store32_sc(&c->head, hd + 1u);
            iob__wake(&c->head, &c->send_mask);
            if (ok) {
                iob__free_chain_at(h, b, st, me);
                freed++;
            }
        }
        mm_port_lock_destroy(&c->send_lock.lock);
        mm_port_lock_destroy(&c->recv_lock.lock);
        mm_port_store32(&c->state, IOB__CH_FREE);
        c->gen++;
        h->ch[id].gen = 0;
        h->ch[id].roles = 0;
    }
    iob__admin_unlock(h);
    return r < 0 ? iob__fail(h, r) : (int)freed;
}

int iob_channel_count(struct iob_pool_s *h, int id)
{
    int bad = iob__channel_id_bad(h, id);
    if (bad != 0)
        return bad;
    struct iob__chan *c = &h->chan[id];
    uint32_t mask;
    if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
        return -MM_ENOENT;
    if (!iob__chan_mask(c, &mask))
        return -MM_EUCLEAN;
    uint32_t n = mm_port_load32(&c->tail) - mm_port_load32(&c->head);
    return n > mask + 1u ? -MM_EUCLEAN : (int)n;
}

#if MM_CONFIG_MULTIPROCESS
int iob_channel_ends(struct iob_pool_s *h, int id, uint32_t *sender, uint32_t *receiver)
{
    int bad = iob__channel_id_bad(h, id);
    if (bad != 0)
        return bad;
    if (sender == NULL || receiver == NULL)
        return iob__fail(h, -MM_EINVAL);
    const struct iob__chan *c = &h->chan[id];
    if (mm_port_load32(&c->state) != IOB__CH_ACTIVE)
        return -MM_ENOENT;
    *sender = (c->flags & IOB_CHANNEL_MULTI_SENDER) ? 0u : c->sender;
    *receiver = (c->flags & IOB_CHANNEL_MULTI_RECEIVER) ? 0u : c->receiver;
    return 0;
}
#endif

/* ---- Sending and receiving ------------------------------------------------------- */

int iob_send(struct iob_pool_s *h, int id, struct iob_s *iob, int32_t timeout_ms)
{
    struct iob__chan *c;
    struct iob__chcache *k;
    int r = iob__chan_use(h, id, IOB_CHANNEL_SEND, &c, &k);
    if (r < 0)
        return r;
    uint32_t b, me = iob__me(h);
    if (!iob__index(h, iob, &b))
        return iob__fail(h, -MM_EINVAL);
    struct iob__desc *d = iob__desc(h, b);
    iob__st_t st = iob__st_load(&d->s);
    if (iob__st_kind(st) != IOB__OWNED || iob__st_owner(st) != me) {
        iob__count(&h->hdr->stats.misuse);
        return iob__fail(h, -MM_EPERM);
    }
    bool multi = (k->flags & IOB_CHANNEL_MULTI_SENDER) != 0;
    uint32_t mask = k->mask, t;
    iob__dl_t deadline = iob__deadline(timeout_ms);
    for (;;) {
        if (multi && (r = iob__chan_lock(h, (uint32_t)id, true)) < 0)
            return r;
        t = mm_port_load32(&c->tail);
        uint32_t hd = k->seen_head;
        if (t - hd > mask) {
            hd = mm_port_load32(&c->head);
            k->seen_head = hd;
        }
        if (MM_UNLIKELY(t - hd > mask + 1u)) {
            if (multi)
                iob__chan_unlock(h, (uint32_t)id, true);
            return iob__fail(h, -MM_EUCLEAN);
        }
        if (t - hd <= mask)
            break;
        if (multi)
            iob__chan_unlock(h, (uint32_t)id, true);
        if (deadline == 0)
            return iob__fail(h, -MM_EAGAIN);
        r = iob__sleep(&c->head, hd, &c->send_mask, &c->send_sleepers, me, deadline);
        if (r < 0)
            return iob__fail(h, r);
    }
    mm_port_store32(&c->cell[t & mask], b);
    IOB__CRASH(IOB_CRASH_SEND_CELL);
    iob__st_store(&d->s, iob__st_with(st, IOB__QUEUED, iob__q_arg((uint32_t)id, t)));
    IOB__CRASH(IOB_CRASH_SEND_STATE);
    mm_port_store32_sc(&c->tail, t + 1u);
    if (multi)
        iob__chan_unlock(h, (uint32_t)id, true);
    iob__wake(&c->tail, &c->recv_mask);
    return 0;
}

int iob_receive(struct iob_pool_s *h, int id, struct iob_s **out, int32_t timeout_ms)
{
    struct iob__chan *c;
    struct iob__chcache *k;
    int r = iob__chan_use(h, id, IOB_CHANNEL_RECV, &c, &k);
    if (r < 0)
        return r;
    if (out == NULL)
        return iob__fail(h, -MM_EINVAL);
    bool multi = (k->flags & IOB_CHANNEL_MULTI_RECEIVER) != 0;
    uint32_t mask = k->mask, hd, me = iob__me(h);
    iob__dl_t deadline = iob__deadline(timeout_ms);
    for (;;) {
        if (multi && (r = iob__chan_lock(h, (uint32_t)id, false)) < 0)
            return r;
        hd = mm_port_load32(&c->head);
        uint32_t t = k->seen_tail;
        if (t - hd - 1u > mask) { /* looks empty (or stale: other receivers moved on) */
            t = mm_port_load32(&c->tail);
            k->seen_tail = t;
        }
        if (MM_UNLIKELY(t - hd > mask + 1u)) {
            if (multi)
                iob__chan_unlock(h, (uint32_t)id, false);
            return iob__fail(h, -MM_EUCLEAN);
        }
        if (t != hd)
            break;
        if (multi)
            iob__chan_unlock(h, (uint32_t)id, false);
        if (deadline == 0)
            return iob__fail(h, -MM_EAGAIN);
        /* Spin for a while: a sender is often about to publish. */
        uint32_t i = 0;
        for (; i < h->spin; i++) {
            mm_port_relax();
            if (mm_port_load32(&c->tail) != hd)
                break;
        }
        if (i < h->spin)
            continue;
        r = iob__sleep(&c->tail, hd, &c->recv_mask, &c->recv_sleepers, me, deadline);
        if (r < 0)
            return iob__fail(h, r);
    }
    uint32_t b = mm_port_load32(&c->cell[hd & mask]);
    iob__st_t st = b < h->count ? iob__st_load(&h->desc[b].s) : 0;
    if (MM_UNLIKELY(b >= h->count || !iob__queued_at(st, (uint32_t)id, hd))) {
        if (multi)
            iob__chan_unlock(h, (uint32_t)id, false);
        return iob__fail(h, -MM_EUCLEAN);
    }
    iob__st_store(&h->desc[b].s, iob__st_with(st, IOB__OWNED, me));
    IOB__CRASH(IOB_CRASH_RECV_STATE);
    mm_port_store32_sc(&c->head, hd + 1u);
    if (multi)
        iob__chan_unlock(h, (uint32_t)id, false);
    iob__wake(&c->head, &c->send_mask);
    *out = iob__ptr(h, b);
    return 0;
}
