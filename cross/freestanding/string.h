/*
 * string.h for freestanding builds of the allocators (cross/riscv*.ini):
 * the compiler brings stddef.h, stdint.h and stdbool.h, no C library is
 * involved, and these are the only string functions the allocators call.
 * The application links them (from its libc, or its own).
 */
#ifndef MM_FREESTANDING_STRING_H
#define MM_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif /* MM_FREESTANDING_STRING_H */
