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
    uint32_t owner;      /* owner id written into cached blocks */
    uint32_t owner_gen;  /* mm__owner_gen when owner was read */
    size_t bytes;        /* bytes cached */
    uint32_t mallocs;    /* operations not yet added to the heap's stats */
    uint32_t frees;
    mmsize_t head[MM__CACHE_BINS];
    uint8_t n[MM__CACHE_BINS];
};

/* A thread's caches, in memory of its own (mm_port_local_alloc), so that
 * the thread-local part is one pointer. */
struct mm__thread_cache {
    struct mm__cache heaps[MM__CACHE_HEAPS]; /* most recently used first */
};

extern MM_PORT_THREAD_LOCAL struct mm__thread_cache *mm__tcache;
extern uint32_t mm__owner_gen; /* changes with mm_set_owner_id */

/* Find or bind the calling thread's cache of h (slow path). */
struct mm__cache *mm__cache_bind(struct mm_heap_s *h, bool create);

MM__INLINE struct mm__cache *mm__cache_of(struct mm_heap_s *h, bool create)
{
    struct mm__thread_cache *tc = mm__tcache;
    if (MM_LIKELY(tc != NULL)) {
        struct mm__cache *k = &tc->heaps[0];
        if (MM_LIKELY(k->h == h && k->gen == h->gen && k->fork_gen == mm_port_fork_generation()))
            return k;
    }
    return mm__cache_bind(h, create);
}

/* Cache the block at mem; false if it cannot be (then free it normally,
 * which also reports misuse). */
MM__INLINE bool mm__cache_push(struct mm_heap_s *h, void *mem)
{
    uintptr_t m = (uintptr_t)mem, b = (uintptr_t)mm__base(h);
    size_t off = (size_t)(m - b) - MM__USER_OFFSET;
    /* Only the first region, whose bounds the handle holds (validated):
     * off - start wraps for pointers below it. */
    if (MM_UNLIKELY((m & (MM__ALIGN - 1u)) != 0 || off - h->r0_start >= h->r0_end - h->r0_start))
        return false;
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = c->size;
    if ((raw & (MM__ALLOC_BIT | MM__CACHED_BIT)) != MM__ALLOC_BIT)
        return false; /* free or cached already: the locked path reports it */
    mmsize_t size = (mmsize_t)(raw & MM__SIZE_MASK);
    unsigned bin = mm__class(size);
    if (bin >= MM__CACHE_BINS)
        return false;
    struct mm__cache *k = mm__cache_of(h, true);
    if (k == NULL || k->n[bin] >= MM__CACHE_DEPTH || k->bytes + size > h->cache_cap)
        return false;
    /* The same checks as mm_free makes of a pointer: a size that stays in
     * the region, the next chunk agreeing, the previous one plausible. */
    if (MM_UNLIKELY(size < MM__MINCHUNK || size > h->r0_end - off ||
                    mm__chunk(h, off + size)->prev_size != size ||
                    (c->prev_size == 0 ? off != h->r0_start : c->prev_size > off - h->r0_start)))
        return false;
    if (MM_UNLIKELY(k->owner_gen != mm__owner_gen)) {
        k->owner = mm__owner();
        k->owner_gen = mm__owner_gen;
    }
    c->next = k->head[bin];
    c->prev = (mmsize_t)k->owner;
    c->size = (mmsize_t)(raw | MM__CACHED_BIT);
    k->head[bin] = (mmsize_t)off;
    k->n[bin]++;
    k->bytes += size;
    k->frees++;
    return true;
}

/* Take the head of one bin if it holds csize bytes: its offset, or 0. */
MM__INLINE size_t mm__cache_take(struct mm_heap_s *h, struct mm__cache *k, unsigned bin,
                                 mmsize_t csize)
{
    if (k->n[bin] == 0)
        return 0;
    size_t off = k->head[bin];
    /* The bin is process-local, the block is not: check what the user will
     * write stays in region 0, where every cached block comes from. */
    if (MM_UNLIKELY(off - h->r0_start >= h->r0_end - h->r0_start || (off & (MM__ALIGN - 1u)) != 0))
        goto overwritten;
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = c->size, size = (mmsize_t)(raw & MM__SIZE_MASK);
    if (MM_UNLIKELY((raw & (MM__ALLOC_BIT | MM__CACHED_BIT)) != (MM__ALLOC_BIT | MM__CACHED_BIT) ||
                    size > h->r0_end - off))
        goto overwritten;
    if (size < csize)
        return 0;
    k->head[bin] = --k->n[bin] != 0 ? c->next : 0;
    k->bytes -= size;
    k->mallocs++;
    c->size = (mmsize_t)(raw & ~MM__CACHED_BIT);
    return off;

overwritten: /* someone wrote over a cached block: forget this bin */
    k->n[bin] = 0;
    k->head[bin] = 0;
    return 0;
}

/* Take a cached block of at least csize bytes: its offset, or 0.  The head
 * of csize's own class may be too small; any block of the next class fits. */
MM__INLINE size_t mm__cache_pop(struct mm_heap_s *h, mmsize_t csize)
{
    unsigned bin = mm__class(csize);
    if (bin + 1u >= MM__CACHE_BINS)
        return 0;
    struct mm__cache *k = mm__cache_of(h, false);
    if (k == NULL)
        return 0;
    size_t off = mm__cache_take(h, k, bin, csize);
    return off != 0 ? off : mm__cache_take(h, k, bin + 1u, csize);
}

#endif /* MM_CONFIG_CACHE */

#endif /* MM_HEAP_CACHE_H */
