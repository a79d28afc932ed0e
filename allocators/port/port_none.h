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

#endif /* MM_PORT_NONE_H */
