/*
 * segment.c: the daemon's segment, one address range carved into regions.
 *
 * The whole range is reserved at start (private, no swap reserved, so an
 * untouched page costs nothing) and handed to the page allocator, which
 * keeps its state in the first pages.  The pages behind it are made
 * inaccessible; a region's run of pages becomes a shared mapping of the
 * region's memfd (MAP_FIXED over the reservation), and goes back to an
 * inaccessible reservation when the region is freed.  So the daemon sees
 * every region at its place in one range, as DESIGN.md draws it, while each
 * client maps only the descriptors it was given.
 */
#include "mmsrvd.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/pgalloc.h"

static uint8_t *seg_map;   /* what mmap returned */
static size_t seg_maplen;  /* and its length */
static uint8_t *seg_base;  /* page-aligned start */
static uint64_t seg_size;  /* bytes managed */
static size_t seg_page;    /* bytes per page */
static uint64_t seg_first; /* offset of the first page the allocator hands out */

int segment_init(uint64_t size, size_t page_size)
{
    long sys = sysconf(_SC_PAGESIZE);

    if (page_size == 0 || (page_size & (page_size - 1)) != 0 || page_size < (size_t)sys)
        return -EINVAL;
    size = (size + page_size - 1) / page_size * page_size;
    if (size < 4 * (uint64_t)page_size || size > SIZE_MAX / 2)
        return -EINVAL;
    /* over-reserve by a page so that the start can be aligned to it */
    seg_maplen = (size_t)size + page_size;
    void *m = mmap(NULL, seg_maplen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    seg_map = m;
    uintptr_t a = ((uintptr_t)m + page_size - 1) & ~(uintptr_t)(page_size - 1);
    seg_base = (uint8_t *)a;
    seg_size = size;
    seg_page = page_size;

    int rc = mm_pgsetsize(page_size);
    if (rc == 0)
        rc = mm_pginitialize(seg_base, (size_t)size);
    if (rc != 0) {
        munmap(seg_map, seg_maplen);
        seg_map = NULL;
        return rc;
    }
    /* The allocator's state fills the first pages: the lowest page it
     * hands out marks their end (it searches from the start). */
    uintptr_t first = mm_pgalloc(1);
    if (first == 0) {
        munmap(seg_map, seg_maplen);
        seg_map = NULL;
        return -ENOSPC;
    }
    mm_pgfree(first, 1);
    seg_first = (uint64_t)(first - (uintptr_t)seg_base);
    if (mprotect((uint8_t *)first, (size_t)(seg_size - seg_first), PROT_NONE) != 0)
        return -errno;
    return 0;
}

void segment_fini(void)
{
    if (seg_map != NULL)
        munmap(seg_map, seg_maplen);
    seg_map = NULL;
}

size_t segment_page_size(void)
{
    return seg_page;
}

uint64_t segment_size(void)
{
    return seg_size;
}

uint8_t *segment_alloc(size_t bytes)
{
    size_t npages = bytes / seg_page;
    if (npages == 0 || npages > UINT32_MAX)
        return NULL;
    return (uint8_t *)mm_pgalloc((unsigned int)npages);
}

int segment_reserve(uint64_t offset, size_t bytes, uint8_t **out)
{
    struct pginfo_s before, after;

    if (offset % seg_page != 0 || bytes % seg_page != 0 || bytes == 0 || offset < seg_first ||
        offset > seg_size || bytes > seg_size - offset)
        return -ERANGE;
    mm_pginfo(&before);
    mm_pgreserve(seg_base + offset, bytes);
    mm_pginfo(&after);
    if (before.nfree - after.nfree != bytes / seg_page)
        return -EBUSY;
    *out = seg_base + offset;
    return 0;
}

void segment_free(uint8_t *run, size_t bytes)
{
    /* Drop the region's mapping: the run is a hole of the reservation
     * again.  MAP_FIXED replaces it in one step. */
    void *m =
        mmap(run, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (m == MAP_FAILED)
        log_err("segment: cannot unmap a freed run: %s", strerror(errno));
    mm_pgfree((uintptr_t)run, (unsigned int)(bytes / seg_page));
}

int segment_map(uint8_t *run, size_t bytes, int fd)
{
    void *m = mmap(run, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) {
        int err = -errno;
        mmap(run, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        return err;
    }
    return 0;
}

uint64_t segment_largest_free(void)
{
    struct pginfo_s info;
    mm_pginfo(&info);
    return (uint64_t)info.mxfree * info.pagesize;
}

uint64_t segment_offset(const uint8_t *run)
{
    return (uint64_t)(run - seg_base);
}
