/*
 * bench_mm.c - the mm heap against glibc malloc, in one run, printed as one
 * JSON document on stdout (progress goes to stderr).
 *
 * Workloads (issue 2, "Benchmark"):
 *   random_pair   steady state over `live` blocks: free a random live slot,
 *                 malloc a random size (uniform size_min..size_max) into it,
 *                 write a byte into it; time per free+malloc pair.
 *   fixed_64, fixed_1536
 *                 churn: the same steady state with one size;
 *                 lifo: malloc, write, free at once, beside those live blocks.
 *   latency       the random steady state with every single malloc and free
 *                 timed by the TSC (calibrated against CLOCK_MONOTONIC, the
 *                 timer's own median cost subtracted); p50, p99, p99.99, max.
 *   utilization   fill a fresh heap with random sizes until the first
 *                 allocation fails: requested bytes live / heap size (the
 *                 whole region given to mm_initialize); the same after the
 *                 random churn.  glibc has no fixed arena: not measured.
 *   overhead_16   distance between consecutive 16-byte blocks of a fresh
 *                 heap, and mallinfo's bytes per block.
 *
 * Main idea: every random choice is drawn into arrays before the clock
 * starts, the same arrays drive mm and glibc, and the two alternate round by
 * round (which one goes first alternates too), so that a noisy machine slows
 * both alike.  Each timed figure is the median over rounds, with the min and
 * max of the rounds beside it.  The process is pinned to one CPU.
 *
 * Built twice: bench_mm with the configured model, bench_mm_small with the
 * small model (64 KiB heap, so fewer live blocks and sizes up to 1024).
 * The JSON writer, the clocks and their calibration, the summaries, the
 * options every benchmark takes and the pinning are bench_util's.
 */
#define _GNU_SOURCE

#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_util.h"
#include "mm/mm.h"

/* Set by bench/meson.build. */
#ifndef BENCH_VARIANT
#define BENCH_VARIANT "configured"
#endif

#define BENCH_MAX_ROUNDS 1000u
/* bu_summarize allocates nothing for this many rounds, so that summaries
 * leave glibc's heap as its measurements left it. */
_Static_assert(BENCH_MAX_ROUNDS <= BU_SUMMARY_STACK, "rounds summarized on the stack");

/* ---- Configuration ---------------------------------------------------- */

struct bench_cfg {
    bool quick;
    bool pin;
    unsigned rounds;
    uint64_t seed;
    size_t heap_size;  /* bytes given to mm_initialize */
    uint32_t live;     /* live blocks of the steady state */
    uint32_t size_min; /* random sizes, inclusive */
    uint32_t size_max;
    size_t pair_ops;        /* pairs per round, churn and lifo */
    size_t lat_ops;         /* pairs per round, latency (each gives 2 samples) */
    size_t util_churn_ops;  /* churn before the second utilization fill */
    size_t overhead_blocks; /* 16-byte blocks in overhead_16 */
    unsigned calib_ms;      /* TSC calibration time */
};

/* ---- Process state ---------------------------------------------------- */

static void *g_arena;      /* memory every mm heap is made in */
static size_t g_arena_len; /* its mapping length */
static int g_pinned_cpu = -1;

/* Key results, for the "floors" object at the end. */
static struct {
    double pair_ratio;
    double p9999_mm;
    double p9999_mm_adj;
    double util_fresh;
    double util_churn;
    int64_t distance_16;
    bool distance_uniform;
    int problems;
    uint64_t misuse;
} g_key = {NAN, NAN, NAN, NAN, NAN, 0, false, 0, 0};

/* ---- JSON pieces ------------------------------------------------------ */

/* "sizes_uniform": [lo, hi], the range random sizes are drawn from. */
static void js_sizes_uniform(uint32_t lo, uint32_t hi)
{
    js_open_array("sizes_uniform");
    js_uint(NULL, lo);
    js_uint(NULL, hi);
    js_close_array();
}

/* ---- Random numbers (splitmix64) ----------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (multiply-shift; the bias is below 2^-32). */
static uint32_t rng_range(uint64_t *s, uint32_t lo, uint32_t hi)
{
    uint64_t span = (uint64_t)hi - lo + 1u;
    return lo + (uint32_t)(((rng_next(s) >> 32) * span) >> 32);
}

/* ---- The two allocators ---------------------------------------------------- */

enum bench_kind { BENCH_MM, BENCH_GLIBC };

struct bench_alloc {
    enum bench_kind kind;
    struct mm_heap_s *heap;
    const char *name;
};

/* The branch is loop-invariant and perfectly predicted; both allocators
 * pay it alike. */
static inline void *ba_malloc(const struct bench_alloc *a, size_t n)
{
    return a->kind == BENCH_MM ? mm_malloc(a->heap, n) : malloc(n);
}

static inline void ba_free(const struct bench_alloc *a, void *p)
{
    if (a->kind == BENCH_MM)
        mm_free(a->heap, p);
    else
        free(p);
}

static struct mm_heap_s *heap_fresh(const struct bench_cfg *cfg)
{
    struct mm_heap_s *h = mm_initialize("bench", g_arena, cfg->heap_size);
    if (h == NULL) {
        fprintf(stderr, "bench_mm: mm_initialize(%zu bytes) failed\n", cfg->heap_size);
        exit(1);
    }
    return h;
}

/* Check and destroy a heap; problems and misuse go to the JSON as mm_check. */
static void heap_done(struct mm_heap_s *h)
{
    int problems = mm_checkcorruption(h);
    struct mm_heap_stats st = mm_heap_stats(h);
    uint64_t misuse = (uint64_t)st.double_frees + st.foreign_frees + st.guard_errors;
    mm_uninitialize(h);
    js_open("mm_check");
    js_int("checkcorruption", problems);
    js_uint("misuse", misuse);
    js_close();
    g_key.problems += problems;
    g_key.misuse += misuse;
    if (problems != 0 || misuse != 0)
        fprintf(stderr, "bench_mm: heap check: %d problems, %" PRIu64 " misuse\n", problems,
                misuse);
}

/* ---- Statistics ------------------------------------------------------------ */

/* LSD radix sort; four passes leave the result in a. */
static void radix_sort_u32(uint32_t *a, uint32_t *tmp, size_t n)
{
    uint32_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((src[i] >> shift) & 0xffu) + 1u]++;
        for (size_t b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffu]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
}

/* ---- Steady-state churn and lifo ------------------------------------------- */

/* Pre-drawn operations: op i frees slot[i] and allocates size[i] there. */
struct plan {
    size_t cap;
    uint32_t *slot;
    uint32_t *size;
};

static void plan_draw(struct plan *pl, size_t n, uint64_t *rng, uint32_t live, uint32_t lo,
                      uint32_t hi)
{
    if (n > pl->cap) {
        fprintf(stderr, "bench_mm: plan of %zu operations exceeds %zu\n", n, pl->cap);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        pl->slot[i] = rng_range(rng, 0, live - 1u);
        pl->size[i] = rng_range(rng, lo, hi);
    }
}

static size_t fill_live(const struct bench_alloc *a, void **live, const uint32_t *size, uint32_t n)
{
    size_t failures = 0;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *p = ba_malloc(a, size[i]);
        if (p != NULL)
            p[0] = (unsigned char)i;
        else
            failures++;
        live[i] = p;
    }
    return failures;
}

static void free_live(const struct bench_alloc *a, void **live, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        ba_free(a, live[i]);
        live[i] = NULL;
    }
}

/* The timed loops: nothing in them but the allocator calls, one store into
 * each new block, and the array reads of the pre-drawn plan. */
static uint64_t run_churn(const struct bench_alloc *a, void **live, const struct plan *pl, size_t n,
                          size_t *failures)
{
    size_t fail = 0;
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint32_t s = pl->slot[i];
        ba_free(a, live[s]);
        unsigned char *p = ba_malloc(a, pl->size[i]);
        if (p != NULL)
            p[0] = (unsigned char)i;
        else
            fail++;
        bu_escape(p);
        live[s] = p;
    }
    uint64_t t1 = bu_now_ns();
    *failures += fail;
    return t1 - t0;
}

static uint64_t run_lifo(const struct bench_alloc *a, size_t size, size_t n, size_t *failures)
{
    size_t fail = 0;
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = ba_malloc(a, size);
        if (p != NULL)
            p[0] = (unsigned char)i;
        else
            fail++;
        bu_escape(p);
        ba_free(a, p);
    }
    uint64_t t1 = bu_now_ns();
    *failures += fail;
    return t1 - t0;
}

struct pair_job {
    bool lifo;
    const struct plan *plan; /* churn */
    size_t lifo_size;        /* lifo */
    size_t n;                /* pairs per round */
};

struct pair_meas {
    double ns[BENCH_MAX_ROUNDS]; /* ns per pair, per round */
    size_t failures;
};

static uint64_t pair_run(const struct bench_alloc *a, void **live, const struct pair_job *job,
                         size_t n, size_t *failures)
{
    if (job->lifo)
        return run_lifo(a, job->lifo_size, n, failures);
    return run_churn(a, live, job->plan, n, failures);
}

/* A warm-up of a quarter round each, then the rounds, mm and glibc
 * alternating, the first of each round alternating too. */
static void pair_rounds(const struct bench_cfg *cfg, const struct bench_alloc al[2], void **live[2],
                        const struct pair_job *job, struct pair_meas meas[2])
{
    for (int k = 0; k < 2; k++)
        (void)pair_run(&al[k], live[k], job, job->n / 4, &meas[k].failures);
    for (unsigned r = 0; r < cfg->rounds; r++) {
        for (int j = 0; j < 2; j++) {
            int k = (r & 1u) ? 1 - j : j;
            uint64_t t = pair_run(&al[k], live[k], job, job->n, &meas[k].failures);
            meas[k].ns[r] = (double)t / (double)job->n;
        }
    }
}

static void emit_pair(const struct bench_cfg *cfg, const struct pair_job *job,
                      const struct pair_meas meas[2], const char *pattern)
{
    static const char *const names[2] = {"mm", "glibc"};
    unsigned n = cfg->rounds;
    js_str("pattern", pattern);
    js_uint("pairs_per_round", job->n);
    for (int k = 0; k < 2; k++) {
        js_open(names[k]);
        js_summary("ns_per_pair", meas[k].ns, n, 2);
        js_num_array("rounds_ns_per_pair", meas[k].ns, n, 2);
        js_uint("failures", meas[k].failures);
        js_close();
    }
    double ratio[BENCH_MAX_ROUNDS];
    for (unsigned r = 0; r < n; r++)
        ratio[r] = meas[0].ns[r] / meas[1].ns[r];
    struct bu_summary mm = bu_summarize(meas[0].ns, n), gl = bu_summarize(meas[1].ns, n);
    struct bu_summary rr = bu_summarize(ratio, n);
    js_open("ratio_mm_glibc");
    js_num("of_medians", mm.median / gl.median, 3);
    js_num("round_min", rr.min, 3);
    js_num("round_max", rr.max, 3);
    js_close();
}

/* One steady-state workload: sizes uniform in [lo, hi] (lo == hi: fixed),
 * churn, and with lifo also a malloc-free loop beside the live blocks. */
static void workload_churn(const struct bench_cfg *cfg, struct plan *pl, const char *key,
                           uint32_t lo, uint32_t hi, bool lifo, uint64_t *rng)
{
    fprintf(stderr, "bench_mm: %s\n", key);
    uint32_t *init = bu_xcalloc(cfg->live, sizeof *init);
    for (uint32_t i = 0; i < cfg->live; i++)
        init[i] = rng_range(rng, lo, hi);
    plan_draw(pl, cfg->pair_ops, rng, cfg->live, lo, hi);

    struct mm_heap_s *h = heap_fresh(cfg);
    const struct bench_alloc al[2] = {{BENCH_MM, h, "mm"}, {BENCH_GLIBC, NULL, "glibc"}};
    void **live[2] = {bu_xcalloc(cfg->live, sizeof(void *)), bu_xcalloc(cfg->live, sizeof(void *))};
    size_t fill_fail[2];
    for (int k = 0; k < 2; k++)
        fill_fail[k] = fill_live(&al[k], live[k], init, cfg->live);

    struct pair_meas *churn = bu_xcalloc(2, sizeof *churn);
    struct pair_job cj = {false, pl, 0, cfg->pair_ops};
    pair_rounds(cfg, al, live, &cj, churn);
    struct pair_meas *lf = NULL;
    struct pair_job lj = {true, NULL, lo, cfg->pair_ops};
    if (lifo) {
        lf = bu_xcalloc(2, sizeof *lf);
        pair_rounds(cfg, al, live, &lj, lf);
    }

    js_open(key);
    if (lo == hi) {
        js_uint("size", lo);
    } else {
        js_sizes_uniform(lo, hi);
    }
    js_uint("live_blocks", cfg->live);
    js_uint("fill_failures_mm", fill_fail[0]);
    js_uint("fill_failures_glibc", fill_fail[1]);
    if (lifo) {
        js_open("churn");
        emit_pair(cfg, &cj, churn,
                  "steady state: free a random live slot, malloc into it, write a byte");
        js_close();
        js_open("lifo");
        emit_pair(cfg, &lj, lf, "malloc, write a byte, free at once, beside the live blocks");
        js_close();
    } else {
        emit_pair(cfg, &cj, churn,
                  "steady state: free a random live slot, malloc into it, write a byte");
        g_key.pair_ratio = bu_summarize(churn[0].ns, cfg->rounds).median /
                           bu_summarize(churn[1].ns, cfg->rounds).median;
    }
    for (int k = 0; k < 2; k++)
        free_live(&al[k], live[k], cfg->live);
    heap_done(h);
    js_close();

    free(lf);
    free(churn);
    free(live[0]);
    free(live[1]);
    free(init);
}

/* ---- Per-operation latency ------------------------------------------------- */

struct lat_stat {
    double p50, p99, p9999, max, mean, over_1us;
};

static uint32_t nearest_rank(const uint32_t *sorted, size_t n, uint32_t ppm)
{
    return sorted[bu_rank(n, ppm)];
}

static struct lat_stat lat_of(const uint32_t *sorted, size_t n)
{
    struct lat_stat s;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sorted[i];
    uint32_t us = (uint32_t)(1000.0 * bu_ticks_per_ns());
    size_t lo = 0, hi = n; /* first sample above 1 us */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= us)
            lo = mid + 1;
        else
            hi = mid;
    }
    s.p50 = bu_ticks_to_ns(nearest_rank(sorted, n, 500000));
    s.p99 = bu_ticks_to_ns(nearest_rank(sorted, n, 990000));
    s.p9999 = bu_ticks_to_ns(nearest_rank(sorted, n, 999900));
    s.max = bu_ticks_to_ns(sorted[n - 1]);
    s.mean = bu_ticks_to_ns(sum / (double)n);
    s.over_1us = (double)(n - lo);
    return s;
}

/* An interval of t ticks less the timer's own cost (bu_timer_overhead). */
static inline uint32_t lat_sample(uint64_t t, uint32_t overhead)
{
    t = t > overhead ? t - overhead : 0;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* The churn with each free and each malloc timed alone: samples[0..n) are
 * mallocs, samples[n..2n) frees. */
static void run_latency(const struct bench_alloc *a, void **live, const struct plan *pl, size_t n,
                        uint32_t *samples, size_t *failures)
{
    uint32_t overhead = bu_timer_overhead();
    size_t fail = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = pl->slot[i];
        void *old = live[s];
        uint64_t t0 = bu_ticks();
        ba_free(a, old);
        uint64_t t1 = bu_ticks();
        unsigned char *p = ba_malloc(a, pl->size[i]);
        uint64_t t2 = bu_ticks();
        if (p != NULL)
            p[0] = (unsigned char)i;
        else
            fail++;
        bu_escape(p);
        live[s] = p;
        samples[i] = lat_sample(t2 - t1, overhead);
        samples[n + i] = lat_sample(t1 - t0, overhead);
    }
    *failures += fail;
}

enum { LAT_MALLOC, LAT_FREE, LAT_ALL, LAT_KINDS };

/* The machine's own floor, no allocator: samples[0..n) time nothing,
 * samples[n..2n) time a one-byte read of the random live block that the
 * churn would free (the cache and TLB miss that any free pays). */
static void run_floor(void *const *live, const struct plan *pl, size_t n, uint32_t *samples)
{
    uint32_t overhead = bu_timer_overhead();
    unsigned char sink = 0;
    for (size_t i = 0; i < n; i++) {
        const volatile unsigned char *b = live[pl->slot[i]];
        uint64_t t0 = bu_ticks();
        uint64_t t1 = bu_ticks();
        if (b != NULL)
            sink ^= *b;
        uint64_t t2 = bu_ticks();
        samples[i] = lat_sample(t1 - t0, overhead);
        samples[n + i] = lat_sample(t2 - t1, overhead);
    }
    bu_escape(&sink);
}

/* Interrupts the kernel has taken on cpu, summed over /proc/interrupts;
 * -1 if unknown.  A latency sample that an interrupt lands in is the
 * interrupt's time, not the allocator's. */
static int64_t cpu_interrupts(int cpu)
{
    if (cpu < 0)
        return -1;
    FILE *f = fopen("/proc/interrupts", "r");
    if (f == NULL)
        return -1;
    char line[4096];
    int col = -1, ncol = 0;
    if (fgets(line, sizeof line, f) != NULL) {
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\n", &save); tok != NULL;
             tok = strtok_r(NULL, " \t\n", &save), ncol++) {
            if (strncmp(tok, "CPU", 3) == 0 && atoi(tok + 3) == cpu)
                col = ncol;
        }
    }
    int64_t sum = col < 0 ? -1 : 0;
    while (col >= 0 && fgets(line, sizeof line, f) != NULL) {
        char *c = strchr(line, ':');
        if (c == NULL)
            continue;
        c++;
        for (int i = 0; i <= col; i++) {
            char *end;
            unsigned long long v = strtoull(c, &end, 10);
            if (end == c)
                break; /* a line with fewer columns (ERR, MIS) */
            if (i == col)
                sum += (int64_t)v;
            c = end;
        }
    }
    fclose(f);
    return sum;
}

/* Context switches of this process, voluntary and not. */
static int64_t context_switches(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (int64_t)ru.ru_nvcsw + (int64_t)ru.ru_nivcsw;
}

static void emit_lat(const char *key, const struct lat_stat *st, unsigned n)
{
    double v[BENCH_MAX_ROUNDS];
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"p50_ns", offsetof(struct lat_stat, p50)},
        {"p99_ns", offsetof(struct lat_stat, p99)},
        {"p99_99_ns", offsetof(struct lat_stat, p9999)},
        {"max_ns", offsetof(struct lat_stat, max)},
        {"mean_ns", offsetof(struct lat_stat, mean)},
        {"samples_over_1us", offsetof(struct lat_stat, over_1us)},
    };
    js_open(key);
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        for (unsigned r = 0; r < n; r++)
            memcpy(&v[r], (const char *)&st[r] + fields[f].off, sizeof v[r]);
        js_summary(fields[f].name, v, n, 1);
    }
    js_close();
}

static void workload_latency(const struct bench_cfg *cfg, struct plan *pl, uint64_t *rng)
{
    fprintf(stderr, "bench_mm: latency\n");
    size_t n = cfg->lat_ops;
    uint32_t *init = bu_xcalloc(cfg->live, sizeof *init);
    for (uint32_t i = 0; i < cfg->live; i++)
        init[i] = rng_range(rng, cfg->size_min, cfg->size_max);
    plan_draw(pl, n, rng, cfg->live, cfg->size_min, cfg->size_max);
    uint32_t *samples = bu_xcalloc(2 * n, sizeof *samples);
    uint32_t *tmp = bu_xcalloc(2 * n, sizeof *tmp);
    uint32_t *merged = bu_xcalloc(2 * n, sizeof *merged);
    struct lat_stat(*st)[LAT_KINDS] = bu_xcalloc(2u * cfg->rounds, sizeof *st);
    double irq[2][BENCH_MAX_ROUNDS], csw[2][BENCH_MAX_ROUNDS], adj[2][BENCH_MAX_ROUNDS];
    bool irq_known = true;
    struct lat_stat(*fl)[2] = bu_xcalloc(cfg->rounds, sizeof *fl);

    struct mm_heap_s *h = heap_fresh(cfg);
    const struct bench_alloc al[2] = {{BENCH_MM, h, "mm"}, {BENCH_GLIBC, NULL, "glibc"}};
    void **live[2] = {bu_xcalloc(cfg->live, sizeof(void *)), bu_xcalloc(cfg->live, sizeof(void *))};
    size_t failures[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        failures[k] += fill_live(&al[k], live[k], init, cfg->live);
        run_latency(&al[k], live[k], pl, n / 4, samples, &failures[k]); /* warm-up */
    }
    for (unsigned r = 0; r < cfg->rounds; r++) {
        for (int j = 0; j < 2; j++) {
            int k = (r & 1u) ? 1 - j : j;
            int64_t irq0 = cpu_interrupts(g_pinned_cpu), csw0 = context_switches();
            run_latency(&al[k], live[k], pl, n, samples, &failures[k]);
            int64_t irq1 = cpu_interrupts(g_pinned_cpu), csw1 = context_switches();
            irq_known = irq_known && irq0 >= 0 && irq1 >= 0;
            irq[k][r] = (double)(irq1 - irq0);
            csw[k][r] = (double)(csw1 - csw0);
            radix_sort_u32(samples, tmp, n);
            radix_sort_u32(samples + n, tmp, n);
            size_t a = 0, b = n, m = 0;
            while (a < n && b < 2 * n)
                merged[m++] = samples[a] <= samples[b] ? samples[a++] : samples[b++];
            while (a < n)
                merged[m++] = samples[a++];
            while (b < 2 * n)
                merged[m++] = samples[b++];
            struct lat_stat *s = st[(size_t)k * cfg->rounds + r];
            s[LAT_MALLOC] = lat_of(samples, n);
            s[LAT_FREE] = lat_of(samples + n, n);
            s[LAT_ALL] = lat_of(merged, 2 * n);
            /* Drop as many of the slowest samples as interrupts came. */
            size_t drop = irq1 > irq0 ? (size_t)(irq1 - irq0) : 0;
            adj[k][r] =
                drop < 2 * n ? bu_ticks_to_ns(nearest_rank(merged, 2 * n - drop, 999900)) : NAN;
        }
        run_floor(live[0], pl, n, samples);
        radix_sort_u32(samples, tmp, n);
        radix_sort_u32(samples + n, tmp, n);
        fl[r][0] = lat_of(samples, n);
        fl[r][1] = lat_of(samples + n, n);
    }

    js_open("latency");
    js_str("pattern", "random_pair steady state, each malloc and each free timed alone");
    js_sizes_uniform(cfg->size_min, cfg->size_max);
    js_uint("live_blocks", cfg->live);
    js_uint("mallocs_per_round", n);
    js_uint("frees_per_round", n);
    js_str("statistic", "per round percentiles (nearest rank); median, min, max over rounds");
    js_str("noise_note",
           "each interrupt on the pinned CPU lands in at most one timed operation; "
           "all_p99_99_ns_without_interrupted drops that many of the slowest samples "
           "before taking p99.99 (an estimate: it assumes every interrupt hit a sample)");
    static const char *const names[2] = {"mm", "glibc"};
    for (int k = 0; k < 2; k++) {
        struct lat_stat per[LAT_KINDS][BENCH_MAX_ROUNDS];
        for (unsigned r = 0; r < cfg->rounds; r++)
            for (int c = 0; c < LAT_KINDS; c++)
                per[c][r] = st[(size_t)k * cfg->rounds + r][c];
        js_open(names[k]);
        emit_lat("malloc", per[LAT_MALLOC], cfg->rounds);
        emit_lat("free", per[LAT_FREE], cfg->rounds);
        emit_lat("all", per[LAT_ALL], cfg->rounds);
        js_uint("failures", failures[k]);
        js_open("noise");
        if (irq_known) {
            js_summary("interrupts_on_cpu_per_round", irq[k], cfg->rounds, 0);
            js_summary("all_p99_99_ns_without_interrupted", adj[k], cfg->rounds, 1);
        } else {
            js_null("interrupts_on_cpu_per_round");
            js_null("all_p99_99_ns_without_interrupted");
        }
        js_summary("context_switches_per_round", csw[k], cfg->rounds, 0);
        js_close();
        js_close();
        if (k == 0) {
            double v[BENCH_MAX_ROUNDS];
            for (unsigned r = 0; r < cfg->rounds; r++)
                v[r] = per[LAT_ALL][r].p9999;
            g_key.p9999_mm = bu_summarize(v, cfg->rounds).median;
            g_key.p9999_mm_adj = irq_known ? bu_summarize(adj[0], cfg->rounds).median : NAN;
        }
    }
    js_open("machine_floor");
    js_str("pattern", "the same loop and clock without an allocator");
    {
        struct lat_stat per[2][BENCH_MAX_ROUNDS];
        for (unsigned r = 0; r < cfg->rounds; r++) {
            per[0][r] = fl[r][0];
            per[1][r] = fl[r][1];
        }
        emit_lat("empty_interval", per[0], cfg->rounds);
        emit_lat("read_byte_of_random_live_block", per[1], cfg->rounds);
    }
    js_close();
    for (int k = 0; k < 2; k++)
        free_live(&al[k], live[k], cfg->live);
    heap_done(h);
    js_close();

    free(fl);
    free(live[0]);
    free(live[1]);
    free(st);
    free(merged);
    free(tmp);
    free(samples);
    free(init);
}

/* ---- Utilization ----------------------------------------------------------- */

struct util_result {
    double utilization;   /* requested bytes live / heap_size */
    uint64_t requested;   /* bytes requested by live blocks */
    uint64_t blocks;      /* live blocks */
    uint32_t failed_size; /* the request that failed first */
    bool failed;          /* false: gave up (the heap never said no) */
    struct mm_mallinfo_s mi;
};

/* Fill the heap h with random sizes until the first failure.  With churn,
 * first build the steady state of cfg->live blocks and churn it. */
static struct util_result util_fill(const struct bench_cfg *cfg, struct mm_heap_s *h, uint64_t seed,
                                    bool churn)
{
    struct util_result r = {0};
    uint64_t rng = seed;
    if (churn) {
        void **live = bu_xcalloc(cfg->live, sizeof *live);
        uint32_t *lsize = bu_xcalloc(cfg->live, sizeof *lsize);
        for (uint32_t i = 0; i < cfg->live; i++) {
            lsize[i] = rng_range(&rng, cfg->size_min, cfg->size_max);
            live[i] = mm_malloc(h, lsize[i]);
            if (live[i] == NULL)
                lsize[i] = 0;
        }
        for (size_t i = 0; i < cfg->util_churn_ops; i++) {
            uint32_t s = rng_range(&rng, 0, cfg->live - 1u);
            mm_free(h, live[s]);
            lsize[s] = rng_range(&rng, cfg->size_min, cfg->size_max);
            live[s] = mm_malloc(h, lsize[s]);
            if (live[s] == NULL)
                lsize[s] = 0;
        }
        for (uint32_t i = 0; i < cfg->live; i++) {
            if (live[i] != NULL) {
                r.requested += lsize[i];
                r.blocks++;
            }
        }
        free(lsize);
        free(live);
    }
    /* A heap that never fails would be a bug; do not loop forever on it. */
    uint64_t limit = cfg->heap_size / cfg->size_min + 1u;
    for (uint64_t i = 0; i < limit; i++) {
        uint32_t sz = rng_range(&rng, cfg->size_min, cfg->size_max);
        unsigned char *p = mm_malloc(h, sz);
        if (p == NULL) {
            r.failed = true;
            r.failed_size = sz;
            break;
        }
        p[0] = (unsigned char)i;
        r.requested += sz;
        r.blocks++;
    }
    r.utilization = (double)r.requested / (double)cfg->heap_size;
    r.mi = mm_mallinfo(h);
    return r;
}

static void js_mallinfo(const char *key, const struct mm_mallinfo_s *mi)
{
    js_open(key);
    js_uint("arena", mi->arena);
    js_uint("ordblks", mi->ordblks);
    js_uint("aordblks", mi->aordblks);
    js_uint("mxordblk", mi->mxordblk);
    js_uint("uordblks", mi->uordblks);
    js_uint("fordblks", mi->fordblks);
    js_close();
}

static void workload_utilization(const struct bench_cfg *cfg, uint64_t *rng)
{
    fprintf(stderr, "bench_mm: utilization\n");
    js_open("utilization");
    js_sizes_uniform(cfg->size_min, cfg->size_max);
    js_uint("heap_size", cfg->heap_size);
    js_str("definition", "sum of requested bytes of live blocks / heap_size, at the first failed "
                         "malloc; one seed per round");
    js_open("mm");
    for (int churn = 0; churn < 2; churn++) {
        double u[BENCH_MAX_ROUNDS];
        struct util_result first = {0};
        bool all_failed = true;
        for (unsigned k = 0; k < cfg->rounds; k++) {
            struct mm_heap_s *h = heap_fresh(cfg);
            struct util_result r = util_fill(cfg, h, rng_next(rng), churn != 0);
            if (k == 0)
                first = r;
            all_failed = all_failed && r.failed;
            u[k] = r.utilization;
            if (k + 1 < cfg->rounds) {
                mm_uninitialize(h);
            } else {
                /* Check the last heap and say so in the JSON. */
                js_open(churn ? "after_churn" : "fresh_fill");
                if (churn) {
                    js_str("pattern", "random_pair steady state churned, then filled");
                    js_uint("live_blocks_before_fill", cfg->live);
                    js_uint("churn_pairs", cfg->util_churn_ops);
                } else {
                    js_str("pattern", "fresh heap filled with random sizes");
                }
                js_summary("utilization", u, cfg->rounds, 5);
                js_num_array("rounds_utilization", u, cfg->rounds, 5);
                js_bool("every_round_ended_by_failure", all_failed);
                js_open("round_0");
                js_uint("live_blocks", first.blocks);
                js_uint("requested_bytes", first.requested);
                js_uint("failed_request", first.failed_size);
                js_num("utilization", first.utilization, 5);
                js_num("uordblks_over_heap_size",
                       (double)first.mi.uordblks / (double)cfg->heap_size, 5);
                js_mallinfo("mallinfo_at_failure", &first.mi);
                js_close();
                heap_done(h);
                js_close();
            }
        }
        double med = bu_summarize(u, cfg->rounds).median;
        if (churn)
            g_key.util_churn = med;
        else
            g_key.util_fresh = med;
    }
    js_close();
    js_str("glibc", "n/a: glibc malloc has no fixed arena");
    js_close();
}

/* ---- Overhead per 16-byte allocation ----------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Distances between consecutive pointers: the most common one, how often it
 * occurs, min and max. */
static void js_distances(void *const *p, size_t n, int64_t *mode_out, bool *uniform_out)
{
    int64_t *d = bu_xcalloc(n, sizeof *d);
    size_t m = n - 1;
    for (size_t i = 0; i < m; i++)
        d[i] = (int64_t)((uintptr_t)p[i + 1] - (uintptr_t)p[i]);
    qsort(d, m, sizeof *d, cmp_i64);
    int64_t mode = d[0];
    size_t best = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && d[j] == d[i])
            j++;
        if (j - i > best) {
            best = j - i;
            mode = d[i];
        }
        i = j;
    }
    js_int("distance_bytes", mode);
    js_uint("distance_count", best);
    js_uint("distances", m);
    js_int("distance_min", d[0]);
    js_int("distance_max", d[m - 1]);
    if (mode_out != NULL)
        *mode_out = mode;
    if (uniform_out != NULL)
        *uniform_out = best == m;
    free(d);
}

static void workload_overhead(const struct bench_cfg *cfg)
{
    fprintf(stderr, "bench_mm: overhead_16\n");
    size_t n = cfg->overhead_blocks;
    void **p = bu_xcalloc(n, sizeof *p);
    js_open("overhead_16");
    js_uint("blocks", n);
    js_str("pattern", "n mallocs of 16 bytes from a fresh heap; distance between consecutive "
                      "pointers");

    js_open("mm");
    struct mm_heap_s *h = heap_fresh(cfg);
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);
    size_t failures = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = mm_malloc(h, 16);
        if (b != NULL)
            b[0] = (unsigned char)i;
        else
            failures++;
        p[i] = b;
    }
    struct mm_mallinfo_s mi1 = mm_mallinfo(h);
    js_uint("failures", failures);
    js_distances(p, n, &g_key.distance_16, &g_key.distance_uniform);
    js_uint("malloc_size", mm_malloc_size(h, p[0]));
    js_num("uordblks_per_block", ((double)mi1.uordblks - (double)mi0.uordblks) / (double)n, 2);
    js_int("aordblks_delta", (int64_t)mi1.aordblks - (int64_t)mi0.aordblks);
    js_uint("expected_distance", 16u + MM_OVERHEAD);
    for (size_t i = 0; i < n; i++)
        mm_free(h, p[i]);
    heap_done(h);
    js_close();

    js_open("glibc");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 g0 = mallinfo2();
#endif
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = malloc(16);
        if (b != NULL)
            b[0] = (unsigned char)i;
        p[i] = b;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 g1 = mallinfo2();
#endif
    js_distances(p, n, NULL, NULL);
    js_uint("malloc_usable_size", malloc_usable_size(p[0]));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    js_num("uordblks_per_block", ((double)g1.uordblks - (double)g0.uordblks) / (double)n, 2);
#else
    js_null("uordblks_per_block");
#endif
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    js_close();

    js_close();
    free(p);
}

/* ---- Header and floors --------------------------------------------------------- */

static void emit_header(const struct bench_cfg *cfg)
{
    js_str("benchmark", "bench_mm");
    js_str("variant", BENCH_VARIANT);
    js_str("model", MM_CONFIG_SMALL ? "small" : "large");
    js_uint("mm_align", MM_ALIGN);
    js_uint("mm_overhead", MM_OVERHEAD);
    js_uint("heap_size", cfg->heap_size);
    js_uint("live_blocks", cfg->live);
    js_sizes_uniform(cfg->size_min, cfg->size_max);
    js_uint("pairs_per_round", cfg->pair_ops);
    js_uint("latency_pairs_per_round", cfg->lat_ops);
    js_uint("rounds", cfg->rounds);
    js_bool("quick", cfg->quick);
    js_uint("seed", cfg->seed);
    js_str("statistic",
           "median over rounds (min, max beside); mm and glibc alternate within each round");
    js_str("glibc_tuning", "none (default mallopt settings)");

    js_open("build");
    bu_emit_build_fields();
#ifdef NDEBUG
    js_bool("ndebug", true);
#else
    js_bool("ndebug", false);
#endif
    js_uint("mm_config_debug", MM_CONFIG_DEBUG);
    js_uint("mm_config_crash_hooks", MM_CONFIG_CRASH_HOOKS);
    js_close();

    js_open("machine");
    bu_emit_machine_fields();
    if (g_pinned_cpu >= 0)
        js_int("pinned_cpu", g_pinned_cpu);
    else
        js_null("pinned_cpu");
    js_open("timer");
    js_str("per_op_clock", bu_have_tsc() ? "rdtsc (lfence on both sides)" : "CLOCK_MONOTONIC");
    js_str("pair_clock", "CLOCK_MONOTONIC around each round");
    js_num("ticks_per_ns", bu_ticks_per_ns(), 4);
    js_num("resolution_ns", bu_ticks_to_ns(bu_timer_resolution()), 2);
    js_num("overhead_ns", bu_ticks_to_ns(bu_timer_overhead()), 2);
    js_bool("overhead_subtracted_from_latency_samples", true);
    js_close();
    js_close();
}

static void emit_floors(const struct bench_cfg *cfg)
{
    js_open("floors");
    js_str("source", "issue 2; random_pair ratio, latency p99.99 of all mm operations, "
                     "fresh-fill utilization, 16-byte distance");
    js_num("random_pair_ratio", g_key.pair_ratio, 3);
    js_bool("random_pair_ratio_at_most_0_5", g_key.pair_ratio <= 0.5);
    js_num("mm_p99_99_ns", g_key.p9999_mm, 1);
    js_bool("mm_p99_99_under_1us", g_key.p9999_mm < 1000.0);
    js_num("mm_p99_99_ns_without_interrupted", g_key.p9999_mm_adj, 1);
    js_num("utilization_fresh", g_key.util_fresh, 5);
    js_num("utilization_after_churn", g_key.util_churn, 5);
    js_bool("utilization_at_least_0_97", g_key.util_fresh >= 0.97);
    js_int("distance_16", g_key.distance_16);
    js_bool("distance_16_is_16_plus_overhead",
            g_key.distance_uniform && g_key.distance_16 == 16 + (int64_t)MM_OVERHEAD);
    js_bool("heaps_check_clean", g_key.problems == 0 && g_key.misuse == 0);
    (void)cfg;
    js_close();
}

/* ---- Main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_mm [--quick] [--rounds N] [--seed N] [--no-pin] [--only NAME]\n"
            "  Prints one JSON document on stdout: the mm heap against glibc malloc.\n"
            "  --quick      smoke run, a few seconds\n"
            "  --rounds N   rounds per measurement (1..%u; default 7, quick 3)\n"
            "  --seed N     random seed (default 1)\n"
            "  --no-pin     do not pin the process to one CPU\n"
            "  --only NAME  run one workload (random_pair, fixed_64, fixed_1536,\n"
            "               latency, utilization, overhead_16) and leave out the\n"
            "               floors, which need them all: many short runs of one\n"
            "               workload give a median on a noisy host\n",
            BENCH_MAX_ROUNDS);
}

static const char *const g_workloads[] = {"random_pair", "fixed_64",    "fixed_1536",
                                          "latency",     "utilization", "overhead_16"};

/* Whether the workload called name runs: all of them, or the one --only
 * named. */
static bool wanted(const char *only, const char *name)
{
    return only == NULL || strcmp(only, name) == 0;
}

static bool known_workload(const char *name)
{
    for (size_t i = 0; i < sizeof g_workloads / sizeof g_workloads[0]; i++)
        if (strcmp(g_workloads[i], name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    struct bench_cfg cfg = {.pin = true, .seed = 1};
    struct bu_opts opts = {false, 0};
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        enum bu_opt_result r = bu_opt(argc, argv, &i, BENCH_MAX_ROUNDS, &opts);
        if (r == BU_OPT_OTHER) {
            if (strcmp(argv[i], "--no-pin") == 0)
                cfg.pin = false;
            else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc && known_workload(argv[i + 1]))
                only = argv[++i];
            else if (strcmp(argv[i], "--seed") != 0 || !bu_parse_u64(argv[++i], &cfg.seed))
                r = BU_OPT_BAD;
        }
        if (r == BU_OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (r == BU_OPT_BAD) {
            usage(stderr);
            return 2;
        }
    }
    cfg.quick = opts.quick;

#if MM_CONFIG_SMALL
    cfg.heap_size = MM_MAX_HEAPSIZE; /* 64 KiB */
    cfg.live = 20;
    cfg.size_min = 16;
    cfg.size_max = 1024;
#else
    cfg.heap_size = 64u << 20;
    cfg.live = 10000;
    cfg.size_min = 16;
    cfg.size_max = 4096;
#endif
    cfg.rounds = opts.rounds != 0 ? opts.rounds : cfg.quick ? 3u : 7u;
    cfg.pair_ops = cfg.quick ? 200000u : 2000000u;
    cfg.lat_ops = cfg.quick ? 200000u : 1000000u;
    cfg.util_churn_ops = cfg.quick ? 100000u : 1000000u;
    cfg.overhead_blocks = 1000;
    cfg.calib_ms = cfg.quick ? 20u : 100u;

    if (cfg.pin) {
        int cpu; /* the highest: CPU 0 tends to take more interrupts */
        if (bu_cpus(&cpu, 1) == 1 && bu_pin(cpu))
            g_pinned_cpu = cpu;
        else
            fprintf(stderr, "bench_mm: could not pin to one CPU; running unpinned\n");
    }
    bu_warn_unoptimized();

    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096u;
    g_arena_len = (cfg.heap_size + pg - 1u) / pg * pg;
    g_arena = mmap(NULL, g_arena_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (g_arena == MAP_FAILED) {
        perror("bench_mm: mmap");
        return 1;
    }
    memset(g_arena, 0, g_arena_len); /* no page faults inside the timed loops */

    bu_calibrate(cfg.calib_ms);

    struct plan pl;
    pl.cap = cfg.pair_ops > cfg.lat_ops ? cfg.pair_ops : cfg.lat_ops;
    pl.slot = bu_xcalloc(pl.cap, sizeof *pl.slot);
    pl.size = bu_xcalloc(pl.cap, sizeof *pl.size);
    uint64_t rng = cfg.seed;

    uint64_t t0 = bu_now_ns();
    js_open(NULL);
    emit_header(&cfg);
    js_open("workloads");
    if (wanted(only, "random_pair"))
        workload_churn(&cfg, &pl, "random_pair", cfg.size_min, cfg.size_max, false, &rng);
    if (wanted(only, "fixed_64"))
        workload_churn(&cfg, &pl, "fixed_64", 64, 64, true, &rng);
    if (wanted(only, "fixed_1536"))
        workload_churn(&cfg, &pl, "fixed_1536", 1536, 1536, true, &rng);
    if (wanted(only, "latency"))
        workload_latency(&cfg, &pl, &rng);
    if (wanted(only, "utilization"))
        workload_utilization(&cfg, &rng);
    if (wanted(only, "overhead_16"))
        workload_overhead(&cfg);
    js_close();
    if (only == NULL)
        emit_floors(&cfg);
    else
        js_str("only", only);
    js_num("run_seconds", (double)(bu_now_ns() - t0) / 1e9, 2);
    js_close(); /* ends the document with a newline */

    free(pl.slot);
    free(pl.size);
    munmap(g_arena, g_arena_len);
    if (fflush(stdout) != 0) {
        perror("bench_mm: stdout");
        return 1;
    }
    return 0;
}
