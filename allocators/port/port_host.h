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

/* Lock and unlock sit on every malloc and free: inline here rather than a
 * call into port_host.c.  Results as mm_port.h describes. */
#define MM_PORT_INLINE_LOCK 1

/* mm_set_lock_wait's bound in ms (0: none), and the lock that honours it. */
extern uint32_t mm_port_lock_wait_ms;
int mm_port_lock_timed(mm_port_lock_t *lock);

static inline int mm_port_lock(mm_port_lock_t *lock)
{
    if (__builtin_expect(mm_port_lock_wait_ms != 0, 0))
        return mm_port_lock_timed(lock);
    int err = pthread_mutex_lock(lock);
    if (__builtin_expect(err == 0, 1))
        return 0;   /* MM_PORT_LOCKED */
    if (err == 130) /* EOWNERDEAD, checked against errno.h in port_host.c */
        return 1;   /* MM_PORT_LOCKED_OWNER_DIED */
    return -err;
}

static inline void mm_port_unlock(mm_port_lock_t *lock)
{
    (void)pthread_mutex_unlock(lock);
}

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
