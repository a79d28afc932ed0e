/*
 * port_host.h - lock type of the Linux host port (see mm_port.h).
 *
 * The lock is a pthread mutex set process-shared and robust, so that the
 * kernel marks it when a process dies holding it and the next locker learns
 * so.  It lives inside the shared memory it protects.
 */
#ifndef MM_PORT_HOST_H
#define MM_PORT_HOST_H

#include <pthread.h>
#include <stdint.h>

typedef pthread_mutex_t mm_port_lock_t;


/* Claim a free slot flag (0 -> 1) and release it; threads may race. */
static inline _Bool mm_port_claim(uint32_t *flag)
{
    uint32_t zero = 0;
    return __atomic_compare_exchange_n(flag, &zero, 1u, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}
static inline void mm_port_release(uint32_t *flag)
{
    __atomic_store_n(flag, 0u, __ATOMIC_RELEASE);
}

#endif /* MM_PORT_HOST_H */
