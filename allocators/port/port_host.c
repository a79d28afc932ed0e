/*
 * port_host.c - the Linux host port: robust process-shared mutexes and
 * futex wait/wake on words in shared memory.
 *
 * This is the only allocator file that includes operating-system headers;
 * the core stays freestanding and reaches the host through mm_port.h.
 */
#define _GNU_SOURCE /* pthread_mutex_clocklock */
#include "mm/mm.h"  /* mm_set_lock_wait */
#include "mm_port.h"

#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(MM_EAGAIN == EAGAIN && MM_ENOMEM == ENOMEM && MM_EFAULT == EFAULT &&
                   MM_EBUSY == EBUSY && MM_EINVAL == EINVAL && MM_ENOSPC == ENOSPC &&
                   MM_EBADMSG == EBADMSG && MM_ETIMEDOUT == ETIMEDOUT && MM_EUCLEAN == EUCLEAN &&
                   MM_EOWNERDEAD == EOWNERDEAD && MM_ENOTRECOVERABLE == ENOTRECOVERABLE &&
                   MM_EPERM == EPERM && MM_ENOENT == ENOENT && MM_EEXIST == EEXIST &&
                   MM_ESPIPE == ESPIPE,
               "mm_errno.h must match the host's errno values");
_Static_assert(MM_PORT_LOCKED == 0 && MM_PORT_LOCKED_OWNER_DIED == 1,
               "port_host.h's inline lock returns these values");

int mm_port_lock_init(mm_port_lock_t *lock)
{
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err != 0)
        return -err;
    err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (err == 0)
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (err == 0)
        err = pthread_mutex_init(lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return -err;
}

uint32_t mm_port_lock_wait_ms;

void mm_set_lock_wait(uint32_t ms)
{
    mm_port_lock_wait_ms = ms;
}

/* The lock with a deadline on the monotonic clock (a wall clock set back
 * must not stretch it).  Results as mm_port_lock's, or -MM_ETIMEDOUT. */
int mm_port_lock_timed(mm_port_lock_t *lock)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint32_t ms = mm_port_lock_wait_ms;
    t.tv_sec += (time_t)(ms / 1000u);
    t.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    int err = pthread_mutex_clocklock(lock, CLOCK_MONOTONIC, &t);
    if (err == 0)
        return MM_PORT_LOCKED;
    if (err == EOWNERDEAD)
        return MM_PORT_LOCKED_OWNER_DIED;
    return -err; /* -ETIMEDOUT is -MM_ETIMEDOUT */
}

void mm_port_lock_mark_consistent(mm_port_lock_t *lock)
{
    (void)pthread_mutex_consistent(lock);
}

void mm_port_lock_destroy(mm_port_lock_t *lock)
{
    (void)pthread_mutex_destroy(lock);
}

uint32_t mm_port_owner_id(void)
{
    return (uint32_t)getpid();
}

/* Shared (not FUTEX_PRIVATE_FLAG) futexes: the word lives in memory that
 * other processes map, maybe at other addresses; the kernel keys it by page. */
int mm_port_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms)
{
    struct timespec rel, *relp = NULL;
    if (timeout_ms >= 0) {
        rel.tv_sec = timeout_ms / 1000;
        rel.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        relp = &rel;
    }
    long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, relp, NULL, 0);
    if (rc == 0 || errno == EAGAIN || errno == EINTR)
        return 0;
    if (errno == ETIMEDOUT)
        return -MM_ETIMEDOUT;
    return -errno;
}

void mm_port_wake(uint32_t *word, uint32_t count)
{
    int n = count > (uint32_t)INT_MAX ? INT_MAX : (int)count;
    (void)syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- Fork and thread exit, for the heap's per-thread cache --------------- */

uint32_t mm_port__fork_gen;

static pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_exit_key;
static void (*g_exit_fn)(void);

static void mm_port__after_fork_child(void)
{
    mm_port__fork_gen++;
}

static void mm_port__thread_exit(void *value)
{
    (void)value;
    void (*fn)(void) = __atomic_load_n(&g_exit_fn, __ATOMIC_ACQUIRE);
    if (fn != NULL)
        fn();
}

static void mm_port__hooks_init(void)
{
    (void)pthread_atfork(NULL, NULL, mm_port__after_fork_child);
    (void)pthread_key_create(&g_exit_key, mm_port__thread_exit);
}

void mm_port_install_hooks(void)
{
    (void)pthread_once(&g_hooks_once, mm_port__hooks_init);
}

void mm_port_on_thread_exit(void (*fn)(void))
{
    mm_port_install_hooks();
    __atomic_store_n(&g_exit_fn, fn, __ATOMIC_RELEASE); /* every thread's first bind */
    if (pthread_getspecific(g_exit_key) == NULL)
        (void)pthread_setspecific(g_exit_key, (void *)1);
}

/* ---- Clock and cached owner id (mm_port_sync.h) -------------------------- */

uint64_t mm_port_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* getpid() is a system call on current glibc; the IOB pool asks on every
 * allocation.  The cache is cleared in the child of a fork(). */
uint32_t mm_port__self;
static pthread_once_t g_self_once = PTHREAD_ONCE_INIT;

static void mm_port__self_after_fork(void)
{
    __atomic_store_n(&mm_port__self, 0u, __ATOMIC_RELAXED);
}

static void mm_port__self_init(void)
{
    (void)pthread_atfork(NULL, NULL, mm_port__self_after_fork);
}

uint32_t mm_port_self_slow(void)
{
    (void)pthread_once(&g_self_once, mm_port__self_init);
    uint32_t id = (uint32_t)getpid();
    __atomic_store_n(&mm_port__self, id, __ATOMIC_RELAXED);
    return id;
}

void *mm_port_local_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void mm_port_local_free(void *p, size_t size)
{
    if (p != NULL)
        (void)munmap(p, size);
}
