/*
 * tu_random.c - the seeded generator and the block patterns of test_util.h.
 * Plain C with no system calls: the microcontroller builds (tests/target)
 * compile this same file.
 */
#include "test_util.h"

#include <string.h>

void tu_rng_init(struct tu_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
}

/* splitmix64: small, fast, good enough for test workloads. */
uint64_t tu_rng_next(struct tu_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + tu_rng_next(r) % (hi - lo + 1);
}

/* Word k of the pattern of key.  Byte i of a block is byte i % 8 of word
 * i / 8, so a check reads whole words where it can. */
static uint64_t pattern_word(uint64_t key, uint64_t k)
{
    uint64_t z = key * 0xbf58476d1ce4e5b9ull + k * 0x9e3779b97f4a7c15ull;
    return z ^ (z >> 29);
}

void tu_pattern_fill(void *p, size_t n, uint64_t key)
{
    unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = pattern_word(key, i / 8);
        memcpy(b + i, &w, 8);
    }
    if (i < n) {
        uint64_t w = pattern_word(key, i / 8);
        memcpy(b + i, &w, n - i);
    }
}

size_t tu_pattern_check(const void *p, size_t n, uint64_t key)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i < n; i += 8) {
        uint64_t w = pattern_word(key, i / 8);
        size_t len = n - i < 8 ? n - i : 8;
        if (memcmp(b + i, &w, len) != 0) {
            const unsigned char *e = (const unsigned char *)&w;
            for (size_t j = 0; j < len; j++)
                if (b[i + j] != e[j])
                    return i + j;
        }
    }
    return n;
}
