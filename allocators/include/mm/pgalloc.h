/*
 * pgalloc.h - the page allocator: the granule allocator with page-sized
 * granules, as NuttX has it.  mmsrvd carves its regions out of its segment
 * with it; a microcontroller carves regions out of one block of RAM.
 *
 * One page allocator per program (NuttX's global interface).  Addresses are
 * uintptr_t, as NuttX's physical page addresses; 0 means none.
 * Thread safety: as the granule allocator (every call takes its lock).
 */
#ifndef MM_PGALLOC_H
#define MM_PGALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "mm/mm_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MM_PGSIZE_DEFAULT
#define MM_PGSIZE_DEFAULT 4096u
#endif

struct pginfo_s {
    size_t ntotal;   /* pages managed */
    size_t nfree;    /* pages free */
    size_t mxfree;   /* longest run of free pages */
    size_t pagesize; /* bytes per page */
};

/*
 * Set the page size (a power of two, at least 64) used by the next
 * mm_pginitialize.  Returns 0, or -MM_EINVAL.  Default MM_PGSIZE_DEFAULT.
 */
int mm_pgsetsize(size_t pagesize);

/*
 * Manage [heap_start, heap_start + heap_size) as pages.  The allocator's
 * state takes the first page(s) of it.  Replaces any earlier page allocator.
 * Returns 0, or -MM_EINVAL if the memory holds no page after the state.
 */
int mm_pginitialize(void *heap_start, size_t heap_size);

/* Mark [start, start + size) as used (rounded out to whole pages). */
void mm_pgreserve(void *start, size_t size);

/* Allocate npages contiguous pages, page-aligned.  0 when it cannot. */
uintptr_t mm_pgalloc(unsigned int npages);

/* Free npages pages at paddr, as returned by mm_pgalloc. */
void mm_pgfree(uintptr_t paddr, unsigned int npages);

/* Counts of the page allocator (all zero before mm_pginitialize). */
void mm_pginfo(struct pginfo_s *info);

#ifdef __cplusplus
}
#endif

#endif /* MM_PGALLOC_H */
