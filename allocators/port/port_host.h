/*
 * port_host.h - lock type of the Linux host port (see mm_port.h).
 *
 * The lock is one 64-bit word in the shared memory it protects, and
 * nothing else: no pointer, nothing the C library interprets.  Any process
 * that maps the memory may scribble on it (DESIGN.md: shared memory is
 * untrusted), and the worst that does is make the lock look held, so that
 * waiters give up after mm_set_lock_wait, or free.  A pthread mutex there
 * was worse: glibc trusts its type field (some values make it abort) and
 * writes through the robust-list pointers it keeps in the mutex, so a
 * client could crash mmsrvd, or make it write where the client chose.
 *
 * The word: 0 when free; else the holder's thread id (bits 0-29), the
 * waiters bit (31), and in the high half a tag of the holder's pid
 * namespace.  A waiter that has slept a while looks whether the holder
 * still lives (port_host_lock.c, port_host_liveness.c), and takes the lock
 * over from a dead one: MM_PORT_LOCKED_OWNER_DIED, as a robust mutex would
 * say.
 */
#ifndef MM_PORT_HOST_H
#define MM_PORT_HOST_H

#include <stdint.h>

typedef struct {
    uint64_t word __attribute__((aligned(8)));
} mm_port_lock_t;

#define MM_PORT_LOCK_WAITERS ((uint64_t)1u << 31)

/* Lock and unlock sit on every malloc and free: inline here rather than a
 * call into port_host_lock.c.  Results as mm_port.h describes. */
#define MM_PORT_INLINE_LOCK 1

/* mm_set_lock_wait's bound in ms (0: none). */
extern uint32_t mm_port_lock_wait_ms;

/* This thread's value of a held lock's word (its thread id and namespace
 * tag); 0 until the thread first locks, and again in a fork()ed child. */
extern __thread __attribute__((tls_model("initial-exec"))) uint64_t mm_port__lock_self;
uint64_t mm_port_lock_self_slow(void);

/* The lock was held: wait for it, and take it from a dead holder. */
int mm_port_lock_contended(mm_port_lock_t *lock, uint64_t self);
void mm_port_lock_wake(mm_port_lock_t *lock);

static inline int mm_port_lock(mm_port_lock_t *lock)
{
    uint64_t self = mm_port__lock_self;
    if (__builtin_expect(self == 0, 0))
        self = mm_port_lock_self_slow();
    uint64_t expected = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&lock->word, &expected, self, 0,
                                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED),
                         1))
        return 0; /* MM_PORT_LOCKED */
    return mm_port_lock_contended(lock, self);
}

static inline void mm_port_unlock(mm_port_lock_t *lock)
{
    uint64_t old = __atomic_exchange_n(&lock->word, 0, __ATOMIC_RELEASE);
    if (__builtin_expect((old & MM_PORT_LOCK_WAITERS) != 0, 0))
        mm_port_lock_wake(lock);
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
