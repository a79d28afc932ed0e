/*
 * heap_cache.h - the hot half of the per-thread cache (see heap_cache.c):
 * the thread-local bins and the lock-free push and pop that mm_free and
 * mm_malloc inline.
 */
#ifndef MM_HEAP_CACHE_H
#define MM_HEAP_CACHE_H

#include "heap_internal.h"

#if MM_CONFIG_CACHE

/* How many heaps one thread caches for at once. */
#define MM__CACHE_HEAPS 4u

struct mm__cache {
    struct mm_heap_s *h; /* NULL: entry unused */
    uint32_t gen;        /* h->gen when bound; a mismatch means h was released */
    uint32_t fork_gen;   /* mm_port_fork_generation() when bound */
    uint32_t epoch;      /* mm__cache_epoch() when owner was read */
    uint32_t owner;      /* owner id written into cached blocks */
    size_t bytes;        /* bytes cached */
    uint32_t mallocs;    /* operations not yet added to the heap's stats */
    uint32_t frees;
    mmsize_t head[MM__CACHE_BINS]; /* 0 exactly when the bin is empty */
    uint8_t n[MM__CACHE_BINS];
};

/* Cached chunk sizes, in units of MM__ALIGN: the tables' index. */
#define MM__CACHE_UNITS (MM__CACHE_LIMIT >> MM__ALIGN_LOG2)

/* A thread's caches, in memory of its own (mm_port_local_alloc), so that
 * the thread-local part is one pointer. */
struct mm__thread_cache {
    struct mm__cache heaps[MM__CACHE_HEAPS]; /* most recently used first */
    /* mm__class of each cached chunk size / MM__ALIGN, made with the
     * thread cache: a lookup costs less than the computation. */
    uint8_t bin_of[MM__CACHE_UNITS];
};
_Static_assert(MM__CACHE_BINS <= 255u, "bins are numbered in a byte");

extern MM_PORT_THREAD_LOCAL struct mm__thread_cache *mm__tcache;
extern uint32_t mm__owner_gen; /* changes with mm_set_owner_id */

/* Changes after a fork() and with mm_set_owner_id: either way a bound cache
 * must be looked at again by mm__cache_bind (forgotten in a child, its
 * owner id read again otherwise), so the fast path makes one check. */
MM__INLINE uint32_t mm__cache_epoch(void)
{
    return mm_port_fork_generation() + mm__owner_gen;
}

/* Find or bind the calling thread's cache of h, up to date (slow path). */
struct mm__cache *mm__cache_bind(struct mm_heap_s *h, bool create);

/* The calling thread's caches if the first is h's and up to date; else
 * NULL, and the caller's slow path calls mm__cache_bind.  No call here: the
 * hot paths stay leaf code. */
MM__INLINE struct mm__thread_cache *mm__cache_mine(struct mm_heap_s *h)
{
    struct mm__thread_cache *tc = mm__tcache;
    if (MM_LIKELY(tc != NULL)) {
        const struct mm__cache *k = &tc->heaps[0];
        if (MM_LIKELY(k->h == h && k->gen == h->gen && k->epoch == mm__cache_epoch()))
            return tc;
    }
    return NULL;
}

/* Whether off is a chunk offset inside region 0 (the only one cached):
 * chunk-aligned and below its end sentinel.  One compare for both: the
 * rotation moves a misaligned remainder into the top bits, past any bound
 * (region 0's bounds are chunk-aligned, validated with the handle). */
MM__INLINE bool mm__in_r0(const struct mm_heap_s *h, size_t off)
{
    size_t d = off - h->r0_start;
    d = (d >> MM__ALIGN_LOG2) | (d << (8u * sizeof(size_t) - MM__ALIGN_LOG2));
    return d < h->r0_units;
}

/* Cache the block at mem; false if it cannot be (then free it normally,
 * which also reports misuse).  Every malloc/free pair runs this and
 * mm__cache_pop, so both are kept short: a pair that runs fewer
 * instructions leaves the CPU room to overlap one pair's cache misses with
 * the next's, which is most of what a pair costs when blocks are cold. */
MM__INLINE bool mm__cache_push(struct mm_heap_s *h, void *mem)
{
    size_t off = (size_t)((uintptr_t)mem - (uintptr_t)mm__base(h)) - MM__USER_OFFSET;
    size_t from_start = off - h->r0_start;
    if (MM_UNLIKELY(!mm__in_r0(h, off)))
        return false;
    /* The same checks as mm_free makes of a pointer, all on shared memory
     * first (while the thread cache is not yet loaded, which leaves the
     * compiler registers enough to save only two):
     * - allocated and not cached (else the locked path reports it);
     * - of a cached class (the one compare also refuses sizes below a
     *   chunk);
     * - the previous chunk plausible: prev_size 0 only at the region's
     *   start, else within the region;
     * - a size that stays in the region, the next chunk agreeing. */
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = mm__word(&c->size), size = (mmsize_t)(raw & MM__SIZE_MASK);
    mmsize_t prev = mm__word(&c->prev_size);
    if ((raw & (MM__ALLOC_BIT | MM__CACHED_BIT)) != MM__ALLOC_BIT ||
        (mmsize_t)(size - MM__MINCHUNK) >= MM__CACHE_LIMIT - MM__MINCHUNK ||
        MM_UNLIKELY((size_t)(mmsize_t)(prev - 1u) >= from_start && (prev | from_start) != 0) ||
        MM_UNLIKELY(size > h->r0_end - off ||
                    mm__word(&mm__chunk(h, off + size)->prev_size) != size))
        return false;
    struct mm__thread_cache *tc = mm__cache_mine(h);
    if (tc == NULL)
        return false;
    struct mm__cache *k = &tc->heaps[0];
    unsigned bin = tc->bin_of[size >> MM__ALIGN_LOG2];
    if (k->n[bin] >= MM__CACHE_DEPTH || k->bytes + size > h->cache_cap)
        return false;
    c->next = k->head[bin];
    /* The owner word before the cached bit that makes other threads read
     * it (mm_reclaim_owner, mm_memdump).  No probe bit: see
     * mm__cached_owner. */
    mm__set_word(&c->prev, (mmsize_t)k->owner);
    mm__set_word_release(&c->size, (mmsize_t)(size | MM__ALLOC_BIT | MM__CACHED_BIT));
    k->head[bin] = (mmsize_t)off;
    k->n[bin]++;
    k->bytes += size;
    k->frees++;
    return true;
}

/* Take a cached block of at least csize bytes (below the last cached
 * class): its offset, or 0.  The head of csize's own class may be too
 * small; then any block of the next class fits.  Rounding every request up
 * to the next class instead (as TLSF does) would look at one bin only, but
 * each trip through the cache would then move a block up a class, and the
 * bins would drift apart from what is asked. */
MM__INLINE size_t mm__cache_pop(struct mm_heap_s *h, mmsize_t csize)
{
    struct mm__thread_cache *tc = mm__cache_mine(h);
    if (tc == NULL)
        return 0;
    struct mm__cache *k = &tc->heaps[0];
    unsigned bin = tc->bin_of[csize >> MM__ALIGN_LOG2];
    /* The bins are process-local, the blocks are not: a head is read only
     * inside region 0, where every cached block comes from.  0: empty. */
    size_t off = k->head[bin];
    if (off == 0 || !mm__in_r0(h, off) || mm__size_of(mm__chunk(h, off)) < csize) {
        off = k->head[++bin];
        if (off == 0)
            return 0;
        if (MM_UNLIKELY(!mm__in_r0(h, off)))
            goto overwritten;
    }
    /* Check that the header still says what the push wrote, and that what
     * the user will write stays in region 0. */
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = mm__word(&c->size), size = (mmsize_t)(raw & MM__SIZE_MASK);
    if (MM_UNLIKELY((raw & (MM__ALLOC_BIT | MM__CACHED_BIT)) != (MM__ALLOC_BIT | MM__CACHED_BIT) ||
                    size > h->r0_end - off))
        goto overwritten;
    if (size < csize)
        return 0;
    k->head[bin] = --k->n[bin] != 0 ? c->next : 0;
    k->bytes -= size;
    k->mallocs++;
    /* Taken: the cached bit goes, and a walk's probe bit with it, before
     * the user writes over the owner word (mm__cached_owner). */
    mm__set_word(&c->size, (mmsize_t)(size | MM__ALLOC_BIT));
    MM__FENCE(RELEASE);
    return off;

overwritten: /* someone wrote over a cached block: forget this bin */
    k->n[bin] = 0;
    k->head[bin] = 0;
    return 0;
}

#endif /* MM_CONFIG_CACHE */

#endif /* MM_HEAP_CACHE_H */
