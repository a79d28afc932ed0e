/*
 * tu_target.c - the test runner of the microcontroller builds: runs each
 * test, counts assertions, prints one line per test and the closing
 * "suite: N passed, N failed" line, and leaves the result as the program's
 * exit status (see test_util.h).
 */
#include "test_util.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#if TU_PORT_APP
#include "tu_port_app.h"
#endif

static jmp_buf g_abort;
static unsigned g_test_failures; /* failed assertions in the running test */
static unsigned long g_asserts;

void tu_assert(bool ok, unsigned line, const char *expr, bool fatal)
{
    g_asserts++;
    if (ok)
        return;
    if (g_test_failures++ < 8) /* the first few; the rest are counted */
        printf("    line %u: %s\n", line, expr != NULL ? expr : "assertion failed");
    if (fatal)
        longjmp(g_abort, 1);
}

uint64_t tu_seed(void)
{
#ifdef TU_SEED
    return TU_SEED;
#else
    return 0x6d6d7372763031ull; /* fixed: a failure replays exactly */
#endif
}

uint64_t tu_now_ms(void)
{
    return 0;
}

/* Blocks a test has not given back yet: a test that stops at a failed
 * _FATAL assertion leaves its memory behind, and the next tests need it. */
#define TU_MEM_SLOTS 16
static void *g_mem_live[TU_MEM_SLOTS];

static void mem_track(void *p, void *was)
{
    for (unsigned i = 0; i < TU_MEM_SLOTS; i++)
        if (g_mem_live[i] == was) {
            g_mem_live[i] = p;
            return;
        }
}

static void mem_release_all(void)
{
    for (unsigned i = 0; i < TU_MEM_SLOTS; i++)
        if (g_mem_live[i] != NULL)
            tu_mem_free(g_mem_live[i], 0);
}

/* Aligned, zeroed blocks from the C library's malloc: the address malloc
 * gave is kept in the word before the block. */
void *tu_mem_alloc(size_t size)
{
    const size_t align = 64;
    if (size > (size_t)-1 - align - sizeof(void *))
        return NULL;
    unsigned char *raw = malloc(size + align + sizeof(void *));
    if (raw == NULL)
        return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1u) & ~(uintptr_t)(align - 1u);
    memcpy((unsigned char *)p - sizeof(void *), &raw, sizeof(raw));
    /* Zeroed, as fresh mmap memory on the host: a heap left in freed memory
     * by an earlier test must not show up again. */
    memset((void *)p, 0, size);
    mem_track((void *)p, NULL);
    return (void *)p;
}

void tu_mem_free(void *p, size_t size)
{
    (void)size;
    if (p == NULL)
        return;
    mem_track(NULL, p);
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(raw));
    free(raw);
}

/* The test function runs through a volatile pointer so that setjmp's
 * caller keeps no register state the test could clobber. */
static bool run_one(void (*volatile fn)(void))
{
    g_test_failures = 0;
    if (setjmp(g_abort) == 0)
        fn();
    mem_release_all();
#if TU_PORT_APP
    /* Every critical section the allocators opened was closed. */
    if (!tu_port_app_balanced()) {
        printf("    critical section left open\n");
        g_test_failures++;
    }
#endif
    return g_test_failures == 0;
}

int tu_main(const char *suite, const struct tu_test *tests)
{
    tu_board_init();
    unsigned passed = 0, failed = 0;
    uint64_t seed = tu_seed(); /* in two halves: AVR's printf has no %llx */
    printf("suite %s, seed 0x%08lx%08lx\n", suite, (unsigned long)(seed >> 32),
           (unsigned long)(seed & 0xffffffffu));
    for (const struct tu_test *t = tests; t->name != NULL; t++) {
        bool ok = run_one(t->fn);
        printf("  %s ... %s\n", t->name, ok ? "passed" : "FAILED");
        if (ok)
            passed++;
        else
            failed++;
    }
#if TU_PORT_APP
    printf("%lu assertions, %lu critical sections\n", g_asserts, tu_port_app_locks());
#else
    printf("%lu assertions\n", g_asserts);
#endif
    printf("%s: %u passed, %u failed\n", suite, passed, failed);
    fflush(stdout);
    tu_board_exit(failed == 0 && passed > 0 ? 0 : 1);
}
