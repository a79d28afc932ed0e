/*
 * heap_hook.c - the functions behind mm_malloc_hook.h: the malloc family of
 * a program sent to one mm heap, with file and line.
 */
#define MM_HOOK_NO_MACROS
#include "mm/mm_malloc_hook.h"

#include <string.h>

static struct mm_heap_s *g_hook_heap;

void mm_hook_use_heap(struct mm_heap_s *heap)
{
    g_hook_heap = heap;
}

struct mm_heap_s *mm_hook_heap(void)
{
    return g_hook_heap;
}

void *mm_hook_malloc(const char *file, int line, size_t size)
{
    return g_hook_heap != NULL ? mm_malloc_at(g_hook_heap, size, file, line) : NULL;
}

void *mm_hook_calloc(const char *file, int line, size_t n, size_t elem_size)
{
    if (g_hook_heap == NULL || (elem_size != 0 && n > (size_t)-1 / elem_size))
        return NULL;
    void *p = mm_malloc_at(g_hook_heap, n * elem_size, file, line);
    if (p != NULL)
        memset(p, 0, n * elem_size);
    return p;
}

void *mm_hook_realloc(const char *file, int line, void *mem, size_t size)
{
    return g_hook_heap != NULL ? mm_realloc_at(g_hook_heap, mem, size, file, line) : NULL;
}

void mm_hook_free(const char *file, int line, void *mem)
{
    (void)file, (void)line;
    if (g_hook_heap != NULL)
        mm_free(g_hook_heap, mem);
}
