/*
 * fuzz_heap.c - fuzz target of the mm heap's shared-memory image (libFuzzer
 * entry point).
 *
 * DESIGN.md invariant 2: any client can scribble over a region, and what
 * the daemon or a library reads from it is bounds-checked.  The input
 * drives four steps:
 *   1. build a heap (size from the input) and run allocations, frees,
 *      reallocs and memaligns on it, freeing some blocks under other owner
 *      ids so that they sit in this thread's cache;
 *   2. copy the image elsewhere, as it is (the copy's cached blocks are
 *      those of owners that died), and release the original;
 *   3. scribble over the copy, header included (not the lock: see below);
 *   4. mm_attach the copy and run what mmsrvd and a client run on it:
 *      mm_checkcorruption, mm_mallinfo, mm_heap_stats, mm_memdump of every
 *      kind, mm_reclaim_owner, allocations and frees of new blocks and of
 *      the pointers of step 1, mm_malloc_size, mm_heapmember; mm_detach.
 * What must hold, whatever the bytes:
 * - nothing reads or writes outside the image (ASan, and the image is a
 *   heap allocation of exactly its size);
 * - every block returned, and every block mm_memdump shows, lies inside
 *   the image with all its bytes, and so does mm_malloc_size's answer;
 * - if mm_checkcorruption found the attached heap sound, it behaves as a
 *   heap: the blocks allocated from then on do not overlap, keep their
 *   contents, are aligned as asked, realloc keeps the bytes, and the heap
 *   is still sound at the end.
 * A violation aborts, which the fuzzer reports with the input.
 *
 * The lock is left as it was: a lock word that names a live thread blocks
 * every locker, and no check can tell that word from one a live locker
 * wrote (see README.md).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "heap_internal.h"
#include "mm/mm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BLOCKS 64

/* Owner ids: of step 1's frees, and of step 4 (never reclaimed: alive). */
static const uint32_t owners[4] = {0, 101, 102, 103};
#define OWNER_LIVE 200u

struct block {
    uint8_t *p;
    size_t n;
    bool tracked; /* allocated in step 4 from a sound heap: contents known */
    uint8_t fill;
};

struct run {
    struct fz in;
    struct mm_heap_s *h;
    uint8_t *img;
    size_t size;
    bool sound; /* mm_checkcorruption found the attached heap sound */
    struct block b[MAX_BLOCKS];
    unsigned nb;
};

static size_t req_size(struct fz *f)
{
    switch (fz_u8(f) & 7u) {
    case 0:
        return 0;
    case 1:
        return fz_u16(f);
    case 2:
        return fz_u32(f);
    default:
        return fz_u8(f) * (size_t)(1u + (fz_u8(f) & 7u));
    }
}

/* The fill of a tracked block: bit 1 set and bit 0 clear in every byte, so
 * that a stale pointer into it never finds a plausible live chunk header
 * (bit 1 is the cached bit, bit 0 the allocated bit). */
static uint8_t fill_of(unsigned k)
{
    return (uint8_t)(0x82u + 4u * (k & 31u));
}

static bool inside(const struct run *r, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->img;
    return a >= b && a - b <= r->size && n <= r->size - (a - b);
}

static void forget(struct run *r, const void *p)
{
    for (unsigned i = 0; i < r->nb; i++)
        if (r->b[i].p == p)
            r->b[i] = r->b[--r->nb];
}

static void check_intact(const struct block *b)
{
    for (size_t j = 0; b->tracked && j < b->n; j++)
        FZ_CHECK(b->p[j] == b->fill);
}

/* A block the heap returned for n bytes: where it may be, what it may
 * overlap; then fill it and keep it. */
static void returned(struct run *r, uint8_t *p, size_t n, size_t align, const uint8_t *keep,
                     size_t nkeep)
{
    FZ_CHECK(inside(r, p, n));
    FZ_CHECK(((uintptr_t)p & (MM_ALIGN - 1u)) == 0);
    size_t usable = mm_malloc_size(r->h, p);
    FZ_CHECK(inside(r, p, usable));
    if (r->sound) {
        FZ_CHECK(usable >= n);
        FZ_CHECK(((uintptr_t)p & (align - 1u)) == 0);
        FZ_CHECK(keep == NULL || memcmp(p, keep, nkeep) == 0);
        for (unsigned i = 0; i < r->nb; i++) {
            const struct block *o = &r->b[i];
            if (o->tracked)
                FZ_CHECK(p + n <= o->p || o->p + o->n <= p || (n == 0 && p != o->p));
        }
    }
    forget(r, p);
    static unsigned serial;
    uint8_t fill = fill_of(serial++);
    memset(p, fill, n);
    if (r->nb < MAX_BLOCKS)
        r->b[r->nb++] = (struct block){p, n, r->sound, fill};
}

static bool dump_fn(void *arg, const struct mm_block_info *blk)
{
    struct run *r = arg;
    FZ_CHECK(inside(r, blk->mem, blk->size));
    FZ_CHECK(!(blk->allocated && blk->cached));
    return true;
}

/* Step 1: a heap with blocks in every state. */
static struct mm_heap_s *build(struct run *r, uint8_t *mem, size_t size)
{
    struct mm_heap_s *h = mm_initialize("fuzz", mem, size);
    if (h == NULL)
        return NULL;
    unsigned nops = fz_u8(&r->in) % 48u;
    for (unsigned i = 0; i < nops; i++) {
        uint8_t op = fz_u8(&r->in);
        struct block *b = r->nb > 0 ? &r->b[fz_u8(&r->in) % r->nb] : NULL;
        void *p = NULL;
        size_t n = 0;
        switch (op % 8u) {
        case 3:
            if (b != NULL) {
                mm_free(h, b->p);
                *b = r->b[--r->nb];
            }
            break;
        case 4:
            mm_set_owner_id(owners[fz_u8(&r->in) & 3u]);
            break;
        case 5:
            if (b != NULL) {
                n = req_size(&r->in) & 0xffffu;
                p = mm_realloc(h, b->p, n);
                if (p != NULL || n == 0)
                    *b = r->b[--r->nb];
            }
            break;
        case 6:
            n = req_size(&r->in) & 0xffffu;
            p = mm_memalign(h, (size_t)1 << (fz_u8(&r->in) % 13u), n);
            break;
        default:
            n = req_size(&r->in) & 0xffffu;
            p = mm_malloc(h, n);
            break;
        }
        if (p != NULL) {
            memset(p, 0x5a, n);
            if (r->nb < MAX_BLOCKS)
                r->b[r->nb++] = (struct block){p, n, false, 0};
        }
    }
    return h;
}

/* Step 4, one operation on the attached heap. */
static void operate(struct run *r)
{
    struct fz *f = &r->in;
    uint8_t op = fz_u8(f);
    struct block *b = r->nb > 0 ? &r->b[fz_u8(f) % r->nb] : NULL;
    switch (op % 12u) {
    case 0:
    case 1: {
        size_t n = req_size(f);
        uint8_t *p = mm_malloc(r->h, n);
        if (p != NULL)
            returned(r, p, n, MM_ALIGN, NULL, 0);
        break;
    }
    case 2: {
        size_t n = fz_u8(f), m = fz_u8(f);
        uint8_t *p = mm_calloc(r->h, n, m);
        if (p != NULL) {
            for (size_t j = 0; j < n * m; j++)
                FZ_CHECK(p[j] == 0);
            returned(r, p, n * m, MM_ALIGN, NULL, 0);
        }
        break;
    }
    case 3:
        if (b != NULL) {
            check_intact(b);
            uint8_t *p = b->p;
            forget(r, p);
            mm_free(r->h, p);
        }
        break;
    case 4:
        if (b != NULL) {
            check_intact(b);
            struct block old = *b;
            size_t n = req_size(f);
            uint8_t keep[256];
            size_t nkeep = old.n < n ? old.n : n;
            nkeep = nkeep < sizeof(keep) ? nkeep : sizeof(keep);
            memcpy(keep, old.p, nkeep);
            uint8_t *p = mm_realloc(r->h, old.p, n);
            if (p != NULL || n == 0)
                forget(r, old.p);
            if (p != NULL)
                returned(r, p, n, MM_ALIGN, old.tracked ? keep : NULL, nkeep);
        }
        break;
    case 5: {
        size_t align = (size_t)1 << (fz_u8(f) % 16u), n = req_size(f);
        uint8_t *p = mm_memalign(r->h, align, n);
        if (p != NULL)
            returned(r, p, n, align, NULL, 0);
        break;
    }
    case 6:
        if (b != NULL) {
            size_t usable = mm_malloc_size(r->h, b->p);
            FZ_CHECK(inside(r, b->p, usable));
            FZ_CHECK(!r->sound || !b->tracked || usable >= b->n);
            bool member = mm_heapmember(r->h, b->p);
            FZ_CHECK(!member || inside(r, b->p, 0));
            FZ_CHECK(!r->sound || !b->tracked || member);
        }
        break;
    case 7: {
        struct mm_dump_filter filter = {fz_u8(f) & 7u, 0, 0, 0};
        if (fz_u8(f) & 1u)
            filter.owner = owners[fz_u8(f) & 3u];
        (void)mm_memdump(r->h, &filter, dump_fn, r);
        break;
    }
    case 8: {
        struct mm_mallinfo_s mi = mm_mallinfo(r->h);
        FZ_CHECK(mi.arena <= r->size && mi.uordblks + mi.fordblks <= mi.arena);
        FZ_CHECK(mi.mxordblk <= mi.fordblks);
        break;
    }
    case 9: {
        uint32_t owner = (fz_u8(f) & 1u) ? owners[fz_u8(f) & 3u] : fz_u32(f);
        if (owner == 0)
            owner = (uint32_t)getpid(); /* step 1's blocks of owner 0 */
        if (owner != OWNER_LIVE)
            (void)mm_reclaim_owner(r->h, owner);
        break;
    }
    case 10:
        if (mm_checkcorruption(r->h) != 0)
            FZ_CHECK(!r->sound);
        break;
    default:
        (void)mm_heap_stats(r->h);
        (void)mm_last_error(r->h);
        (void)mm_heap_state(r->h);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return 0;
    r->in = (struct fz){data, size};
    size_t heapsize = ((size_t)4096 << (fz_u8(&r->in) % 9u)) + 8u * (fz_u8(&r->in) & 15u);
    if (heapsize > MM_MAX_HEAPSIZE)
        heapsize = (size_t)MM_MAX_HEAPSIZE;
    uint8_t *orig = malloc(heapsize);
    if (orig == NULL) {
        free(r);
        return 0;
    }

    mm_set_owner_id(0);
    struct mm_heap_s *h = build(r, orig, heapsize);
    if (h == NULL) {
        free(orig);
        free(r);
        return 0;
    }

    /* Step 2: the copy, mapped maybe shorter or longer than the heap. */
    r->size = fz_mapped_size(&r->in, heapsize);
    r->img = malloc(r->size);
    if (r->img == NULL) {
        mm_detach(h);
        free(orig);
        free(r);
        return 0;
    }
    fz_copy_image(r->img, r->size, orig, heapsize);
    /* Step 1's blocks, as pointers into the copy. */
    for (unsigned i = 0; i < r->nb; i++)
        r->b[i].p = r->img + (r->b[i].p - orig);
    mm_detach(h);
    free(orig);

    /* Step 3. */
    size_t hot[MAX_BLOCKS + 8];
    size_t nhot = 0;
    hot[nhot++] = offsetof(struct mm__header, span);
    hot[nhot++] = offsetof(struct mm__header, nregions);
    hot[nhot++] = offsetof(struct mm__header, region);
    hot[nhot++] = offsetof(struct mm__header, state);
    hot[nhot++] = offsetof(struct mm__header, fl_bitmap);
    hot[nhot++] = offsetof(struct mm__header, heads);
    hot[nhot++] = sizeof(struct mm__header);
    for (unsigned i = 0; i < r->nb; i++)
        hot[nhot++] = (size_t)(r->b[i].p - r->img) - MM__USER_OFFSET;
    size_t lock_off = offsetof(struct mm__header, lock);
    mm_port_lock_t lock;
    memset(&lock, 0, sizeof(lock));
    bool has_lock = r->size >= lock_off + sizeof(lock);
    if (has_lock)
        memcpy(&lock, r->img + lock_off, sizeof(lock));
    fz_scribble(&r->in, r->img, r->size, hot, nhot);
    if (has_lock)
        memcpy(r->img + lock_off, &lock, sizeof(lock));

    /* Step 4. */
    mm_set_owner_id(OWNER_LIVE);
    r->h = mm_attach(r->img, r->size);
    if (r->h != NULL) {
        r->sound = mm_checkcorruption(r->h) == 0;
        unsigned nops = fz_u8(&r->in) % 64u;
        for (unsigned i = 0; i < nops; i++)
            operate(r);
        for (unsigned i = 0; i < r->nb; i++)
            check_intact(&r->b[i]);
        if (r->sound)
            FZ_CHECK(mm_checkcorruption(r->h) == 0);
        mm_detach(r->h);
    }
    mm_set_owner_id(0);
    free(r->img);
    free(r);
    return 0;
}
