/*
 * fuzz_input.h - what the fuzz targets (fuzz_heap.c, fuzz_pool.c, fuzz_proto.c)
 * share: reading numbers from the input, the invariant check, and the
 * scribbles they apply to a shared-memory image.
 *
 * An input is read front to back; once it is used up every read gives 0,
 * so any prefix of an input is an input too (what libFuzzer's reduction
 * wants).
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
    uint16_t lo = fz_u8(f);
    return (uint16_t)(lo | (uint16_t)(fz_u8(f) << 8));
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t lo = fz_u16(f);
    return lo | (uint32_t)fz_u16(f) << 16;
}

/* A value to write over a field: the kinds that trip bounds checks (small,
 * near the top of the range, anything). */
static inline uint32_t fz_value(struct fz *f)
{
    switch (fz_u8(f) & 3u) {
    case 0:
        return fz_u8(f);
    case 1:
        return fz_u16(f);
    case 2:
        return ~(uint32_t)fz_u8(f);
    default:
        return fz_u32(f);
    }
}

/* The size of the mapping an image is attached through: mostly its own,
 * sometimes shorter or longer. */
static inline size_t fz_mapped_size(struct fz *f, size_t size)
{
    uint8_t sel = fz_u8(f);
    if ((sel & 7u) == 1u)
        return size - fz_u16(f) % size;
    if ((sel & 7u) == 2u)
        return size + fz_u16(f);
    return size;
}

/* Copy an image of size bytes into a mapping of mapped bytes (zeros past it). */
static inline void fz_copy_image(uint8_t *dst, size_t mapped, const void *src, size_t size)
{
    memcpy(dst, src, mapped < size ? mapped : size);
    if (mapped > size)
        memset(dst + size, 0, mapped - size);
}

/*
 * Scribble over img[0, size) as a client could: bytes, aligned 32- and
 * 64-bit words anywhere, words at the "hot" offsets the caller names (chunk
 * headers, list heads, state words: where a random offset rarely lands) and
 * XOR over a range.  The caller restores what must stay intact.
 */
static inline void fz_scribble(struct fz *f, uint8_t *img, size_t size, const size_t *hot,
                               size_t nhot)
{
    unsigned n = fz_u8(f) % 24u;
    for (unsigned i = 0; i < n && size >= 8; i++) {
        uint8_t kind = fz_u8(f);
        size_t off = (kind & 0x80u) != 0 && nhot > 0 ? hot[fz_u8(f) % nhot] + 4u * (fz_u8(f) % 4u)
                                                     : fz_u32(f) % size;
        switch (kind % 4u) {
        case 0:
            img[off % size] = fz_u8(f);
            break;
        case 1: {
            uint32_t v = fz_value(f);
            off &= ~(size_t)3u;
            if (off <= size - 4u)
                memcpy(img + off, &v, 4);
            break;
        }
        case 2: {
            uint64_t v = fz_value(f);
            v |= (uint64_t)fz_value(f) << 32;
            off &= ~(size_t)7u;
            if (off <= size - 8u)
                memcpy(img + off, &v, 8);
            break;
        }
        default: {
            size_t len = fz_u8(f);
            uint8_t x = fz_u8(f);
            for (size_t j = off % size; j < size && len-- > 0; j++)
                img[j] ^= x;
            break;
        }
        }
    }
}

#endif /* FUZZ_INPUT_H */
