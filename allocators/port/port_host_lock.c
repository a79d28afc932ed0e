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
 * Thread ids mean something only in the pid namespace they were taken in:
 * the holder's word carries a tag of its namespace, and a waiter in another
 * namespace never judges it (it waits, up to mm_set_lock_wait).
 */
#define _GNU_SOURCE
#include "mm/mm.h" /* mm_set_lock_wait */
#include "mm_port.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
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
static uint32_t g_pidns_tag; /* 0: not read yet in this process */
static pthread_once_t g_self_once = PTHREAD_ONCE_INIT;

static void mm_port__lock_after_fork(void)
{
    /* the child's one thread has a new id, maybe in a new namespace */
    mm_port__lock_self = 0;
    __atomic_store_n(&g_pidns_tag, 0u, __ATOMIC_RELAXED);
}

static void mm_port__lock_once(void)
{
    (void)pthread_atfork(NULL, NULL, mm_port__lock_after_fork);
}

/* The calling process's pid namespace, as a tag that differs between
 * namespaces (the low bits of its nsfs inode).  Never 0. */
static uint32_t mm_port__pidns(void)
{
    uint32_t tag = __atomic_load_n(&g_pidns_tag, __ATOMIC_RELAXED);
    if (tag == 0) {
        struct stat st;
        tag = stat("/proc/self/ns/pid", &st) == 0 ? (uint32_t)st.st_ino : 0u;
        if (tag == 0)
            tag = 1; /* no /proc: all such processes are taken as one namespace */
        __atomic_store_n(&g_pidns_tag, tag, __ATOMIC_RELAXED);
    }
    return tag;
}

uint64_t mm_port_lock_self_slow(void)
{
    (void)pthread_once(&g_self_once, mm_port__lock_once);
    uint64_t tid = (uint64_t)syscall(SYS_gettid) & MM_PORT__TID_MASK;
    mm_port__lock_self = tid | (uint64_t)mm_port__pidns() << 32;
    return mm_port__lock_self;
}

/* Whether the thread whose id is tid (in this namespace) is gone: no such
 * task, or one that is dead and waits to be reaped (state Z or X).  A
 * thread id is a pid to kill(), which sends to its whole process: fine for
 * signal 0. */
static bool mm_port__thread_dead(uint32_t tid)
{
    char path[32] = "/proc/";
    char digits[12];
    int n = 0;
    do {
        digits[n++] = (char)('0' + tid % 10u);
        tid /= 10u;
    } while (tid != 0);
    size_t len = 6;
    while (n > 0)
        path[len++] = digits[--n];
    memcpy(path + len, "/stat", 6);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && access("/proc/self/stat", F_OK) == 0)
            return true;
        /* No /proc here: a signal 0 tells a task that is gone (ESRCH),
         * though not a zombie from a live one. */
        return kill((pid_t)tid, 0) != 0 && errno == ESRCH;
    }
    char buf[512];
    ssize_t got = read(fd, buf, sizeof(buf) - 1u);
    close(fd);
    if (got <= 0)
        return true; /* went away while we looked */
    buf[got] = '\0';
    /* "pid (comm) S ...": comm may hold anything, so the state follows the
     * last ')'. */
    const char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return false;
    return p[2] == 'Z' || p[2] == 'X';
}

/* Whether the holder named by the word w is dead, as far as this process
 * can tell. */
static bool mm_port__holder_dead(uint64_t w)
{
    uint32_t tid = (uint32_t)(w & MM_PORT__TID_MASK);
    if (tid == 0 || (uint32_t)(w >> 32) != mm_port__pidns())
        return false; /* scribbled, or another namespace's id */
    if (tid == (uint32_t)(mm_port__lock_self & MM_PORT__TID_MASK))
        return false; /* ours: a relock by the holder itself, never a takeover */
    return mm_port__thread_dead(tid);
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
