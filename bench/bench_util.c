/*
 * bench_util.c - shared helpers of the benchmarks (see bench_util.h).
 * Messages on stderr carry the program's name, so that bench_mm and
 * bench_mm_small say which one spoke.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h> /* program_invocation_short_name */
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Set by bench/meson.build. */
#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif
#ifndef BENCH_OPTIMIZATION
#define BENCH_OPTIMIZATION "unknown"
#endif

/* ---- JSON ---------------------------------------------------------------- */

#define JS_MAX_DEPTH 16
static int js_depth;
static bool js_first[JS_MAX_DEPTH] = {true};

static void js_sep(const char *key)
{
    if (js_depth > 0) {
        if (!js_first[js_depth])
            putchar(',');
        putchar('\n');
        for (int i = 0; i < js_depth; i++)
            fputs("  ", stdout);
    }
    js_first[js_depth] = false;
    if (key != NULL)
        printf("\"%s\": ", key);
}

static void js_open_as(const char *key, char bracket)
{
    js_sep(key);
    putchar(bracket);
    if (js_depth + 1 >= JS_MAX_DEPTH) {
        fprintf(stderr, "%s: JSON nested too deep\n", program_invocation_short_name);
        exit(1);
    }
    js_depth++;
    js_first[js_depth] = true;
}

static void js_close_as(char bracket)
{
    bool empty = js_first[js_depth];
    js_depth--;
    if (!empty) {
        putchar('\n');
        for (int i = 0; i < js_depth; i++)
            fputs("  ", stdout);
    }
    putchar(bracket);
    if (js_depth == 0)
        putchar('\n');
}

void js_open(const char *key)
{
    js_open_as(key, '{');
}

void js_close(void)
{
    js_close_as('}');
}

void js_open_array(const char *key)
{
    js_open_as(key, '[');
}

void js_close_array(void)
{
    js_close_as(']');
}

void js_str(const char *key, const char *s)
{
    js_sep(key);
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

void js_uint(const char *key, uint64_t v)
{
    js_sep(key);
    printf("%" PRIu64, v);
}

void js_int(const char *key, int64_t v)
{
    js_sep(key);
    printf("%" PRId64, v);
}

void js_num(const char *key, double v, int decimals)
{
    js_sep(key);
    if (isfinite(v))
        printf("%.*f", decimals, v);
    else
        fputs("null", stdout);
}

void js_bool(const char *key, bool v)
{
    js_sep(key);
    fputs(v ? "true" : "false", stdout);
}

void js_null(const char *key)
{
    js_sep(key);
    fputs("null", stdout);
}

void js_num_array(const char *key, const double *v, unsigned n, int decimals)
{
    js_open_array(key);
    for (unsigned i = 0; i < n; i++)
        js_num(NULL, v[i], decimals);
    js_close_array();
}

/* ---- Clocks -------------------------------------------------------------- */

static double g_ticks_per_ns = 1.0;
static uint32_t g_timer_overhead;
static uint32_t g_timer_resolution;

uint64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bu_thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bu_have_tsc(void)
{
    return BU_TSC != 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void bu_calibrate(unsigned ms)
{
#if BU_TSC
    uint64_t n0 = bu_now_ns(), c0 = bu_ticks();
    while (bu_now_ns() - n0 < (uint64_t)ms * 1000000u)
        ;
    uint64_t c1 = bu_ticks(), n1 = bu_now_ns();
    g_ticks_per_ns = (double)(c1 - c0) / (double)(n1 - n0);
#else
    (void)ms;
    g_ticks_per_ns = 1.0;
#endif

    /* Cost: the median of many empty intervals, which a latency sample of
     * one operation may subtract. */
    enum { N = 100001 };
    uint32_t *d = bu_xcalloc(N, sizeof(*d));
    for (size_t i = 0; i < N; i++) {
        uint64_t a = bu_ticks();
        uint64_t b = bu_ticks();
        d[i] = (uint32_t)(b - a);
    }
    qsort(d, N, sizeof(*d), cmp_u32);
    g_timer_overhead = d[N / 2];
    free(d);

    /* Resolution: the smallest nonzero step seen between plain reads. */
    uint64_t step = UINT64_MAX, prev = bu_ticks_raw();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = bu_ticks_raw();
        if (t != prev && t - prev < step)
            step = t - prev;
        prev = t;
    }
    g_timer_resolution = step > UINT32_MAX ? UINT32_MAX : (uint32_t)step;
}

double bu_ticks_to_ns(double ticks)
{
    return ticks / g_ticks_per_ns;
}

double bu_ticks_per_ns(void)
{
    return g_ticks_per_ns;
}

uint32_t bu_timer_overhead(void)
{
    return g_timer_overhead;
}

uint32_t bu_timer_resolution(void)
{
    return g_timer_resolution;
}

/* ---- Statistics ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bu_sort(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
}

size_t bu_rank(size_t n, uint32_t ppm)
{
    if (ppm > 1000000u)
        ppm = 1000000u;
    /* The smallest k with k >= n * ppm / 10^6, as a 0-based index. */
    uint64_t k = ((uint64_t)n * ppm + 999999u) / 1000000u;
    return k == 0 ? 0 : (size_t)k - 1u;
}

double bu_quantile_sorted(const double *v, size_t n, double q)
{
    if (n == 0 || !(q >= 0.0))
        return NAN;
    return v[bu_rank(n, q >= 1.0 ? 1000000u : (uint32_t)(q * 1e6 + 0.5))];
}

struct bu_summary bu_summarize(const double *v, unsigned n)
{
    struct bu_summary s = {NAN, NAN, NAN};
    if (n == 0)
        return s;
    /* Rounds fit on the stack: a summary between two measurements of
     * malloc must not change the heap that malloc works in. */
    double stack[BU_SUMMARY_STACK];
    double *t = n <= BU_SUMMARY_STACK ? stack : bu_xcalloc(n, sizeof(*t));
    memcpy(t, v, n * sizeof(*t));
    bu_sort(t, n);
    s.min = t[0];
    s.max = t[n - 1];
    s.median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2.0;
    if (t != stack)
        free(t);
    return s;
}

void js_summary(const char *key, const double *v, unsigned n, int decimals)
{
    struct bu_summary s = bu_summarize(v, n);
    js_open(key);
    js_num("median", s.median, decimals);
    js_num("min", s.min, decimals);
    js_num("max", s.max, decimals);
    js_close();
}

/* ---- Process ------------------------------------------------------------- */

void *bu_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL && n != 0 && size != 0) {
        fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
        exit(1);
    }
    return p;
}

bool bu_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

enum bu_opt_result bu_opt(int argc, char **argv, int *i, unsigned max_rounds, struct bu_opts *o)
{
    const char *a = argv[*i];
    if (strcmp(a, "--quick") == 0) {
        o->quick = true;
        return BU_OPT_TAKEN;
    }
    if (strcmp(a, "--rounds") == 0) {
        uint64_t r;
        if (*i + 1 >= argc || !bu_parse_u64(argv[++*i], &r) || r < 1 || r > max_rounds)
            return BU_OPT_BAD;
        o->rounds = (unsigned)r;
        return BU_OPT_TAKEN;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return BU_OPT_HELP;
    return BU_OPT_OTHER;
}

/* ---- Build and machine --------------------------------------------------- */

void bu_emit_build_fields(void)
{
    js_str("compiler", __VERSION__);
    js_str("buildtype", BENCH_BUILDTYPE);
    js_str("optimization", BENCH_OPTIMIZATION);
}

void bu_warn_unoptimized(void)
{
    if (strcmp(BENCH_OPTIMIZATION, "0") == 0 || strcmp(BENCH_OPTIMIZATION, "g") == 0 ||
        strcmp(BENCH_OPTIMIZATION, "plain") == 0)
        fprintf(stderr,
                "%s: warning: the allocator library is built with optimization "
                "'%s'; timings are not meaningful\n",
                program_invocation_short_name, BENCH_OPTIMIZATION);
}

int bu_cpus(int *cpus, int max)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 0;
    int n = 0;
    for (int i = CPU_SETSIZE - 1; i >= 0 && n < max; i--)
        if (CPU_ISSET((size_t)i, &set))
            cpus[n++] = i;
    return n;
}

bool bu_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0)
        return false;
    CPU_SET((size_t)cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c != NULL) {
                c++;
                while (*c == ' ' || *c == '\t')
                    c++;
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, len, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

void bu_emit_machine_fields(void)
{
    char model[128];
    cpu_model(model, sizeof(model));
    js_str("cpu", model);
    js_int("nproc", sysconf(_SC_NPROCESSORS_ONLN));
    struct utsname u;
    if (uname(&u) == 0)
        js_str("kernel", u.release);
}

void bu_emit_machine(void)
{
    js_open("machine");
    bu_emit_machine_fields();
    double load[3];
    if (getloadavg(load, 3) == 3)
        js_num("loadavg_1min_at_start", load[0], 2);
    js_str("clock", BU_TSC ? "rdtsc, lfence on both sides" : "CLOCK_MONOTONIC");
    js_num("ticks_per_ns", g_ticks_per_ns, 4);
    js_close();
}
