/*
 * heap_realloc.c - mm_realloc: resize in place when the neighbours allow,
 * move otherwise.
 *
 * Order of preference: shrink in place; grow into a free next chunk (the
 * pointer stays); grow into a free previous chunk (and the next one if
 * needed), moving the bytes down with memmove because source and
 * destination overlap (NuttX's memcpy there corrupts data); finally
 * allocate elsewhere, copy and free.  Each in-place step absorbs the
 * neighbours with one store of the surviving chunk's size, then trims the
 * excess, so the chain stays walkable throughout.
 */
#include "heap_internal.h"

/* Absorb the free next chunk into the allocated chunk at off. */
static bool mm__grow_next(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t nsize)
{
    if (!mm__list_remove(h, off + size, nsize))
        return false;
    mmsize_t total = (mmsize_t)(size + nsize);
    mm__set_word(&mm__chunk(h, off)->size, (mmsize_t)(total | MM__ALLOC_BIT)); /* publishes */
    mm__set_word(&mm__chunk(h, off + total)->prev_size, total);
    MM__CRASH_POINT(7);
    return true;
}

/* Absorb the free previous chunk (and the free next one, if nsize) into the
 * allocated chunk at off and move its bytes down.  Returns the new offset,
 * or 0 if the lists are corrupted. */
static size_t mm__grow_prev(struct mm_heap_s *h, size_t off, mmsize_t size, mmsize_t psize,
                            mmsize_t nsize, size_t keep)
{
    size_t start = off - psize;
    if (nsize != 0 && !mm__list_remove(h, off + size, nsize))
        return 0;
    if (!mm__list_remove(h, start, psize)) {
        if (nsize != 0)
            mm__list_insert(h, off + size, nsize);
        return 0;
    }
    mmsize_t total = (mmsize_t)(psize + size + nsize);
    mm__set_word(&mm__chunk(h, start)->size, (mmsize_t)(total | MM__ALLOC_BIT)); /* publishes */
    mm__set_word(&mm__chunk(h, start + total)->prev_size, total);
    MM__CRASH_POINT(8);
    memmove(mm__base(h) + start + MM__USER_OFFSET, mm__base(h) + off + MM__USER_OFFSET, keep);
    return start;
}

/* Under the lock: resize the allocated chunk at off.  Returns the new
 * offset, 0 when there is no room (the block is untouched), or sets
 * *retry when the lists were found corrupted. */
static size_t mm__resize(struct mm_heap_s *h, size_t off, mmsize_t csize, bool *retry)
{
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t size = mm__size_of(c);
    if (csize <= size) {
        mm__shrink_chunk(h, off, size, csize);
        return off;
    }

    const struct mm__chunk *n = mm__chunk(h, off + size);
    mmsize_t nsize = 0, psize = 0;
    if (!mm__is_alloc(n)) {
        nsize = mm__size_of(n);
        if (MM__VALIDATE && (nsize < MM__MINCHUNK || nsize > h->limit - MM__HDR - (off + size))) {
            *retry = true;
            return 0;
        }
    }
    if (size + nsize >= csize) {
        if (!mm__grow_next(h, off, size, nsize)) {
            *retry = true;
            return 0;
        }
        mm__shrink_chunk(h, off, (mmsize_t)(size + nsize), csize);
        return off;
    }
    if (mm__word(&c->prev_size) != 0 && !mm__is_alloc(mm__chunk(h, off - mm__word(&c->prev_size))))
        psize = mm__word(&c->prev_size);
    if (psize != 0 && (size_t)psize + size + nsize >= csize) {
        size_t keep = mm__usable_size(h, off);
        size_t start = mm__grow_prev(h, off, size, psize, nsize, keep);
        if (start == 0) {
            *retry = true;
            return 0;
        }
        mm__shrink_chunk(h, start, (mmsize_t)(psize + size + nsize), csize);
        return start;
    }

    /* What to copy is read before allocating: lists scribbled on so that
     * they hand out memory over this very block would change its header.
     * A free chunk never overlaps an allocated one, so if the new chunk
     * does, or this header changed, the lists lied in a way no rebuild
     * from the chain can be trusted to mend: refuse the heap from now on. */
    size_t keep = mm__usable_size(h, off);
    mmsize_t raw = mm__word(&c->size);
    size_t noff = mm__alloc_chunk(h, csize, retry);
    if (noff == 0)
        return 0;
    if (MM__VALIDATE &&
        MM_UNLIKELY(mm__word(&c->size) != raw || (noff < off + size && off < noff + csize))) {
        mm__hdr(h)->state = MM__STATE_BROKEN;
        return 0;
    }
    memcpy(mm__base(h) + noff + MM__USER_OFFSET, mm__base(h) + off + MM__USER_OFFSET, keep);
    (void)mm__debug_on_free(h, off); /* fill; the guard was checked already */
    if (mm__needs_repair(mm__free_chunk(h, off))) {
        /* The new block is ours and allocated in the chain; the old one is
         * still allocated too.  Rebuild the lists and free it again. */
        if (mm__rebuild(h, false))
            (void)mm__free_chunk(h, off);
    }
    return noff;
}

/* One attempt; NULL with h->last_error set, failures not counted.  The
 * guard of the old block is checked on the first attempt only. */
static void *mm__realloc_once(struct mm_heap_s *h, void *oldmem, size_t size, mmsize_t csize,
                              const char *file, int line, bool first)
{
    size_t off = mm__enter_user(h, oldmem);
    if (off == 0)
        return NULL;
    struct mm__header *hd = mm__hdr(h);
    /* Bytes written past the block would be moved or overwritten below. */
    bool guard_ok = !first || mm__debug_guard_ok(h, off);
    if (!guard_ok)
        hd->stats.guard_errors++;
    size_t noff = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool retry = false;
        noff = mm__resize(h, off, csize, &retry);
        if (!MM__VALIDATE || !retry)
            break;
        if (!mm__rebuild(h, false))
            break;
        hd->stats.repairs++;
    }
    if (noff != 0) {
        if (noff != off) { /* moved: counts as an allocation and a free */
            hd->stats.mallocs++;
            hd->stats.frees++;
        }
        mm__debug_on_alloc(h, noff, size, file, line);
    } else {
        mm__set_error(h, hd->state == MM__STATE_OK ? MM_ERR_NOMEM : MM_ERR_BROKEN);
    }
    mm__leave(h);
    if (!guard_ok)
        mm__report_misuse(h, MM_MISUSE_GUARD, oldmem);
    return noff != 0 ? mm__base(h) + noff + MM__USER_OFFSET : NULL;
}

void *mm_realloc_at(struct mm_heap_s *h, void *oldmem, size_t size, const char *file, int line)
{
    if (oldmem == NULL)
        return mm_malloc_at(h, size, file, line);
    if (h == NULL)
        return NULL;
    if (size == 0) {
        mm_free(h, oldmem);
        return NULL;
    }
    mmsize_t csize = mm__chunk_size_for(size);
    if (csize == 0) {
        mm__set_error(h, MM_ERR_INVAL);
        (void)mm__failed(h, true);
        return NULL;
    }
    for (bool retried = false;; retried = true) {
        void *p = mm__realloc_once(h, oldmem, size, csize, file, line, !retried);
        if (p != NULL || !mm__try_again(h, retried))
            return p;
    }
}

void *mm_realloc(struct mm_heap_s *h, void *oldmem, size_t size)
{
    return mm_realloc_at(h, oldmem, size, NULL, 0);
}
