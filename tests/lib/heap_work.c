/*
 * heap_work.c - the shared random heap workload (see heap_work.h).
 */
#include "heap_work.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Debug builds: the record and guard sizes come from the heap's layout. */
#include "heap_internal.h"

#if MM_CONFIG_DEBUG
#define HW_CHUNK_EXTRA ((size_t)MM__USER_OFFSET + MM__GUARD_SIZE)
#else
#define HW_CHUNK_EXTRA ((size_t)MM_OVERHEAD)
#endif

size_t hw_chunk_for(size_t n)
{
    size_t c = (n + HW_CHUNK_EXTRA + MM_ALIGN - 1u) / MM_ALIGN * MM_ALIGN;
    return c < HW_MINCHUNK ? HW_MINCHUNK : c;
}

size_t hw_chunk_max(size_t n)
{
    size_t c = hw_chunk_for(n);
    /* A cached block may come from the class above csize's (heap_cache.h)
     * and is not split: two classes of slack, each at most
     * 1 / 2^MM_CONFIG_SL_LOG2 of its sizes, or MM_ALIGN for small sizes. */
    size_t slack = MM_CONFIG_CACHE ? (c >> (MM_CONFIG_SL_LOG2 - 1)) + 2 * MM_ALIGN : 0;
    return c + HW_MINCHUNK - MM_ALIGN + slack;
}

size_t hw_chunk_extra(void)
{
    return HW_CHUNK_EXTRA;
}

void hw_record_file(char out[16], const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    n = n < 15 ? n : 15;
    memcpy(out, base, n);
    out[n] = '\0';
}

void hw_config_default(struct hw_config *cfg, size_t heap_size, size_t max_live)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_live = max_live;
    uint64_t hs = heap_size; /* size_t has 16 bits on AVR (tests/target) */
    if (hs <= 0x10000) {
        cfg->size_common = 256;
        cfg->size_mid = heap_size / 8 < 4096 ? heap_size / 8 : 4096;
        cfg->size_large = heap_size / 4;
        cfg->pct_mid = 20;
        cfg->large_pm = 10;
        cfg->max_align_log2 = 10;
    } else {
        cfg->size_common = 4096;
        uint64_t large = hs / 16 < 1048576 ? hs / 16 : 1048576;
        cfg->size_large = (size_t)large;
        cfg->size_mid = (size_t)(large / 2 < 65536 ? large / 2 : 65536);
        cfg->pct_mid = 4;
        cfg->large_pm = 3;
        cfg->max_align_log2 = 16;
    }
    cfg->phase_ops = 20000;
    cfg->exclusive = false;
}

void hw_init(struct hw_worker *w, struct mm_heap_s *h, const struct hw_config *cfg,
             struct hw_block *blocks, uint64_t id, uint64_t seed)
{
    memset(w, 0, sizeof(*w));
    w->h = h;
    w->cfg = *cfg;
    w->blocks = blocks;
    w->id = id;
    tu_rng_init(&w->rng, seed ^ (id * 0x2545f4914f6cdd1dull));
}

__attribute__((format(printf, 2, 3))) static bool fail(struct hw_worker *w, const char *fmt, ...)
{
    if (w->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap);
        va_end(ap);
    }
    return false;
}

static size_t pick_size(struct hw_worker *w)
{
    uint64_t r = tu_rng_range(&w->rng, 0, 999);
    if (r == 999)
        return 0;
    if (r < w->cfg.large_pm)
        return (size_t)tu_rng_range(&w->rng, w->cfg.size_mid + 1, w->cfg.size_large);
    if (r < w->cfg.large_pm + 10u * w->cfg.pct_mid)
        return (size_t)tu_rng_range(&w->rng, w->cfg.size_common + 1, w->cfg.size_mid);
    return (size_t)tu_rng_range(&w->rng, 1, w->cfg.size_common);
}

static bool check_block(struct hw_worker *w, const struct hw_block *b, size_t n, const char *when)
{
    size_t bad = tu_pattern_check(b->p, n, b->key);
    if (bad != n)
        return fail(w, "op %llu: %s: block key %llx size %zu at %p: byte %zu differs",
                    (unsigned long long)w->ops, when, (unsigned long long)b->key, b->size,
                    (void *)b->p, bad);
    return true;
}

/* A block the heap just handed out for n bytes aligned to align. */
static bool check_new(struct hw_worker *w, const uint8_t *p, size_t n, size_t align,
                      const char *what)
{
    if ((uintptr_t)p % MM_ALIGN != 0 || (uintptr_t)p % align != 0)
        return fail(w, "op %llu: %s(%zu, align %zu) gave misaligned %p", (unsigned long long)w->ops,
                    what, n, align, (const void *)p);
    if (!mm_heapmember(w->h, (void *)(uintptr_t)p))
        return fail(w, "op %llu: %s gave %p outside the heap", (unsigned long long)w->ops, what,
                    (const void *)p);
    size_t usable = mm_malloc_size(w->h, (void *)(uintptr_t)p);
#if MM_CONFIG_DEBUG
    bool ok = usable == n;
#else
    bool ok = usable >= n && usable + MM_OVERHEAD <= hw_chunk_max(n);
#endif
    if (!ok)
        return fail(w, "op %llu: %s(%zu) gave a block of %zu usable bytes",
                    (unsigned long long)w->ops, what, n, usable);
    return true;
}

/* The heap refused an allocation: it must say it has no memory, and, when
 * nobody else uses the heap, no free chunk may be clearly large enough.
 * need is the chunk size the call needs at least. */
static bool check_refusal(struct hw_worker *w, size_t need, const char *what)
{
    enum mm_error e = mm_last_error(w->h);
    if (e != MM_ERR_NOMEM)
        return fail(w, "op %llu: %s refused with %s", (unsigned long long)w->ops, what,
                    mm_strerror(e));
    w->nomem++;
    if (w->cfg.exclusive) {
        /* A free chunk the search passes over is in need's own size
         * class, at most 1 / 2^MM_CONFIG_SL_LOG2 above need: allow four
         * times that. */
        size_t mx = mm_mallinfo(w->h).mxordblk;
        if (mx >= need + 4 * (need >> MM_CONFIG_SL_LOG2) + 2 * HW_MINCHUNK)
            return fail(w,
                        "op %llu: %s needing a %zu-byte chunk refused with a %zu-byte chunk free",
                        (unsigned long long)w->ops, what, need, mx);
    }
    return true;
}

static void add_block(struct hw_worker *w, uint8_t *p, size_t n, bool fill)
{
    struct hw_block *b = &w->blocks[w->live++];
    b->key = (w->id << 44) | ++w->next_key;
    b->size = n;
    b->p = p;
    if (fill)
        tu_pattern_fill(p, n, b->key);
}

static void remove_block(struct hw_worker *w, size_t i)
{
    w->blocks[i] = w->blocks[--w->live];
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

bool hw_alloc_one(struct hw_worker *w, size_t n)
{
    if (w->live >= w->cfg.max_live)
        return fail(w, "no room in the shadow");
    uint8_t *p = mm_malloc(w->h, n);
    if (p == NULL)
        return fail(w, "malloc(%zu) refused: %s", n, mm_strerror(mm_last_error(w->h)));
    if (!check_new(w, p, n, 1, "malloc"))
        return false;
    add_block(w, p, n, true);
    return true;
}

static bool op_alloc(struct hw_worker *w)
{
    size_t n = pick_size(w);
    uint64_t r = tu_rng_range(&w->rng, 0, 99);
    uint8_t *p;
    size_t align = 1;
    size_t need = hw_chunk_for(n);
    const char *what;
    bool zeroed = false;
    if (r < 60) {
        what = "malloc";
        p = mm_malloc(w->h, n);
    } else if (r < 72) {
        what = "calloc";
        size_t k = (size_t)tu_rng_range(&w->rng, 1, 16);
        size_t elem = n / k;
        n = k * elem;
        need = hw_chunk_for(n);
        p = mm_calloc(w->h, k, elem);
        zeroed = true;
    } else if (r < 78) {
        what = "zalloc";
        p = mm_zalloc(w->h, n);
        zeroed = true;
    } else {
        what = "memalign";
        unsigned lg = (unsigned)tu_rng_range(&w->rng, 0, 12);
        if (tu_rng_range(&w->rng, 0, 99) == 0)
            lg = (unsigned)tu_rng_range(&w->rng, 0, w->cfg.max_align_log2);
        align = (size_t)1 << lg;
        need = hw_chunk_for(n) + align + HW_MINCHUNK;
        p = mm_memalign(w->h, align, n);
    }
    if (p == NULL)
        return check_refusal(w, need, what);
    if (!check_new(w, p, n, align, what))
        return false;
    if (zeroed && !all_zero(p, n))
        return fail(w, "op %llu: %s(%zu) not zeroed", (unsigned long long)w->ops, what, n);
    add_block(w, p, n, true);
    return true;
}

static bool op_free(struct hw_worker *w)
{
    size_t i = (size_t)tu_rng_range(&w->rng, 0, w->live - 1);
    struct hw_block *b = &w->blocks[i];
    if (!check_block(w, b, b->size, "before free"))
        return false;
    if (tu_rng_range(&w->rng, 0, 9) == 0) {
        if (mm_realloc(w->h, b->p, 0) != NULL)
            return fail(w, "op %llu: realloc(p, 0) returned a block", (unsigned long long)w->ops);
    } else {
        mm_free(w->h, b->p);
    }
    remove_block(w, i);
    return true;
}

static bool op_realloc(struct hw_worker *w)
{
    size_t i = (size_t)tu_rng_range(&w->rng, 0, w->live - 1);
    struct hw_block *b = &w->blocks[i];
    size_t old = b->size;
    size_t n;
    uint64_t r = tu_rng_range(&w->rng, 0, 9);
    if (r < 3)
        n = old + (size_t)tu_rng_range(&w->rng, 0, 64); /* a little more */
    else if (r < 5)
        n = old - (size_t)tu_rng_range(&w->rng, 0, old / 2); /* a little less */
    else
        n = pick_size(w);
    if (n == 0)
        n = 1;
    if (!check_block(w, b, old, "before realloc"))
        return false;
    uint8_t *p = mm_realloc(w->h, b->p, n);
    if (p == NULL) {
        if (!check_refusal(w, hw_chunk_for(n), "realloc"))
            return false;
        /* The block is untouched. */
        if (mm_malloc_size(w->h, b->p) < old)
            return fail(w, "op %llu: failed realloc shrank the block", (unsigned long long)w->ops);
        return check_block(w, b, old, "after failed realloc");
    }
    if (!check_new(w, p, n, 1, "realloc"))
        return false;
    b->p = p;
    if (!check_block(w, b, old < n ? old : n, "after realloc"))
        return false;
    b->size = n;
    tu_pattern_fill(p, n, b->key);
    return true;
}

bool hw_step(struct hw_worker *w)
{
    w->ops++;
    bool grow = (w->ops / w->cfg.phase_ops) % 2 == 0;
    uint64_t r = tu_rng_range(&w->rng, 0, 99);
    bool ok;
    if (w->live > 0 && (w->live >= w->cfg.max_live || r < (grow ? 25u : 65u)))
        ok = op_free(w);
    else if (w->live > 0 && tu_rng_range(&w->rng, 0, 99) < 30)
        ok = op_realloc(w);
    else if (w->live < w->cfg.max_live)
        ok = op_alloc(w);
    else
        ok = true;
    return ok;
}

bool hw_verify_all(struct hw_worker *w)
{
    for (size_t i = 0; i < w->live; i++)
        if (!check_block(w, &w->blocks[i], w->blocks[i].size, "verify"))
            return false;
    return true;
}

bool hw_free_all(struct hw_worker *w)
{
    while (w->live > 0) {
        struct hw_block *b = &w->blocks[w->live - 1];
        if (!check_block(w, b, b->size, "before final free"))
            return false;
        mm_free(w->h, b->p);
        w->live--;
    }
    return true;
}

/* ---- Recorders for the heap's callbacks ------------------------------------ */

void hw_misuse_record(void *arg, struct mm_heap_s *heap, enum mm_misuse what, const void *mem)
{
    struct hw_misuse_log *log = arg;
    log->count++;
    log->what = what;
    log->heap = heap;
    log->mem = mem;
}

bool hw_dump_record(void *arg, const struct mm_block_info *b)
{
    struct hw_dump *d = arg;
    if (d->n < HW_DUMP_MAX)
        d->b[d->n] = *b;
    d->n++;
    return true;
}

const struct mm_block_info *hw_dump_find(const struct hw_dump *d, const void *mem)
{
    for (size_t i = 0; i < d->n && i < HW_DUMP_MAX; i++)
        if (d->b[i].mem == mem)
            return &d->b[i];
    return NULL;
}
