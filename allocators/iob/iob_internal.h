/*
 * iob_internal.h - the IOB pool's shared-memory layout and the helpers every
 * IOB file uses.
 *
 * Memory of a pool (offsets from its start, all multiples of 64):
 *
 *   0         struct iob__header: geometry, stats, admin lock, the two free
 *             lists' head words (buffers, queue entries), each on its line
 *   desc_off  struct iob__desc[count]      64 bytes per buffer
 *   qent_off  struct iob__qent[count]      32 bytes per queue entry
 *   chan_off  struct iob__chan[IOB_CONFIG_CHANNELS]
 *   data_off  count * stride bytes of buffer data (stride = bufsize rounded
 *             up to 64)
 *
 * The layout follows from (bufsize, count) alone; attach recomputes it and
 * compares.  Every link is an index (IOB__NIL for none).
 *
 * ---- Who holds a buffer: the state word is the truth -------------------
 *
 * Each descriptor (buffer or queue entry) has a 64-bit state word:
 *
 *   bits  0..31  owner id (QUEUED: channel id << 24 | ring position)
 *   bits 32..35  kind: FREE, OWNED (head of a chain, or a queue entry),
 *                LINKED (in a chain after its head), QUEUED (head of a chain
 *                waiting in a channel)
 *   bits 36..59  version: the number of the pop that last handed the slot
 *                out; every later transition keeps it
 *
 * A buffer belongs to whoever holds the head of its chain: a chain is its
 * head plus the LINKED buffers reached by `next`, and a walk stops at the
 * first buffer that is not LINKED.  Chain operations keep one rule: at every
 * instruction, every non-free buffer of a chain is reachable from an OWNED
 * or QUEUED head.  So a buffer about to leave a chain is first promoted to
 * OWNED (a head of its own), then unlinked, then freed; a buffer joining a
 * chain is linked first and marked LINKED after.  In between, a buffer may
 * be reachable from two heads of the same owner; reclaim marks what it
 * visits and frees each buffer once.  Passing a chain to another owner
 * changes one word, whatever its length.
 *
 * ---- The free lists: lock-free, and crash-safe -------------------------
 *
 * A free list is a LIFO stack linked through free_next, with a 16-byte head
 * changed only by a 16-byte compare-and-swap (cmpxchg16b on x86-64):
 *
 *   word 0: top index (20 bits) | number free (20) | pops (24)
 *   word 1: last owner (32) | last popped index (20)
 *
 * "pops" counts pops; "last owner" and "last popped" say who took the top
 * in the latest one.  The count is in the head, so the throttle check,
 * iob_navail and the lowest-free statistic are exact and cost nothing.
 *
 * The hard part is that removing a buffer from the list and recording its
 * new owner in the buffer's state are two stores; a process killed between
 * them would leave a buffer neither free nor owned.  Here the pop itself
 * records the owner: one CAS replaces {top b, n, p | ...} by {next(b), n-1,
 * p+1 | me, b}, and the popper then writes OWNED(me, p+1) into b's state.
 * Until the next pop, the head names b's owner; every pop (and every freeze)
 * first makes sure that the previous pop is written in its buffer's state,
 * writing it itself (a CAS from the old state) if the popper has not yet,
 * because it died or is slow.  So at every instruction each buffer is on
 * the list, recorded in its state, or named by the head: none is ever lost,
 * and a pop is one CAS.  "Recorded" means the state's version equals the
 * head's pop count: every state written since that pop carries it, and the
 * state the buffer had on the list carries an older one.  A helper reads
 * the state and then checks that the head still shows that pop before it
 * records it with a CAS from the state it read: a helper that lags behind
 * (its copy of the head from before later pops) must not take a state of
 * the buffer's next life for an unrecorded one.
 *
 * A push (free) writes FREE(me) in the state first and then links the
 * buffer (or a whole chain) with one CAS; pushes leave the pop count and the
 * last pop as they are.  A process killed between the two leaves FREE(me)
 * buffers off the list: reclaim finds them by owner.
 *
 * ABA: a pop reads next(top) before its CAS.  The CAS fails if any pop
 * happened meanwhile (the count moved), and without a pop the top cannot
 * come back; only 2^24 pops between the read and the CAS of one process
 * could fool it.  A push's new word depends on nothing it read but the
 * head itself, so it cannot be fooled.
 *
 * Reclaim freezes a list: under the admin lock (a robust mutex) it records
 * the last pop and swaps the top for FROZEN (the count stays in the head,
 * the top goes to frozen_top).  Pops and pushes that meet a frozen head
 * wait on the admin lock.  With the list still and every pop recorded,
 * reclaim walks it (marking what is on it), then scans every descriptor:
 * off the list and OWNED by the dead owner (with its chain), or FREE by it,
 * goes back; then one CAS thaws the list with those buffers on top.  States
 * are changed before that CAS, so a reclaimer killed midway leaves FREE(dead)
 * buffers off the list and a frozen head; the next admin locker sees that
 * the robust lock's owner died and runs the same reclaim again.
 *
 * Everything read from the pool is untrusted: indices are checked against
 * the handle's count, lengths against its buffer size, and walks are
 * bounded by the count.
 *
 * ---- Microcontrollers (MM_CONFIG_MULTIPROCESS 0) -----------------------
 *
 * The same files, the same chain, queue and pool code; what one program in
 * one address space does not need compiles away, as in the heap:
 *
 *   - IOB__VALIDATE is 0: links, lengths and walk bounds read from the
 *     pool are trusted (`if (IOB__VALIDATE && ...)`); arguments are still
 *     checked, and iob_pool_check still finds corruption;
 *   - a state has no version: owner and kind, read and written with plain
 *     accesses (iob__st_load, iob__st_store), so iob__st_with needs no load;
 *   - a free list is a plain stack under its port lock (a critical section,
 *     or nothing for the none port), which freeze holds until thaw; the
 *     buffers' pushes count the pool's frees;
 *   - the handle keeps its resolved owner id; the admin lock cannot fail;
 *   - the app and none ports have no clock, so a deadline is the wait in
 *     milliseconds (iob__dl_t), and where size_t has at most 32 bits the
 *     layout is computed in 32 bits (iob_pool.c).
 */
#ifndef MM_IOB_INTERNAL_H
#define MM_IOB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mm/iob.h"
#include "mm_port.h"

#if defined(__OPTIMIZE_SIZE__)
/* -Os (microcontroller builds): the compiler decides; forced copies of the
 * list helpers in every caller cost more flash than the calls. */
#define IOB__HOT static inline
#else
#define IOB__HOT static inline __attribute__((always_inline))
#endif

/* Inlined everywhere: checks that a microcontroller compiles away (see
 * IOB__VALIDATE), so that its callers' error paths go with them. */
#define IOB__CHECK static inline __attribute__((always_inline))

_Static_assert(IOB_CONFIG_CHANNELS >= 1 && IOB_CONFIG_CHANNELS <= 256,
               "channel ids take 8 bits of a queued state");
_Static_assert(IOB_CONFIG_CHANNEL_DEPTH >= 1 && IOB_CONFIG_CHANNEL_DEPTH <= 65536 &&
                   (IOB_CONFIG_CHANNEL_DEPTH & (IOB_CONFIG_CHANNEL_DEPTH - 1)) == 0,
               "channel depth: a power of two, far below the 24-bit ring position");

#define IOB__LINE 64u

/* Whether what the pool's memory says (links, lengths, offsets) is checked
 * before use: where other processes share it.  A microcontroller's pool
 * trusts its own memory; iob_pool_check still finds corruption. */
#define IOB__VALIDATE MM_CONFIG_MULTIPROCESS

/* ---- Free-list head ------------------------------------------------------ */

#define IOB__IDX_MASK 0xfffffu
#if MM_CONFIG_MULTIPROCESS
#define IOB__NIL 0xfffffu /* no buffer */
#else
#define IOB__NIL UINT32_MAX /* no buffer (no head word to fit: cheaper to compare) */
#endif
#define IOB__FROZEN      0xffffeu /* top of a list that reclaim froze */
#define IOB__NFREE_SHIFT 20
#define IOB__POPS_SHIFT  40
#define IOB__VER_MASK    0xffffffu /* pop counts and state versions: 24 bits */

_Static_assert(IOB_MAX_BUFFERS < IOB__FROZEN, "buffer indices stay below the reserved ones");

/* Word 0. */
IOB__HOT uint32_t iob__h_idx(uint64_t w)
{
    return (uint32_t)(w & IOB__IDX_MASK);
}
IOB__HOT uint32_t iob__h_nfree(uint64_t w)
{
    return (uint32_t)((w >> IOB__NFREE_SHIFT) & IOB__IDX_MASK);
}
IOB__HOT uint32_t iob__h_pops(uint64_t w)
{
    return (uint32_t)(w >> IOB__POPS_SHIFT);
}
IOB__HOT uint64_t iob__h_make(uint32_t idx, uint32_t nfree, uint32_t pops)
{
    return (uint64_t)(idx & IOB__IDX_MASK) |
           ((uint64_t)(nfree & IOB__IDX_MASK) << IOB__NFREE_SHIFT) |
           ((uint64_t)(pops & IOB__VER_MASK) << IOB__POPS_SHIFT);
}
#define IOB__H_NFREE_ONE ((uint64_t)1 << IOB__NFREE_SHIFT)
#define IOB__H_POP_ONE   ((uint64_t)1 << IOB__POPS_SHIFT)

/* Word 1: the latest pop. */
IOB__HOT uint32_t iob__l_owner(uint64_t w)
{
    return (uint32_t)w;
}
IOB__HOT uint32_t iob__l_idx(uint64_t w)
{
    return (uint32_t)(w >> 32) & IOB__IDX_MASK;
}
IOB__HOT uint64_t iob__l_make(uint32_t owner, uint32_t idx)
{
    return (uint64_t)owner | ((uint64_t)(idx & IOB__IDX_MASK) << 32);
}

/* ---- State words --------------------------------------------------------- */

#define IOB__FREE   0u
#define IOB__OWNED  1u
#define IOB__LINKED 2u
#define IOB__QUEUED 3u

/* A state as the code holds it: the 64-bit word above.  A microcontroller's
 * has no version (no lock-free pops to record): owner in one half, kind in
 * the other, read and written with plain accesses. */
typedef uint64_t iob__st_t;

#if MM_CONFIG_MULTIPROCESS
IOB__HOT uint32_t iob__st_owner(iob__st_t s)
{
    return (uint32_t)s;
}
IOB__HOT uint32_t iob__st_kind(iob__st_t s)
{
    return (uint32_t)(s >> 32) & 0xfu;
}
IOB__HOT uint32_t iob__st_ver(iob__st_t s)
{
    return (uint32_t)(s >> 36) & IOB__VER_MASK;
}
IOB__HOT iob__st_t iob__st_make(uint32_t kind, uint32_t owner, uint32_t ver)
{
    return (uint64_t)owner | ((uint64_t)(kind & 0xfu) << 32) |
           ((uint64_t)(ver & IOB__VER_MASK) << 36);
}
/* The same state with another kind and owner, its version kept. */
IOB__HOT iob__st_t iob__st_with(iob__st_t s, uint32_t kind, uint32_t owner)
{
    return iob__st_make(kind, owner, iob__st_ver(s));
}
#else
/* The two halves through a union, not shifts: a 16-bit AVR calls a library
 * routine for every 64-bit shift.  Which half is which does not matter:
 * these are the only accessors. */
union iob__st_halves {
    iob__st_t s;
    uint32_t h[2]; /* owner, kind */
};
IOB__HOT uint32_t iob__st_owner(iob__st_t s)
{
    union iob__st_halves u = {s};
    return u.h[0];
}
IOB__HOT uint32_t iob__st_kind(iob__st_t s)
{
    union iob__st_halves u = {s};
    return u.h[1];
}
IOB__HOT iob__st_t iob__st_make(uint32_t kind, uint32_t owner, uint32_t ver)
{
    (void)ver;
    union iob__st_halves u;
    u.h[0] = owner;
    u.h[1] = kind;
    return u.s;
}
/* No version to keep: the old state is not even read. */
IOB__HOT iob__st_t iob__st_with(iob__st_t s, uint32_t kind, uint32_t owner)
{
    (void)s;
    return iob__st_make(kind, owner, 0);
}
#endif

/* A queued chain's owner field: which channel, at which ring position. */
IOB__HOT uint32_t iob__q_arg(uint32_t chan, uint32_t pos)
{
    return (chan << 24) | (pos & 0xffffffu);
}

/* ---- Descriptors ----------------------------------------------------- */

/* What buffer descriptors and queue entries share: the free-list part. */
struct iob__slot {
    uint64_t state;     /* see above */
    uint32_t free_next; /* next on the free list (meaningful while on it) */
    uint32_t mark;      /* epoch of the last reclaim or check that visited it */
};
_Static_assert(sizeof(struct iob__slot) == 16 && offsetof(struct iob__slot, free_next) == 8,
               "slot layout");

/* Reading and writing a slot's state (macros: the host's code stays
 * exactly the atomic access it is). */
#if MM_CONFIG_MULTIPROCESS
#define iob__st_load(slot)      mm_port_load64(&(slot)->state)
#define iob__st_store(slot, st) mm_port_store64(&(slot)->state, (st))
#else
/* One program: a state changes only under its owner's hand (or the lists'
 * lock), so plain accesses do, and a store of a state whose old value is
 * not needed makes the load before it dead. */
#define iob__st_load(slot)      ((slot)->state)
#define iob__st_store(slot, st) ((void)((slot)->state = (st)))
#endif

/* One buffer.  Data live at data_off + index * stride. */
struct iob__desc {
    struct iob__slot s;
    uint32_t next;   /* next buffer of the chain, IOB__NIL at its end */
    uint32_t len;    /* bytes of data in this buffer (io_len) */
    uint32_t offset; /* where they start (io_offset) */
    uint32_t pktlen; /* head only: bytes in the chain (io_pktlen) */
    uint64_t nfreed; /* times freed: the pool's statistics sum these */
    uint8_t pad[24];
};
_Static_assert(sizeof(struct iob__desc) == 64, "one descriptor per cache line");
_Static_assert(offsetof(struct iob__desc, next) == 16 && offsetof(struct iob__desc, pktlen) == 28 &&
                   offsetof(struct iob__desc, nfreed) == 32,
               "descriptor layout");

/* One queue entry. */
struct iob__qent {
    struct iob__slot s;
    uint32_t next;  /* next entry of the queue, IOB__NIL at its end */
    uint32_t chain; /* the queued chain's head */
    uint8_t pad[8];
};
_Static_assert(sizeof(struct iob__qent) == 32, "queue entry layout");

/* A robust lock on a line of its own (its size depends on the port). */
union iob__lock {
    mm_port_lock_t lock;
    uint8_t line[IOB__LINE];
};
_Static_assert(sizeof(mm_port_lock_t) <= IOB__LINE, "a port lock fits a cache line");

/* Who sleeps on a futex word: a bit per sleeper in a mask that wakers read
 * with one load, and the owner of each bit, so that reclaim can clear the
 * bit of a process that died asleep (a count could not be repaired: nobody
 * would know the dead process's share).  A sleeper claims an owner slot
 * first and sets its bit after, and clears its bit before it frees the
 * slot, so a death at any point leaves at most a slot or a bit that reclaim
 * clears.  With all slots taken, a waiter polls in short sleeps instead. */
#define IOB__SLEEPERS 32u
struct iob__sleepers {
    uint32_t owner[IOB__SLEEPERS];
};
_Static_assert(sizeof(struct iob__sleepers) == 2u * IOB__LINE, "sleeper slots: two lines");

/* A free list: the head, and what waiters need, on one line (a push has
 * the line in hand when it checks for sleepers). */
#if MM_CONFIG_MULTIPROCESS
struct iob__stack {
    uint64_t head[2];    /* see "The free lists"; 16-byte aligned */
    uint32_t frozen_top; /* top of the list while frozen (admin lock) */
    uint32_t sleepmask;  /* allocators asleep on seq (bits of `sleepers`) */
    uint32_t seq;        /* futex word: bumped when a push finds sleepers */
    uint8_t pad[IOB__LINE - 28];
};
#else
/* A microcontroller's list is a plain stack under this lock: one program,
 * nobody dies holding a buffer half taken, so no pop needs recording. */
struct iob__stack {
    uint64_t pushed;    /* slots ever pushed: the buffers' are the pool's frees */
    uint32_t top;       /* first free slot, IOB__NIL when none */
    uint32_t nfree;     /* slots on the list */
    uint32_t sleepmask; /* allocators asleep on seq (a count: nobody dies asleep) */
    uint32_t seq;       /* bumped when a push finds sleepers */
    mm_port_lock_t lock;
    uint8_t pad[IOB__LINE - 24 - sizeof(mm_port_lock_t)];
};
#endif
_Static_assert(sizeof(struct iob__stack) == IOB__LINE, "free list head on one line");

/* Slots on a list (the wait and the counters read it without a lock). */
IOB__HOT uint32_t iob__nfree(const struct iob__stack *stk)
{
#if MM_CONFIG_MULTIPROCESS
    return iob__h_nfree(mm_port_load64(&stk->head[0]));
#else
    return mm_port_load32(&stk->nfree);
#endif
}

struct iob__hstats {
    uint32_t lowest_free;
    uint32_t waits;
    uint32_t failures;
    uint32_t misuse;
    uint32_t reclaims;
    uint32_t reclaimed;
    uint8_t pad[IOB__LINE - 24];
};
_Static_assert(sizeof(struct iob__hstats) == IOB__LINE, "statistics on one line");

#define IOB__MAGIC   0x50424f49u /* "IOBP" */
#define IOB__VERSION 1u

struct iob__header {
    /* Written by iob_pool_initialize, then only read (and validated). */
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint32_t port;      /* MM_CONFIG_PORT: the lock layout */
    uint32_t lock_size; /* sizeof(mm_port_lock_t) */
    uint32_t nchannels; /* IOB_CONFIG_CHANNELS */
    uint32_t chdepth;   /* IOB_CONFIG_CHANNEL_DEPTH */
    uint32_t bufsize;
    uint32_t count;
    uint32_t throttle;
    uint32_t stride;
    uint64_t desc_off;
    uint64_t qent_off;
    uint64_t chan_off;
    uint64_t data_off;
    uint64_t total; /* bytes of the whole pool */
    /* Under the admin lock. */
    uint32_t epoch;         /* marks of the last reclaim or check */
    uint32_t reclaim_owner; /* owner being reclaimed: rerun if the reclaimer dies */
    uint8_t pad0[128 - 88];
    struct iob__hstats stats;
    union iob__lock admin; /* reclaim, check, channel creation and registration */
    struct iob__stack bufs;
    struct iob__stack qents;
    struct iob__sleepers bufs_sleepers;
    struct iob__sleepers qents_sleepers;
};
_Static_assert(offsetof(struct iob__header, stats) == 128 &&
                   offsetof(struct iob__header, admin) == 192 &&
                   offsetof(struct iob__header, bufs) == 256 &&
                   offsetof(struct iob__header, qents) == 320 &&
                   offsetof(struct iob__header, bufs_sleepers) == 384 &&
                   sizeof(struct iob__header) == 640,
               "header layout: each hot part on its own line");

/* ---- Channels ----------------------------------------------------------- */

#define IOB__CH_FREE   0u
#define IOB__CH_ACTIVE 1u

struct iob__chan {
    /* Written under the admin lock, read by everyone. */
    uint32_t state;    /* IOB__CH_* */
    uint32_t gen;      /* bumped at create and destroy: handles notice reuse */
    uint32_t flags;    /* IOB_CHANNEL_MULTI_* */
    uint32_t depth;    /* a power of two, <= IOB_CONFIG_CHANNEL_DEPTH */
    uint32_t sender;   /* registered single sender, 0 if none */
    uint32_t receiver; /* registered single receiver, 0 if none */
    uint32_t pad0[2];
    char name[IOB_CHANNEL_NAME_MAX];
    union iob__lock send_lock; /* multi-sender channels */
    union iob__lock recv_lock; /* multi-receiver channels */
    /* The sender's line. */
    uint32_t tail;      /* chains ever published (free-running) */
    uint32_t recv_mask; /* receivers asleep on tail (bits of recv_sleepers) */
    uint8_t pad1[IOB__LINE - 8];
    /* The receiver's line. */
    uint32_t head;      /* chains ever taken */
    uint32_t send_mask; /* senders asleep on head (bits of send_sleepers) */
    uint8_t pad2[IOB__LINE - 8];
    struct iob__sleepers recv_sleepers;
    struct iob__sleepers send_sleepers;
    uint32_t cell[IOB_CONFIG_CHANNEL_DEPTH]; /* buffer indices of the queued heads */
};
_Static_assert(offsetof(struct iob__chan, name) == 32 &&
                   offsetof(struct iob__chan, send_lock) == 64 &&
                   offsetof(struct iob__chan, recv_lock) == 128 &&
                   offsetof(struct iob__chan, tail) == 192 &&
                   offsetof(struct iob__chan, head) == 256 &&
                   offsetof(struct iob__chan, recv_sleepers) == 320 &&
                   offsetof(struct iob__chan, cell) == 576,
               "channel layout: sender and receiver lines apart");
_Static_assert(sizeof(struct iob__chan) % IOB__LINE == 0 || IOB_CONFIG_CHANNEL_DEPTH < 16,
               "channels stay line aligned");

/* ---- The process-local handle ------------------------------------------ */

/* What this handle knows about a channel it connected to. */
struct iob__chcache {
    uint32_t gen;   /* the channel's generation at connect; 0: not connected */
    uint32_t roles; /* IOB_CHANNEL_SEND / RECV */
    uint32_t flags;
    uint32_t mask;      /* depth - 1, validated */
    uint32_t seen_head; /* sender: the receiver's head, last read */
    uint32_t seen_tail; /* receiver: the sender's tail, last read */
};

struct iob_pool_s {
    uint8_t *base; /* this process's address of the pool */
    size_t size;   /* bytes mapped from base */
    struct iob__header *hdr;
    struct iob__desc *desc;
    struct iob__qent *qent;
    struct iob__chan *chan;
    uint8_t *data;
    uint32_t count; /* trusted copies, validated at attach */
    uint32_t bufsize;
    uint32_t stride;
    uint32_t throttle;
    uint32_t owner; /* explicit owner id, 0: the process's (see iob__me) */
    uint32_t spin;
    int error;
    uint32_t in_use;
    struct iob__chcache ch[IOB_CONFIG_CHANNELS];
};

/* ---- Small helpers ---------------------------------------------------- */

/* The owner id a handle records: an explicit one, or the caller's.  The
 * host asks each time (a fork changes it); a microcontroller's program has
 * one id for good, so its handle keeps the resolved id (iob__owner_id). */
IOB__HOT uint32_t iob__me(const struct iob_pool_s *h)
{
#if MM_CONFIG_MULTIPROCESS
    return h->owner != 0 ? h->owner : mm_port_self();
#else
    return h->owner;
#endif
}

/* What a handle keeps in `owner` for iob_pool_set_owner(owner). */
IOB__HOT uint32_t iob__owner_id(uint32_t owner)
{
#if MM_CONFIG_MULTIPROCESS
    return owner;
#else
    return owner != 0 ? owner : mm_port_self();
#endif
}

IOB__CHECK bool iob__handle_ok(const struct iob_pool_s *h)
{
    return h != NULL && h->in_use != 0;
}

IOB__HOT struct iob__desc *iob__desc(const struct iob_pool_s *h, uint32_t i)
{
    return &h->desc[i];
}

IOB__HOT uint8_t *iob__storage(const struct iob_pool_s *h, uint32_t i)
{
    return h->data + (size_t)i * h->stride;
}

/* The index of a buffer pointer, if it is one of this pool's. */
IOB__HOT bool iob__index(const struct iob_pool_s *h, const struct iob_s *iob, uint32_t *out)
{
    uintptr_t p = (uintptr_t)iob, d = (uintptr_t)h->desc;
    if (MM_UNLIKELY(p < d || ((p - d) & (sizeof(struct iob__desc) - 1u)) != 0))
        return false;
    uintptr_t i = (p - d) / sizeof(struct iob__desc);
    if (MM_UNLIKELY(i >= h->count))
        return false;
    *out = (uint32_t)i;
    return true;
}

IOB__HOT struct iob_s *iob__ptr(const struct iob_pool_s *h, uint32_t i)
{
    return (struct iob_s *)(void *)&h->desc[i];
}

/* The handle's last error (iob_pool_error).  Threads that share a handle
 * may fail at the same time, and each then sees one of their errors: on
 * the host the accesses are atomic. */
IOB__HOT void iob__set_error(struct iob_pool_s *h, int err)
{
#if MM_CONFIG_MULTIPROCESS
    __atomic_store_n(&h->error, err, __ATOMIC_RELAXED);
#else
    h->error = err;
#endif
}

IOB__HOT int iob__error(const struct iob_pool_s *h)
{
#if MM_CONFIG_MULTIPROCESS
    return __atomic_load_n(&h->error, __ATOMIC_RELAXED);
#else
    return h->error;
#endif
}

IOB__HOT int iob__fail(struct iob_pool_s *h, int err)
{
    iob__set_error(h, err);
    return err;
}

/* Offset and length of a buffer, checked against the buffer size. */
IOB__CHECK bool iob__extent(const struct iob_pool_s *h, const struct iob__desc *d, uint32_t *off,
                            uint32_t *len)
{
    uint32_t o = d->offset, l = d->len;
    if (IOB__VALIDATE && MM_UNLIKELY(o > h->bufsize || l > h->bufsize - o))
        return false;
    *off = o;
    *len = l;
    return true;
}

/* Count a buffer freed: the host in the buffer (a shared counter would be
 * one more contended line), a microcontroller in its list's push. */
IOB__HOT void iob__count_free(struct iob__desc *d)
{
#if MM_CONFIG_MULTIPROCESS
    d->nfreed++;
#else
    (void)d;
#endif
}

/* ---- Deadlines ------------------------------------------------------------ */

/* Deadline from a timeout: 0 (no wait), IOB__FOREVER, or when to give up.
 * The host's is a time on mm_port_now_ms.  The app and none ports have no
 * clock (their mm_port_now_ms answers 0, and each sleep waits the whole
 * timeout), so a microcontroller's deadline is that wait itself, in
 * milliseconds: the same waits, without 64-bit arithmetic. */
#define IOB__CLOCK (MM_CONFIG_PORT == MM_PORT_HOST)
#if IOB__CLOCK
typedef uint64_t iob__dl_t;
#define IOB__FOREVER UINT64_MAX
uint64_t iob__deadline(int64_t timeout_ms);
#else
typedef int32_t iob__dl_t;
#define IOB__FOREVER (-1)
/* As the clock's deadline (now 0, plus the timeout, plus one) would wait. */
static inline iob__dl_t iob__deadline(int64_t timeout_ms)
{
    if (timeout_ms == 0)
        return 0;
    if (timeout_ms < 0)
        return IOB__FOREVER;
    return timeout_ms >= 0x7fffffff ? 0x7fffffff : (int32_t)timeout_ms + 1;
}
#endif

/* ---- Free lists (iob_freelist.c) ---------------------------------------- */

/* A free list and the descriptors it links. */
#if MM_CONFIG_MULTIPROCESS
struct iob__list {
    struct iob__stack *st;
    struct iob__sleepers *sleepers;
    uint32_t *lowest; /* the buffer list's lowest-free statistic */
    uint8_t *slots;
    uint32_t stride;
    uint32_t count;
    bool buffers; /* the buffer list: keeps lowest_free */
};

static inline struct iob__list iob__bufs(const struct iob_pool_s *h)
{
    struct iob__list l = {&h->hdr->bufs,
                          &h->hdr->bufs_sleepers,
                          &h->hdr->stats.lowest_free,
                          (uint8_t *)h->desc,
                          (uint32_t)sizeof(struct iob__desc),
                          h->count,
                          true};
    return l;
}

static inline struct iob__list iob__qents(const struct iob_pool_s *h)
{
    struct iob__list l = {&h->hdr->qents,
                          &h->hdr->qents_sleepers,
                          &h->hdr->stats.lowest_free,
                          (uint8_t *)h->qent,
                          (uint32_t)sizeof(struct iob__qent),
                          h->count,
                          false};
    return l;
}

IOB__HOT struct iob__slot *iob__slot(const struct iob__list *l, uint32_t i)
{
    return (struct iob__slot *)(void *)(l->slots + (size_t)i * l->stride);
}

#define iob__list_sleepers(l) ((l)->sleepers)
#else
/* A microcontroller's: what its stack under a lock needs (no sleeper
 * slots: nobody dies asleep; the stride follows from the kind). */
struct iob__list {
    struct iob__stack *st;
    uint8_t *slots;
    uint32_t count;
    bool buffers; /* the buffer list: keeps lowest_free */
};

static inline struct iob__list iob__bufs(const struct iob_pool_s *h)
{
    struct iob__list l = {&h->hdr->bufs, (uint8_t *)h->desc, h->count, true};
    return l;
}

static inline struct iob__list iob__qents(const struct iob_pool_s *h)
{
    struct iob__list l = {&h->hdr->qents, (uint8_t *)h->qent, h->count, false};
    return l;
}

_Static_assert(sizeof(struct iob__desc) == 64u && sizeof(struct iob__qent) == 32u, "slot strides");
IOB__HOT struct iob__slot *iob__slot(const struct iob__list *l, uint32_t i)
{
    return (struct iob__slot *)(void *)(l->slots + ((size_t)i << (l->buffers ? 6 : 5)));
}

#define iob__list_sleepers(l) ((struct iob__sleepers *)NULL)
#endif

/* Take a free slot for owner me, leaving `reserve` on the list; waits for
 * the deadline (0: none; IOB__FOREVER) when none is free.  0 and the
 * index, or -MM_EAGAIN, -MM_ETIMEDOUT, -MM_EUCLEAN. */
int iob__take(struct iob_pool_s *h, const struct iob__list *l, uint32_t me, uint32_t reserve,
              iob__dl_t deadline, uint32_t *out);

/* Push slots first..last (linked through free_next, k of them; their states
 * already FREE) onto the list, and wake waiters.  0 or -MM_EUCLEAN. */
int iob__give(struct iob_pool_s *h, const struct iob__list *l, uint32_t first, uint32_t last,
              uint32_t k);

#if MM_CONFIG_MULTIPROCESS
/* Admin lock held: freeze the list (recording the last pop first; a list
 * left frozen by a dead reclaimer stays frozen) and report its top and
 * count. */
int iob__freeze(struct iob_pool_s *h, const struct iob__list *l, uint32_t *top, uint32_t *nfree);

/* Admin lock held: thaw a frozen list with this top and count. */
void iob__thaw(struct iob_pool_s *h, const struct iob__list *l, uint32_t top, uint32_t nfree);
#else
/* Wake whoever sleeps on a list (after a push or a thaw). */
static inline void iob__wake_list(struct iob__stack *stk)
{
    if (MM_UNLIKELY(mm_port_load32_sc(&stk->sleepmask) != 0)) {
        (void)mm_port_fetch_add32(&stk->seq, 1u);
        mm_port_wake(&stk->seq, UINT32_MAX);
    }
}

/* One program: the list's lock is held from freeze to thaw (pops and
 * pushes wait), and a freeze cannot fail. */
static inline int iob__freeze(struct iob_pool_s *h, const struct iob__list *l, uint32_t *top,
                              uint32_t *nfree)
{
    (void)h;
    struct iob__stack *stk = l->st;
    mm_port_lock(&stk->lock);
    *top = stk->top;
    *nfree = stk->nfree;
    return 0;
}

static inline void iob__thaw(struct iob_pool_s *h, const struct iob__list *l, uint32_t top,
                             uint32_t nfree)
{
    (void)h;
    struct iob__stack *stk = l->st;
    stk->top = top;
    stk->nfree = nfree;
    mm_port_unlock(&stk->lock);
    iob__wake_list(stk);
}
#endif

/* Allocate a buffer for owner me (reset: no data, no next); counts and
 * records failures.  0 and the index, or a negative code. */
int iob__alloc_idx(struct iob_pool_s *h, uint32_t me, bool throttled, iob__dl_t deadline,
                   uint32_t *out);

/* Free the single buffer b (state st, the caller's; its chain link is
 * dropped). */
void iob__free_one(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me);

/* Free the chain headed by b (the caller's: state st), with one push.
 * Promotes each next buffer before freeing the one before it. */
void iob__free_chain_at(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me);

/* Free the head b of a chain (state st) and return the next buffer, now a
 * head with the remaining packet length, or IOB__NIL. */
uint32_t iob__free_head(struct iob_pool_s *h, uint32_t b, iob__st_t st, uint32_t me);

/* Sleep while *word == expected, registered as owner me in mask/sl, until
 * the deadline.  0 (woken, or the word moved: check again), -MM_ETIMEDOUT,
 * -MM_EAGAIN (the port cannot sleep). */
int iob__sleep(uint32_t *word, uint32_t expected, uint32_t *mask, struct iob__sleepers *sl,
               uint32_t me, iob__dl_t deadline);

/* Wake everyone asleep on word if the mask says anyone is (call after the
 * store that they wait for). */
static inline void iob__wake(uint32_t *word, const uint32_t *mask)
{
    if (MM_UNLIKELY(mm_port_load32_sc(mask) != 0))
        mm_port_wake(word, UINT32_MAX);
}

/* Reclaim: clear the sleeper slots a dead owner left. */
#if MM_CONFIG_MULTIPROCESS
void iob__sleepers_reclaim(uint32_t *mask, struct iob__sleepers *sl, uint32_t owner);
#endif

/* ---- Chains (iob_chain.c) ---------------------------------------------- */

/* The next buffer after i, validated: IOB__NIL at the end; false if the link
 * is corrupt (out of range, or not marked LINKED). */
IOB__CHECK bool iob__follow(const struct iob_pool_s *h, uint32_t i, uint32_t *next)
{
    uint32_t nx = h->desc[i].next;
    if (nx == IOB__NIL) {
        *next = IOB__NIL;
        return true;
    }
    if (IOB__VALIDATE && MM_UNLIKELY(nx >= h->count || iob__st_kind(mm_port_load64(
                                                           &h->desc[nx].s.state)) != IOB__LINKED))
        return false;
    *next = nx;
    return true;
}

/* ---- Admin lock (iob_reclaim.c) ---------------------------------------- */

/* Take the admin lock, repairing after a holder that died (finishing its
 * reclaim, thawing lists it left frozen).  0 or a negative code. */
#if MM_CONFIG_MULTIPROCESS
int iob__admin_lock(struct iob_pool_s *h);
void iob__admin_unlock(struct iob_pool_s *h);
#else
/* One program: no holder dies, and the app and none ports' locks cannot
 * fail. */
static inline int iob__admin_lock(struct iob_pool_s *h)
{
    (void)mm_port_lock(&h->hdr->admin.lock);
    return 0;
}
static inline void iob__admin_unlock(struct iob_pool_s *h)
{
    mm_port_unlock(&h->hdr->admin.lock);
}
#endif

#if MM_CONFIG_MULTIPROCESS
/* A pop or push met a frozen list: wait for the reclaim to end. */
int iob__wait_thaw(struct iob_pool_s *h);
#endif

/* ---- Channels (iob_channel.c) ------------------------------------------ */

/* Complete a send or a receive that a dead process left half done. */
#if MM_CONFIG_MULTIPROCESS
void iob__chan_repair_send(struct iob_pool_s *h, uint32_t id);
void iob__chan_repair_recv(struct iob_pool_s *h, uint32_t id);
#endif

/* ---- Statistics ---------------------------------------------------------- */

/* Count an event in a shared counter (slow paths only). */
static inline void iob__count(uint32_t *counter)
{
    (void)mm_port_fetch_add32(counter, 1u);
}

/* ---- Crash points (tests) --------------------------------------------- */

#if MM_CONFIG_CRASH_HOOKS
void iob__crash_point(int point);
#define IOB__CRASH(p) iob__crash_point(p)
#else
#define IOB__CRASH(p) ((void)0)
#endif

#endif /* MM_IOB_INTERNAL_H */
