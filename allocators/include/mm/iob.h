/*
 * iob.h - I/O buffers: NuttX's IOB interface over a pool that lives in
 * shared memory, plus channels that hand buffer chains from one process to
 * another without copying them.
 *
 * A pool is made inside caller-supplied memory (a shared-memory region)
 * with a buffer size, a buffer count and a throttle reserve chosen at run
 * time.  Its memory holds a header, one 64-byte descriptor per buffer, as
 * many queue entries as buffers, a table of IOB_CONFIG_CHANNELS channels,
 * and the data of every buffer.  Every link in it is an index, so a pool
 * works through any mapping of its memory, at any address, in any process.
 *
 * Buffers and chains.  A buffer (struct iob_s *) is a process-local pointer
 * to its descriptor in this process's mapping; its data, length, offset,
 * packet length and next buffer are read with the accessors below, never by
 * hand.  As in NuttX a chain is a buffer and the buffers linked after it;
 * the head buffer's packet length is the chain's length.
 *
 * Ownership.  Every chain has an owner: the id of the process that holds
 * it (iob_pool_set_owner; by default the pid, which the daemon will replace
 * by an id it assigns per client).  The head buffer records the owner, and
 * the buffers linked after it belong to the same chain, so that passing a
 * chain of any length to another owner is one store.  iob_pool_reclaim
 * returns everything a dead owner held.  Every structural change to a chain
 * is ordered so that a process killed at any instruction leaves each of its
 * buffers either free, or reachable from a head it owns: after reclaim,
 * free + owned by the living + queued in channels = count.
 *
 * Handles.  A struct iob_pool_s * is a process-local handle: this process's
 * base address and the size of its mapping.  Shared memory is untrusted:
 * every index read from the pool is checked against the counts the handle
 * copied (and validated against the mapping size) at attach time.  A pool
 * whose memory was scribbled over fails its own calls with -MM_EUCLEAN (or
 * NULL, with iob_pool_error() telling why); it never makes a call read or
 * write outside the mapping.  Handles come from a small process-wide table
 * (IOB_CONFIG_MAX_POOLS).
 *
 * Thread and process safety.  Allocation, freeing, the free list, channels
 * and reclaim may run concurrently from any thread of any process that
 * maps the pool.  A chain is used by one thread at a time: the chain
 * functions (copyin, trim, pack, ...) and a queue (struct iob_queue_s) need
 * no lock because their owner is the only one who touches them.
 *
 * Errors.  Calls that can fail return int: 0 or more on success, a
 * negative MM_E* code (mm/mm_errno.h; Linux's errno values) on failure.
 * Calls that return a buffer return NULL on failure and record the code in
 * the handle (iob_pool_error).
 */
#ifndef MM_IOB_H
#define MM_IOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm_config.h"
#include "mm/mm_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Configuration (build time; the channel knobs change the layout) ----- */

/* Handles one process may hold at once. */
#ifndef IOB_CONFIG_MAX_POOLS
#if !defined(__linux__) /* microcontrollers, 64-bit ones too; not 32-bit Linux hosts */
#define IOB_CONFIG_MAX_POOLS 2
#else
/* as many as heaps: mmsrvd holds one per IOB region it serves */
#define IOB_CONFIG_MAX_POOLS 1024
#endif
#endif

/* Channel slots in every pool (at most 256) and the largest depth of one. */
#ifndef IOB_CONFIG_CHANNELS
#define IOB_CONFIG_CHANNELS 8
#endif
#ifndef IOB_CONFIG_CHANNEL_DEPTH
#define IOB_CONFIG_CHANNEL_DEPTH 256
#endif

/* Spin iterations (a pause instruction each) a waiting receiver or
 * allocator makes before it sleeps on the futex, unless iob_pool_set_spin
 * says otherwise: tens of microseconds on the host. */
#ifndef IOB_CONFIG_SPIN
#define IOB_CONFIG_SPIN 2000
#endif

/* ---- Limits ------------------------------------------------------------- */

#define IOB_POOL_ALIGN       64u         /* alignment of the pool's memory */
#define IOB_MAX_BUFFERS      0xffffdu    /* buffers per pool (20-bit indices) */
#define IOB_MAX_BUFSIZE      0x40000000u /* bytes per buffer */
#define IOB_CHANNEL_NAME_MAX 32u         /* bytes of a channel name, NUL included */

/* Buffers are 64-byte aligned and their data start at a multiple of 64. */
#define IOB_DATA_ALIGN 64u

/* ---- Types -------------------------------------------------------------- */

struct iob_pool_s; /* process-local handle, opaque */
struct iob_s;      /* a buffer: its descriptor in this process's mapping, opaque */

/* NuttX's queue of chains.  Process-local: it lives in the owner's memory
 * (its entries and chains live in the pool), and belongs to the process
 * that adds to it.  Zero-initialized (IOB_QUEUE_INIT) is empty. */
struct iob_queue_s {
    uint32_t qh_head; /* first entry's index + 1; 0 when empty */
    uint32_t qh_tail; /* last entry's index + 1 */
};
#define IOB_QUEUE_INIT                                                                             \
    {                                                                                              \
        0, 0                                                                                       \
    }

/* Counters of a pool, shared by every process using it. */
struct iob_stats_s {
    uint32_t count;       /* buffers in the pool */
    uint32_t bufsize;     /* bytes of data per buffer */
    uint32_t throttle;    /* buffers kept back from throttled allocations */
    uint32_t nfree;       /* buffers on the free list now */
    uint32_t lowest_free; /* the lowest nfree ever seen */
    uint32_t waits;       /* allocations that had to wait */
    uint32_t failures;    /* allocations that returned NULL */
    uint32_t misuse;      /* frees and sends refused: not a head the caller owns */
    uint64_t allocs;      /* successful allocations (frees + buffers allocated now) */
    uint64_t frees;       /* buffers returned, by their owners or by reclaim */
    uint32_t reclaims;    /* iob_pool_reclaim calls that ran */
    uint32_t reclaimed;   /* buffers they returned */
};

/* What iob_pool_check found.  Exact while no other call runs on the pool. */
struct iob_census_s {
    uint32_t count;          /* buffers in the pool */
    uint32_t free;           /* on the free list */
    uint32_t freeing;        /* freed but not on the list (a free in flight, or a dead freer) */
    uint32_t owned;          /* in chains that an owner holds */
    uint32_t queued;         /* in chains waiting in channels */
    uint32_t orphans;        /* allocated, yet in no chain */
    uint32_t duplicates;     /* reached twice: chains that share a buffer */
    uint32_t qentries_free;  /* queue entries free */
    uint32_t qentries_owned; /* queue entries held */
    uint32_t problems;       /* inconsistencies: 0 for a sound pool */
};

/* ---- Pools ------------------------------------------------------------ */

/*
 * Bytes of memory a pool of count buffers of bufsize bytes needs, header,
 * descriptors, queue entries and channels included.  0 if bufsize or count
 * is 0 or beyond IOB_MAX_BUFSIZE / IOB_MAX_BUFFERS, or the size overflows.
 */
size_t iob_pool_size(size_t bufsize, uint32_t count);

/*
 * Make a pool of count buffers of bufsize bytes in [start, start + size).
 * start must be aligned to IOB_POOL_ALIGN and size at least
 * iob_pool_size(bufsize, count).  Throttled allocations leave the last
 * `throttle` free buffers to unthrottled ones; throttle < count.  Every
 * buffer starts free, every channel slot unused.
 * Returns a handle, or NULL: bad arguments, memory too small, no handle left
 * in this process (iob_pool_error(NULL) says which).  O(count).  Not safe
 * against other calls on the same memory; other processes attach after it
 * returns.
 */
struct iob_pool_s *iob_pool_initialize(void *start, size_t size, size_t bufsize, uint32_t count,
                                       uint32_t throttle);

/*
 * Open a pool that iob_pool_initialize made, through this mapping of its
 * memory (maybe in another process, at another address); size is the size
 * of this mapping.  The header is validated: magic, layout version, this
 * build's port and channel layout, and a layout that, recomputed from the
 * recorded buffer size and count, fits in size.
 * Returns a handle, or NULL if the memory holds no such pool or no handle is
 * left (iob_pool_error(NULL) says which).  O(1), no lock.
 */
#if MM_CONFIG_MULTIPROCESS /* microcontrollers: one program, nobody to attach or reclaim */
struct iob_pool_s *iob_pool_attach(void *start, size_t size);
#endif

/* Release a handle; the pool lives on.  No call may be running on it. */
void iob_pool_detach(struct iob_pool_s *pool);

/*
 * The owner id that allocations and receptions through this handle record
 * (not 0).  By default the calling process's pid (refreshed after fork);
 * the daemon assigns ids per client.  0 restores the default.  Not
 * thread-safe against calls running on the handle.
 */
void iob_pool_set_owner(struct iob_pool_s *pool, uint32_t owner);
uint32_t iob_pool_owner(struct iob_pool_s *pool);

/* Spin iterations before a wait sleeps on the futex (receivers, blocking
 * allocations); 0 sleeps at once.  Process-local, per handle. */
void iob_pool_set_spin(struct iob_pool_s *pool, uint32_t spins);

/* The code of the last failure of a call through this handle that returns
 * a buffer (0 if none); threads sharing the handle share it.  With NULL:
 * why the calling thread's last iob_pool_initialize or iob_pool_attach
 * returned NULL (0 after one that succeeded): -MM_EINVAL (arguments),
 * -MM_EBADMSG (the memory holds no pool of this build's layout and size),
 * -MM_ENOSPC (no free handle, IOB_CONFIG_MAX_POOLS). */
int iob_pool_error(const struct iob_pool_s *pool);

/* Bytes of data per buffer, and the number of buffers. */
uint32_t iob_pool_bufsize(const struct iob_pool_s *pool);
uint32_t iob_pool_count(const struct iob_pool_s *pool);

/*
 * The pool's counters.  allocs and frees are summed over the descriptors:
 * O(count); the rest are read without a lock.
 */
struct iob_stats_s iob_pool_stats(struct iob_pool_s *pool);

/*
 * Return to the free lists every buffer and queue entry that owner held:
 * its chains (whatever they were doing: half built, half freed, half sent),
 * buffers it was freeing, buffers a pop of its was handing it, its queue
 * entries; complete a send or receive it was in the middle of, and end its
 * registration as a channel's sender or receiver.  Chains it had sent that
 * wait in channels stay there for their receivers.  owner must be dead (or
 * at least make no call on the pool during or after reclaim): the daemon
 * calls it when a client's socket closes.
 * Other processes keep working meanwhile; their allocations and frees wait
 * while the free list is frozen (O(count)).  Takes the pool's admin lock.
 * Returns the number of buffers returned, or -MM_EINVAL (owner 0),
 * -MM_EUCLEAN (the free list is corrupted: nothing changed) or a lock error.
 */
#if MM_CONFIG_MULTIPROCESS /* microcontrollers: one program, nobody to attach or reclaim */
int iob_pool_reclaim(struct iob_pool_s *pool, uint32_t owner);
#endif

/*
 * Walk everything: the free lists (frozen meanwhile, as reclaim does),
 * every chain from its head, every channel; fill census (may be NULL).
 * Returns the number of problems (0: consistent): a free list that does not
 * match its count, buffers in two chains, buffers allocated but in no
 * chain, a queued chain missing from its channel, free buffers waiting to be
 * pushed (a dead freer: reclaim fixes it).  Exact only while no other call
 * runs.  O(count).  Takes the admin lock.
 */
int iob_pool_check(struct iob_pool_s *pool, struct iob_census_s *census);

/* Buffers in chains whose head owner holds, and (if nqentries is not NULL)
 * its queue entries.  Reads without a lock; exact while owner is idle.
 * O(count). */
#if MM_CONFIG_MULTIPROCESS /* microcontrollers: one program, nobody to attach or reclaim */
uint32_t iob_pool_owned(struct iob_pool_s *pool, uint32_t owner, uint32_t *nqentries);
#endif

/* One chain, as iob_pool_walk reports it. */
struct iob_chain_info {
    const struct iob_s *head;
    uint32_t owner;   /* the holder; for a queued chain, 0 */
    int channel;      /* the channel it waits in, or -1 (also if its state names none) */
    uint32_t buffers; /* buffers in the chain */
    uint32_t pktlen;  /* the head's packet length */
    uint32_t bytes;   /* the sum of the buffers' lengths */
};

/* Called once per chain; return false to stop the walk. */
typedef bool (*iob_walk_fn)(void *arg, const struct iob_chain_info *chain);

/*
 * Report every chain of the pool, held or queued, to fn.  Reads without a
 * lock: exact while nobody changes the chains.  Returns the number of
 * chains reported.  O(count).
 */
uint32_t iob_pool_walk(struct iob_pool_s *pool, iob_walk_fn fn, void *arg);

/* ---- Allocation ------------------------------------------------------- */

/*
 * Take a free buffer: empty (length, offset and packet length 0), no next,
 * owned by the handle's owner.  A throttled allocation fails (or waits)
 * while throttle buffers or fewer are free.
 *
 * iob_tryalloc never waits.  iob_alloc waits until a buffer is freed by any
 * process (it spins briefly, then sleeps on a futex in the pool; no
 * polling).  iob_timedalloc waits at most timeout_ms.
 * NULL on failure, iob_pool_error() telling: -MM_EAGAIN (none free, or only
 * the throttle reserve), -MM_ETIMEDOUT, -MM_EUCLEAN (pool corrupted).
 *
 * Lock-free: one 16-byte compare-and-swap on the free-list head (retried
 * under contention) and a store, whatever the number of processes; a
 * process killed anywhere in it loses no buffer.  It may wait while a
 * reclaim freezes the list (O(count)).  About 20 ns for an alloc + free
 * pair on the 2-core host of the benchmark.
 */
struct iob_s *iob_alloc(struct iob_pool_s *pool, bool throttled);
struct iob_s *iob_tryalloc(struct iob_pool_s *pool, bool throttled);
struct iob_s *iob_timedalloc(struct iob_pool_s *pool, bool throttled, uint32_t timeout_ms);

/*
 * Free the head buffer of a chain the caller owns and return the next one,
 * now the head of the rest (with the packet length less this buffer's
 * length), or NULL at the end of the chain.  Wakes waiting allocators.
 * A buffer that is not a head the caller owns (another owner's, a free
 * one, one in the middle of a chain, a pointer outside the pool) is not
 * freed: NULL, iob_pool_error() -MM_EPERM or -MM_EINVAL, counted as misuse.
 * Lock-free: one compare-and-swap.
 */
struct iob_s *iob_free(struct iob_pool_s *pool, struct iob_s *iob);

/* Free a whole chain whose head the caller owns (NULL does nothing).  One
 * compare-and-swap for the whole chain.  O(chain length). */
void iob_free_chain(struct iob_pool_s *pool, struct iob_s *iob);

/* Free buffers, less the throttle reserve for a throttled caller (never
 * negative); iob_qentry_navail: free queue entries.  Lock-free snapshot. */
int iob_navail(struct iob_pool_s *pool, bool throttled);
int iob_qentry_navail(struct iob_pool_s *pool);

/* ---- Accessors ---------------------------------------------------------- */

/* Where the buffer's data start (its storage + offset), and its storage;
 * NULL for a pointer that is not a buffer of the pool. */
uint8_t *iob_data(struct iob_pool_s *pool, const struct iob_s *iob);
uint8_t *iob_buffer(struct iob_pool_s *pool, const struct iob_s *iob);

/* This buffer's data length and offset, and (for a head) the chain's packet
 * length; 0 for a pointer that is not a buffer of the pool. */
uint32_t iob_len(struct iob_pool_s *pool, const struct iob_s *iob);
uint32_t iob_offset(struct iob_pool_s *pool, const struct iob_s *iob);
uint32_t iob_pktlen(struct iob_pool_s *pool, const struct iob_s *iob);

/* The next buffer of the chain, or NULL (also for a link that is corrupt). */
struct iob_s *iob_next(struct iob_pool_s *pool, const struct iob_s *iob);

/* The owner of the chain this buffer heads; 0 if it is free, queued in a
 * channel, or not a head. */
uint32_t iob_owner(struct iob_pool_s *pool, const struct iob_s *iob);

/* ---- Chains (NuttX semantics; the caller owns the chain) -------------- */

/*
 * Copy len bytes from src into the chain at offset (0 .. packet length),
 * overwriting what is there and extending the chain (the last buffer to its
 * end, then new buffers) as needed; the packet length grows accordingly.
 * iob_copyin waits for buffers (iob_alloc), iob_trycopyin does not.
 * Returns len, or -MM_ESPIPE (offset past the data), -MM_ENOMEM (no buffer:
 * what fitted was copied and counted in the packet length), -MM_EINVAL,
 * -MM_EPERM, -MM_EUCLEAN.  O(chain length + len).
 */
int iob_copyin(struct iob_pool_s *pool, struct iob_s *iob, const uint8_t *src, uint32_t len,
               uint32_t offset, bool throttled);
int iob_trycopyin(struct iob_pool_s *pool, struct iob_s *iob, const uint8_t *src, uint32_t len,
                  uint32_t offset, bool throttled);

/* Copy up to len bytes of the chain from offset into dest.  Returns the
 * bytes copied (0 if offset is past the data), or -MM_EINVAL, -MM_EUCLEAN. */
int iob_copyout(struct iob_pool_s *pool, uint8_t *dest, const struct iob_s *iob, uint32_t len,
                uint32_t offset);

/*
 * Copy the data of chain iob1, packed, into iob2, an empty head the caller
 * owns (length and packet length 0, no next), allocating buffers for iob2 as
 * needed (waiting if can_block).  Returns 0, -MM_ENOMEM (iob2 holds a
 * prefix), -MM_EINVAL, -MM_EPERM, -MM_EUCLEAN.
 */
int iob_clone(struct iob_pool_s *pool, struct iob_s *iob1, struct iob_s *iob2, bool throttled,
              bool can_block);

/* Append chain iob2 to chain iob1 (both the caller's, distinct): iob2's
 * buffers join iob1's chain and iob2 is no longer a head.  Either may be
 * empty.  Returns 0 or -MM_EINVAL / -MM_EPERM / -MM_EUCLEAN. */
int iob_concat(struct iob_pool_s *pool, struct iob_s *iob1, struct iob_s *iob2);

/*
 * Remove trimlen bytes from the start of the chain, freeing buffers that
 * empty; returns the new head.  Trimming everything leaves (and returns) the
 * last buffer, empty, as NuttX does.  NULL only for a bad argument.
 */
struct iob_s *iob_trimhead(struct iob_pool_s *pool, struct iob_s *iob, uint32_t trimlen);

/* Remove trimlen bytes from the end of the chain, freeing buffers that
 * empty; returns the head, or NULL if the whole chain was freed. */
struct iob_s *iob_trimtail(struct iob_pool_s *pool, struct iob_s *iob, uint32_t trimlen);

/* Move the data so that every buffer starts at offset 0 and all but the
 * last are full; free the buffers that empty (leading empty buffers too).
 * Returns the head, NULL if the chain held no data (then it was freed). */
struct iob_s *iob_pack(struct iob_pool_s *pool, struct iob_s *iob);

/* Make the first len bytes of the chain contiguous in its head buffer.
 * Returns 0, or -MM_ENOSPC (the chain holds fewer bytes), -MM_EINVAL (len
 * beyond the buffer size), -MM_EPERM, -MM_EUCLEAN. */
int iob_contig(struct iob_pool_s *pool, struct iob_s *iob, uint32_t len);

/*
 * Set the chain's packet length: trim buffers off the end, or append
 * buffers (iob_tryalloc) and extend the lengths, so that buffers from the
 * head are filled to their end.  Returns the new packet length (smaller than
 * asked if buffers ran out) or a negative code.  For zero-copy filling:
 * allocate, set the length, write through iob_data of each buffer.
 */
int iob_update_pktlen(struct iob_pool_s *pool, struct iob_s *iob, uint32_t pktlen, bool throttled);

/* Reserve headroom in an empty head: its offset becomes reserved.  Returns 0
 * or -MM_EINVAL (not empty, or reserved beyond the buffer). */
int iob_reserve(struct iob_pool_s *pool, struct iob_s *iob, uint32_t reserved);

/* ---- Queues (NuttX's iob_queue_s; entries in the pool) ----------------- */

/*
 * Append chain iob (a head the caller owns) to queue q.  The chain stays
 * the caller's.  iob_add_queue waits for a free queue entry; there are as
 * many as buffers, so it waits only when chains are queued more than once.
 * Returns 0, -MM_ENOMEM (tryadd: none free), -MM_EPERM, -MM_EINVAL.
 */
int iob_add_queue(struct iob_pool_s *pool, struct iob_s *iob, struct iob_queue_s *q);
int iob_tryadd_queue(struct iob_pool_s *pool, struct iob_s *iob, struct iob_queue_s *q);

/* Remove the first chain of q and return it; NULL if q is empty (or
 * corrupt: iob_pool_error -MM_EUCLEAN). */
struct iob_s *iob_remove_queue(struct iob_pool_s *pool, struct iob_queue_s *q);

/* The first chain of q, left in place; NULL if empty. */
struct iob_s *iob_peek_queue(struct iob_pool_s *pool, const struct iob_queue_s *q);

/* Free every entry of q and every chain in it; q is empty after. */
void iob_free_queue(struct iob_pool_s *pool, struct iob_queue_s *q);

/* ---- Channels ----------------------------------------------------------- */

/* Flags of iob_channel_create.  Without them a channel has one sender and
 * one receiver (registered by iob_channel_connect) and neither takes a
 * lock; with them that side takes a robust process-shared lock. */
#define IOB_CHANNEL_MULTI_SENDER   0x1u
#define IOB_CHANNEL_MULTI_RECEIVER 0x2u

/* Roles of iob_channel_connect. */
#define IOB_CHANNEL_SEND 0x1u
#define IOB_CHANNEL_RECV 0x2u

/*
 * Make a channel named name (1..IOB_CHANNEL_NAME_MAX-1 bytes) that holds up
 * to depth chains (a power of two, 1..IOB_CONFIG_CHANNEL_DEPTH).  Returns
 * its id (0..IOB_CONFIG_CHANNELS-1), -MM_EEXIST, -MM_ENOSPC (no free slot),
 * -MM_EINVAL.  Takes the admin lock.
 */
int iob_channel_create(struct iob_pool_s *pool, const char *name, uint32_t depth, uint32_t flags);

/* The id of the channel named name, or -MM_ENOENT. */
int iob_channel_lookup(struct iob_pool_s *pool, const char *name);

/*
 * Use channel id through this handle in roles (IOB_CHANNEL_SEND and/or
 * IOB_CHANNEL_RECV).  On a single-sender (single-receiver) channel this
 * registers the handle's owner as the sender (receiver): -MM_EBUSY if
 * another owner is registered (until it disconnects or is reclaimed).
 * Returns 0, -MM_ENOENT, -MM_EBUSY, -MM_EINVAL.  Takes the admin lock.
 */
int iob_channel_connect(struct iob_pool_s *pool, int id, uint32_t roles);
int iob_channel_disconnect(struct iob_pool_s *pool, int id, uint32_t roles);

/* Free every chain waiting in channel id and release its slot.  Returns the
 * number of chains freed, or -MM_EBUSY while an end is registered. */
int iob_channel_destroy(struct iob_pool_s *pool, int id);

/* Chains waiting in channel id now (or a negative code). */
int iob_channel_count(struct iob_pool_s *pool, int id);

#if MM_CONFIG_MULTIPROCESS
/* The owner ids registered as channel id's single sender and single
 * receiver (0: none, or a multi side, which registers nobody): whom
 * iob_pool_reclaim must see for the ends to be free again.  0 or a
 * negative code. */
int iob_channel_ends(struct iob_pool_s *pool, int id, uint32_t *sender, uint32_t *receiver);
#endif

/*
 * Hand chain iob (a head the caller owns) to channel id without copying:
 * O(1) whatever its length.  From then on the chain belongs to the channel,
 * and to the receiver once received.  When the channel is full: timeout_ms
 * 0 returns -MM_EAGAIN at once, > 0 waits at most that long
 * (-MM_ETIMEDOUT), < 0 waits as long as it takes.  A sleeping receiver is
 * woken.  -MM_EPERM: not connected as sender here, or not the caller's
 * chain.  Lock-free for a single sender.
 */
int iob_send(struct iob_pool_s *pool, int id, struct iob_s *iob, int32_t timeout_ms);

/*
 * Take the oldest chain from channel id; the caller owns it from then on.
 * When the channel is empty: timeout_ms 0 returns -MM_EAGAIN at once; else
 * the caller spins briefly (iob_pool_set_spin) and then sleeps on a futex
 * until a sender wakes it or timeout_ms (> 0) passes (-MM_ETIMEDOUT);
 * < 0 waits as long as it takes.  -MM_EPERM: not connected as receiver.
 * -MM_EUCLEAN: the channel's memory is corrupted.  Lock-free for a single
 * receiver.
 */
int iob_receive(struct iob_pool_s *pool, int id, struct iob_s **iob, int32_t timeout_ms);

/* ---- Test hooks --------------------------------------------------------- */

#if MM_CONFIG_CRASH_HOOKS
/* Test builds only: fn is called at numbered points where a structure is
 * mid-change, so that a test can kill the process exactly there. */
enum iob_crash_point {
    IOB_CRASH_POP = 1,    /* popped off the free list, owner not yet in its state */
    IOB_CRASH_FREE_STATE, /* buffer marked free, not on the list */
    IOB_CRASH_FREE_CHAIN, /* part of a chain freed, the rest promoted */
    IOB_CRASH_LINK,       /* new buffer linked into a chain, not marked linked */
    IOB_CRASH_UNLINK,     /* buffer promoted to head, not yet unlinked */
    IOB_CRASH_SEND_CELL,  /* chain written into a channel cell, not queued */
    IOB_CRASH_SEND_STATE, /* chain marked queued, not published */
    IOB_CRASH_RECV_STATE, /* chain marked received, head index not advanced */
    IOB_CRASH_QUEUE_ADD,  /* queue entry allocated, not linked */
    IOB_CRASH_RECLAIM,    /* reclaim mid-way: list frozen, states changing */
    IOB_CRASH_POINTS = IOB_CRASH_RECLAIM
};
typedef void (*iob_crash_fn)(int point);
void iob_set_crash_hook(iob_crash_fn fn);
#endif

#ifdef __cplusplus
}
#endif

#endif /* MM_IOB_H */
