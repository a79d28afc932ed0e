/*
 * heap_memalign.c - mm_memalign: allocations aligned beyond MM_ALIGN.
 *
 * Take a chunk large enough for the request, the alignment and one minimum
 * chunk; find the first aligned user address in it whose gap before it can
 * be a chunk of its own (zero, or at least a minimum chunk); give the gap
 * and the tail back to the heap.  The waste is at most the rounding of the
 * tail, below one minimum chunk.
 */
#include "heap_internal.h"

/* One attempt; NULL with h->last_error set, failures not counted. */
static void *mm__memalign_once(struct mm_heap_s *h, size_t alignment, size_t size, mmsize_t csize,
                               const char *file, int line)
{
    mmsize_t want = (mmsize_t)(csize + alignment + MM__MINCHUNK);

    if (mm__enter(h) != 0)
        return NULL;
    size_t off = mm__alloc_locked(h, want);
    if (off == 0) {
        mm__leave(h);
        return NULL;
    }

    mmsize_t total = mm__size_of(mm__chunk(h, off));
    uintptr_t user = (uintptr_t)(mm__base(h) + off + MM__USER_OFFSET);
    size_t gap = (size_t)(((user + alignment - 1u) & ~(uintptr_t)(alignment - 1u)) - user);
    if (gap != 0 && gap < MM__MINCHUNK)
        gap += alignment; /* alignment > MM_ALIGN, so now gap >= MM__MINCHUNK */
    if (gap != 0) {
        mm__split_free(h, off, total, (mmsize_t)gap, true);
        off += gap;
        total = (mmsize_t)(total - gap);
    }
    mm__shrink_chunk(h, off, total, csize);
    mm__debug_on_alloc(h, off, size, file, line);
    mm__leave(h);
    return mm__base(h) + off + MM__USER_OFFSET;
}

void *mm_memalign_at(struct mm_heap_s *h, size_t alignment, size_t size, const char *file, int line)
{
    if (h == NULL)
        return NULL;
    if (alignment == 0 || (alignment & (alignment - 1u)) != 0) {
        mm__set_error(h, MM_ERR_INVAL);
        (void)mm__failed(h, true);
        return NULL;
    }
    if (alignment <= MM__ALIGN)
        return mm_malloc_at(h, size, file, line);
    mmsize_t csize = mm__chunk_size_for(size);
    /* In 64 bits: with a 32-bit (or AVR's 16-bit) size_t the sum wraps. */
    if (csize == 0 || alignment > MM__MAX_CHUNK ||
        (uint64_t)csize + alignment + MM__MINCHUNK > MM__MAX_CHUNK) {
        mm__set_error(h, MM_ERR_INVAL);
        (void)mm__failed(h, true);
        return NULL;
    }
    for (bool retried = false;; retried = true) {
        void *p = mm__memalign_once(h, alignment, size, csize, file, line);
        if (p != NULL || !mm__try_again(h, retried))
            return p;
    }
}

void *mm_memalign(struct mm_heap_s *h, size_t alignment, size_t size)
{
    return mm_memalign_at(h, alignment, size, NULL, 0);
}
