/*
 * port_none.h - single-threaded port (see mm_port.h): a lock is a word that
 * nothing ever contends for.
 */
#ifndef MM_PORT_NONE_H
#define MM_PORT_NONE_H

#include <stdint.h>

typedef struct {
    uint32_t unused;
} mm_port_lock_t;

/* Claim and release slot flags: no other thread can race. */
static inline _Bool mm_port_claim(uint32_t *flag)
{
    if (*flag != 0)
        return 0;
    *flag = 1;
    return 1;
}
static inline void mm_port_release(uint32_t *flag)
{
    *flag = 0;
}

#endif /* MM_PORT_NONE_H */
