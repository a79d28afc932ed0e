/*
 * heap.c - malloc and free of the mm heap, and what they share: locking,
 * validating user pointers, taking a chunk from the free lists and giving
 * one back.
 *
 * Both paths are bounded: malloc looks at the head of its exact size class,
 * then at the first non-empty class above it through two bitmaps; free
 * coalesces with at most two neighbours.  Every write that changes the chunk
 * chain is a single store of a size field made after what it exposes is in
 * place (see heap_internal.h), so a process killed at any instruction leaves
 * a chain from which the next locker rebuilds the lists.
 */
#define MM__DEFINE_HOT /* the one copy of the helpers of heap_internal.h in -Os builds */
#include "heap_cache.h"

/* ---- Locking ----------------------------------------------------------- */

#if MM_CONFIG_MULTIPROCESS
void mm__lock_recover(struct mm_heap_s *h)
{
    struct mm__header *hd = mm__hdr(h);
    /* The owner died mid-operation: the chain is whole (see the rule in
     * heap_internal.h) but the lists and prev_size fields may not be. */
    (void)mm__rebuild(h, true);
    hd->stats.recoveries++;
    mm_port_lock_mark_consistent(&hd->lock);
}
#endif

/* ---- User pointers ------------------------------------------------------ */

size_t mm__user_chunk(const struct mm_heap_s *h, const void *mem, int *why)
{
    uintptr_t m = (uintptr_t)mem, b = (uintptr_t)mm__base(h);
    *why = MM__PTR_FOREIGN;
    if ((m & (MM__ALIGN - 1u)) != 0 || m < b + MM__USER_OFFSET)
        return 0;
    size_t off = (size_t)(m - b) - MM__USER_OFFSET;
    size_t start, end;
    if (mm__region_of(h, off, &start, &end) < 0)
        return 0;

    const struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t size = mm__size_of(c);
    if (size < MM__MINCHUNK || size > end - off)
        return 0;
    if (mm__word(&mm__chunk(h, off + size)->prev_size) != size)
        return 0;
    if (!mm__is_alloc(c) || (mm__word(&c->size) & MM__CACHED_BIT) != 0) {
        /* A chunk header with a plausible size whose allocated bit is
         * clear: this block was freed (maybe merged into a neighbour), or
         * it sits in a thread's cache. */
        *why = MM__PTR_FREED;
        return 0;
    }
    mmsize_t prev = mm__word(&c->prev_size);
    if (prev == 0 ? off != start
                  : (prev > off - start || (prev & (MM__ALIGN - 1u)) != 0 ||
                     mm__size_of(mm__chunk(h, off - prev)) != prev))
        return 0;
    *why = MM__PTR_OK;
    return off;
}

/* ---- Taking a chunk ----------------------------------------------------- */

/* The first non-empty class at or above *cls, through the bitmaps:
 * 1 found, 0 none (no memory), -1 a bitmap that points at nothing. */
static int mm__find_class(const struct mm__header *hd, unsigned *cls)
{
    unsigned fl = *cls >> MM__SL_LOG2, sl = *cls & (MM__SL_COUNT - 1u);
    /* 32-bit masks: int (and so 0u) has 16 bits on AVR. */
    uint32_t slmap = hd->sl_bitmap[fl] & (~(uint32_t)0 << sl);
    if (slmap == 0) {
        uint32_t flmap = hd->fl_bitmap & (~(uint32_t)0 << fl) & ~((uint32_t)1 << fl);
        if (flmap == 0)
            return 0;
        fl = mm__ffs(flmap);
        if (MM_UNLIKELY(fl >= MM__FL_COUNT))
            return -1;
        slmap = hd->sl_bitmap[fl];
        if (MM_UNLIKELY(slmap == 0))
            return -1;
    }
    sl = mm__ffs(slmap);
    *cls = (fl << MM__SL_LOG2) | sl;
    return sl < MM__SL_COUNT ? 1 : -1;
}

size_t mm__alloc_chunk(struct mm_heap_s *h, mmsize_t csize, bool *retry)
{
    struct mm__header *hd = mm__hdr(h);
    unsigned cls = mm__class(csize);

    /* Good fit first: the head of csize's own class often fits, and taking
     * it keeps the heap denser than TLSF's round-up alone. */
    size_t off = hd->heads[cls];
    if (off != 0 &&
        ((MM__VALIDATE && !mm__off_ok(h, off)) || mm__size_of(mm__chunk(h, off)) < csize))
        off = 0;
    if (off == 0) {
        /* The next class up: every chunk in it fits. */
        if (++cls >= MM__CLASSES)
            return 0;
        int found = mm__find_class(hd, &cls);
        if (found <= 0) {
            *retry = MM__VALIDATE && found < 0;
            return 0;
        }
        off = hd->heads[cls];
        if (MM__VALIDATE && MM_UNLIKELY(off == 0 || !mm__off_ok(h, off))) {
            *retry = true;
            return 0;
        }
    }

    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t size = mm__size_of(c);
    if (MM__VALIDATE && MM_UNLIKELY(mm__is_alloc(c) || size < csize ||
                                    size > h->limit - MM__HDR - off || mm__class(size) != cls)) {
        *retry = true;
        return 0;
    }
    struct mm__chunk *next = mm__chunk(h, off + size);
    if (MM_UNLIKELY((MM__VALIDATE && mm__word(&next->prev_size) != size) ||
                    !mm__list_remove(h, off, size))) {
        *retry = true;
        return 0;
    }
    MM__CRASH_POINT(1);

#if defined(__OPTIMIZE_SIZE__)
    /* Microcontrollers: the split is mm__shrink_chunk's, in fewer bytes of
     * flash than a copy of it here (and a little more time). */
    mm__set_word(&c->size, (mmsize_t)(size | MM__ALLOC_BIT));
    mm__shrink_chunk(h, off, size, csize);
#else
    mmsize_t rest = (mmsize_t)(size - csize);
    if (rest >= MM__MINCHUNK) {
        size_t roff = off + csize;
        struct mm__chunk *r = mm__chunk(h, roff);
        mm__set_word(&r->prev_size, csize);
        mm__set_word(&r->size, rest);
        mm__set_word(&next->prev_size, rest);
        MM__CRASH_POINT(2);
        mm__set_word(&c->size, (mmsize_t)(csize | MM__ALLOC_BIT)); /* publishes the split */
        MM__CRASH_POINT(3);
        mm__list_insert(h, roff, rest);
    } else {
        mm__set_word(&c->size, (mmsize_t)(size | MM__ALLOC_BIT));
    }
#endif
    return off;
}

/* ---- Giving a chunk back ------------------------------------------------ */

/* The free neighbour of the chunk at off (of size size) before it (front)
 * or after it, taken out of its list: its offset and size (*nsize 0 when
 * that neighbour is allocated or there is none).  false: the chain or the
 * lists disagree with what they say of it (the caller repairs).  The
 * sentinel is marked allocated, so a free next chunk is a real one; its size
 * must keep it inside the mapping.  Only mm_free has validated prev_size
 * (mm__user_chunk): for the other callers (split, cache, realloc) the chunk
 * it names must lie past the header and say the same size. */
MM__INLINE bool mm__take_neighbour(const struct mm_heap_s *h, size_t off, mmsize_t size, bool front,
                                   size_t *noff, mmsize_t *nsize)
{
    *nsize = 0;
    if (front) {
        mmsize_t prev = mm__word(&mm__chunk(h, off)->prev_size);
        if (prev == 0)
            return true;
        if (MM__VALIDATE &&
            MM_UNLIKELY(prev > off - sizeof(struct mm__header) || (prev & (MM__ALIGN - 1u)) != 0 ||
                        mm__size_of(mm__chunk(h, off - prev)) != prev))
            return false;
        *noff = off - prev;
    } else {
        *noff = off + size;
    }
    const struct mm__chunk *n = mm__chunk(h, *noff);
    if (mm__is_alloc(n))
        return true;
    mmsize_t s = mm__size_of(n);
    if (MM_UNLIKELY((MM__VALIDATE && (s < MM__MINCHUNK || s > h->limit - MM__HDR - *noff)) ||
                    !mm__list_remove(h, *noff, s)))
        return false;
    *nsize = s;
    return true;
}

int mm__free_chunk(struct mm_heap_s *h, size_t off)
{
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t size = mm__size_of(c);
    size_t noff = 0, poff = 0;
    mmsize_t nsize, psize;

    if (!mm__take_neighbour(h, off, size, false, &noff, &nsize))
        return MM__RETRY;
    if (!mm__take_neighbour(h, off, size, true, &poff, &psize)) {
        if (nsize != 0) /* keep the lists whole for the repair */
            mm__list_insert(h, noff, nsize);
        return MM__RETRY;
    }
    MM__CRASH_POINT(4);

    mm__set_word(&c->size, size); /* freed; a stale copy of this header now reads as free */
    size_t start = off - psize;
    mmsize_t total = (mmsize_t)(psize + size + nsize);
    mm__set_word(&mm__chunk(h, start)->size, total); /* publishes the merge */
    MM__CRASH_POINT(5);
    mm__set_word(&mm__chunk(h, start + total)->prev_size, total);
    mm__list_insert(h, start, total);
    return MM__DONE;
}

#if MM_CONFIG_MULTIPROCESS
/* The piece given back is free in the same store that publishes the split
 * (merged with a free neighbour beyond it), so that a process dying between
 * the two loses nothing: the chain shows either the whole chunk allocated
 * or the piece free, and recovery links whatever the lists lack. */
void mm__split_free(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t at, bool front)
{
    size_t roff = off + at, noff = 0;
    mmsize_t rest = (mmsize_t)(size - at), nsize;
    bool repair = !mm__take_neighbour(h, off, size, front, &noff, &nsize);
    struct mm__chunk *r = mm__chunk(h, roff);
    size_t start;
    mmsize_t total;
    if (front) { /* [neighbour] piece | kept */
        start = nsize != 0 ? noff : off;
        total = (mmsize_t)(nsize + at);
        mm__set_word(&r->prev_size, total);
        mm__set_word(&r->size, (mmsize_t)(rest | MM__ALLOC_BIT));
        mm__set_word(&mm__chunk(h, roff + rest)->prev_size, rest);
        MM__CRASH_POINT(9);
        mm__set_word(&mm__chunk(h, start)->size, total); /* publishes split and merge */
    } else {                                             /* kept | piece [neighbour] */
        start = roff;
        total = (mmsize_t)(rest + nsize);
        mm__set_word(&r->prev_size, at);
        mm__set_word(&r->size, total);
        mm__set_word(&mm__chunk(h, roff + total)->prev_size, total);
        MM__CRASH_POINT(6);
        mm__set_word(&mm__chunk(h, off)->size, (mmsize_t)(at | MM__ALLOC_BIT)); /* publishes */
    }
    MM__CRASH_POINT(10);
    if (!repair) {
        mm__list_insert(h, start, total);
    } else if (mm__rebuild(h, false)) {
        /* the lists were corrupted: the piece goes into them, merged with
         * any free neighbour, with the rest */
        mm__hdr(h)->stats.repairs++;
    }
}
#else
/* One address space: nothing dies between two stores, so the piece is
 * split off allocated and freed the ordinary way (less code). */
void mm__split_free(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t at, bool front)
{
    size_t roff = off + at;
    mmsize_t rest = (mmsize_t)(size - at);
    struct mm__chunk *r = mm__chunk(h, roff);
    mm__set_word(&r->prev_size, at);
    mm__set_word(&r->size, (mmsize_t)(rest | MM__ALLOC_BIT));
    mm__set_word(&mm__chunk(h, roff + rest)->prev_size, rest);
    mm__set_word(&mm__chunk(h, off)->size, (mmsize_t)(at | MM__ALLOC_BIT));
    (void)mm__free_chunk(h, front ? off : roff);
}
#endif

void mm__shrink_chunk(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t csize)
{
    if ((mmsize_t)(size - csize) >= MM__MINCHUNK)
        mm__split_free(h, off, size, csize, false);
}

/* ---- Public entry points -------------------------------------------------- */

void mm__misuse_leave(struct mm_heap_s *h, int why, const void *mem)
{
    struct mm__header *hd = mm__hdr(h);
    enum mm_misuse what = why == MM__PTR_FREED ? MM_MISUSE_DOUBLE_FREE : MM_MISUSE_FOREIGN_FREE;
    if (what == MM_MISUSE_DOUBLE_FREE)
        hd->stats.double_frees++;
    else
        hd->stats.foreign_frees++;
    mm__set_error(h, MM_ERR_INVAL);
    mm__leave(h);
    mm__report_misuse(h, what, mem);
}

bool mm__failed(struct mm_heap_s *h, bool retried)
{
    enum mm_error err = mm__error(h);
    /* What this thread keeps cached may be what is missing. */
    if (!retried && err == MM_ERR_NOMEM && mm__cache_flush_mine(h) != 0)
        return true;
    /* Counted under the lock, unless the lock itself was what failed (a
     * second wait for it would only double the caller's). */
    if (err != MM_ERR_BUSY && err != MM_ERR_LOCK && mm__lock(h) == 0) {
        mm__hdr(h)->stats.failures++;
        mm__leave(h);
    }
    mm__set_error(h, err);
    return false;
}

/* Run an allocation under the lock, repairing corrupted lists once. */
size_t mm__alloc_locked(struct mm_heap_s *h, mmsize_t csize)
{
    struct mm__header *hd = mm__hdr(h);
    for (int attempt = 0;; attempt++) {
        bool retry = false;
        size_t off = mm__alloc_chunk(h, csize, &retry);
        if (!MM__VALIDATE || MM_LIKELY(!retry)) {
            if (off != 0)
                hd->stats.mallocs++;
            else
                mm__set_error(h, MM_ERR_NOMEM);
            return off;
        }
        if (attempt == 1 || !mm__rebuild(h, false)) {
            mm__set_error(h, MM_ERR_BROKEN);
            return 0;
        }
        hd->stats.repairs++;
    }
}

#if MM_CONFIG_CACHE
/* A cached block for a request of size bytes, or NULL. */
MM__INLINE void *mm__malloc_cached(struct mm_heap_s *h, size_t size)
{
    /* Below the last cached class, whose next class is not cached. */
    if (size > MM__CACHE_POP_LIMIT - MM__ALIGN - MM__USER_OFFSET)
        return NULL;
    size_t off = mm__cache_pop(h, mm__chunk_size_for(size));
    return off != 0 ? mm__base(h) + off + MM__USER_OFFSET : NULL;
}
#endif

/* malloc when the thread cache cannot serve it: under the lock. */
MM__SLOW_PATH static void *mm__malloc_slow(struct mm_heap_s *h, size_t size, const char *file,
                                           int line)
{
#if MM_CONFIG_CACHE
    /* As in mm__free_slow; a malloc binds no new cache (frees fill it). */
    if (mm__cache_mine(h) == NULL && mm__cache_bind(h, false) != NULL) {
        void *p = mm__malloc_cached(h, size);
        if (p != NULL)
            return p;
    }
#endif
    mmsize_t csize = mm__chunk_size_for(size);
    for (bool retried = false;; retried = true) {
        void *p = NULL;
        if (MM_UNLIKELY(csize == 0)) {
            mm__set_error(h, MM_ERR_INVAL);
        } else if (MM_LIKELY(mm__enter(h) == 0)) {
            size_t off = mm__alloc_locked(h, csize);
            if (off != 0)
                mm__debug_on_alloc(h, off, size, file, line);
            mm__leave(h);
            p = off != 0 ? mm__base(h) + off + MM__USER_OFFSET : NULL;
        }
        if (MM_LIKELY(p != NULL) || !mm__try_again(h, retried))
            return p;
    }
}

void *mm_malloc_at(struct mm_heap_s *h, size_t size, const char *file, int line)
{
    if (MM_UNLIKELY(h == NULL))
        return NULL;
#if MM_CONFIG_CACHE
    void *p = mm__malloc_cached(h, size);
    if (MM_LIKELY(p != NULL))
        return p;
#endif
    return mm__malloc_slow(h, size, file, line);
}

void *mm_malloc(struct mm_heap_s *h, size_t size)
{
    return mm_malloc_at(h, size, NULL, 0);
}

void *mm__calloc_at(struct mm_heap_s *h, size_t n, size_t elem_size, const char *file, int line)
{
    if (h == NULL)
        return NULL;
    if (elem_size != 0 && n > (size_t)-1 / elem_size) {
        mm__set_error(h, MM_ERR_INVAL);
        (void)mm__failed(h, true);
        return NULL;
    }
    void *p = mm_malloc_at(h, n * elem_size, file, line);
    if (p != NULL)
        memset(p, 0, n * elem_size);
    return p;
}

void *mm_zalloc(struct mm_heap_s *h, size_t size)
{
    return mm__calloc_at(h, 1, size, NULL, 0);
}

void *mm_calloc(struct mm_heap_s *h, size_t n, size_t elem_size)
{
    return mm__calloc_at(h, n, elem_size, NULL, 0);
}

/* mm_free when the thread cache cannot take the block: under the lock. */
MM__SLOW_PATH static void mm__free_slow(struct mm_heap_s *h, void *mem)
{
#if MM_CONFIG_CACHE
    /* The cache's fast path found no cache of h in front: bind one (this
     * thread's first free, another heap used since, a fork, a new owner
     * id) and try it again. */
    if (mm__cache_mine(h) == NULL && mm__cache_bind(h, true) != NULL && mm__cache_push(h, mem))
        return;
#endif
    size_t off = mm__enter_user(h, mem);
    if (MM_UNLIKELY(off == 0))
        return;
    struct mm__header *hd = mm__hdr(h);
    bool guard_ok = mm__debug_on_free(h, off);
    if (MM_UNLIKELY(mm__needs_repair(mm__free_chunk(h, off)))) {
        if (mm__rebuild(h, false)) {
            hd->stats.repairs++;
            if (mm__free_chunk(h, off) != MM__DONE)
                mm__set_error(h, MM_ERR_BROKEN);
        }
    }
    hd->stats.frees++;
    if (!guard_ok)
        hd->stats.guard_errors++;
    mm__leave(h);
    if (!guard_ok)
        mm__report_misuse(h, MM_MISUSE_GUARD, mem);
}

void mm_free(struct mm_heap_s *h, void *mem)
{
#if MM_CONFIG_CACHE
    /* NULL is no block of region 0: the slow path sees it. */
    if (MM_LIKELY(h != NULL) && MM_LIKELY(mm__cache_push(h, mem)))
        return;
#endif
    if (mem == NULL || h == NULL)
        return;
    mm__free_slow(h, mem);
}

size_t mm_malloc_size(struct mm_heap_s *h, void *mem)
{
    if (mem == NULL || h == NULL)
        return 0;
    if (mm__enter(h) != 0)
        return 0;
    int why;
    size_t off = mm__user_chunk(h, mem, &why);
    size_t n = why == MM__PTR_OK ? mm__usable_size(h, off) : 0;
    mm__leave(h);
    return n;
}

bool mm_heapmember(struct mm_heap_s *h, void *mem)
{
    if (mem == NULL || h == NULL)
        return false;
    uintptr_t m = (uintptr_t)mem, b = (uintptr_t)mm__base(h);
    if (m < b || m - b >= h->limit)
        return false;
    size_t start, end;
    return mm__region_of(h, (size_t)(m - b), &start, &end) >= 0;
}
