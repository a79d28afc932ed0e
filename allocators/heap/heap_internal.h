/*
 * heap_internal.h - the mm heap's shared-memory layout and the helpers that
 * every heap file uses: chunk access, size classes, free lists, locking.
 *
 * Memory of a heap:
 *
 *   base                                   regions (chunk offsets from base)
 *   | struct mm__header | chunk | chunk | ... | end sentinel | ... more regions
 *
 * A chunk is { prev_size, size } (mmsize_t each: the whole per-allocation
 * overhead) followed by its payload.  size counts the header; its low bit
 * says the chunk is allocated.  A free chunk keeps its free-list links (next,
 * prev: offsets from base, 0 = none) at the start of its payload.  Each
 * region ends with a header-only sentinel chunk marked allocated, so that no
 * chunk ever coalesces past the end; the first chunk of a region has
 * prev_size 0.
 *
 * Crash safety rests on one rule: at every instruction the chain of chunks,
 * walked forward by size from a region's start, reaches the region's
 * sentinel.  Every operation changes the chain by one store of a size field,
 * after preparing what that store makes visible.  prev_size fields and the
 * free lists may lag behind; recovery (heap_recover.c) rebuilds them from the
 * chain.
 *
 * Everything read from the heap is untrusted: offsets are checked against
 * the handle's limit (the size of this process's mapping) before use.
 */
#ifndef MM_HEAP_INTERNAL_H
#define MM_HEAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mm/mm.h"
#include "mm_port.h"

/* The few helpers on every malloc and free are forced inline: a call per
 * list operation costs more than the operation. */
#if defined(__OPTIMIZE_SIZE__)
/* -Os (microcontroller builds): one out-of-line copy of each helper, in
 * heap.c (which defines MM__DEFINE_HOT); a copy per file costs more flash
 * than the calls.  MM__HOT_DECL declares them for the other files. */
#define MM__HOT
#define MM__HOT_DECL(decl) decl;
#ifdef MM__DEFINE_HOT
#define MM__HOT_BODY 1
#else
#define MM__HOT_BODY 0
#endif
#else
#define MM__HOT static inline __attribute__((always_inline))
#define MM__HOT_DECL(decl)
#define MM__HOT_BODY 1
#endif
/* Helpers that stay inline in every build (a call would cost more). */
#if defined(__OPTIMIZE_SIZE__)
#define MM__INLINE static inline
#else
#define MM__INLINE static inline __attribute__((always_inline))
#endif

/* Whether what the heap's memory says is checked before it is used, and
 * corrupted free lists rebuilt from the chunk chain: where other processes
 * (which may die at any instruction, or scribble) share the memory.  A
 * microcontroller's heap trusts its own memory: free lists found corrupted
 * (by mm_checkcorruption) are the application's bug, not a dead peer's. */
#define MM__VALIDATE MM_CONFIG_MULTIPROCESS

/* ---- Model ----------------------------------------------------------- */

#if MM_CONFIG_SMALL
typedef uint16_t mmsize_t;
#define MM__ALIGN_LOG2 2u
#define MM__MAX_CHUNK  0xfffcu
#else
typedef uint32_t mmsize_t;
#define MM__ALIGN_LOG2 3u
#define MM__MAX_CHUNK  0xfffffff8u
#endif
#define MM__SL_LOG2 ((unsigned)MM_CONFIG_SL_LOG2)

_Static_assert(MM_CONFIG_SL_LOG2 >= 2 && MM_CONFIG_SL_LOG2 <= 5,
               "MM_CONFIG_SL_LOG2: 4 to 32 classes per power of two");

#define MM__ALIGN     (1u << MM__ALIGN_LOG2)
#define MM__HDR       ((mmsize_t)(2u * sizeof(mmsize_t)))
#define MM__MINCHUNK  ((mmsize_t)(4u * sizeof(mmsize_t)))
#define MM__ALLOC_BIT ((mmsize_t)1u)
#define MM__SIZE_MASK ((mmsize_t) ~(mmsize_t)(MM__ALIGN - 1u))

/* A chunk held in some thread's cache (heap_cache.c): allocated as far as
 * the heap is concerned, free as far as its user is.  Large model only. */
#define MM__CACHED_BIT ((mmsize_t)2u)
/* Set on a cached chunk, for a moment, by a walk that reads the owner id
 * the chunk's push wrote (mm__cached_owner); taking and caching clear it. */
#define MM__PROBE_BIT ((mmsize_t)4u)

_Static_assert(MM__ALIGN == MM_ALIGN, "mm.h and the heap must agree on alignment");
_Static_assert(MM__HDR == MM_OVERHEAD, "mm.h and the heap must agree on overhead");

/* Size classes (TLSF).  Chunks below MM__SMALL_LIMIT sit in first-level
 * list 0, one class per MM__ALIGN bytes; above, each power of two is split
 * into MM__SL_COUNT classes. */
#define MM__SL_COUNT    (1u << MM__SL_LOG2)
#define MM__FL_SHIFT    (MM__SL_LOG2 + MM__ALIGN_LOG2)
#define MM__SMALL_LIMIT (1u << MM__FL_SHIFT)
#define MM__FL_COUNT    (8u * sizeof(mmsize_t) - MM__FL_SHIFT + 1u)
#define MM__CLASSES     (MM__FL_COUNT * MM__SL_COUNT)

_Static_assert(MM__FL_COUNT <= 32, "first-level bitmap is one 32-bit word");
_Static_assert(MM__SL_COUNT <= 32, "second-level bitmaps are 32-bit words");

/* ---- Debug records --------------------------------------------------- */

#if MM_CONFIG_DEBUG
/* Sits between the chunk header and the user's bytes. */
struct mm__debug_rec {
    uint32_t owner;   /* pid of the allocating process (host) */
    uint32_t seq;     /* allocation sequence number within the heap */
    uint32_t reqsize; /* bytes asked for; the guard follows them */
    int32_t line;
    char file[16];
};
_Static_assert(sizeof(struct mm__debug_rec) == 32, "debug record layout");
#define MM__DBG_SIZE   ((mmsize_t)sizeof(struct mm__debug_rec))
#define MM__GUARD_SIZE 4u
#else
#define MM__DBG_SIZE   ((mmsize_t)0)
#define MM__GUARD_SIZE 0u
#endif

/* From a chunk's offset to its user pointer's offset, and back. */
#define MM__USER_OFFSET ((mmsize_t)(MM__HDR + MM__DBG_SIZE))

/* Largest request: the biggest chunk less header, debug record, guard. */
#define MM__MAX_REQUEST ((size_t)MM__MAX_CHUNK - MM__USER_OFFSET - MM__GUARD_SIZE)

/* ---- The header ------------------------------------------------------ */

#define MM__MAGIC   0x6d6d4850u /* "mmHP" */
#define MM__VERSION 1u

#define MM__STATE_OK     0u
#define MM__STATE_BROKEN 1u

struct mm__region {
    mmsize_t start; /* offset of the first chunk */
    mmsize_t end;   /* offset of the end sentinel */
};

/* ---- The process-local handle ---------------------------------------- */

/* Where several processes share the heap (MM_CONFIG_MULTIPROCESS), each
 * holds handles from its own table (heap_handle.c).  Elsewhere the handle
 * lives in the heap's header: the heap is its own handle. */

struct mm_heap_s {
    uint8_t *base; /* this process's address of the heap */
    size_t limit;  /* bytes mapped from base: no offset at or past it is read */
    uint32_t in_use;
    uint32_t gen;     /* changes whenever the handle is taken or released */
    size_t cache_cap; /* bytes each thread may keep cached; 0: no cache */
#if MM_CONFIG_MULTIPROCESS
    /* Region 0's bounds, validated when the handle was made, for the
     * per-thread cache (heap_cache.h). */
    size_t r0_start;
    size_t r0_end;
    size_t r0_units; /* (r0_end - r0_start) / MM__ALIGN, for mm__in_r0 */
#endif
    enum mm_error last_error;
};

/* Words that threads of the host use at once without the lock: atomic
 * loads and stores of the given order (RELAXED, ACQUIRE, RELEASE) where
 * processes share the heap, which costs a plain load or store on the
 * host's CPUs and keeps the concurrent accesses defined (and
 * ThreadSanitizer quiet).  A microcontroller's heap has one user at a time:
 * plain accesses. */
#if MM_CONFIG_MULTIPROCESS
#define MM__LOAD(p, order)     __atomic_load_n((p), __ATOMIC_##order)
#define MM__STORE(p, v, order) __atomic_store_n((p), (v), __ATOMIC_##order)
#else
#define MM__LOAD(p, order)     (*(p))
#define MM__STORE(p, v, order) ((void)(*(p) = (v)))
#endif

/* A fence of the given order (ACQUIRE, RELEASE) where processes share the
 * heap: no instruction on x86, a barrier on Arm.  ThreadSanitizer models no
 * fences (GCC refuses them under -fsanitize=thread); the words the heap's
 * fences order are all accessed atomically, so there a compiler barrier
 * keeps the code's order and TSan has nothing to miss. */
#if defined(__SANITIZE_THREAD__)
#define MM__FENCE(order) __asm__ __volatile__("" ::: "memory")
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MM__FENCE(order) __asm__ __volatile__("" ::: "memory")
#endif
#endif
#ifndef MM__FENCE
#if MM_CONFIG_MULTIPROCESS
#define MM__FENCE(order) __atomic_thread_fence(__ATOMIC_##order)
#else
#define MM__FENCE(order) ((void)0)
#endif
#endif

/* The handle's last error: threads that share a handle may fail at the
 * same time, and each then sees one of their errors. */
static inline void mm__set_error(struct mm_heap_s *h, enum mm_error err)
{
    MM__STORE(&h->last_error, err, RELAXED);
}

static inline enum mm_error mm__error(const struct mm_heap_s *h)
{
    return MM__LOAD(&h->last_error, RELAXED);
}

struct mm__header {
#if !MM_CONFIG_MULTIPROCESS
    /* first: the handle's address is the heap's (mm__base) */
    struct mm_heap_s handle;
#endif
    uint32_t magic;
    uint16_t version;
    uint8_t size_bytes; /* sizeof(mmsize_t): the model */
    uint8_t debug;      /* MM_CONFIG_DEBUG: the chunk layout */
    uint32_t header_size;
    uint32_t state; /* MM__STATE_* */
    uint32_t nregions;
    uint32_t seq;  /* allocation sequence, for debug records */
    uint64_t span; /* bytes from base to the end of the last region */
    struct mm__region region[MM_CONFIG_REGIONS];
    struct mm_heap_stats stats;
    char name[32];
    mm_port_lock_t lock;
    uint32_t fl_bitmap;
    uint32_t sl_bitmap[MM__FL_COUNT];
    mmsize_t heads[MM__CLASSES]; /* by class: first level * MM__SL_COUNT + second */
};

_Static_assert(_Alignof(struct mm__header) <= MM_START_ALIGN,
               "a heap start aligned to MM_START_ALIGN aligns the header");

/* This process's address of the heap.  A microcontroller's handle is the
 * start of the heap's header: no load from the handle. */
static inline uint8_t *mm__base(const struct mm_heap_s *h)
{
#if MM_CONFIG_MULTIPROCESS
    return h->base;
#else
    return (uint8_t *)(uintptr_t)h;
#endif
}

/* Record region 0's bounds in the handle (validated by the caller). */
static inline void mm__handle_set_r0(struct mm_heap_s *h, size_t start, size_t end)
{
#if MM_CONFIG_MULTIPROCESS
    h->r0_start = start;
    h->r0_end = end;
    h->r0_units = (end - start) >> MM__ALIGN_LOG2;
#else
    (void)h, (void)start, (void)end;
#endif
}

static inline struct mm__header *mm__hdr(const struct mm_heap_s *h)
{
    return (struct mm__header *)(void *)mm__base(h);
}

/* ---- Chunks ---------------------------------------------------------- */

struct mm__chunk {
    mmsize_t prev_size;
    mmsize_t size; /* | MM__ALLOC_BIT */
    /* free chunks only: */
    mmsize_t next;
    mmsize_t prev;
};

static inline struct mm__chunk *mm__chunk(const struct mm_heap_s *h, size_t off)
{
    return (struct mm__chunk *)(void *)(mm__base(h) + off);
}

/* A chunk's size words, and a cached block's owner word, are read and
 * written by threads that do not hold the lock (the thread cache,
 * heap_cache.h) while lock holders read and write the same words of the
 * chunks next to theirs: every access goes through these (MM__LOAD).
 * Relaxed, but release and acquire where a cached block's owner word must
 * be seen with its cached bit. */
static inline mmsize_t mm__word(const mmsize_t *w)
{
    return MM__LOAD(w, RELAXED);
}

static inline void mm__set_word(mmsize_t *w, mmsize_t v)
{
    MM__STORE(w, v, RELAXED);
}

static inline mmsize_t mm__word_acquire(const mmsize_t *w)
{
    return MM__LOAD(w, ACQUIRE);
}

static inline void mm__set_word_release(mmsize_t *w, mmsize_t v)
{
    MM__STORE(w, v, RELEASE);
}

static inline mmsize_t mm__size_of(const struct mm__chunk *c)
{
    return (mmsize_t)(mm__word(&c->size) & MM__SIZE_MASK);
}

static inline bool mm__is_alloc(const struct mm__chunk *c)
{
    return (mm__word(&c->size) & MM__ALLOC_BIT) != 0;
}

/* An offset at which a whole free chunk (header and links) can be read. */
static inline bool mm__off_ok(const struct mm_heap_s *h, size_t off)
{
    return off >= sizeof(struct mm__header) && (off & (MM__ALIGN - 1u)) == 0 &&
           off <= h->limit - MM__MINCHUNK;
}

/* The chunk size that holds a request of size bytes; 0 if none can. */
static inline mmsize_t mm__chunk_size_for(size_t size)
{
    if (size > MM__MAX_REQUEST)
        return 0;
    size_t c =
        (size + MM__USER_OFFSET + MM__GUARD_SIZE + MM__ALIGN - 1u) & ~(size_t)(MM__ALIGN - 1u);
    return c < MM__MINCHUNK ? MM__MINCHUNK : (mmsize_t)c;
}

/* ---- Size classes and free lists ------------------------------------------ */

/* The bit scans take 32-bit words; int is 16 bits on AVR, so there the
 * long variants are the 32-bit ones. */
#if __SIZEOF_INT__ >= 4
#define MM__CLZ32(x) __builtin_clz(x)
#define MM__CTZ32(x) __builtin_ctz(x)
#else
#define MM__CLZ32(x) __builtin_clzl(x)
#define MM__CTZ32(x) __builtin_ctzl(x)
#endif

static inline unsigned mm__fls(uint32_t x) /* index of the highest set bit, x != 0 */
{
    return 31u - (unsigned)MM__CLZ32(x);
}

static inline unsigned mm__ffs(uint32_t x) /* index of the lowest set bit, x != 0 */
{
    return (unsigned)MM__CTZ32(x);
}

/* The size class of a chunk size: first level * MM__SL_COUNT + second. */
MM__HOT_DECL(unsigned mm__class(mmsize_t size))
#if MM__HOT_BODY
MM__HOT unsigned mm__class(mmsize_t size)
{
    if (size < MM__SMALL_LIMIT)
        return (unsigned)size >> MM__ALIGN_LOG2;
    unsigned f = mm__fls(size);
    unsigned sl = ((unsigned)size >> (f - MM__SL_LOG2)) & (MM__SL_COUNT - 1u);
    return ((f - MM__FL_SHIFT + 1u) << MM__SL_LOG2) | sl;
}
#endif

/* Link a free chunk at the head of its class's list.  The chunk's header
 * must be written already. */
MM__HOT_DECL(void mm__list_insert(const struct mm_heap_s *h, size_t off, mmsize_t size))
#if MM__HOT_BODY
MM__HOT void mm__list_insert(const struct mm_heap_s *h, size_t off, mmsize_t size)
{
    struct mm__header *hd = mm__hdr(h);
    unsigned cls = mm__class(size), fl = cls >> MM__SL_LOG2;
    mmsize_t head = hd->heads[cls];
    struct mm__chunk *c = mm__chunk(h, off);
    c->next = head;
    c->prev = 0;
    if (head != 0 && (!MM__VALIDATE || mm__off_ok(h, head)))
        mm__chunk(h, head)->prev = (mmsize_t)off;
    hd->heads[cls] = (mmsize_t)off;
    hd->fl_bitmap |= (uint32_t)1 << fl; /* not 1u: 16 bits on AVR */
    hd->sl_bitmap[fl] |= (uint32_t)1 << (cls & (MM__SL_COUNT - 1u));
}
#endif

/* Unlink a free chunk.  false if its links are not what a list member's
 * links must be (the lists are corrupted: the caller repairs them). */
MM__HOT_DECL(bool mm__list_unlink(const struct mm_heap_s *h, size_t off, mmsize_t size))
#if MM__HOT_BODY
MM__HOT bool mm__list_unlink(const struct mm_heap_s *h, size_t off, mmsize_t size)
{
    struct mm__header *hd = mm__hdr(h);
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t next = c->next, prev = c->prev;
    unsigned cls = mm__class(size), fl = cls >> MM__SL_LOG2;
    if (MM__VALIDATE &&
        MM_UNLIKELY((next != 0 && !mm__off_ok(h, next)) || (prev != 0 && !mm__off_ok(h, prev))))
        return false;
    if (prev == 0) {
        if (MM__VALIDATE && MM_UNLIKELY(hd->heads[cls] != off))
            return false;
        hd->heads[cls] = next;
        if (next == 0) {
            hd->sl_bitmap[fl] &= ~((uint32_t)1 << (cls & (MM__SL_COUNT - 1u)));
            if (hd->sl_bitmap[fl] == 0)
                hd->fl_bitmap &= ~((uint32_t)1 << fl);
        }
    } else {
        struct mm__chunk *p = mm__chunk(h, prev);
        if (MM__VALIDATE && MM_UNLIKELY(p->next != off))
            return false;
        p->next = next;
    }
    if (next != 0)
        mm__chunk(h, next)->prev = prev;
    return true;
}
#endif

/* mm__list_unlink, seen as always succeeding where links are not checked. */
MM__INLINE bool mm__list_remove(const struct mm_heap_s *h, size_t off, mmsize_t size)
{
    bool ok = mm__list_unlink(h, off, size);
    return !MM__VALIDATE || ok;
}

/* ---- Shared between heap files ------------------------------------------ */

/* Results of the internal operations that may find corrupted lists. */
#define MM__DONE  0
#define MM__RETRY 1 /* the lists were found corrupted: repair and run again */

/* Rebuild after the lock's previous owner died (lock held). */
void mm__lock_recover(struct mm_heap_s *h);

/* Lock the heap, repairing after a dead owner.  0, or -1 with
 * h->last_error set. */
MM__HOT_DECL(int mm__lock(struct mm_heap_s *h))
#if MM__HOT_BODY
MM__HOT int mm__lock(struct mm_heap_s *h)
{
    if (MM_UNLIKELY(h->in_use == 0))
        return -1;
#if MM_CONFIG_MULTIPROCESS
    /* mm_uninitialize, maybe in another process, clears the magic before
     * it destroys the lock: such a heap is refused, its lock left alone. */
    if (MM_UNLIKELY(mm_port_load32(&mm__hdr(h)->magic) != MM__MAGIC)) {
        mm__set_error(h, MM_ERR_NOTHEAP);
        return -1;
    }
#endif
    int r = mm_port_lock(&mm__hdr(h)->lock);
    if (MM_UNLIKELY(r != MM_PORT_LOCKED)) {
#if MM_CONFIG_MULTIPROCESS
        if (r == MM_PORT_LOCKED_OWNER_DIED) {
            mm__lock_recover(h);
            return 0;
        }
#endif
        mm__set_error(h, r == -MM_ETIMEDOUT ? MM_ERR_BUSY : MM_ERR_LOCK);
        return -1;
    }
    return 0;
}
#endif

MM__INLINE void mm__leave(struct mm_heap_s *h)
{
    mm_port_unlock(&mm__hdr(h)->lock);
}

/* mm__lock, and refuse a broken heap (unlocked again, MM_ERR_BROKEN). */
MM__HOT_DECL(int mm__enter(struct mm_heap_s *h))
#if MM__HOT_BODY
MM__HOT int mm__enter(struct mm_heap_s *h)
{
    if (MM_UNLIKELY(mm__lock(h) != 0))
        return -1;
    if (MM_UNLIKELY(mm__hdr(h)->state != MM__STATE_OK)) {
        mm__leave(h);
        mm__set_error(h, MM_ERR_BROKEN);
        return -1;
    }
    return 0;
}
#endif

/* Under the lock: take a free chunk of at least csize bytes, mark it
 * allocated, split off the rest.  Returns its offset, 0 if none, or
 * MM__RETRY through *retry. */
size_t mm__alloc_chunk(struct mm_heap_s *h, mmsize_t csize, bool *retry);

/* Under the lock: free the allocated chunk at off (already validated),
 * coalescing with free neighbours.  MM__DONE or MM__RETRY. */
int mm__free_chunk(struct mm_heap_s *h, size_t off);

/* Whether an internal operation's result (MM__DONE or MM__RETRY) asks for a
 * repair; never where nothing is validated (the operation still runs). */
MM__INLINE bool mm__needs_repair(int result)
{
    return MM__VALIDATE && result != MM__DONE;
}

/* Split the allocated chunk at off (of size size) into two allocated
 * chunks, of at and size - at bytes (each at least MM__MINCHUNK), and free
 * the front one (front) or the back one, merging it with a free neighbour. */
void mm__split_free(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t at, bool front);

/* Split the allocated chunk at off (of size size) to keep csize bytes,
 * freeing the tail if it can hold a chunk. */
void mm__shrink_chunk(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t csize);

/* Under the lock: mm__alloc_chunk, repairing corrupted lists once, and
 * counting the allocation.  0 with h->last_error set when it fails (the
 * caller counts the failure). */
size_t mm__alloc_locked(struct mm_heap_s *h, mmsize_t csize);

/* Under the lock: count a misused pointer (why from mm__user_chunk), unlock,
 * and report it to the misuse callback. */
void mm__misuse_leave(struct mm_heap_s *h, int why, const void *mem);

/* An allocation through h returned NULL, h->last_error says why.  If it was
 * for want of memory and this thread had blocks of h cached, they are given
 * back and the caller should try once more (true; retried says whether it
 * already did).  Otherwise the failure is counted (false). */
bool mm__failed(struct mm_heap_s *h, bool retried);

/* mm_calloc with the caller's file and line (for debug records): NULL with
 * a counted failure if n * elem_size overflows. */
void *mm__calloc_at(struct mm_heap_s *h, size_t n, size_t elem_size, const char *file, int line);

/* Validation of a user pointer: the chunk's offset, or 0 and what is wrong. */
#define MM__PTR_OK      0
#define MM__PTR_FOREIGN 1
#define MM__PTR_FREED   2
size_t mm__user_chunk(const struct mm_heap_s *h, const void *mem, int *why);

/* Lock h (mm__enter) and validate mem as a live allocation of h: its chunk
 * offset with the lock held, or 0 unlocked (h refused, or mem misused:
 * counted and reported through mm__misuse_leave). */
MM__HOT_DECL(size_t mm__enter_user(struct mm_heap_s *h, const void *mem))
#if MM__HOT_BODY
MM__HOT size_t mm__enter_user(struct mm_heap_s *h, const void *mem)
{
    if (MM_UNLIKELY(mm__enter(h) != 0))
        return 0;
    int why;
    size_t off = mm__user_chunk(h, mem, &why);
    if (MM_UNLIKELY(why != MM__PTR_OK))
        mm__misuse_leave(h, why, mem);
    return off; /* 0 unless why is MM__PTR_OK */
}
#endif

/* Region bounds, checked against the handle's limit; false if corrupted. */
MM__HOT_DECL(bool mm__region_bounds(const struct mm_heap_s *h, unsigned i, size_t *start,
                                    size_t *end))
#if MM__HOT_BODY
MM__HOT bool mm__region_bounds(const struct mm_heap_s *h, unsigned i, size_t *start, size_t *end)
{
    const struct mm__region *r = &mm__hdr(h)->region[i];
    size_t s = r->start, e = r->end;
    if (MM__VALIDATE && MM_UNLIKELY(s < sizeof(struct mm__header) || e < s ||
                                    e > h->limit - MM__HDR || ((s | e) & (MM__ALIGN - 1u)) != 0))
        return false;
    *start = s;
    *end = e;
    return true;
}
#endif

/* Index of the region that holds chunk offset off (its bounds in *start,
 * *end), or -1. */
MM__HOT_DECL(int mm__region_of(const struct mm_heap_s *h, size_t off, size_t *start, size_t *end))
#if MM__HOT_BODY
MM__HOT int mm__region_of(const struct mm_heap_s *h, size_t off, size_t *start, size_t *end)
{
    uint32_t n = mm__hdr(h)->nregions;
    if (n > MM_CONFIG_REGIONS)
        n = MM_CONFIG_REGIONS;
    for (unsigned i = 0; i < n; i++)
        if (mm__region_bounds(h, i, start, end) && off >= *start && off < *end)
            return (int)i;
    return -1;
}
#endif

/* Rebuild every free list from the chunk chains (heap_recover.c).  Marks
 * the heap broken and returns false if a chain is broken.  crashed: the
 * lock's owner died mid-operation (debug records may be half written). */
bool mm__rebuild(struct mm_heap_s *h, bool crashed);

/* Report misuse: count it, call the process's callback after unlocking
 * (the caller passes what to report). */
void mm__report_misuse(struct mm_heap_s *h, enum mm_misuse what, const void *mem);

/* Debug records (heap_debug.c); no-ops in release builds. */
#if MM_CONFIG_DEBUG
void mm__debug_on_alloc(struct mm_heap_s *h, size_t off, size_t reqsize, const char *file,
                        int line);
bool mm__debug_on_free(struct mm_heap_s *h, size_t off); /* false: guard overwritten */
size_t mm__usable_size(const struct mm_heap_s *h, size_t off);
bool mm__debug_guard_ok(const struct mm_heap_s *h, size_t off);
void mm__debug_reset(struct mm_heap_s *h, size_t off);
#else
static inline void mm__debug_on_alloc(struct mm_heap_s *h, size_t off, size_t reqsize,
                                      const char *file, int line)
{
    (void)h, (void)off, (void)reqsize, (void)file, (void)line;
}
static inline bool mm__debug_on_free(struct mm_heap_s *h, size_t off)
{
    (void)h, (void)off;
    return true;
}
static inline size_t mm__usable_size(const struct mm_heap_s *h, size_t off)
{
    return (size_t)mm__size_of(mm__chunk(h, off)) - MM__USER_OFFSET;
}
static inline bool mm__debug_guard_ok(const struct mm_heap_s *h, size_t off)
{
    (void)h, (void)off;
    return true;
}
static inline void mm__debug_reset(struct mm_heap_s *h, size_t off)
{
    (void)h, (void)off;
}
#endif

/* ---- The per-thread cache (heap_cache.c) ---------------------------------- */

/* The host port gets a cache unless the model or debug records rule it out:
 * the small model has no spare header bit, and debug records want every
 * allocation to pass through the heap. */
#ifndef MM_CONFIG_CACHE
#if MM_CONFIG_PORT == MM_PORT_HOST && !MM_CONFIG_SMALL && !MM_CONFIG_DEBUG
#define MM_CONFIG_CACHE 1
#else
#define MM_CONFIG_CACHE 0
#endif
#endif

#if MM_CONFIG_CACHE
_Static_assert(!MM_CONFIG_SMALL && MM__ALIGN >= 8u,
               "the cached and probe bits need 8-byte chunk sizes");

/* Chunks of the first MM__CACHE_FL first-level classes (below 8 KiB in the
 * large model) are cached, at most MM__CACHE_DEPTH per class. */
#define MM__CACHE_FL   6u
#define MM__CACHE_BINS (MM__CACHE_FL * MM__SL_COUNT)
/* The first chunk size not cached. */
#define MM__CACHE_LIMIT ((mmsize_t)1u << (MM__FL_SHIFT + MM__CACHE_FL - 1u))
/* The first chunk size of the last cached class: mm__cache_pop takes
 * smaller ones only, since it may look at the class above. */
#define MM__CACHE_POP_LIMIT (MM__CACHE_LIMIT - (MM__CACHE_LIMIT >> (MM__SL_LOG2 + 1u)))
_Static_assert(MM__CACHE_FL >= 2u, "MM__CACHE_POP_LIMIT assumes a split first level on top");
#define MM__CACHE_DEPTH 32u

/* The locked halves of malloc and free, out of line: the cached paths
 * then make no call, and save few registers. */
#define MM__SLOW_PATH __attribute__((noinline))

/* Give the calling thread's cached blocks of h back to the heap; returns
 * how many bytes came back. */
size_t mm__cache_flush_mine(struct mm_heap_s *h);
/* Forget the calling thread's cache of h without touching the heap. */
void mm__cache_drop_mine(struct mm_heap_s *h);
/* Under the lock: whether the chunk at off sits in some thread's cache,
 * and then the owner id its push wrote into *owner. */
bool mm__cached_owner(const struct mm_heap_s *h, size_t off, uint32_t *owner);
#else
#define MM__SLOW_PATH
static inline size_t mm__cache_flush_mine(struct mm_heap_s *h)
{
    (void)h;
    return 0;
}
static inline void mm__cache_drop_mine(struct mm_heap_s *h)
{
    (void)h;
}
static inline bool mm__cached_owner(const struct mm_heap_s *h, size_t off, uint32_t *owner)
{
    (void)h, (void)off, (void)owner;
    return false;
}
#endif

/* mm__failed, seen as never asking for another try where no thread cache
 * could give blocks back. */
MM__INLINE bool mm__try_again(struct mm_heap_s *h, bool retried)
{
    bool again = mm__failed(h, retried);
    return MM_CONFIG_CACHE && again;
}

/* The owner id recorded in cached blocks and debug records. */
uint32_t mm__owner(void);

/* Test-only crash points inside critical sections. */
#if MM_CONFIG_CRASH_HOOKS
void mm__crash_point(int point);
#define MM__CRASH_POINT(n) mm__crash_point(n)
#else
#define MM__CRASH_POINT(n) ((void)0)
#endif

#endif /* MM_HEAP_INTERNAL_H */
