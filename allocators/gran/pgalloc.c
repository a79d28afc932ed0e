/*
 * pgalloc.c - the page allocator: NuttX's global page allocator, one
 * granule allocator whose granules are pages (see mm/pgalloc.h).
 *
 * The main idea is that there is nothing new here: mm_pginitialize makes a
 * granule allocator with log2gran = log2align = log2(page size), so the
 * granule allocator puts its state in the first page(s) and aligns granule 0
 * to the page size as an absolute address; every page call is one granule
 * call, under the granule allocator's lock.
 *
 * The two globals (the handle and the page size for the next
 * mm_pginitialize) are set at start-up, as in NuttX: mm_pgsetsize and
 * mm_pginitialize are not safe against concurrent page calls; the others
 * are.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mm/gran.h"
#include "mm/pgalloc.h"
#include "mm_port.h"

/* Smallest and largest page: 64 bytes, and what the granule allocator takes
 * (see gran_initialize). */
#define MM__PG_MIN_LOG2 6u
#if SIZE_MAX <= 0xffffu
#define MM__PG_MAX_LOG2 15u
#else
#define MM__PG_MAX_LOG2 30u
#endif

static GRAN_HANDLE g_pgalloc;               /* NULL until mm_pginitialize succeeds */
static uint8_t g_pglog2;                    /* log2 of the current allocator's page */
static size_t g_pgnext = MM_PGSIZE_DEFAULT; /* page size for the next mm_pginitialize */

_Static_assert(MM_PGSIZE_DEFAULT >= (1u << MM__PG_MIN_LOG2) &&
                   MM_PGSIZE_DEFAULT <= ((size_t)1 << MM__PG_MAX_LOG2) &&
                   (MM_PGSIZE_DEFAULT & (MM_PGSIZE_DEFAULT - 1u)) == 0,
               "MM_PGSIZE_DEFAULT must be a power of two in [64, 2^30]");

/* log2 of a power of two. */
static uint8_t mm__pg_log2(size_t v)
{
    uint8_t n = 0;
    while (v > 1u) {
        v >>= 1;
        n++;
    }
    return n;
}

/* Set the page size for the next mm_pginitialize; the current allocator
 * keeps its own.  0, or -MM_EINVAL unless a power of two in [64, 2^30]
 * (2^15 with a 16-bit size_t). */
int mm_pgsetsize(size_t pagesize)
{
    if (pagesize < ((size_t)1 << MM__PG_MIN_LOG2) || pagesize > ((size_t)1 << MM__PG_MAX_LOG2) ||
        (pagesize & (pagesize - 1u)) != 0)
        return -MM_EINVAL;
    g_pgnext = pagesize;
    return 0;
}

/* A granule allocator over the memory, pages aligned to their size.  The
 * earlier allocator, if any, is forgotten without touching its memory
 * (which its owner may have reused).  O(pages / W). */
int mm_pginitialize(void *heap_start, size_t heap_size)
{
    const uint8_t log2 = mm__pg_log2(g_pgnext);
    GRAN_HANDLE h = gran_initialize(heap_start, heap_size, log2, log2);
    if (h == NULL)
        return -MM_EINVAL;
    g_pgalloc = h;
    g_pglog2 = log2;
    return 0;
}

/* Reserve the pages that [start, start + size) touches; nothing if any of
 * them is outside the allocator or already allocated. */
void mm_pgreserve(void *start, size_t size)
{
    if (g_pgalloc != NULL)
        (void)gran_reserve(g_pgalloc, (uintptr_t)start, size);
}

/* First fit of npages pages.  O(pages / W + free runs passed over). */
uintptr_t mm_pgalloc(unsigned int npages)
{
    if (g_pgalloc == NULL || npages == 0 || npages > (SIZE_MAX >> g_pglog2))
        return 0;
    return (uintptr_t)gran_alloc(g_pgalloc, (size_t)npages << g_pglog2);
}

/* Free as gran_free does: misuse (foreign, unaligned, not allocated) is
 * refused and leaves the allocator as it was.  paddr 0 does nothing. */
void mm_pgfree(uintptr_t paddr, unsigned int npages)
{
    if (g_pgalloc == NULL || paddr == 0)
        return;
    /* A size that cannot be a run of this allocator's pages still goes to
     * gran_free, which refuses and counts it. */
    size_t size = npages > (SIZE_MAX >> g_pglog2) ? SIZE_MAX : (size_t)npages << g_pglog2;
    gran_free(g_pgalloc, (void *)paddr, size);
}

/* Counts of the current allocator; all zero before mm_pginitialize. */
void mm_pginfo(struct pginfo_s *info)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof(*info));
    if (g_pgalloc == NULL)
        return;
    struct graninfo_s gi;
    gran_info(g_pgalloc, &gi);
    info->ntotal = gi.ngranules;
    info->nfree = gi.nfree;
    info->mxfree = gi.mxfree;
    info->pagesize = (size_t)1 << g_pglog2;
}
