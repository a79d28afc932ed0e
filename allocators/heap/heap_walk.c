/*
 * heap_walk.c - everything that looks at every chunk: mm_mallinfo,
 * mm_checkcorruption and mm_memdump.
 *
 * One walker serves all three.  It follows each region's chain by size,
 * checking each step against the region's bounds, and calls a visitor per
 * chunk; a step that leaves the region ends the walk of that region and
 * counts as a problem.  All run under the lock and take O(chunks).
 */
#include "heap_internal.h"

typedef bool (*mm__visit_fn)(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg);

/* Walk every region.  Returns the number of chain problems found (bad
 * sizes, prev_size mismatches, missing sentinels); stops early when visit
 * returns false. */
static int mm__walk(struct mm_heap_s *h, mm__visit_fn visit, void *arg)
{
    struct mm__header *hd = mm__hdr(h);
    uint32_t n = hd->nregions;
    int problems = 0;
    if (n == 0 || n > MM_CONFIG_REGIONS)
        return 1;
    for (unsigned i = 0; i < n; i++) {
        size_t start, end;
        if (!mm__region_bounds(h, i, &start, &end)) {
            problems++;
            continue;
        }
        size_t off = start;
        mmsize_t prev = 0;
        bool prev_free = false;
        while (off < end) {
            const struct mm__chunk *c = mm__chunk(h, off);
            mmsize_t size = mm__size_of(c);
            if (size < MM__MINCHUNK || size > end - off) {
                problems++;
                break;
            }
            if (c->prev_size != prev)
                problems++;
            if (prev_free && !mm__is_alloc(c))
                problems++; /* two free chunks side by side */
            if (visit != NULL && !visit(h, off, c, arg))
                return problems;
            prev_free = !mm__is_alloc(c);
            prev = size;
            off += size;
        }
        if (off == end) {
            const struct mm__chunk *sentinel = mm__chunk(h, end);
            if (sentinel->size != MM__ALLOC_BIT || sentinel->prev_size != prev)
                problems++;
        } else if (off > end) {
            problems++;
        }
    }
    return problems;
}

/* ---- mm_mallinfo ------------------------------------------------------------ */

static bool mm__count(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg)
{
    (void)h, (void)off;
    struct mm_mallinfo_s *mi = arg;
    size_t size = mm__size_of(c);
    if (mm__is_alloc(c)) {
        mi->aordblks++;
        mi->uordblks += size;
    } else {
        mi->ordblks++;
        mi->fordblks += size;
        if (size > mi->mxordblk)
            mi->mxordblk = size;
    }
    return true;
}

struct mm_mallinfo_s mm_mallinfo(struct mm_heap_s *h)
{
    struct mm_mallinfo_s mi;
    memset(&mi, 0, sizeof(mi));
    if (h == NULL || h->in_use == 0)
        return mi;
    mm__cache_flush_mine(h);
    if (mm__enter(h) != 0)
        return mi;
    struct mm__header *hd = mm__hdr(h);
    for (unsigned i = 0; i < hd->nregions && i < MM_CONFIG_REGIONS; i++) {
        size_t s, e;
        if (mm__region_bounds(h, i, &s, &e))
            mi.arena += e + MM__HDR - s;
    }
    (void)mm__walk(h, mm__count, &mi);
    mm__leave(h);
    return mi;
}

/* ---- mm_checkcorruption ---------------------------------------------------- */

struct mm__check {
    size_t free_chunks;
    int problems;
};

static bool mm__check_chunk(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg)
{
    struct mm__check *ck = arg;
    if (!mm__is_alloc(c))
        ck->free_chunks++;
    else if (!mm__debug_guard_ok(h, off))
        ck->problems++;
    return true;
}

/* Every list entry is a free chunk of the list's class, linked both ways;
 * the bitmaps say which lists are non-empty; the lists hold as many chunks
 * as the chain has free ones.  Bounded by that count, so a cycle ends. */
static int mm__check_lists(struct mm_heap_s *h, size_t free_chunks)
{
    struct mm__header *hd = mm__hdr(h);
    int problems = 0;
    size_t seen = 0;
    for (unsigned fl = 0; fl < MM__FL_COUNT; fl++) {
        if (((hd->fl_bitmap >> fl) & 1u) != (hd->sl_bitmap[fl] != 0))
            problems++;
        for (unsigned sl = 0; sl < MM__SL_COUNT; sl++) {
            size_t off = hd->heads[fl][sl], prev = 0;
            if (((hd->sl_bitmap[fl] >> sl) & 1u) != (off != 0))
                problems++;
            while (off != 0) {
                size_t rs, re;
                if (!mm__off_ok(h, off) || mm__region_of(h, off, &rs, &re) < 0 ||
                    seen > free_chunks) {
                    problems++;
                    break;
                }
                const struct mm__chunk *c = mm__chunk(h, off);
                unsigned cfl, csl;
                mm__mapping(mm__size_of(c), &cfl, &csl);
                if (mm__is_alloc(c) || cfl != fl || csl != sl || c->prev != prev)
                    problems++;
                seen++;
                prev = off;
                off = c->next;
            }
        }
    }
    if (seen != free_chunks)
        problems++;
    return problems;
}

int mm_checkcorruption(struct mm_heap_s *h)
{
    if (h == NULL || h->in_use == 0)
        return 1;
    mm__cache_flush_mine(h);
    if (mm__lock(h) != 0)
        return 1;
    struct mm__header *hd = mm__hdr(h);
    struct mm__check ck = {0, 0};
    int problems = hd->state != MM__STATE_OK ? 1 : 0;
    problems += mm__walk(h, mm__check_chunk, &ck);
    problems += ck.problems;
    if (problems == 0)
        problems += mm__check_lists(h, ck.free_chunks);
    mm__leave(h);
    return problems;
}

/* ---- mm_memdump ---------------------------------------------------------------- */

struct mm__dump {
    struct mm_dump_filter filter;
    mm_dump_fn fn;
    void *arg;
    size_t reported;
};

static bool mm__dump_chunk(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg)
{
    struct mm__dump *d = arg;
    struct mm_block_info b;
    memset(&b, 0, sizeof(b));
    b.allocated = mm__is_alloc(c);
    if (!(d->filter.kinds & (b.allocated ? MM_DUMP_ALLOCATED : MM_DUMP_FREE)))
        return true;
    if (b.allocated) {
        b.mem = h->base + off + MM__USER_OFFSET;
        b.size = mm__usable_size(h, off);
#if MM_CONFIG_DEBUG
        const struct mm__debug_rec *rec = (const void *)(h->base + off + MM__HDR);
        b.owner = rec->owner;
        b.seq = rec->seq;
        b.line = rec->line;
        memcpy(b.file, rec->file, sizeof(b.file));
        b.file[sizeof(b.file) - 1] = '\0';
#endif
    } else {
        b.mem = h->base + off + MM__HDR;
        b.size = (size_t)mm__size_of(c) - MM__HDR;
    }
    if (d->filter.owner != 0 && b.owner != d->filter.owner)
        return true;
    if ((d->filter.seq_min | d->filter.seq_max) != 0 &&
        (b.seq < d->filter.seq_min || b.seq > d->filter.seq_max))
        return true;
    d->reported++;
    return d->fn(d->arg, &b);
}

size_t mm_memdump(struct mm_heap_s *h, const struct mm_dump_filter *filter, mm_dump_fn fn,
                  void *arg)
{
    if (h == NULL || fn == NULL || h->in_use == 0)
        return 0;
    mm__cache_flush_mine(h);
    if (mm__enter(h) != 0)
        return 0;
    struct mm__dump d;
    memset(&d, 0, sizeof(d));
    d.filter.kinds = MM_DUMP_ALLOCATED;
    if (filter != NULL)
        d.filter = *filter;
    d.fn = fn;
    d.arg = arg;
    (void)mm__walk(h, mm__dump_chunk, &d);
    mm__leave(h);
    return d.reported;
}
