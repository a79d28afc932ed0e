/*
 * mm_port.h - the one header through which the allocators reach their
 * platform.
 *
 * The allocator core knows nothing about processes, threads or operating
 * systems.  What it needs from the platform is here: a lock that may live in
 * shared memory (and tells the next locker when its owner died), a way to
 * sleep until a word in memory changes and to wake such sleepers, an owner id
 * for debug records, and an assert.  Three ports exist, chosen with
 * MM_CONFIG_PORT:
 *
 *   MM_PORT_HOST  Linux: a futex lock taken over from a dead holder
 *                 (port_host.h), futex wait/wake, owner = pid.
 *   MM_PORT_APP   a microcontroller application supplies the lock (a critical
 *                 section or an RTOS mutex) and, if it wants waiting, wait/wake.
 *   MM_PORT_NONE  single thread: locks are no-ops, waits return at once.
 */
#ifndef MM_PORT_H
#define MM_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm_config.h"
#include "mm/mm_errno.h"

/* MM_PORT_HOST, MM_PORT_APP, MM_PORT_NONE and the default MM_CONFIG_PORT
 * are in mm_config.h. */

#if MM_CONFIG_PORT == MM_PORT_HOST
#include "port_host.h"
#elif MM_CONFIG_PORT == MM_PORT_APP
#include "port_app.h"
#elif MM_CONFIG_PORT == MM_PORT_NONE
#include "port_none.h"
#else
#error "MM_CONFIG_PORT must be MM_PORT_HOST, MM_PORT_APP or MM_PORT_NONE"
#endif

/* mm_port_lock() results besides a negative error. */
#define MM_PORT_LOCKED            0 /* acquired, state consistent */
#define MM_PORT_LOCKED_OWNER_DIED 1 /* acquired from a dead owner: repair, then mark consistent */

/* Prepare a lock in memory that several processes may map.  0 or -MM_E*. */
int mm_port_lock_init(mm_port_lock_t *lock);

/* Acquire.  MM_PORT_LOCKED, MM_PORT_LOCKED_OWNER_DIED, or a negative error
 * (on the host -MM_ETIMEDOUT when mm_set_lock_wait's bound passed; an
 * application's port may return its own). */
#ifndef MM_PORT_INLINE_LOCK
int mm_port_lock(mm_port_lock_t *lock);
#endif

/* After MM_PORT_LOCKED_OWNER_DIED and a successful repair. */
void mm_port_lock_mark_consistent(mm_port_lock_t *lock);

#ifndef MM_PORT_INLINE_LOCK
void mm_port_unlock(mm_port_lock_t *lock);
#endif
void mm_port_lock_destroy(mm_port_lock_t *lock);

/* Who is calling: the pid on the host, 0 elsewhere.  Recorded in debug
 * allocation records. */
uint32_t mm_port_owner_id(void);

/* Sleep while *word == expected, at most timeout_ms (negative: forever).
 * 0 when woken or the word differs, -MM_ETIMEDOUT, or -MM_EAGAIN where the
 * port cannot sleep.  Works across processes on the host. */
int mm_port_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms);

/* Wake up to count sleepers on word. */
void mm_port_wake(uint32_t *word, uint32_t count);

/* Thread-local storage and life-cycle hooks, for the heap's per-thread
 * cache (host only; the other ports build without the cache).
 * mm_port_fork_generation() changes in a child after fork(), so that state
 * inherited from the parent is recognised and dropped.
 * mm_port_on_thread_exit(fn) makes fn run when the calling thread exits
 * (once per thread, however often it is called). */
#if MM_CONFIG_PORT == MM_PORT_HOST
/* initial-exec: a thread-local read without a call, even in a shared
 * library; the allocators keep one pointer of it per thread, few enough
 * bytes for a library that is dlopen()ed. */
#define MM_PORT_THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))
extern uint32_t mm_port__fork_gen;
static inline uint32_t mm_port_fork_generation(void)
{
    return mm_port__fork_gen;
}
void mm_port_on_thread_exit(void (*fn)(void));
/* Zeroed process-local memory for per-thread state, and giving it back;
 * NULL when there is none. */
void *mm_port_local_alloc(size_t size);
void mm_port_local_free(void *p, size_t size);
/* Start counting forks (idempotent); called whenever a heap handle is
 * taken, so that per-process state made after it notices a fork. */
void mm_port_install_hooks(void);
#endif

/* Atomics, spin pause, clock and a cheap owner id for lock-free code. */
#include "mm_port_sync.h"

/* Internal invariants only; never for input (shared memory is input). */
#ifndef MM_PORT_ASSERT
#define MM_PORT_ASSERT(cond) ((void)0)
#endif

#define MM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif /* MM_PORT_H */
