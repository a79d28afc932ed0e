/*
 * port_host.c - the Linux host port: robust process-shared mutexes and
 * futex wait/wake on words in shared memory.
 *
 * This is the only allocator file that includes operating-system headers;
 * the core stays freestanding and reaches the host through mm_port.h.
 */
#include "mm_port.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(MM_EAGAIN == EAGAIN && MM_ENOMEM == ENOMEM && MM_EFAULT == EFAULT &&
                   MM_EBUSY == EBUSY && MM_EINVAL == EINVAL && MM_ENOSPC == ENOSPC &&
                   MM_EBADMSG == EBADMSG && MM_ETIMEDOUT == ETIMEDOUT && MM_EUCLEAN == EUCLEAN &&
                   MM_EOWNERDEAD == EOWNERDEAD && MM_ENOTRECOVERABLE == ENOTRECOVERABLE,
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
