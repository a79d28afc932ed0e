/*
 * heap_walk.c - everything that looks at every chunk: mm_mallinfo,
 * mm_checkcorruption and mm_memdump.
 *
 * One walker serves all three.  It follows each region's chain by size,
 * checking each step against the region's bounds, counts what mm_mallinfo
 * reports, and calls a visitor per chunk; a step that leaves the region ends
 * the walk of that region and counts as a problem.  All run under the lock
 * and take O(chunks).
 */
#include "heap_internal.h"

typedef bool (*mm__visit_fn)(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg);

/* What a walk counts as it goes: mm_mallinfo's figures (so that every walk
 * can tell how many free chunks the chain has) and the chain's problems. */
struct mm__tally {
    struct mm_mallinfo_s mi;
    int problems;
};

/* Walk every region, counting chunks into *t and chain problems (bad sizes,
 * prev_size mismatches, missing sentinels); visit (may be NULL) sees each
 * chunk and stops the walk by returning false. */
static void mm__walk(struct mm_heap_s *h, struct mm__tally *t, mm__visit_fn visit, void *arg)
{
    struct mm__header *hd = mm__hdr(h);
    uint32_t n = hd->nregions;
    if (n == 0 || n > MM_CONFIG_REGIONS) {
        t->problems++;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        size_t start, end;
        if (!mm__region_bounds(h, i, &start, &end)) {
            t->problems++;
            continue;
        }
        t->mi.arena += end + MM__HDR - start;
        size_t off = start;
        mmsize_t prev = 0;
        bool prev_free = false;
        while (off < end) {
            const struct mm__chunk *c = mm__chunk(h, off);
            mmsize_t size = mm__size_of(c);
            bool is_free = !mm__is_alloc(c);
            if (size < MM__MINCHUNK || size > end - off) {
                t->problems++;
                break;
            }
            if (mm__word(&c->prev_size) != prev || (prev_free && is_free))
                t->problems++; /* stale prev_size, or two free chunks side by side */
            if (is_free) {
                t->mi.ordblks++;
                t->mi.fordblks += size;
                if (size > t->mi.mxordblk)
                    t->mi.mxordblk = size;
            } else {
                t->mi.aordblks++;
                t->mi.uordblks += size;
            }
            if (visit != NULL && !visit(h, off, c, arg))
                return;
            prev_free = is_free;
            prev = size;
            off += size;
        }
        /* off > end cannot be: no step goes past end */
        const struct mm__chunk *sentinel = mm__chunk(h, end);
        if (off == end &&
            (mm__word(&sentinel->size) != MM__ALLOC_BIT || mm__word(&sentinel->prev_size) != prev))
            t->problems++;
    }
}

/* Give back this thread's cached blocks (so that they count as free) and
 * lock h; a broken heap is refused unless broken_ok.  false: not locked. */
static bool mm__walk_lock(struct mm_heap_s *h, bool broken_ok)
{
    if (h == NULL || h->in_use == 0)
        return false;
    mm__cache_flush_mine(h);
    return (broken_ok ? mm__lock(h) : mm__enter(h)) == 0;
}

/* ---- mm_mallinfo ------------------------------------------------------------ */

struct mm_mallinfo_s mm_mallinfo(struct mm_heap_s *h)
{
    struct mm__tally t;
    memset(&t, 0, sizeof(t));
    if (mm__walk_lock(h, false)) {
        mm__walk(h, &t, NULL, NULL);
        mm__leave(h);
    }
    return t.mi;
}

/* ---- mm_checkcorruption ---------------------------------------------------- */

#if MM_CONFIG_DEBUG
/* Debug builds: every allocated chunk's guard is whole. */
static bool mm__check_guard(struct mm_heap_s *h, size_t off, const struct mm__chunk *c, void *arg)
{
    if (mm__is_alloc(c) && !mm__debug_guard_ok(h, off))
        (*(int *)arg)++;
    return true;
}
#define MM__CHECK_VISIT mm__check_guard
#else
#define MM__CHECK_VISIT NULL
#endif

/* Every list entry is a free chunk of the list's class, linked both ways;
 * the bitmaps say which lists are non-empty; the lists hold as many chunks
 * as the chain has free ones.  Bounded by that count, so a cycle ends. */
static int mm__check_lists(struct mm_heap_s *h, size_t free_chunks)
{
    struct mm__header *hd = mm__hdr(h);
    int problems = 0;
    size_t seen = 0;
    for (unsigned cls = 0; cls < MM__CLASSES; cls++) {
        unsigned fl = cls >> MM__SL_LOG2, sl = cls & (MM__SL_COUNT - 1u);
        if (sl == 0 && ((hd->fl_bitmap >> fl) & 1u) != (hd->sl_bitmap[fl] != 0))
            problems++;
        size_t off = hd->heads[cls], prev = 0;
        if (((hd->sl_bitmap[fl] >> sl) & 1u) != (off != 0))
            problems++;
        while (off != 0) {
            size_t rs, re;
            if (!mm__off_ok(h, off) || mm__region_of(h, off, &rs, &re) < 0 || seen > free_chunks) {
                problems++;
                break;
            }
            const struct mm__chunk *c = mm__chunk(h, off);
            if (mm__is_alloc(c) || mm__class(mm__size_of(c)) != cls || c->prev != prev)
                problems++;
            seen++;
            prev = off;
            off = c->next;
        }
    }
    if (seen != free_chunks)
        problems++;
    return problems;
}

int mm_checkcorruption(struct mm_heap_s *h)
{
    if (!mm__walk_lock(h, true))
        return 1;
    struct mm__tally t;
    memset(&t, 0, sizeof(t));
    t.problems = mm__hdr(h)->state != MM__STATE_OK;
    mm__walk(h, &t, MM__CHECK_VISIT, &t.problems);
    if (t.problems == 0)
        t.problems = mm__check_lists(h, t.mi.ordblks);
    mm__leave(h);
    return t.problems;
}

/* ---- mm_memdump ---------------------------------------------------------------- */

struct mm__dump {
    struct mm__tally t;
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
    /* Other threads cache and take blocks while the walk runs: a block
     * taken from a cache meanwhile counts as allocated. */
    b.cached = mm__cached_owner(h, off, &b.owner);
    b.allocated = mm__is_alloc(c) && !b.cached;
    uint32_t kind = b.cached ? MM_DUMP_CACHED : b.allocated ? MM_DUMP_ALLOCATED : MM_DUMP_FREE;
    if (!(d->filter.kinds & kind))
        return true;
    if (b.cached) {
        b.mem = mm__base(h) + off + MM__USER_OFFSET;
        b.size = mm__usable_size(h, off);
    } else if (b.allocated) {
        b.mem = mm__base(h) + off + MM__USER_OFFSET;
        b.size = mm__usable_size(h, off);
#if MM_CONFIG_DEBUG
        const struct mm__debug_rec *rec = (const void *)(mm__base(h) + off + MM__HDR);
        b.owner = rec->owner;
        b.seq = rec->seq;
        b.line = rec->line;
        memcpy(b.file, rec->file, sizeof(b.file));
        b.file[sizeof(b.file) - 1] = '\0';
#endif
    } else {
        b.mem = mm__base(h) + off + MM__HDR;
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
    struct mm__dump d;
    memset(&d, 0, sizeof(d));
    if (fn == NULL || !mm__walk_lock(h, false))
        return 0;
    d.filter.kinds = MM_DUMP_ALLOCATED;
    if (filter != NULL)
        d.filter = *filter;
    d.fn = fn;
    d.arg = arg;
    mm__walk(h, &d.t, mm__dump_chunk, &d);
    mm__leave(h);
    return d.reported;
}
