/*
 * test_client_offsets.c - mmsrv_offset and mmsrv_pointer: the helpers that
 * turn pointers into region offsets and back, at every edge.
 *
 * An offset that crosses between processes is untrusted input, so the edges
 * matter more than the middle: the first and last byte, one past the end,
 * lengths that would run past it, sums that would wrap, a region at the top
 * of the address space, and the same memory mapped twice at different
 * addresses (offsets must agree where pointers differ).
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mmsrv/mmsrv.h"
#include "test_util.h"

/* A region as mmsrv_attach would fill it; the helpers read base and size
 * only, so no daemon is needed to check their arithmetic. */
static struct mmsrv_region region_at(void *base, size_t size)
{
    struct mmsrv_region r;
    memset(&r, 0, sizeof(r));
    r.base = base;
    r.size = size;
    return r;
}

static void test_null_and_unmapped(void)
{
    char mem[64] = {0};
    struct mmsrv_region r = region_at(mem, sizeof(mem));
    struct mmsrv_region unmapped = region_at(NULL, sizeof(mem));

    CU_ASSERT_EQUAL(mmsrv_offset(NULL, mem), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, NULL), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&unmapped, mem), UINT64_MAX);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(NULL, 0, 0));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&unmapped, 0, 1));

    struct mmsrv_region empty = region_at(mem, 0);
    CU_ASSERT_EQUAL(mmsrv_offset(&empty, mem), UINT64_MAX);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&empty, 0, 0));
}

static void test_offset_edges(void)
{
    char mem[4096] = {0};
    struct mmsrv_region r = region_at(mem + 1024, 1024);

    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 1024), 0);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 1025), 1);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 2047), 1023);
    /* one past the end, and just before the start, are outside */
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 2048), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 1023), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, mem + 4095), UINT64_MAX);
}

static void test_pointer_edges(void)
{
    char mem[1024] = {0};
    struct mmsrv_region r = region_at(mem, sizeof(mem));

    CU_ASSERT_PTR_EQUAL(mmsrv_pointer(&r, 0, 0), mem);
    CU_ASSERT_PTR_EQUAL(mmsrv_pointer(&r, 0, 1024), mem);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 0, 1025));
    CU_ASSERT_PTR_EQUAL(mmsrv_pointer(&r, 1023, 1), mem + 1023);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 1023, 2));
    CU_ASSERT_PTR_EQUAL(mmsrv_pointer(&r, 512, 512), mem + 512);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 512, 513));
    /* no byte at the end: not even a zero-length view of it */
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 1024, 0));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 1025, 0));
    /* sums that would wrap */
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, UINT64_MAX, 0));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, UINT64_MAX, 1));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 1, SIZE_MAX));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 1000, SIZE_MAX - 500));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, (uint64_t)1 << 63, 16));
    /* an offset that would fit once truncated to 32 bits */
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, ((uint64_t)1 << 32) + 8, 8));
}

/* A region that ends at the very top of the address space: base + size
 * wraps to 0, which a check written as "ptr < base + size" gets wrong.  The
 * helpers only compute with these addresses, never touch them. */
static void test_top_of_address_space(void)
{
    const size_t size = 4096;
    struct mmsrv_region r = region_at((void *)(UINTPTR_MAX - size + 1), size);

    CU_ASSERT_EQUAL(mmsrv_offset(&r, (void *)UINTPTR_MAX), size - 1);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, (void *)(UINTPTR_MAX - size)), UINT64_MAX);
    CU_ASSERT_EQUAL(mmsrv_offset(&r, (void *)16), UINT64_MAX);
    CU_ASSERT_PTR_EQUAL(mmsrv_pointer(&r, size - 1, 1), (void *)UINTPTR_MAX);
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, size - 1, 2));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, size, 0));
    CU_ASSERT_PTR_NULL(mmsrv_pointer(&r, 0, size + 1));
}

/* Every in-range offset goes to a pointer and back unchanged, for random
 * offsets and lengths; out-of-range ones never produce a pointer. */
static void test_round_trip(void)
{
    static char mem[65536];
    struct mmsrv_region r = region_at(mem, sizeof(mem));
    struct tu_rng rng;

    tu_rng_init(&rng, tu_seed());
    for (int i = 0; i < 100000; i++) {
        uint64_t off = tu_rng_range(&rng, 0, sizeof(mem) * 2);
        size_t len = (size_t)tu_rng_range(&rng, 0, sizeof(mem));
        void *p = mmsrv_pointer(&r, off, len);
        if (off < sizeof(mem) && len <= sizeof(mem) - off) {
            CU_ASSERT_PTR_EQUAL_FATAL(p, mem + off);
            CU_ASSERT_EQUAL_FATAL(mmsrv_offset(&r, p), off);
        } else {
            CU_ASSERT_PTR_NULL_FATAL(p);
        }
    }
}

/* The point of offsets: the same memory mapped twice, at two addresses,
 * gives two pointers for one offset, and each mapping finds the other's
 * data there. */
static void test_two_mappings(void)
{
    const size_t size = 4 * 4096;
    int fd = tu_shm_create(size);
    CU_ASSERT_FATAL(fd >= 0);
    void *a = tu_shm_map(fd, size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    void *b = tu_shm_map_elsewhere(fd, size, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);

    struct mmsrv_region ra = region_at(a, size);
    struct mmsrv_region rb = region_at(b, size);
    char *in_a = (char *)a + 5000;
    strcpy(in_a, "written through mapping a");
    uint64_t off = mmsrv_offset(&ra, in_a);
    CU_ASSERT_EQUAL(off, 5000);
    const char *in_b = mmsrv_pointer(&rb, off, 26);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in_b);
    CU_ASSERT_STRING_EQUAL(in_b, "written through mapping a");
    tu_shm_unmap(a, size);
    tu_shm_unmap(b, size);
    close(fd);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_null_and_unmapped),
        TU_TEST(test_offset_edges),
        TU_TEST(test_pointer_edges),
        TU_TEST(test_top_of_address_space),
        TU_TEST(test_round_trip),
        TU_TEST(test_two_mappings),
        TU_END,
    };
    return tu_main("client_offsets", tests);
}
