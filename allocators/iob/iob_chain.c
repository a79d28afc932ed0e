/*
 * iob_chain.c - buffer chains: the accessors, and NuttX's operations on a
 * chain (copy in and out, clone, concatenate, trim, pack, make contiguous,
 * set the packet length).
 *
 * A chain belongs to the process holding its head, so none of this takes a
 * lock.  What it must keep is the rule of iob_internal.h that a process
 * killed at any instruction leaves every buffer of its chains free or
 * reachable from a head it owns:
 *
 *   - a new buffer is allocated (OWNED: a head of its own), linked after the
 *     tail, and only then marked LINKED (iob__link);
 *   - a buffer leaves a chain by being promoted to OWNED first, then
 *     unlinked, then freed (iob__unlink_free, iob__cut);
 *   - freeing a head promotes the next buffer before the head is freed.
 *
 * Everything read from the pool is checked: links by iob__follow (in range
 * and marked LINKED), offsets and lengths by iob__extent, and every walk is
 * bounded by the number of buffers, so a corrupted chain ends the call with
 * -MM_EUCLEAN instead of a stray access or an endless loop.
 */
#include "iob_internal.h"

/* ---- Helpers --------------------------------------------------------------- */

/* The caller's own chain head: its index and state. */
static int iob__own_head(struct iob_pool_s *h, const struct iob_s *iob, uint32_t me, uint32_t *b,
                         iob__st_t *st)
{
    if (iob == NULL || !iob__index(h, iob, b))
        return iob__fail(h, -MM_EINVAL);
    *st = iob__st_load(&iob__desc(h, *b)->s);
    if (iob__st_kind(*st) != IOB__OWNED || iob__st_owner(*st) != me)
        return iob__fail(h, -MM_EPERM);
    return 0;
}

static int iob__corrupt(struct iob_pool_s *h)
{
    return iob__fail(h, -MM_EUCLEAN);
}

/* Append fresh buffer nb (OWNED by me) after b: linked first, then LINKED. */
static void iob__link(struct iob_pool_s *h, uint32_t b, uint32_t nb, uint32_t me)
{
    struct iob__desc *dn = iob__desc(h, nb);
    mm_port_store32(&iob__desc(h, b)->next, nb);
    IOB__CRASH(IOB_CRASH_LINK);
    iob__st_store(&dn->s, iob__st_with(iob__st_load(&dn->s), IOB__LINKED, me));
}

/* Free x, the buffer after prev: promoted, unlinked, freed. */
static int iob__unlink_free(struct iob_pool_s *h, uint32_t prev, uint32_t x, uint32_t me)
{
    uint32_t nx;
    if (!iob__follow(h, x, &nx))
        return iob__corrupt(h);
    struct iob__desc *dx = iob__desc(h, x);
    iob__st_t st = iob__st_with(iob__st_load(&dx->s), IOB__OWNED, me);
    iob__st_store(&dx->s, st);
    IOB__CRASH(IOB_CRASH_UNLINK);
    mm_port_store32(&iob__desc(h, prev)->next, nx);
    iob__free_one(h, x, st, me);
    return 0;
}

/* Cut the chain after b and free what followed. */
static int iob__cut(struct iob_pool_s *h, uint32_t b, uint32_t me)
{
    uint32_t nx;
    if (!iob__follow(h, b, &nx))
        return iob__corrupt(h);
    if (nx == IOB__NIL)
        return 0;
    struct iob__desc *dn = iob__desc(h, nx);
    iob__st_t st = iob__st_with(iob__st_load(&dn->s), IOB__OWNED, me);
    iob__st_store(&dn->s, st);
    IOB__CRASH(IOB_CRASH_UNLINK);
    mm_port_store32(&iob__desc(h, b)->next, IOB__NIL);
    iob__free_chain_at(h, nx, st, me);
    return 0;
}

static uint32_t iob__min(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* ---- Accessors ------------------------------------------------------------- */

uint8_t *iob_buffer(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b;
    if (!iob__handle_ok(h) || !iob__index(h, iob, &b))
        return NULL;
    return iob__storage(h, b);
}

/* iob's index and the offset and length of its data, all checked against
 * the handle; false if iob is not a buffer of this pool or its descriptor
 * was scribbled over. */
static bool iob__checked_extent(struct iob_pool_s *h, const struct iob_s *iob, uint32_t *b,
                                uint32_t *off, uint32_t *len)
{
    return iob__handle_ok(h) && iob__index(h, iob, b) && iob__extent(h, iob__desc(h, *b), off, len);
}

uint8_t *iob_data(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b, off, len;
    return iob__checked_extent(h, iob, &b, &off, &len) ? iob__storage(h, b) + off : NULL;
}

uint32_t iob_len(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b, off, len;
    return iob__checked_extent(h, iob, &b, &off, &len) ? len : 0;
}

uint32_t iob_offset(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b, off, len;
    return iob__checked_extent(h, iob, &b, &off, &len) ? off : 0;
}

uint32_t iob_pktlen(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b;
    if (!iob__handle_ok(h) || !iob__index(h, iob, &b))
        return 0;
    return iob__desc(h, b)->pktlen;
}

struct iob_s *iob_next(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b, nx;
    if (!iob__handle_ok(h) || !iob__index(h, iob, &b) || !iob__follow(h, b, &nx) || nx == IOB__NIL)
        return NULL;
    return iob__ptr(h, nx);
}

uint32_t iob_owner(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t b;
    if (!iob__handle_ok(h) || !iob__index(h, iob, &b))
        return 0;
    iob__st_t st = iob__st_load(&iob__desc(h, b)->s);
    return iob__st_kind(st) == IOB__OWNED ? iob__st_owner(st) : 0u;
}

/* ---- Copy in and out --------------------------------------------------------- */

static int iob__copyin(struct iob_pool_s *h, struct iob_s *iob, const uint8_t *src, uint32_t len,
                       uint32_t offset, bool throttled, bool can_block)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), hb, cur, off, clen, steps = 0;
    iob__st_t st;
    int r = iob__own_head(h, iob, me, &hb, &st);
    if (r < 0)
        return r;
    if ((src == NULL && len > 0) || len > (uint32_t)INT32_MAX)
        return iob__fail(h, -MM_EINVAL);
    struct iob__desc *hd = iob__desc(h, hb);
    if (offset > hd->pktlen)
        return iob__fail(h, -MM_ESPIPE);

    /* To the buffer holding the offset. */
    for (cur = hb;; steps++) {
        if (!iob__extent(h, iob__desc(h, cur), &off, &clen))
            return iob__corrupt(h);
        if (offset <= clen)
            break;
        offset -= clen;
        uint32_t nx;
        if (!iob__follow(h, cur, &nx) || nx == IOB__NIL || (IOB__VALIDATE && steps >= h->count))
            return iob__corrupt(h); /* the packet length promised more data */
        cur = nx;
    }

    uint32_t total = len;
    while (len > 0) {
        struct iob__desc *d = iob__desc(h, cur);
        uint32_t nx, ncopy;
        if (!iob__extent(h, d, &off, &clen) || (IOB__VALIDATE && offset > clen) ||
            !iob__follow(h, cur, &nx))
            return iob__corrupt(h);
        uint32_t avail = clen - offset;
        if (len <= avail) {
            ncopy = len;
        } else if (nx != IOB__NIL) {
            ncopy = avail; /* a buffer in mid-chain keeps its length */
        } else {
            /* The last buffer grows up to its end. */
            uint32_t room = h->bufsize - off - offset;
            uint32_t newlen = offset + iob__min(len, room);
            hd->pktlen += newlen - clen;
            d->len = newlen;
            ncopy = newlen - offset;
        }
        memcpy(iob__storage(h, cur) + off + offset, src, (size_t)ncopy);
        src += ncopy;
        len -= ncopy;
        if (len > 0 && nx == IOB__NIL) {
            uint32_t nb;
            r = iob__alloc_idx(h, me, throttled, can_block ? IOB__FOREVER : 0, &nb);
            if (r < 0)
                return iob__fail(h, r == -MM_EUCLEAN ? r : -MM_ENOMEM);
            iob__link(h, cur, nb, me);
            nx = nb;
        }
        if (IOB__VALIDATE && ++steps > h->count)
            return iob__corrupt(h);
        cur = nx;
        offset = 0;
    }
    return (int)total;
}

int iob_copyin(struct iob_pool_s *h, struct iob_s *iob, const uint8_t *src, uint32_t len,
               uint32_t offset, bool throttled)
{
    return iob__copyin(h, iob, src, len, offset, throttled, true);
}

int iob_trycopyin(struct iob_pool_s *h, struct iob_s *iob, const uint8_t *src, uint32_t len,
                  uint32_t offset, bool throttled)
{
    return iob__copyin(h, iob, src, len, offset, throttled, false);
}

int iob_copyout(struct iob_pool_s *h, uint8_t *dest, const struct iob_s *iob, uint32_t len,
                uint32_t offset)
{
    uint32_t cur, off, clen, steps = 0;
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    if (!iob__index(h, iob, &cur) || (dest == NULL && len > 0) || len > (uint32_t)INT32_MAX)
        return iob__fail(h, -MM_EINVAL);
    for (;;) {
        if (!iob__extent(h, iob__desc(h, cur), &off, &clen))
            return iob__corrupt(h);
        if (offset < clen)
            break;
        offset -= clen;
        uint32_t nx;
        if (!iob__follow(h, cur, &nx) || (IOB__VALIDATE && ++steps > h->count))
            return iob__corrupt(h);
        if (nx == IOB__NIL)
            return 0; /* offset past the data */
        cur = nx;
    }
    uint32_t remaining = len;
    while (remaining > 0) {
        if (!iob__extent(h, iob__desc(h, cur), &off, &clen) || (IOB__VALIDATE && offset > clen))
            return iob__corrupt(h);
        uint32_t ncopy = iob__min(clen - offset, remaining);
        memcpy(dest, iob__storage(h, cur) + off + offset, (size_t)ncopy);
        dest += ncopy;
        remaining -= ncopy;
        uint32_t nx;
        if (!iob__follow(h, cur, &nx) || (IOB__VALIDATE && ++steps > h->count))
            return iob__corrupt(h);
        if (nx == IOB__NIL)
            break;
        cur = nx;
        offset = 0;
    }
    return (int)(len - remaining);
}

/* ---- Clone and concatenate ---------------------------------------------------- */

int iob_clone(struct iob_pool_s *h, struct iob_s *iob1, struct iob_s *iob2, bool throttled,
              bool can_block)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), b1, b2, steps = 0;
    iob__st_t st2;
    int r = iob__own_head(h, iob2, me, &b2, &st2);
    if (r < 0)
        return r;
    if (!iob__index(h, iob1, &b1) || b1 == b2)
        return iob__fail(h, -MM_EINVAL);
    struct iob__desc *d2 = iob__desc(h, b2);
    uint32_t off2, len2;
    if (!iob__extent(h, d2, &off2, &len2))
        return iob__corrupt(h);
    if (len2 != 0 || d2->pktlen != 0 || d2->next != IOB__NIL)
        return iob__fail(h, -MM_EINVAL);

    uint32_t dst = b2, dpos = off2; /* where the next byte goes */
    for (uint32_t src = b1; src != IOB__NIL;) {
        uint32_t off1, len1, nx;
        if (!iob__extent(h, iob__desc(h, src), &off1, &len1) || !iob__follow(h, src, &nx) ||
            (IOB__VALIDATE && ++steps > h->count))
            return iob__corrupt(h);
        const uint8_t *p = iob__storage(h, src) + off1;
        while (len1 > 0) {
            if (dpos == h->bufsize) {
                uint32_t nb;
                r = iob__alloc_idx(h, me, throttled, can_block ? IOB__FOREVER : 0, &nb);
                if (r < 0)
                    return iob__fail(h, r == -MM_EUCLEAN ? r : -MM_ENOMEM);
                iob__link(h, dst, nb, me);
                dst = nb;
                dpos = 0;
            }
            uint32_t ncopy = iob__min(len1, h->bufsize - dpos);
            memcpy(iob__storage(h, dst) + dpos, p, (size_t)ncopy);
            iob__desc(h, dst)->len += ncopy;
            d2->pktlen += ncopy;
            dpos += ncopy;
            p += ncopy;
            len1 -= ncopy;
        }
        src = nx;
    }
    return 0;
}

int iob_concat(struct iob_pool_s *h, struct iob_s *iob1, struct iob_s *iob2)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), b1, b2, tail, steps = 0;
    iob__st_t st1, st2;
    int r = iob__own_head(h, iob1, me, &b1, &st1);
    if (r == 0)
        r = iob__own_head(h, iob2, me, &b2, &st2);
    if (r < 0)
        return r;
    if (b1 == b2)
        return iob__fail(h, -MM_EINVAL);
    for (tail = b1;; steps++) {
        uint32_t nx;
        if (!iob__follow(h, tail, &nx) || (IOB__VALIDATE && steps >= h->count))
            return iob__corrupt(h);
        if (nx == IOB__NIL)
            break;
        tail = nx;
    }
    struct iob__desc *d1 = iob__desc(h, b1), *d2 = iob__desc(h, b2);
    iob__link(h, tail, b2, me);
    d1->pktlen += d2->pktlen;
    d2->pktlen = 0;
    return 0;
}

/* ---- Trimming ------------------------------------------------------------------ */

struct iob_s *iob_trimhead(struct iob_pool_s *h, struct iob_s *iob, uint32_t trimlen)
{
    if (!iob__handle_ok(h))
        return NULL;
    uint32_t me = iob__me(h), cur, steps = 0;
    iob__st_t st;
    if (iob__own_head(h, iob, me, &cur, &st) < 0)
        return NULL;
    uint32_t pktlen = iob__desc(h, cur)->pktlen;
    while (trimlen > 0) {
        struct iob__desc *d = iob__desc(h, cur);
        uint32_t off, len, nx;
        if (!iob__extent(h, d, &off, &len) || !iob__follow(h, cur, &nx) ||
            (IOB__VALIDATE && ++steps > h->count)) {
            iob__corrupt(h);
            return NULL;
        }
        if (len > trimlen) {
            d->len = len - trimlen;
            d->offset = off + trimlen;
            pktlen -= iob__min(pktlen, trimlen);
            break;
        }
        pktlen -= iob__min(pktlen, len);
        trimlen -= len;
        if (nx == IOB__NIL) {
            /* Everything trimmed: the last buffer stays, empty. */
            d->len = 0;
            d->offset = 0;
            pktlen = 0;
            break;
        }
        cur = iob__free_head(h, cur, st, me);
        st = iob__st_load(&iob__desc(h, cur)->s);
    }
    iob__desc(h, cur)->pktlen = pktlen;
    return iob__ptr(h, cur);
}

struct iob_s *iob_trimtail(struct iob_pool_s *h, struct iob_s *iob, uint32_t trimlen)
{
    if (!iob__handle_ok(h))
        return NULL;
    uint32_t me = iob__me(h), b, cur, steps = 0;
    iob__st_t st;
    if (iob__own_head(h, iob, me, &b, &st) < 0)
        return NULL;
    if (trimlen == 0)
        return iob;
    uint64_t total = 0;
    for (cur = b; cur != IOB__NIL;) {
        uint32_t off, len;
        if (!iob__extent(h, iob__desc(h, cur), &off, &len) || !iob__follow(h, cur, &cur) ||
            (IOB__VALIDATE && ++steps > h->count)) {
            iob__corrupt(h);
            return NULL;
        }
        total += len;
    }
    if (trimlen >= total) {
        iob__free_chain_at(h, b, st, me);
        return NULL;
    }
    /* The new end lies in the first buffer that reaches keep bytes. */
    uint64_t keep = total - trimlen, cum = 0;
    for (cur = b; cur != IOB__NIL;) {
        struct iob__desc *d = iob__desc(h, cur);
        uint32_t off = 0, len = 0, nx = IOB__NIL;
        if (!iob__extent(h, d, &off, &len) || !iob__follow(h, cur, &nx)) {
            iob__corrupt(h); /* checked above: only a concurrent scribbler gets here */
            return NULL;
        }
        cum += len;
        if (cum >= keep) {
            d->len = len - (uint32_t)(cum - keep);
            if (iob__cut(h, cur, me) < 0)
                return NULL;
            break;
        }
        cur = nx;
    }
    struct iob__desc *hd = iob__desc(h, b);
    hd->pktlen -= iob__min(hd->pktlen, trimlen);
    return iob;
}

/* ---- Packing ------------------------------------------------------------------- */

/* Move cur's data to offset 0. */
static void iob__to_front(struct iob_pool_s *h, uint32_t cur, uint32_t off, uint32_t len)
{
    if (off > 0) {
        uint8_t *p = iob__storage(h, cur);
        memmove(p, p + off, (size_t)len);
        iob__desc(h, cur)->offset = 0;
    }
}

/* Pull bytes from the buffers after cur into cur until it holds want bytes
 * (or is full, or the chain ends), freeing buffers that empty.  cur's data
 * already start at offset 0. */
static int iob__pull(struct iob_pool_s *h, uint32_t cur, uint32_t want, uint32_t me)
{
    struct iob__desc *d = iob__desc(h, cur);
    for (uint32_t steps = 0; d->len < want; steps++) {
        uint32_t nx, noff, nlen;
        if (!iob__follow(h, cur, &nx) || (IOB__VALIDATE && steps > h->count))
            return iob__corrupt(h);
        if (nx == IOB__NIL)
            return 0;
        struct iob__desc *dn = iob__desc(h, nx);
        if (!iob__extent(h, dn, &noff, &nlen))
            return iob__corrupt(h);
        uint32_t ncopy = iob__min(want - d->len, nlen);
        memcpy(iob__storage(h, cur) + d->len, iob__storage(h, nx) + noff, (size_t)ncopy);
        d->len += ncopy;
        dn->len = nlen - ncopy;
        dn->offset = noff + ncopy;
        if (dn->len == 0) {
            int r = iob__unlink_free(h, cur, nx, me);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

struct iob_s *iob_pack(struct iob_pool_s *h, struct iob_s *iob)
{
    if (!iob__handle_ok(h))
        return NULL;
    uint32_t me = iob__me(h), head, off, len, steps = 0;
    iob__st_t st;
    if (iob__own_head(h, iob, me, &head, &st) < 0)
        return NULL;
    /* Leading empty buffers go first. */
    for (;;) {
        if (!iob__extent(h, iob__desc(h, head), &off, &len) ||
            (IOB__VALIDATE && ++steps > h->count)) {
            iob__corrupt(h);
            return NULL;
        }
        if (len > 0)
            break;
        uint32_t nx = iob__free_head(h, head, st, me);
        if (nx == IOB__NIL)
            return NULL;
        head = nx;
        st = iob__st_load(&iob__desc(h, head)->s);
    }
    for (uint32_t cur = head; cur != IOB__NIL;) {
        if (!iob__extent(h, iob__desc(h, cur), &off, &len) ||
            (IOB__VALIDATE && ++steps > 2u * h->count + 2u)) {
            iob__corrupt(h);
            return NULL;
        }
        iob__to_front(h, cur, off, len);
        if (iob__pull(h, cur, h->bufsize, me) < 0 || !iob__follow(h, cur, &cur))
            return NULL;
    }
    return iob__ptr(h, head);
}

int iob_contig(struct iob_pool_s *h, struct iob_s *iob, uint32_t len)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), b, off, clen;
    iob__st_t st;
    int r = iob__own_head(h, iob, me, &b, &st);
    if (r < 0)
        return r;
    if (len > h->bufsize)
        return iob__fail(h, -MM_EINVAL);
    struct iob__desc *d = iob__desc(h, b);
    if (!iob__extent(h, d, &off, &clen))
        return iob__corrupt(h);
    if (len <= clen)
        return 0;
    if (len > d->pktlen)
        return iob__fail(h, -MM_ENOSPC);
    iob__to_front(h, b, off, clen);
    r = iob__pull(h, b, len, me);
    if (r < 0)
        return r;
    return d->len >= len ? 0 : iob__fail(h, -MM_ENOSPC);
}

/* ---- Packet length and headroom ------------------------------------------------- */

int iob_update_pktlen(struct iob_pool_s *h, struct iob_s *iob, uint32_t pktlen, bool throttled)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t me = iob__me(h), b, cur, steps = 0;
    iob__st_t st;
    int r = iob__own_head(h, iob, me, &b, &st);
    if (r < 0)
        return r;
    if (pktlen > (uint32_t)INT32_MAX)
        return iob__fail(h, -MM_EINVAL);
    uint32_t remaining = pktlen;
    for (cur = b;;) {
        struct iob__desc *d = iob__desc(h, cur);
        uint32_t off, len, nx;
        if (!iob__extent(h, d, &off, &len) || !iob__follow(h, cur, &nx) ||
            (IOB__VALIDATE && ++steps > h->count))
            return iob__corrupt(h);
        d->len = iob__min(remaining, h->bufsize - off);
        remaining -= d->len;
        if (remaining == 0) {
            r = iob__cut(h, cur, me);
            if (r < 0)
                return r;
            break;
        }
        if (nx == IOB__NIL) {
            if (iob__alloc_idx(h, me, throttled, 0, &nx) < 0)
                break; /* out of buffers: a shorter packet */
            iob__link(h, cur, nx, me);
        }
        cur = nx;
    }
    iob__desc(h, b)->pktlen = pktlen - remaining;
    return (int)(pktlen - remaining);
}

int iob_reserve(struct iob_pool_s *h, struct iob_s *iob, uint32_t reserved)
{
    if (!iob__handle_ok(h))
        return -MM_EINVAL;
    uint32_t b;
    iob__st_t st;
    int r = iob__own_head(h, iob, iob__me(h), &b, &st);
    if (r < 0)
        return r;
    struct iob__desc *d = iob__desc(h, b);
    if (d->len != 0 || d->pktlen != 0 || d->next != IOB__NIL || reserved > h->bufsize)
        return iob__fail(h, -MM_EINVAL);
    d->offset = reserved;
    return 0;
}
