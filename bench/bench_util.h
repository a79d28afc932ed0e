/*
 * bench_util.h - what a benchmark program shares: a small JSON writer that
 * places commas and indentation itself, the TSC clock calibrated against
 * CLOCK_MONOTONIC (rate, cost of one timed interval, resolution),
 * nearest-rank percentiles and medians, CPU pinning, the options every
 * benchmark takes, and the build and machine descriptions.
 *
 * Each benchmark is one single-threaded program writing one JSON document
 * on stdout; the writer and the calibrated clock are process state.
 */
#ifndef MMSRV_BENCH_UTIL_H
#define MMSRV_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BU_TSC 1
#else
#define BU_TSC 0
#endif

/* ---- JSON on stdout ---------------------------------------------------- */

/* key is NULL inside arrays and at the top.  Closing the top level ends the
 * document with a newline. */
void js_open(const char *key);
void js_close(void);
void js_open_array(const char *key);
void js_close_array(void);
void js_str(const char *key, const char *s);
void js_uint(const char *key, uint64_t v);
void js_int(const char *key, int64_t v);
void js_num(const char *key, double v, int decimals); /* null if not finite */
void js_bool(const char *key, bool v);
void js_null(const char *key);
/* v[0..n) as an array of numbers under key (the rounds behind a summary). */
void js_num_array(const char *key, const double *v, unsigned n, int decimals);

/* ---- Clocks ------------------------------------------------------------ */

uint64_t bu_now_ns(void);    /* CLOCK_MONOTONIC */
uint64_t bu_thread_ns(void); /* CLOCK_THREAD_CPUTIME_ID */

/* The per-operation clock: rdtsc on x86, else CLOCK_MONOTONIC in ns.  lfence
 * on both sides keeps the timed work from moving across the read.  Inline,
 * so that a timed interval holds no call. */
static inline uint64_t bu_ticks(void)
{
#if BU_TSC
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* The same without fences, to see how finely the clock steps. */
static inline uint64_t bu_ticks_raw(void)
{
#if BU_TSC
    return __rdtsc();
#else
    return bu_ticks();
#endif
}

/* Measure bu_ticks: ticks per ns over ms of wall time, then the median cost
 * of an empty interval (two back-to-back reads) and the smallest step
 * between two plain reads.  Takes ms plus a few ms; exits if out of
 * memory.  Until called: 1 tick per ns, cost and resolution 0. */
void bu_calibrate(unsigned ms);
double bu_ticks_to_ns(double ticks);
double bu_ticks_per_ns(void);
uint32_t bu_timer_overhead(void);   /* median cost of one timed interval, ticks */
uint32_t bu_timer_resolution(void); /* smallest nonzero step, ticks */
bool bu_have_tsc(void);

/* Make the compiler believe p and the memory behind it are used, so that
 * the work that produced it is not folded away. */
static inline void bu_escape(void *p)
{
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* ---- Statistics -------------------------------------------------------- */

void bu_sort(double *v, size_t n);
/* Index of the nearest-rank quantile of ppm millionths in n sorted values
 * (exact integer arithmetic); 0 if n is 0. */
size_t bu_rank(size_t n, uint32_t ppm);
/* The q-quantile (0..1, taken to the millionth) of sorted v[0..n), nearest
 * rank (bu_rank); NaN if n is 0. */
double bu_quantile_sorted(const double *v, size_t n, double q);

struct bu_summary {
    double median, min, max;
};
/* Of v[0..n), left as it is; the median of an even count is the mean of
 * the middle two.  All NaN if n is 0.  Allocates nothing for n up to
 * BU_SUMMARY_STACK, so that it leaves a measured malloc heap alone. */
#define BU_SUMMARY_STACK 1024u
struct bu_summary bu_summarize(const double *v, unsigned n);
/* {"median", "min", "max"} under key. */
void js_summary(const char *key, const double *v, unsigned n, int decimals);

/* ---- Process ----------------------------------------------------------- */

/* calloc that exits with a message if out of memory. */
void *bu_xcalloc(size_t n, size_t size);

/* The options every benchmark takes. */
struct bu_opts {
    bool quick;      /* --quick */
    unsigned rounds; /* --rounds N; 0 if not given */
};

enum bu_opt_result {
    BU_OPT_TAKEN, /* one of them; *i is past its value */
    BU_OPT_OTHER, /* not one of them: the program's own */
    BU_OPT_HELP,  /* --help or -h */
    BU_OPT_BAD,   /* one of them with a bad or missing value */
};

/* Look at argv[*i]: --quick, --rounds N (1..max_rounds), --help or -h. */
enum bu_opt_result bu_opt(int argc, char **argv, int *i, unsigned max_rounds, struct bu_opts *o);
/* A whole decimal, octal or hex number (strtoull base 0), no sign; false if
 * s is NULL or not one. */
bool bu_parse_u64(const char *s, uint64_t *out);

/* ---- Build and machine ------------------------------------------------- */

/* "compiler", "buildtype", "optimization" into the open object. */
void bu_emit_build_fields(void);
/* A warning on stderr if the project, and so the allocator library, is built
 * without optimization: its timings then mean little. */
void bu_warn_unoptimized(void);

/* CPUs this process may run on, highest first; returns how many (<= max). */
int bu_cpus(int *cpus, int max);
/* Pin the calling thread to cpu; false if refused. */
bool bu_pin(int cpu);
/* "cpu" model, "nproc", "kernel" into the open object. */
void bu_emit_machine_fields(void);
/* "machine": the fields above, load average, timer. */
void bu_emit_machine(void);

#endif /* MMSRV_BENCH_UTIL_H */
