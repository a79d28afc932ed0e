/*
 * heap_recover.c - rebuilding the free lists from the chunk chain.
 *
 * Runs under the lock when the previous owner died inside a critical
 * section, or when an operation found the lists corrupted.  The chain is the
 * truth (every operation keeps it walkable, see heap_internal.h): walk each
 * region by size, rewrite every prev_size, merge free neighbours that a dead
 * process left unmerged, and link every free chunk afresh.  O(chunks).
 * If the chain itself does not reach a region's sentinel, nothing can be
 * trusted: the heap is marked broken and refuses further work.
 *
 * In debug builds a process that died inside malloc or free may leave an
 * allocated chunk whose record and guard it had not finished writing (or had
 * begun to overwrite with the free fill); after a crash, such records are
 * reset to "unknown" so that the heap checks clean, and counted.
 */
#include "heap_internal.h"

static bool mm__rebuild_region(struct mm_heap_s *h, unsigned i, bool crashed)
{
    size_t start, end;
    if (!mm__region_bounds(h, i, &start, &end))
        return false;

    size_t off = start, run = 0; /* run: offset of a pending free run, or 0 */
    mmsize_t prev = 0, run_size = 0;
    while (off < end) {
        struct mm__chunk *c = mm__chunk(h, off);
        mmsize_t size = mm__size_of(c);
        if (size < MM__MINCHUNK || size > end - off)
            return false;
        if (!mm__is_alloc(c)) {
            if (run == 0) {
                run = off;
                run_size = size;
                mm__set_word(&c->prev_size, prev);
            } else {
                run_size = (mmsize_t)(run_size + size); /* absorbed: stale header stays free */
            }
        } else {
            if (crashed && !mm__debug_guard_ok(h, off)) {
                /* Debug builds: the dead process was writing this record. */
                mm__debug_reset(h, off);
                mm__hdr(h)->stats.records_reset++;
            }
            if (run != 0) {
                mm__set_word(&mm__chunk(h, run)->size, run_size);
                mm__list_insert(h, run, run_size);
                prev = run_size;
                run = 0;
            }
            mm__set_word(&c->prev_size, prev);
            prev = size;
        }
        off += size;
    }
    if (off != end)
        return false;
    if (run != 0) {
        mm__set_word(&mm__chunk(h, run)->size, run_size);
        mm__list_insert(h, run, run_size);
        prev = run_size;
    }
    struct mm__chunk *sentinel = mm__chunk(h, end);
    mm__set_word(&sentinel->prev_size, prev);
    mm__set_word(&sentinel->size, MM__ALLOC_BIT);
    return true;
}

bool mm__rebuild(struct mm_heap_s *h, bool crashed)
{
    struct mm__header *hd = mm__hdr(h);
    hd->fl_bitmap = 0;
    memset(hd->sl_bitmap, 0, sizeof(hd->sl_bitmap));
    memset(hd->heads, 0, sizeof(hd->heads));
    uint32_t n = hd->nregions;
    bool ok = n >= 1 && n <= MM_CONFIG_REGIONS;
    for (unsigned i = 0; ok && i < n; i++)
        ok = mm__rebuild_region(h, i, crashed);
    if (!ok) {
        hd->state = MM__STATE_BROKEN;
        mm__set_error(h, MM_ERR_BROKEN);
    }
    return ok;
}
