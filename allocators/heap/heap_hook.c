/*
 * heap_hook.c - the functions behind mm_malloc_hook.h: the malloc family of
 * a program sent to one mm heap, with file and line.
 */
#define MM_HOOK_NO_MACROS
#include "mm/mm_malloc_hook.h"

#include "heap_internal.h"

static struct mm_heap_s *g_hook_heap;

void mm_hook_use_heap(struct mm_heap_s *heap)
{
    g_hook_heap = heap;
}

struct mm_heap_s *mm_hook_heap(void)
{
    return g_hook_heap;
}

/* The heap's calls take a NULL heap (no heap hooked yet) and return NULL. */
void *mm_hook_malloc(const char *file, int line, size_t size)
{
    return mm_malloc_at(g_hook_heap, size, file, line);
}

void *mm_hook_calloc(const char *file, int line, size_t n, size_t elem_size)
{
    return mm__calloc_at(g_hook_heap, n, elem_size, file, line);
}

void *mm_hook_realloc(const char *file, int line, void *mem, size_t size)
{
    return mm_realloc_at(g_hook_heap, mem, size, file, line);
}

void mm_hook_free(const char *file, int line, void *mem)
{
    (void)file, (void)line;
    mm_free(g_hook_heap, mem);
}
