/*
 * port_host.c - the Linux host port: futex wait/wake on words in shared
 * memory, fork and thread-exit hooks, the clock (the lock is in
 * port_host_lock.c).
 *
 * This and port_host_lock.c are the only allocator files that include
 * operating-system headers; the core stays freestanding and reaches the
 * host through mm_port.h.
 */
#define _GNU_SOURCE
#include "mm_port.h"

#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
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
_Static_assert(MM_PORT_LOCKED == 0, "port_host.h's inline lock returns this value");

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
