/*
 * tu_target.h - test_util.h for microcontrollers: the part of
 * tests/lib/test_util.h that means something without processes, files or a
 * clock (random numbers, patterns, the runner), plus memory for test heaps
 * in place of mmap.  The shared test sources include "test_util.h", which
 * includes this header instead of its own content when TU_TARGET is defined
 * (tests/target/meson.build defines it).
 */
#ifndef MMSRV_TU_TARGET_H
#define MMSRV_TU_TARGET_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>

/* The shared sources leave out, with #ifndef TU_TARGET, what needs
 * processes, threads, shared memory, a clock or more memory than a target
 * has; TU_RAM_TINY marks a target with a few KiB of RAM (AVR). */

/* Random numbers and patterns: tests/lib/tu_random.c, as on the host. */
uint64_t tu_seed(void);

struct tu_rng {
    uint64_t s;
};
void tu_rng_init(struct tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *r);
uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi);
void tu_pattern_fill(void *p, size_t n, uint64_t key);
size_t tu_pattern_check(const void *p, size_t n, uint64_t key);

/* Zeroed memory for a test heap or pool, aligned to 64 bytes, from the C
 * library's heap; NULL when there is not that much left. */
void *tu_mem_alloc(size_t size);
void tu_mem_free(void *p, size_t size);

/* No clock on the targets: 0. */
uint64_t tu_now_ms(void);

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

/* Run the tests, print one line per test and a closing
 * "suite: N passed, N failed", and end the program with status 0 (all
 * passed) or 1 through tu_target_exit. */
int tu_main(const char *suite, const struct tu_test *tests);

/* Per target (tu_board_*.c): set up the console, and end the program with a
 * status the emulator hands back. */
void tu_board_init(void);
_Noreturn void tu_board_exit(int status);

#endif /* MMSRV_TU_TARGET_H */
