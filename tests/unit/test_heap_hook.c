/*
 * test_heap_hook.c - the -include-able hook header mm/mm_malloc_hook.h.
 *
 * This file is compiled with `-include mm/mm_malloc_hook.h`, so the plain
 * malloc, calloc, realloc and free below are the hook's macros: after
 * mm_hook_use_heap() they allocate from the heap, and in debug builds each
 * block's record names this file and the line of the call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap_work.h"
#include "mm/mm.h"
#include "test_util.h"

#ifndef MM_MALLOC_HOOK_H
#error "compile with -include mm/mm_malloc_hook.h"
#endif
#if !MM_CONFIG_DEBUG
#error "test_heap_hook.c is for MM_CONFIG_DEBUG builds"
#endif

static void test_hooked_calls(void)
{
    uint8_t *mem =
        mmap(NULL, HW_HEAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(mem != MAP_FAILED);
    struct mm_heap_s *h = mm_initialize("hook", mem, HW_HEAP_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct mm_mallinfo_s mi0 = mm_mallinfo(h);

    /* No heap yet: nothing is allocated, and free does nothing. */
    CU_ASSERT_PTR_NULL(mm_hook_heap());
    CU_ASSERT_PTR_NULL(malloc(10));
    free(NULL);

    mm_hook_use_heap(h);
    CU_ASSERT_PTR_EQUAL(mm_hook_heap(), h);
    /* Each line number is taken on the line of the call it belongs to. */
    int l1, l2, l3;
    char *p = (l1 = __LINE__, malloc(10));
    int *q = (l2 = __LINE__, calloc(3, sizeof(int)));
    char *r = malloc(20);
    CU_ASSERT_FATAL(p != NULL && q != NULL && r != NULL);
    memcpy(r, "0123456789abcdefghi", 20);
    r = (l3 = __LINE__, realloc(r, 3000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r, "0123456789abcdefghi");
    CU_ASSERT(q[0] == 0 && q[1] == 0 && q[2] == 0);
    CU_ASSERT(mm_heapmember(h, p) && mm_heapmember(h, q) && mm_heapmember(h, r));

    char file[16];
    hw_record_file(file, __FILE__);
    struct hw_dump d = {0};
    CU_ASSERT_EQUAL(mm_memdump(h, NULL, hw_dump_record, &d), 3);
    const void *blocks[3] = {p, q, r};
    int lines[3] = {l1, l2, l3};
    size_t sizes[3] = {10, 3 * sizeof(int), 3000};
    for (int i = 0; i < 3; i++) {
        const struct mm_block_info *b = hw_dump_find(&d, blocks[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_STRING_EQUAL(b->file, file);
        CU_ASSERT_EQUAL(b->line, lines[i]);
        CU_ASSERT_EQUAL(b->size, sizes[i]);
        CU_ASSERT_EQUAL(b->owner, (uint32_t)getpid());
    }

    free(p);
    memset(&d, 0, sizeof(d));
    CU_ASSERT_EQUAL(mm_memdump(h, NULL, hw_dump_record, &d), 2);
    CU_ASSERT_PTR_NULL(hw_dump_find(&d, p));
    free(q);
    free(r);
    memset(&d, 0, sizeof(d));
    CU_ASSERT_EQUAL(mm_memdump(h, NULL, hw_dump_record, &d), 0);
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.fordblks, mi0.fordblks);

    /* Unhooked again: nothing is allocated. */
    mm_hook_use_heap(NULL);
    CU_ASSERT_PTR_NULL(malloc(10));
    CU_ASSERT_EQUAL(mm_mallinfo(h).aordblks, 0);
    CU_ASSERT_EQUAL(mm_checkcorruption(h), 0);
    mm_detach(h);
    munmap(mem, HW_HEAP_SIZE);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_hooked_calls),
        TU_END,
    };
    return tu_main("heap_hook", tests);
}
