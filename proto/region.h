/*
 * region.h: the header at the start of every region's memory.
 *
 * It says what the region is (magic, layout version, kind, size,
 * generation) and where its allocator state lies, so that a client can check
 * what it mapped before it hands the memory to mm_attach() or
 * iob_pool_attach().  The header sits in client-writable memory, so it is
 * input, never authority: the daemon decides from its own table, and a
 * reader copies each field once and checks it against what the daemon's
 * reply said.
 */
#ifndef MMSRV_PROTO_REGION_H
#define MMSRV_PROTO_REGION_H

#include <stddef.h>
#include <stdint.h>

#define REGION_MAGIC   0x6d6d7372u /* "mmsr" read as a little-endian word */
#define REGION_VERSION 1u
/* Where the allocator state starts: the header rounded up to a cache line
 * multiple that keeps the heap's and pool's own alignment. */
#define REGION_ALLOC_OFFSET 256u

enum region_kind {
    REGION_KIND_HEAP = 1,
    REGION_KIND_IOB = 2,
};

struct region_header {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;         /* enum region_kind */
    uint64_t size;         /* bytes of the whole region */
    uint64_t generation;   /* unique per creation, never reused by a daemon */
    uint64_t alloc_offset; /* allocator state, from the region's base */
    uint64_t alloc_size;   /* bytes given to the allocator */
    char name[64];         /* NUL-terminated */
    uint8_t reserved[152]; /* zero; pads the header to REGION_ALLOC_OFFSET */
};

_Static_assert(sizeof(struct region_header) == REGION_ALLOC_OFFSET, "region header size");
_Static_assert(offsetof(struct region_header, size) == 8, "region header layout");
_Static_assert(offsetof(struct region_header, name) == 40, "region header layout");

/* What a checked header said. */
struct region_layout {
    enum region_kind kind;
    uint64_t size;
    uint64_t generation;
    uint64_t alloc_offset;
    uint64_t alloc_size;
    char name[64];
};

/*
 * Write a header for a region of size bytes at base (the daemon, at
 * creation).  alloc_offset is REGION_ALLOC_OFFSET and alloc_size the rest.
 * 0, or -EINVAL for a size smaller than the header or a bad name or kind.
 */
int region_header_write(void *base, uint64_t size, enum region_kind kind, uint64_t generation,
                        const char *name);

/*
 * Read and check the header of a mapping of mapped bytes: each field is read
 * once.  0 with *out filled; -EBADMSG when the magic, version, kind, sizes
 * or name are wrong or do not fit in the mapping.
 */
int region_header_read(const void *base, size_t mapped, struct region_layout *out);

#endif /* MMSRV_PROTO_REGION_H */
