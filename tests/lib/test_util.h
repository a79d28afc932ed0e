/*
 * test_util.h - what the CUnit tests share: a seeded random generator whose
 * seed is printed when a test fails, shared-memory mappings, bounded waits
 * for child processes, and the runner boilerplate.
 */
#ifndef MMSRV_TEST_UTIL_H
#define MMSRV_TEST_UTIL_H

#ifdef TU_TARGET
/* Microcontroller builds of the same tests: tests/target/include. */
#include "tu_target.h"
#else

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Random numbers -------------------------------------------------- */

/* The run's seed: $MMSRV_TEST_SEED if set, else from the clock.  Printed by
 * tu_main when any test fails, so that a failure can be replayed. */
uint64_t tu_seed(void);

struct tu_rng {
    uint64_t s;
};
void tu_rng_init(struct tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *r);
/* Uniform in [lo, hi]. */
uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi);

/* ---- Patterns --------------------------------------------------------- */

/* Fill n bytes at p with a pattern derived from key.  It does not repeat
 * within a block, so bytes moved to the wrong place, shifted, or taken from
 * another block (another key) do not match. */
void tu_pattern_fill(void *p, size_t n, uint64_t key);
/* Index of the first byte at p that differs from the pattern of key, or n
 * if all n match. */
size_t tu_pattern_check(const void *p, size_t n, uint64_t key);

/* ---- Private memory --------------------------------------------------- */

/* Zeroed, page-aligned private memory for a test heap or pool (an anonymous
 * mapping, as tests/target has its own from the C library's heap); NULL on
 * failure.  Give it back with tu_mem_free and the same size. */
void *tu_mem_alloc(size_t size);
void tu_mem_free(void *p, size_t size);

/* ---- Shared memory ---------------------------------------------------- */

/* A new anonymous shared-memory object (memfd) of size bytes; -1 on error. */
int tu_shm_create(size_t size);
/* Map it read-write, shared; NULL on error. */
void *tu_shm_map(int fd, size_t size);
/* Map it at an address different from avoid (for position-independence
 * tests); NULL on error. */
void *tu_shm_map_elsewhere(int fd, size_t size, const void *avoid);
void tu_shm_unmap(void *p, size_t size);

/* ---- Processes -------------------------------------------------------- */

/* Wait for a child to exit, at most timeout_ms.  Returns its wait status,
 * or -1 on timeout (then the child is killed and reaped). */
int tu_wait_child(pid_t pid, int timeout_ms);

/* Whether a wait status says the child exited with status 0. */
int tu_exited_ok(int status);

/* Poll cond(arg) every millisecond until it returns non-zero or timeout_ms
 * passes.  Returns the last value of cond. */
int tu_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms);

/* Read exactly n bytes from fd (a pipe), waiting at most timeout_ms in all.
 * Returns n, fewer if the writer closed its end first, or -1 on timeout or
 * error. */
long tu_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* Milliseconds on the monotonic clock. */
uint64_t tu_now_ms(void);

/* ---- Running -------------------------------------------------------- */

struct tu_test {
    const char *name;
    void (*fn)(void);
};
#define TU_TEST(f)                                                                                 \
    {                                                                                              \
#f, f                                                                                      \
    }
#define TU_END                                                                                     \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }

/* Register one suite with the given tests, run it, print the summary and
 * the seed if anything failed.  Returns the process exit status. */
int tu_main(const char *suite, const struct tu_test *tests);

#endif /* TU_TARGET */

#endif /* MMSRV_TEST_UTIL_H */
