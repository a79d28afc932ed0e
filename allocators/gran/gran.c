/*
 * gran.c - the granule allocator: runs of fixed-size granules out of one
 * block of memory, tracked by a bitmap (see mm/gran.h).
 *
 * Memory given to gran_initialize:
 *
 *   heapstart   (aligned to the state)         (aligned to max(granule, align))
 *   | pad | struct gran_s | bitmap words ... | pad | granule 0 | granule 1 | ...
 *
 * Bit i of the bitmap (bit i % W of word i / W, W bits per word) is set when
 * granule i is allocated.  The bits past the last granule in the last word
 * are set for good, so no search can ever find them free.
 *
 * The main idea is that every question is answered a word at a time by two
 * scans, "next clear bit at or after i" and "next set bit at or after i",
 * each of which skips whole words with one compare and finds the bit inside
 * a word with one count-trailing-zeros.  First fit is then: find the next
 * clear bit, round it up to the alignment, and look for a set bit within the
 * length wanted; if there is one, start again just past it.  Each restart
 * moves past a set bit that ends a free run, so a search costs
 * O(granules / W + free runs crossed), with no limit on the length of an
 * allocation or the size of the pool.
 *
 * The word is uintptr_t: 16 bits on AVR, 32 on Cortex-M, 64 on the host
 * (MM_CONFIG_GRAN_WORD_BITS overrides it, for tests).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mm/gran.h"
#include "mm_port.h"

/* ---- Bitmap words ------------------------------------------------------ */

/* A bitmap word is a uintptr_t unless the build picks a width (16, 32 or
 * 64), which lets the host test the word sizes of small targets. */
#ifndef MM_CONFIG_GRAN_WORD_BITS
typedef uintptr_t gran_word_t;
#define GRAN__WORD_MAX UINTPTR_MAX
#elif MM_CONFIG_GRAN_WORD_BITS == 16
typedef uint16_t gran_word_t;
#define GRAN__WORD_MAX UINT16_MAX
#elif MM_CONFIG_GRAN_WORD_BITS == 32
typedef uint32_t gran_word_t;
#define GRAN__WORD_MAX UINT32_MAX
#elif MM_CONFIG_GRAN_WORD_BITS == 64
typedef uint64_t gran_word_t;
#define GRAN__WORD_MAX UINT64_MAX
#else
#error "MM_CONFIG_GRAN_WORD_BITS must be 16, 32 or 64"
#endif

#define GRAN__WORD_BITS ((size_t)(sizeof(gran_word_t) * 8u))
#define GRAN__ONES      ((gran_word_t)GRAN__WORD_MAX)

/* Largest log2gran and log2align: shifts of size_t and uintptr_t by them
 * must stay defined, and a granule or alignment must fit in memory. */
#if SIZE_MAX <= 0xffffu
#define GRAN__MAX_LOG2 15u
#else
#define GRAN__MAX_LOG2 30u
#endif

/* "gran" in ASCII, mixed with the state's own address so that a copy of a
 * state, or a stale one at another address, is not taken for a live one. */
#define GRAN__MAGIC ((uintptr_t)0x6772616eu)

/* The allocator's state, at the start of the memory it manages.  Process
 * local: it holds an absolute address (granstart). */
struct gran_s {
    uintptr_t magic;       /* GRAN__MAGIC ^ (uintptr_t)this while live */
    mm_port_lock_t lock;   /* taken by every public call */
    uintptr_t granstart;   /* address of granule 0 */
    size_t ngranules;      /* granules managed */
    size_t nwords;         /* bitmap words in use: ceil(ngranules / W) */
    size_t align_granules; /* allocations start at multiples of this */
    size_t misuse;         /* frees refused (gran_misuse_count) */
    uint8_t log2gran;      /* as given to gran_initialize */
    uint8_t log2align;     /* as given to gran_initialize */
    gran_word_t gat[];     /* the bitmap: set = allocated */
};

_Static_assert(GRAN__WORD_BITS == 16 || GRAN__WORD_BITS == 32 || GRAN__WORD_BITS == 64,
               "the bit helpers handle 16-, 32- and 64-bit words");
_Static_assert(offsetof(struct gran_s, gat) % sizeof(gran_word_t) == 0,
               "the bitmap is word aligned");

/* Index of the lowest set bit; x != 0. */
static inline size_t gran__ctz(gran_word_t x)
{
    MM_PORT_ASSERT(x != 0);
#if defined(__GNUC__) || defined(__clang__)
#if GRAN__WORD_MAX > 0xffffffffu
    return (size_t)__builtin_ctzll((unsigned long long)x);
#elif GRAN__WORD_MAX > 0xffffu
    return (size_t)__builtin_ctzl((unsigned long)x);
#else
    return (size_t)__builtin_ctz((unsigned int)x);
#endif
#else
    size_t n = 0;
    while ((x & 1u) == 0) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* Number of set bits. */
static inline size_t gran__popcount(gran_word_t x)
{
#if defined(__GNUC__) || defined(__clang__)
#if GRAN__WORD_MAX > 0xffffffffu
    return (size_t)__builtin_popcountll((unsigned long long)x);
#elif GRAN__WORD_MAX > 0xffffu
    return (size_t)__builtin_popcountl((unsigned long)x);
#else
    return (size_t)__builtin_popcount((unsigned int)x);
#endif
#else
    size_t n = 0;
    for (; x != 0; x &= x - 1)
        n++;
    return n;
#endif
}

/* Bits [bit, bit + count) of a word; bit < W, 0 < count <= W - bit.  Never
 * shifts by W or more. */
static inline gran_word_t gran__mask(size_t bit, size_t count)
{
    gran_word_t low = GRAN__ONES;
    if (count < GRAN__WORD_BITS)
        low = (gran_word_t)(((gran_word_t)1 << count) - 1u);
    return (gran_word_t)(low << bit);
}

/* Bitmap words for n granules. */
static inline size_t gran__words(size_t n)
{
    return n / GRAN__WORD_BITS + (n % GRAN__WORD_BITS != 0 ? 1u : 0u);
}

/* ---- Bitmap scans ------------------------------------------------------ */

/* The first granule at or after i, below limit (<= ngranules), whose bit
 * equals want (true: allocated); limit if there is none. */
static size_t gran__next(const struct gran_s *g, size_t i, size_t limit, bool want)
{
    if (i >= limit)
        return limit;
    /* Turn the bits we look for into ones; ignore those below i. */
    const gran_word_t flip = want ? 0 : GRAN__ONES;
    size_t w = i / GRAN__WORD_BITS;
    gran_word_t x = (gran_word_t)((g->gat[w] ^ flip) & (GRAN__ONES << (i % GRAN__WORD_BITS)));
    for (;;) {
        if (x != 0) {
            size_t found = w * GRAN__WORD_BITS + gran__ctz(x);
            return found < limit ? found : limit;
        }
        w++;
        if (w * GRAN__WORD_BITS >= limit)
            return limit;
        x = (gran_word_t)(g->gat[w] ^ flip);
    }
}

static inline size_t gran__next_free(const struct gran_s *g, size_t i, size_t limit)
{
    return gran__next(g, i, limit, false);
}

static inline size_t gran__next_used(const struct gran_s *g, size_t i, size_t limit)
{
    return gran__next(g, i, limit, true);
}

/* Set (allocate) or clear (free) the bits of granules [i, i + n). */
static void gran__mark(struct gran_s *g, size_t i, size_t n, bool used)
{
    size_t w = i / GRAN__WORD_BITS;
    size_t bit = i % GRAN__WORD_BITS;
    while (n > 0) {
        size_t take = GRAN__WORD_BITS - bit;
        if (take > n)
            take = n;
        gran_word_t m = gran__mask(bit, take);
        if (used)
            g->gat[w] |= m;
        else
            g->gat[w] &= (gran_word_t)~m;
        n -= take;
        bit = 0;
        w++;
    }
}

/* First fit: the lowest granule index, a multiple of align_granules, that
 * starts n free granules; SIZE_MAX if there is none.  n > 0. */
static size_t gran__find(const struct gran_s *g, size_t n)
{
    const size_t ng = g->ngranules;
    const size_t amask = g->align_granules - 1u;
    size_t i = 0;

    if (n > ng)
        return SIZE_MAX;
    for (;;) {
        i = gran__next_free(g, i, ng);
        if (i >= ng)
            return SIZE_MAX;
        size_t rem = i & amask;
        if (rem != 0) {
            size_t step = amask + 1u - rem;
            if (step >= ng - i)
                return SIZE_MAX;
            i += step;
        }
        if (n > ng - i)
            return SIZE_MAX;
        size_t used = gran__next_used(g, i, i + n);
        if (used == i + n)
            return i;
        i = used + 1u;
    }
}

/* ---- Handles and locking ----------------------------------------------- */

/* The state behind a handle, or NULL if the handle is not a live allocator.
 * A handle must at least point to readable memory. */
static struct gran_s *gran__state(GRAN_HANDLE handle)
{
    struct gran_s *g = handle;
    if (g == NULL || (uintptr_t)handle % _Alignof(struct gran_s) != 0)
        return NULL;
    if (g->magic != (GRAN__MAGIC ^ (uintptr_t)g))
        return NULL;
    return g;
}

/*
 * Validate the handle and take its lock; NULL if either fails.  If the last
 * owner died inside a call, the bitmap is still a bitmap: at worst some
 * granules of an allocation or free in progress stay marked allocated
 * (leaked), which no later call can mistake for anything else; so take the
 * lock over and go on.
 */
static struct gran_s *gran__lock(GRAN_HANDLE handle)
{
    struct gran_s *g = gran__state(handle);
    if (g == NULL)
        return NULL;
    int rc = mm_port_lock(&g->lock);
    if (rc < 0)
        return NULL;
#if MM_CONFIG_MULTIPROCESS /* elsewhere no owner dies holding it */
    if (rc == MM_PORT_LOCKED_OWNER_DIED)
        mm_port_lock_mark_consistent(&g->lock);
#endif
    return g;
}

static void gran__unlock(struct gran_s *g)
{
    mm_port_unlock(&g->lock);
}

/* Bytes of the pool: granule 0 to the end of the last granule. */
static inline size_t gran__pool_bytes(const struct gran_s *g)
{
    return g->ngranules << g->log2gran;
}

/* Granules needed for size bytes (no overflow for any size). */
static inline size_t gran__granules(const struct gran_s *g, size_t size)
{
    size_t gmask = ((size_t)1 << g->log2gran) - 1u;
    return (size >> g->log2gran) + ((size & gmask) != 0 ? 1u : 0u);
}

/* Where granule 0 goes when a bitmap for n granules starts at bitmap, or 0
 * if n granules of 1 << log2gran bytes do not fit before end after it.
 * Granule 0 is aligned to 1 << log2first. */
static uintptr_t gran__first_granule(uintptr_t bitmap, uintptr_t end, size_t n, unsigned log2gran,
                                     unsigned log2first)
{
    const uintptr_t amask = ((uintptr_t)1 << log2first) - 1u;
    const size_t bytes = gran__words(n) * sizeof(gran_word_t);
    if (n == 0 || bitmap > end || bytes > end - bitmap)
        return 0;
    const uintptr_t bitmap_end = bitmap + bytes;
    if (bitmap_end > UINTPTR_MAX - amask)
        return 0;
    const uintptr_t first = (bitmap_end + amask) & ~amask;
    if (first >= end || ((size_t)(end - first) >> log2gran) < n)
        return 0;
    return first;
}

/* ---- Public interface -------------------------------------------------- */

/*
 * Make an allocator in [heapstart, heapstart + heapsize): the state at the
 * first suitably aligned address, the bitmap after it, granule 0 at the next
 * multiple of max(granule, 1 << log2align), as many granules as fit.
 * O(granules / W).  Not thread safe against other calls on the same memory.
 */
GRAN_HANDLE gran_initialize(void *heapstart, size_t heapsize, uint8_t log2gran, uint8_t log2align)
{
    if (heapstart == NULL || log2gran > GRAN__MAX_LOG2 || log2align > GRAN__MAX_LOG2)
        return NULL;

    const uintptr_t start = (uintptr_t)heapstart;
    if (heapsize > UINTPTR_MAX - start)
        return NULL;
    const uintptr_t end = start + heapsize;

    const uintptr_t smask = (uintptr_t) _Alignof(struct gran_s) - 1u;
    if (start > UINTPTR_MAX - smask)
        return NULL;
    const uintptr_t state = (start + smask) & ~smask;
    const size_t hdr = offsetof(struct gran_s, gat);
    if (state > end || end - state <= hdr)
        return NULL;

    /* The most granules that fit after a bitmap covering them (the end of
     * the granules only grows with their number, so a binary search finds
     * it in O(log) steps). */
    const size_t room = (size_t)(end - state) - hdr;
    const unsigned log2first = log2align > log2gran ? log2align : log2gran;
    size_t lo = 0, hi = room >> log2gran;
    while (lo < hi) {
        size_t mid = hi - (hi - lo) / 2u;
        if (gran__first_granule(state + hdr, end, mid, log2gran, log2first) != 0)
            lo = mid;
        else
            hi = mid - 1u;
    }
    const size_t ngranules = lo;
    if (ngranules == 0)
        return NULL;
    const size_t nwords = gran__words(ngranules);
    const uintptr_t first = gran__first_granule(state + hdr, end, ngranules, log2gran, log2first);

    struct gran_s *g = (struct gran_s *)state;
    memset(g, 0, hdr);
    if (mm_port_lock_init(&g->lock) != 0)
        return NULL;
    g->granstart = first;
    g->ngranules = ngranules;
    g->nwords = nwords;
    g->align_granules = (size_t)1 << (log2first - log2gran);
    g->misuse = 0;
    g->log2gran = log2gran;
    g->log2align = log2align;
    memset(g->gat, 0, g->nwords * sizeof(gran_word_t));
    size_t tail = ngranules % GRAN__WORD_BITS;
    if (tail != 0)
        g->gat[g->nwords - 1u] = (gran_word_t)(GRAN__ONES << tail);
    g->magic = GRAN__MAGIC ^ state;
    return g;
}

/* Destroy the lock and forget the state; later calls with the handle are
 * ignored.  Not to be called while other calls on the handle run. */
void gran_release(GRAN_HANDLE handle)
{
    struct gran_s *g = gran__state(handle);
    if (g == NULL)
        return;
    g->magic = 0;
    mm_port_lock_destroy(&g->lock);
}

/*
 * Round [start, start + size) out to whole granules and mark them allocated,
 * all or nothing.  O(granules / W) at worst.
 */
void *gran_reserve(GRAN_HANDLE handle, uintptr_t start, size_t size)
{
    struct gran_s *g = gran__lock(handle);
    if (g == NULL)
        return NULL;

    void *result = NULL;
    const size_t pool = gran__pool_bytes(g);
    if (size != 0 && start >= g->granstart && start - g->granstart < pool &&
        size <= pool - (size_t)(start - g->granstart)) {
        const size_t offset = (size_t)(start - g->granstart);
        const size_t first = offset >> g->log2gran;
        const size_t last = (offset + size - 1u) >> g->log2gran;
        const size_t n = last - first + 1u;
        if (gran__next_used(g, first, first + n) == first + n) {
            gran__mark(g, first, n, true);
            result = (void *)(g->granstart + (first << g->log2gran));
        }
    }
    gran__unlock(g);
    return result;
}

/*
 * First fit of ceil(size / granule) granules at an aligned granule index.
 * O(granules / W + free runs crossed).
 */
void *gran_alloc(GRAN_HANDLE handle, size_t size)
{
    if (size == 0)
        return NULL;
    struct gran_s *g = gran__lock(handle);
    if (g == NULL)
        return NULL;

    void *result = NULL;
    const size_t n = gran__granules(g, size);
    const size_t i = gran__find(g, n);
    if (i != SIZE_MAX) {
        gran__mark(g, i, n, true);
        result = (void *)(g->granstart + (i << g->log2gran));
    }
    gran__unlock(g);
    return result;
}

/*
 * Check that every granule of [memory, memory + size) lies in the pool and
 * is allocated, then clear them; otherwise count the misuse and change
 * nothing.  O(n / W) for n granules.
 */
void gran_free(GRAN_HANDLE handle, void *memory, size_t size)
{
    if (memory == NULL)
        return;
    struct gran_s *g = gran__lock(handle);
    if (g == NULL)
        return;

    const uintptr_t addr = (uintptr_t)memory;
    const size_t pool = gran__pool_bytes(g);
    const size_t gmask = ((size_t)1 << g->log2gran) - 1u;
    bool ok = false;
    if (size != 0 && addr >= g->granstart && addr - g->granstart < pool) {
        const size_t offset = (size_t)(addr - g->granstart);
        if ((offset & gmask) == 0 && size <= pool - offset) {
            const size_t first = offset >> g->log2gran;
            const size_t n = gran__granules(g, size);
            if (gran__next_free(g, first, first + n) == first + n) {
                gran__mark(g, first, n, false);
                ok = true;
            }
        }
    }
    if (!ok)
        g->misuse++;
    gran__unlock(g);
}

/* Counts from the bitmap.  O(granules / W + free runs). */
void gran_info(GRAN_HANDLE handle, struct graninfo_s *info)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof(*info));
    struct gran_s *g = gran__lock(handle);
    if (g == NULL)
        return;

    size_t nfree = 0;
    for (size_t w = 0; w < g->nwords; w++)
        nfree += GRAN__WORD_BITS - gran__popcount(g->gat[w]);

    size_t mxfree = 0;
    size_t i = 0;
    while (i < g->ngranules) {
        size_t run = gran__next_free(g, i, g->ngranules);
        if (run >= g->ngranules)
            break;
        i = gran__next_used(g, run, g->ngranules);
        if (i - run > mxfree)
            mxfree = i - run;
    }

    info->log2gran = g->log2gran;
    info->log2align = g->log2align;
    info->ngranules = g->ngranules;
    info->nfree = nfree;
    info->mxfree = mxfree;
    gran__unlock(g);
}

/* Frees refused since gran_initialize; 0 for a bad handle. */
size_t gran_misuse_count(GRAN_HANDLE handle)
{
    struct gran_s *g = gran__lock(handle);
    if (g == NULL)
        return 0;
    size_t n = g->misuse;
    gran__unlock(g);
    return n;
}
