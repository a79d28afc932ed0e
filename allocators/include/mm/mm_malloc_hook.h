/*
 * mm_malloc_hook.h - route a program's malloc family to an mm heap, with
 * the caller's file and line recorded.
 *
 * Add `-include mm/mm_malloc_hook.h` to the CFLAGS of the code to watch (or
 * include it in one file), and call mm_hook_use_heap() once at start-up.
 * Every malloc, calloc, realloc and free in that code then goes to the heap
 * through the mm_hook_* functions, which pass __FILE__ and __LINE__ on; in a
 * MM_CONFIG_DEBUG build mm_memdump() shows where each live block came from.
 * As NuttX's debugging page describes, the macros are defined after the C
 * library's own declarations, which this header includes first.
 *
 * Before mm_hook_use_heap(), or with NULL, the hooks allocate nothing
 * (NULL) and free nothing.
 */
#ifndef MM_MALLOC_HOOK_H
#define MM_MALLOC_HOOK_H

/* The C library's declarations must come before the macros below; the
 * allocators' own sources define MM_HOOK_NO_MACROS and stay freestanding. */
#if !defined(MM_HOOK_NO_MACROS) && defined(__STDC_HOSTED__) && __STDC_HOSTED__ == 1
#include <stdlib.h>
#endif
#include <stddef.h>

#include "mm/mm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The heap the hooks use, process-wide. */
void mm_hook_use_heap(struct mm_heap_s *heap);
struct mm_heap_s *mm_hook_heap(void);

void *mm_hook_malloc(const char *file, int line, size_t size);
void *mm_hook_calloc(const char *file, int line, size_t n, size_t elem_size);
void *mm_hook_realloc(const char *file, int line, void *mem, size_t size);
void mm_hook_free(const char *file, int line, void *mem);

#ifdef __cplusplus
}
#endif

#ifndef MM_HOOK_NO_MACROS
#define malloc(s)     mm_hook_malloc(__FILE__, __LINE__, (s))
#define calloc(n, s)  mm_hook_calloc(__FILE__, __LINE__, (n), (s))
#define realloc(p, s) mm_hook_realloc(__FILE__, __LINE__, (p), (s))
#define free(p)       mm_hook_free(__FILE__, __LINE__, (p))
#endif

#endif /* MM_MALLOC_HOOK_H */
