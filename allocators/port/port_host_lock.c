/*
 * port_host_lock.c - the host's lock in shared memory (port_host.h): the
 * waiting half, and how a waiter tells that the holder died.
 *
 * A robust pthread mutex learns of its holder's death from the kernel,
 * through a list of held mutexes that glibc threads through the mutexes
 * themselves, in the shared memory.  That list is what made the mutex
 * unsafe in memory that untrusted processes write, so this lock keeps no
 * list.  Instead, a waiter that has slept MM_PORT__LOCK_SLICE_MS without
 * the lock being released looks up the holder's thread: gone, or a zombie
 * (killed and not yet reaped), means dead, and the waiter takes the lock
 * over with one compare-and-swap of the exact word it judged.  Holding a
 * heap or pool lock for milliseconds is not what live holders do, so the
 * look costs nothing that matters.
 *
 * Thread ids mean something only in the pid namespace they were taken in,
 * so the holder's word carries a tag of its namespace; how a waiter judges
 * a holder of its own namespace, or of another, is port_host_liveness.c's.
 */
#define _GNU_SOURCE
#include "mm/mm.h" /* mm_set_lock_wait */
#include "mm_port.h"
#include "port_host_liveness.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How long a waiter sleeps before it looks whether the holder lives. */
#define MM_PORT__LOCK_SLICE_MS 4
/* Tries before the first sleep: critical sections are short. */
#define MM_PORT__LOCK_SPINS 64

#define MM_PORT__TID_MASK ((uint64_t)0x3fffffffu) /* pid_max is at most 2^22 */

uint32_t mm_port_lock_wait_ms;

void mm_set_lock_wait(uint32_t ms)
{
    mm_port_lock_wait_ms = ms;
}

int mm_port_lock_init(mm_port_lock_t *lock)
{
    __atomic_store_n(&lock->word, 0, __ATOMIC_RELEASE);
    return 0;
}

void mm_port_lock_mark_consistent(mm_port_lock_t *lock)
{
    (void)lock; /* a taken-over lock is consistent once its taker repaired */
}

void mm_port_lock_destroy(mm_port_lock_t *lock)
{
    (void)lock;
}

/* ---- Who holds it ---------------------------------------------------------- */

__thread __attribute__((tls_model("initial-exec"))) uint64_t mm_port__lock_self;
static pthread_once_t g_self_once = PTHREAD_ONCE_INIT;

static void mm_port__lock_after_fork(void)
{
    /* the child's one thread has a new id, maybe in a new namespace */
    mm_port__lock_self = 0;
    mm_port_pidns_forget();
}

static void mm_port__lock_once(void)
{
    (void)pthread_atfork(NULL, NULL, mm_port__lock_after_fork);
}

uint64_t mm_port_lock_self_slow(void)
{
    (void)pthread_once(&g_self_once, mm_port__lock_once);
    uint64_t tid = (uint64_t)syscall(SYS_gettid) & MM_PORT__TID_MASK;
    mm_port__lock_self = tid | (uint64_t)mm_port_pidns() << 32;
    return mm_port__lock_self;
}

/* Whether the holder named by the word w is dead, as far as this process
 * can tell. */
static bool mm_port__holder_dead(uint64_t w)
{
    uint32_t tid = (uint32_t)(w & MM_PORT__TID_MASK);
    if (tid == 0)
        return false; /* scribbled: a free lock's word with bits set */
    if ((w & ~MM_PORT_LOCK_WAITERS) == mm_port__lock_self)
        return false; /* ours: a relock by the holder itself, never a takeover */
    return mm_port_thread_dead(tid, (uint32_t)(w >> 32));
}

/* ---- Waiting ----------------------------------------------------------------- */

/* The half of the word that holds the thread id and waiters bit: what the
 * futex compares and sleeps on. */
static uint32_t *mm_port__futex(mm_port_lock_t *lock)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (uint32_t *)(void *)&lock->word + 1;
#else
    return (uint32_t *)(void *)&lock->word;
#endif
}

int mm_port_lock_contended(mm_port_lock_t *lock, uint64_t self)
{
    for (int i = 0; i < MM_PORT__LOCK_SPINS; i++) {
        uint64_t expected = 0;
        if (__atomic_load_n(&lock->word, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&lock->word, &expected, self, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return MM_PORT_LOCKED;
        mm_port_relax();
    }
    uint32_t wait_ms = mm_port_lock_wait_ms;
    uint64_t deadline = wait_ms != 0 ? mm_port_now_ms() + wait_ms : 0;
    /* From now on the lock is taken with the waiters bit: others may sleep
     * on it too, and the unlock must wake one. */
    const uint64_t mine = self | MM_PORT_LOCK_WAITERS;
    for (;;) {
        uint64_t v = __atomic_load_n(&lock->word, __ATOMIC_RELAXED);
        if ((v & MM_PORT__TID_MASK) == 0) { /* free (maybe a stale waiters bit) */
            if (__atomic_compare_exchange_n(&lock->word, &v, mine, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return MM_PORT_LOCKED;
            continue;
        }
        uint64_t asleep = v | MM_PORT_LOCK_WAITERS;
        if (v != asleep && !__atomic_compare_exchange_n(&lock->word, &v, asleep, false,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        int32_t slice = MM_PORT__LOCK_SLICE_MS;
        if (deadline != 0) {
            uint64_t now = mm_port_now_ms();
            if (now >= deadline)
                return -MM_ETIMEDOUT;
            if (deadline - now < (uint64_t)slice)
                slice = (int32_t)(deadline - now);
        }
        if (mm_port_wait(mm_port__futex(lock), (uint32_t)asleep, slice) != -MM_ETIMEDOUT)
            continue; /* released, or changed: look again */
        /* A whole slice and the same holder: is it still there?  The swap
         * takes exactly the word that was judged, so a holder that let go
         * meanwhile is never robbed of a new one. */
        if (__atomic_load_n(&lock->word, __ATOMIC_RELAXED) == asleep &&
            mm_port__holder_dead(asleep) &&
            __atomic_compare_exchange_n(&lock->word, &asleep, mine, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return MM_PORT_LOCKED_OWNER_DIED;
    }
}

void mm_port_lock_wake(mm_port_lock_t *lock)
{
    mm_port_wake(mm_port__futex(lock), 1);
}
