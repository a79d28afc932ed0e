/*
 * offsets.c: pointers into a region turned into offsets from its base, and
 * back.
 *
 * Each process maps a region at its own address, so processes tell each
 * other where things are by offset.  An offset that arrives from another
 * process (through a channel, or read from shared memory) is untrusted
 * input: it is turned back into a pointer only when it and the bytes the
 * caller means to touch lie inside the mapping.  The checks are written so
 * that no sum can wrap.
 */
#include <stdint.h>

#include "mmsrv/mmsrv.h"

uint64_t mmsrv_offset(const struct mmsrv_region *region, const void *ptr)
{
    if (region == NULL || region->base == NULL || ptr == NULL) {
        return UINT64_MAX;
    }
    uintptr_t base = (uintptr_t)region->base;
    uintptr_t p = (uintptr_t)ptr;
    if (p < base || p - base >= region->size) {
        return UINT64_MAX;
    }
    return (uint64_t)(p - base);
}

void *mmsrv_pointer(const struct mmsrv_region *region, uint64_t offset, size_t len)
{
    if (region == NULL || region->base == NULL || offset >= region->size ||
        len > region->size - (size_t)offset) {
        return NULL;
    }
    return (char *)region->base + offset;
}
