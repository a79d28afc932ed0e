/*
 * heap_cache.c - a small per-thread cache of freed blocks, so that most
 * malloc/free pairs touch neither the heap lock nor the free lists.
 *
 * Why: the heap lock is a robust process-shared mutex; its two atomic
 * operations per call cost more than the allocator itself, and they stop the
 * CPU from overlapping the cache misses of consecutive calls.  glibc avoids
 * the same cost with its tcache; this is the shared-memory equivalent.
 *
 * How: mm_free of a block below 8 KiB marks its chunk MM__CACHED_BIT (it
 * stays allocated in the chunk chain, so nobody else can take or merge it),
 * writes the cache link and the owner id into the block's first bytes, and
 * pushes it on a per-thread bin of its size class.  mm_malloc pops a block
 * from the bin of its class (or the next one) without a lock.  The bins are
 * process-local (thread-local storage); only offsets and the owner id are
 * written into shared memory, so nothing process-local leaks into it.
 *
 * Bounds: at most MM__CACHE_DEPTH blocks per class and h->cache_cap bytes
 * per thread and heap.  Whatever is cached goes back to the heap:
 *   - when the thread exits, detaches the heap, or asks for diagnostics
 *     (mm_mallinfo, mm_memdump, mm_checkcorruption, mm_heap_stats);
 *   - when a malloc finds no memory (the thread's own cache first);
 *   - when the process died: mm_reclaim_owner(heap, owner) frees every block
 *     cached under that owner id (mmsrvd calls it when a client goes away).
 * After fork() the child starts with empty caches: the inherited bins name
 * blocks that stay the parent's.
 *
 * Validation: a block is cached only if it passes the free path's checks
 * (allocated, not cached, sane size, the next chunk's prev_size agreeing);
 * a popped block is checked again, since shared memory may have changed.
 * A concurrent double free of one pointer from two threads is not caught
 * here (glibc's tcache has the same blind spot); a sequential one is.
 */
#include "heap_cache.h"

#if MM_CONFIG_CACHE

MM_PORT_THREAD_LOCAL struct mm__thread_cache *mm__tcache;
uint32_t mm__owner_gen;

/* ---- Finding this thread's cache of a heap -------------------------------- */

static bool mm__cache_valid(const struct mm__cache *k)
{
    return k->h != NULL && k->gen == k->h->gen && k->h->in_use != 0 &&
           k->fork_gen == mm_port_fork_generation();
}

static void mm__cache_forget(struct mm__cache *k)
{
    memset(k, 0, sizeof(*k));
}

static void mm__cache_flush(struct mm__cache *k);

static void mm__cache_thread_exit(void)
{
    struct mm__thread_cache *tc = mm__tcache;
    if (tc == NULL)
        return;
    for (unsigned i = 0; i < MM__CACHE_HEAPS; i++)
        if (mm__cache_valid(&tc->heaps[i]))
            mm__cache_flush(&tc->heaps[i]);
    mm__tcache = NULL;
    mm_port_local_free(tc, sizeof(*tc));
}

static void mm__cache_tables(struct mm__thread_cache *tc)
{
    for (unsigned u = 0; u < MM__CACHE_UNITS; u++)
        tc->bin_of[u] = (uint8_t)mm__class((mmsize_t)(u << MM__ALIGN_LOG2));
}

/* Slow path of mm__cache_mine: find or bind an entry for h, with the owner
 * id of now.  Keeps the most recently used heap in entry 0, where the fast
 * path looks first. */
struct mm__cache *mm__cache_bind(struct mm_heap_s *h, bool create)
{
    struct mm__thread_cache *tc = mm__tcache;
    if (tc == NULL) {
        if (!create || h->cache_cap == 0)
            return NULL;
        tc = mm_port_local_alloc(sizeof(*tc));
        if (tc == NULL)
            return NULL;
        mm__cache_tables(tc);
        mm__tcache = tc;
        mm_port_on_thread_exit(mm__cache_thread_exit);
    }
    int found = -1;
    for (unsigned i = 0; i < MM__CACHE_HEAPS; i++) {
        struct mm__cache *k = &tc->heaps[i];
        if (k->h != NULL && !mm__cache_valid(k))
            mm__cache_forget(k); /* released handle, or inherited through fork */
        else if (k->h == h)
            found = (int)i;
    }
    if (found < 0) {
        if (!create || h->cache_cap == 0)
            return NULL;
        /* Make room in the last entry, then shift it to the front. */
        struct mm__cache *last = &tc->heaps[MM__CACHE_HEAPS - 1u];
        if (last->h != NULL)
            mm__cache_flush(last);
        mm__cache_forget(last);
        last->h = h;
        last->gen = h->gen;
        last->fork_gen = mm_port_fork_generation();
        found = (int)MM__CACHE_HEAPS - 1;
    }
    struct mm__cache *k = &tc->heaps[found];
    uint32_t epoch = mm__cache_epoch();
    if (k->epoch != epoch || k->owner == 0) { /* owner 0: a new entry */
        k->owner = mm__owner();
        k->epoch = epoch;
    }
    if (found > 0) {
        struct mm__cache tmp = tc->heaps[found];
        memmove(&tc->heaps[1], &tc->heaps[0], (size_t)found * sizeof(tmp));
        tc->heaps[0] = tmp;
    }
    return &tc->heaps[0];
}

/* ---- Giving blocks back ---------------------------------------------------- */

/* Whether the chunk at off is a cached chunk that a bin may name: inside
 * region 0 (the only one cached), both flags set, its size inside the
 * region and the next chunk agreeing.  Shared memory may have changed since
 * the block was cached. */
static bool mm__cached_ok(const struct mm_heap_s *h, size_t off)
{
    if (off - h->r0_start >= h->r0_end - h->r0_start || (off & (MM__ALIGN - 1u)) != 0)
        return false;
    const struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = mm__word(&c->size), size = (mmsize_t)(raw & MM__SIZE_MASK);
    return (raw & (MM__ALLOC_BIT | MM__CACHED_BIT)) == (MM__ALLOC_BIT | MM__CACHED_BIT) &&
           size >= MM__MINCHUNK && size <= h->r0_end - off &&
           mm__word(&mm__chunk(h, off + size)->prev_size) == size;
}

/* Taking a block from a cache takes no lock, and the owner word a push
 * wrote is the first thing the block's new user may write over.  So a walk
 * that saw the cached bit and then reads the owner word may read user data,
 * data that can equal some owner id (a pid): mm_reclaim_owner would free a
 * block in use.  Reading the cached bit again afterwards is not enough:
 * meanwhile the block may have been taken, written and cached again.
 * Hence the probe bit: the walk sets it with a compare-and-swap, reads the
 * owner word, and clears it with a second compare-and-swap.  Only walks set
 * it (one at a time: they hold the lock) and every take and push stores
 * the size word without it, so the second swap succeeds exactly when no
 * take or push came between the two, and the owner word read between them
 * is the one the block's last push wrote.  A take stores its size word
 * before its user writes (the fence in mm__cache_pop), so a read of user
 * data implies a failed swap. */
bool mm__cached_owner(const struct mm_heap_s *h, size_t off, uint32_t *owner)
{
    const mmsize_t both = MM__ALLOC_BIT | MM__CACHED_BIT;
    struct mm__chunk *c = mm__chunk(h, off);
    mmsize_t raw = mm__word_acquire(&c->size), plain, probed;
    do {
        if ((raw & both) != both)
            return false;
        plain = (mmsize_t)(raw & ~MM__PROBE_BIT); /* a dead walk's bit goes too */
        probed = (mmsize_t)(plain | MM__PROBE_BIT);
    } while (!__atomic_compare_exchange_n(&c->size, &raw, probed, false, __ATOMIC_ACQUIRE,
                                          __ATOMIC_ACQUIRE));
    mmsize_t who = mm__word(&c->prev);
    MM__FENCE(ACQUIRE);
    if (!__atomic_compare_exchange_n(&c->size, &probed, plain, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return false; /* taken meanwhile: in use, whatever the word said */
    *owner = (uint32_t)who;
    return true;
}

/* Under the lock: return the cached chunk at off to the free lists. */
static void mm__uncache_locked(struct mm_heap_s *h, size_t off)
{
    struct mm__chunk *c = mm__chunk(h, off);
    mm__set_word(&c->size, (mmsize_t)(mm__word(&c->size) & ~MM__CACHED_BIT));
    if (mm__free_chunk(h, off) != MM__DONE && mm__rebuild(h, false))
        (void)mm__free_chunk(h, off);
}

static void mm__cache_flush(struct mm__cache *k)
{
    struct mm_heap_s *h = k->h;
    if (mm__lock(h) == 0) {
        struct mm__header *hd = mm__hdr(h);
        if (hd->state == MM__STATE_OK) {
            for (unsigned bin = 0; bin < MM__CACHE_BINS; bin++) {
                size_t off = k->head[bin];
                for (unsigned i = 0; i < k->n[bin] && off != 0; i++) {
                    if (!mm__cached_ok(h, off))
                        break; /* overwritten: the rest of the bin stays lost */
                    size_t next = mm__chunk(h, off)->next;
                    mm__uncache_locked(h, off);
                    off = next;
                }
            }
        }
        hd->stats.mallocs += k->mallocs;
        hd->stats.frees += k->frees;
        mm__leave(h);
    }
    memset(k->head, 0, sizeof(k->head));
    memset(k->n, 0, sizeof(k->n));
    k->bytes = 0;
    k->mallocs = 0;
    k->frees = 0;
}

/* Every handle this thread holds on the same memory counts: a test or a
 * program may map one heap twice. */
size_t mm__cache_flush_mine(struct mm_heap_s *h)
{
    struct mm__thread_cache *tc = mm__tcache;
    size_t bytes = 0;
    for (unsigned i = 0; tc != NULL && i < MM__CACHE_HEAPS; i++) {
        struct mm__cache *k = &tc->heaps[i];
        if (mm__cache_valid(k) && (k->h == h || k->h->base == h->base)) {
            bytes += k->bytes;
            mm__cache_flush(k);
        }
    }
    return bytes;
}

void mm__cache_drop_mine(struct mm_heap_s *h)
{
    struct mm__cache *k = mm__cache_bind(h, false);
    if (k != NULL)
        mm__cache_forget(k);
}

void mm_cache_flush(struct mm_heap_s *h)
{
    if (h != NULL && h->in_use != 0)
        mm__cache_flush_mine(h);
}

void mm_cache_limit(struct mm_heap_s *h, size_t bytes)
{
    if (h == NULL || h->in_use == 0)
        return;
    mm__cache_flush_mine(h);
    h->cache_cap = bytes;
}

size_t mm_reclaim_owner(struct mm_heap_s *h, uint32_t owner)
{
    if (h == NULL)
        return 0;
    if (mm__enter(h) != 0)
        return (size_t)-1; /* refused: mm_last_error says why */
    struct mm__header *hd = mm__hdr(h);
    size_t reclaimed = 0;
    uint32_t n = hd->nregions;
    for (unsigned i = 0; i < n && i < MM_CONFIG_REGIONS; i++) {
        size_t start, end;
        if (!mm__region_bounds(h, i, &start, &end))
            continue;
        size_t off = start, prev_off = 0;
        while (off < end) {
            struct mm__chunk *c = mm__chunk(h, off);
            mmsize_t size = mm__size_of(c);
            if (size < MM__MINCHUNK || size > end - off)
                break;
            /* Other threads cache and take blocks meanwhile. */
            uint32_t who;
            if (mm__cached_owner(h, off, &who) && who == owner) {
                /* Freeing merges it with a free previous chunk, if any:
                 * the walk goes on from the chunk that now holds it. */
                bool into_prev = prev_off != 0 && !mm__is_alloc(mm__chunk(h, prev_off));
                mm__uncache_locked(h, off);
                reclaimed++;
                if (into_prev)
                    off = prev_off;
                size = mm__size_of(mm__chunk(h, off));
            }
            prev_off = off;
            off += size;
        }
    }
    mm__leave(h);
    return reclaimed;
}

#else /* !MM_CONFIG_CACHE */

void mm_cache_flush(struct mm_heap_s *h)
{
    (void)h;
}

void mm_cache_limit(struct mm_heap_s *h, size_t bytes)
{
    (void)h, (void)bytes;
}

size_t mm_reclaim_owner(struct mm_heap_s *h, uint32_t owner)
{
    (void)h, (void)owner;
    return 0;
}

#endif /* MM_CONFIG_CACHE */
