/*
 * region.c: write and check the header at the start of a region.
 *
 * The header lives in memory every attached client can write, possibly
 * while we read it.  So the reader copies the whole header out once, keeps
 * the compiler from going back to the shared bytes, and checks only the
 * copy: a field cannot change between its check and its use.
 */
#include "region.h"

#include "proto.h"

#include <errno.h>
#include <string.h>

/* The allocator state's alignment: what the heap and the pool need for
 * their own headers (the large heap model aligns to 8), rounded up to 16. */
#define REGION_ALLOC_ALIGN 16u

static bool kind_valid(uint64_t kind)
{
    return kind == REGION_KIND_HEAP || kind == REGION_KIND_IOB;
}

int region_header_write(void *base, uint64_t size, enum region_kind kind, uint64_t generation,
                        const char *name)
{
    struct region_header h;

    if (base == NULL || size < sizeof(h) || !kind_valid((uint64_t)kind) || !proto_name_valid(name))
        return -EINVAL;
    memset(&h, 0, sizeof(h));
    h.magic = REGION_MAGIC;
    h.version = REGION_VERSION;
    h.kind = (uint16_t)kind;
    h.size = size;
    h.generation = generation;
    h.alloc_offset = REGION_ALLOC_OFFSET;
    h.alloc_size = size - REGION_ALLOC_OFFSET;
    memcpy(h.name, name, strlen(name) + 1);
    memcpy(base, &h, sizeof(h));
    return 0;
}

int region_header_read(const void *base, size_t mapped, struct region_layout *out)
{
    struct region_header h;

    if (base == NULL || out == NULL)
        return -EINVAL;
    if (mapped < sizeof(h))
        return -EBADMSG;
    memcpy(&h, base, sizeof(h));
    /* From here on, the copy is all there is: the compiler may not
     * replace a read of h by another read of the shared bytes. */
    __asm__ __volatile__("" : : "r"(&h) : "memory");

    if (h.magic != REGION_MAGIC || h.version != REGION_VERSION || !kind_valid(h.kind))
        return -EBADMSG;
    if (h.size < sizeof(h) || h.size > mapped)
        return -EBADMSG;
    if (h.alloc_offset < sizeof(h) || h.alloc_offset % REGION_ALLOC_ALIGN != 0 ||
        h.alloc_offset > h.size || h.alloc_size > h.size - h.alloc_offset)
        return -EBADMSG;
    if (memchr(h.name, '\0', sizeof(h.name)) == NULL || !proto_name_valid(h.name))
        return -EBADMSG;

    memset(out, 0, sizeof(*out));
    out->kind = (enum region_kind)h.kind;
    out->size = h.size;
    out->generation = h.generation;
    out->alloc_offset = h.alloc_offset;
    out->alloc_size = h.alloc_size;
    memcpy(out->name, h.name, sizeof(out->name));
    return 0;
}
