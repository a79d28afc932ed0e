/*
 * gran.h - the granule allocator: NuttX's interface for carving aligned
 * runs of fixed-size granules (DMA buffers, pages) out of one block of
 * memory.
 *
 * The allocator's state (a header and a bitmap, one bit per granule) lives at
 * the start of the memory it is given; no malloc.  Unlike NuttX there is no
 * limit on granules per allocation or per pool but memory.  Searches scan
 * the bitmap a word at a time: O(granules / word size) in the worst case.
 *
 * Thread safety: every call takes the allocator's lock (the port layer's);
 * the state is process-local and not meant for shared memory (it holds the
 * pool's absolute address).  A handle is checked (alignment and a magic word
 * tied to its address) and a bad one is ignored, but it must point to
 * readable memory.
 */
#ifndef MM_GRAN_H
#define MM_GRAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *GRAN_HANDLE;

/* As NuttX's graninfo_s, with size_t counts (NuttX's 16-bit ones cap a pool
 * at 65,535 granules). */
struct graninfo_s {
    uint8_t log2gran;  /* granule size: 1 << log2gran bytes */
    uint8_t log2align; /* every allocation starts at a multiple of 1 << log2align */
    size_t ngranules;  /* granules managed (after the allocator's own state) */
    size_t nfree;      /* granules free */
    size_t mxfree;     /* longest run of free granules */
};

/*
 * Make a granule allocator in [heapstart, heapstart + heapsize).  Its state
 * (a header and one bit per granule) takes the first bytes; the granules
 * follow, the first one aligned to max(granule, 1 << log2align) as an
 * absolute address.  log2gran and log2align up to 30 (15 where size_t is 16
 * bits); log2align <= log2gran means granule alignment.  Returns the handle
 * (a pointer into heapstart's memory), or NULL if the arguments are bad, the
 * range wraps around the address space, the port's lock cannot be made, or
 * the memory holds no granule after the state.  O(granules / W), W the bits
 * of a uintptr_t.
 */
GRAN_HANDLE gran_initialize(void *heapstart, size_t heapsize, uint8_t log2gran, uint8_t log2align);

/* Forget the allocator; its memory is the caller's again.  Later calls with
 * the handle are ignored (NULL, 0, zeroed info).  Not to be called while
 * another call on the handle runs. */
void gran_release(GRAN_HANDLE handle);

/*
 * Mark [start, start + size) as allocated so that gran_alloc never returns
 * it (memory used by something else).  Rounded out to whole granules.
 * Returns the start of the reserved granules, or NULL if size is 0, the
 * range is not wholly inside the pool, or any of it is already allocated
 * (then nothing is reserved).  To free it, pass the returned address and a
 * size that reaches start + size.  O(granules / W) at worst.
 */
void *gran_reserve(GRAN_HANDLE handle, uintptr_t start, size_t size);

/*
 * Allocate size bytes, rounded up to whole granules, starting on a
 * 1 << log2align boundary.  First fit: the lowest such address.  NULL when
 * size is 0, the handle is bad, or no aligned run of free granules is long
 * enough.  O(granules / W + free runs passed over).
 */
void *gran_alloc(GRAN_HANDLE handle, size_t size);

/*
 * Free what gran_alloc or gran_reserve returned; size as given then (any
 * granule-aligned part of an allocation may also be freed on its own).
 * memory NULL does nothing.  Freeing memory outside the pool, not on a
 * granule boundary, with size 0, or covering any granule that is not
 * allocated (a double free) is refused and counted (gran_misuse_count); the
 * bitmap is left as it was.  O(granules freed / W).
 */
void gran_free(GRAN_HANDLE handle, void *memory, size_t size);

/* Counts as described in graninfo_s, computed from the bitmap.  All zero for
 * a bad handle.  O(granules / W + free runs). */
void gran_info(GRAN_HANDLE handle, struct graninfo_s *info);

/* Frees refused since gran_initialize (see gran_free); 0 for a bad handle. */
size_t gran_misuse_count(GRAN_HANDLE handle);

#ifdef __cplusplus
}
#endif

#endif /* MM_GRAN_H */
