/*
 * heap_work.h - a random workload on an mm heap with a shadow model, shared
 * by the heap tests that hammer a heap: the single-threaded stress, threads,
 * and processes sharing a heap.
 *
 * A worker keeps its own live blocks (key, size, pointer), each filled with
 * the pattern of its key; before a block is freed or resized its bytes are
 * checked, and after a resize the bytes that had to survive are checked.
 * Keys carry the worker's id, so a block written by another worker or
 * process does not pass as one's own.  Each step is one random operation
 * (malloc, calloc, zalloc, realloc, memalign, free), with the live count
 * swinging between nearly empty and full so that both ends are exercised.
 *
 * Compiled into each heap test program, per variant (the sizes depend on
 * MM_CONFIG_SMALL and MM_CONFIG_DEBUG).  Failures are returned, never
 * asserted, so a forked child or a thread can report them.
 */
#ifndef MMSRV_HEAP_WORK_H
#define MMSRV_HEAP_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm.h"
#include "test_util.h"

/* A free chunk holds its header and two list links: the smallest chunk. */
#define HW_MINCHUNK ((size_t)(2u * MM_OVERHEAD))

/* The chunk size malloc(n) takes when it splits a larger chunk.  Release
 * builds: n plus the header, aligned.  Debug builds add a record and a guard,
 * whose sizes the test reads from the layout. */
size_t hw_chunk_for(size_t n);

/* The largest chunk the heap may use for an allocation of n bytes: what n
 * needs, plus a tail too small to split off, plus, where a thread cache
 * hands out blocks of the next size class, that class's width. */
size_t hw_chunk_max(size_t n);

/* Bytes a chunk carries besides the user's: the header, and in debug builds
 * the debug record and the guard. */
size_t hw_chunk_extra(void);

struct hw_block {
    uint64_t key;
    size_t size;
    uint8_t *p;
};

struct hw_config {
    size_t max_live;    /* live blocks at most */
    size_t size_common; /* most sizes are 1..size_common */
    size_t size_mid;    /* pct_mid % are up to this */
    size_t size_large;  /* pct_large per mille are up to this */
    unsigned pct_mid;   /* percent */
    unsigned large_pm;  /* per mille */
    unsigned max_align_log2;
    unsigned phase_ops; /* ops per grow or shrink phase */
    bool exclusive;     /* alone on the heap: a failure can be judged */
};

/* The file name a debug record keeps for a call made in path: its base
 * name, truncated to the record's 15 characters. */
void hw_record_file(char out[16], const char *path);

/* Sizes that suit a heap of heap_size bytes and this model. */
void hw_config_default(struct hw_config *cfg, size_t heap_size, size_t max_live);

struct hw_worker {
    struct mm_heap_s *h;
    struct hw_config cfg;
    struct tu_rng rng;
    struct hw_block *blocks;
    size_t live;
    uint64_t id, next_key, ops;
    uint64_t nomem; /* allocations refused for lack of memory */
    char err[200];  /* the first problem found */
};

/* blocks must hold cfg->max_live entries.  id (< 2^20) goes into the keys. */
void hw_init(struct hw_worker *w, struct mm_heap_s *h, const struct hw_config *cfg,
             struct hw_block *blocks, uint64_t id, uint64_t seed);

/* One random operation.  false (with w->err) when a check failed. */
bool hw_step(struct hw_worker *w);

/* Check every live block's pattern. */
bool hw_verify_all(struct hw_worker *w);

/* Check and free every live block. */
bool hw_free_all(struct hw_worker *w);

/* Allocate one block of size bytes and fill it; false if the heap refused
 * it (w->err says why). */
bool hw_alloc_one(struct hw_worker *w, size_t size);

/* The heap size the unit tests use: the small model's limit, or 1 MiB; on
 * microcontrollers with little RAM (AVR: 16 KiB, tests/target) 9 KiB,
 * one heap at a time. */
#if defined(TU_RAM_TINY)
#define HW_HEAP_SIZE ((size_t)0x2400)
#elif MM_CONFIG_SMALL
#define HW_HEAP_SIZE ((size_t)0x10000)
#else
#define HW_HEAP_SIZE ((size_t)1 << 20)
#endif

/* ---- Recorders for the heap's callbacks ------------------------------------ */

/* What the misuse callback reported last, and how often. */
struct hw_misuse_log {
    int count;
    enum mm_misuse what;
    struct mm_heap_s *heap;
    const void *mem;
};

/* An mm_misuse_fn: arg is a struct hw_misuse_log. */
void hw_misuse_record(void *arg, struct mm_heap_s *heap, enum mm_misuse what, const void *mem);

/* What mm_memdump reported: the first HW_DUMP_MAX blocks and the count. */
#define HW_DUMP_MAX 64
struct hw_dump {
    size_t n;
    struct mm_block_info b[HW_DUMP_MAX];
};

/* An mm_dump_fn: arg is a struct hw_dump. */
bool hw_dump_record(void *arg, const struct mm_block_info *b);

/* The record of the block at mem, or NULL. */
const struct mm_block_info *hw_dump_find(const struct hw_dump *d, const void *mem);

#endif /* MMSRV_HEAP_WORK_H */
