/*
 * fault_shim.c - fault injection for mmsrvd's own system calls (test only).
 *
 * Linked into mmsrvd-fault (the daemon's objects plus this file, never
 * installed): the executable's definitions of these libc functions take
 * the place of libc's for the daemon's own calls, and each passes through
 * to the next definition (dlsym RTLD_NEXT: libc, or a sanitizer's
 * interceptor, which is why this is linked in rather than preloaded: it
 * runs the same under AddressSanitizer).
 *
 * Which call fails, after how many more, with which errno and how often is
 * read from the control block (fault_ctl.h) that $MMSRV_FAULT_CTL names,
 * mapped shared, so a test arms and disarms faults while the daemon runs.
 * Each interposed call fails only on the one path of the daemon it stands
 * for (a filter per call, below), so that the loader, libuv, libsystemd and
 * the systemd notifier (its table memfd, its datagrams) are not disturbed.
 *
 * With _FILE_OFFSET_BITS=64 the daemon calls open64, ftruncate64, fcntl64
 * and mmap64; both names of each are interposed, whatever the build says.
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS /* declare both open and open64, etc. */
#include "fault_ctl.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym returns functions as void *");

static struct fault_ctl *ctl; /* set before main, read-only after */

/* The next definition of name (libc's), resolved on first use: libraries
 * may call before this file's constructor runs. */
static void real(const char *name, void **slot, void *fnp)
{
    void *sym = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (sym == NULL) {
        sym = dlsym(RTLD_NEXT, name);
        if (sym == NULL) {
            fprintf(stderr, "fault_shim: no %s to pass to\n", name);
            abort();
        }
        __atomic_store_n(slot, sym, __ATOMIC_RELEASE);
    }
    memcpy(fnp, &sym, sizeof(sym));
}

/* Whether the test armed this call (cheap: checked before any filter). */
static bool armed(enum fault_call id)
{
    return ctl != NULL && atomic_load(&ctl->call) == (int)id;
}

/* A matching call: let it through while skip lasts, then fail it while fail
 * lasts.  true with errno set when it must fail. */
static bool fire(enum fault_call id)
{
    if (!armed(id))
        return false;
    int n = atomic_load(&ctl->skip);
    while (n > 0)
        if (atomic_compare_exchange_weak(&ctl->skip, &n, n - 1))
            return false;
    n = atomic_load(&ctl->fail);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&ctl->fail, &n, n - 1)) {
            atomic_fetch_add(&ctl->injected, 1);
            errno = atomic_load(&ctl->err);
            return true;
        }
    }
    return false;
}

/* Whether fd is a region's memfd: region.c names them "mmsrv:<region>"
 * (systemd.c's table memfd is "mmsrvd-table"). */
static bool region_fd(int fd)
{
    char path[64], target[128];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strncmp(target, "/memfd:mmsrv:", 13) == 0;
}

__attribute__((constructor)) static void fault_shim_init(void)
{
    const char *path = getenv("MMSRV_FAULT_CTL");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_RDWR | O_CLOEXEC); /* ctl is NULL: passes through */
    if (fd < 0) {
        fprintf(stderr, "fault_shim: cannot open %s: %s\n", path, strerror(errno));
        abort();
    }
    void *m = mmap(NULL, sizeof(struct fault_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED || ((struct fault_ctl *)m)->magic != FAULT_CTL_MAGIC) {
        fprintf(stderr, "fault_shim: %s is not a fault control block\n", path);
        abort();
    }
    ctl = m;
}

/* ---- region.c: creating a region's memfd ------------------------------ */

/* CreateRegion's first step: the region's own memfd. */
int memfd_create(const char *name, unsigned int flags)
{
    static void *slot;
    int (*fn)(const char *, unsigned int);
    real("memfd_create", &slot, &fn);
    if (armed(FAULT_MEMFD_CREATE) && strncmp(name, "mmsrv:", 6) == 0 && fire(FAULT_MEMFD_CREATE))
        return -1;
    return fn(name, flags);
}

/* Then its size. */
static int shim_ftruncate(const char *name, void **slot, int fd, off_t len)
{
    int (*fn)(int, off_t);
    real(name, slot, &fn);
    if (armed(FAULT_FTRUNCATE) && region_fd(fd) && fire(FAULT_FTRUNCATE))
        return -1;
    return fn(fd, len);
}

int ftruncate(int fd, off_t len)
{
    static void *slot;
    return shim_ftruncate("ftruncate", &slot, fd, len);
}

int ftruncate64(int fd, off64_t len)
{
    static void *slot;
    return shim_ftruncate("ftruncate64", &slot, fd, len);
}

/* Then its seals (F_ADD_SEALS only: the daemon's other fcntl calls, and
 * libuv's, are not on this path). */
static int shim_fcntl(const char *name, void **slot, int fd, int cmd, void *arg)
{
    int (*fn)(int, int, ...);
    real(name, slot, &fn);
    if (cmd == F_ADD_SEALS && armed(FAULT_ADD_SEALS) && region_fd(fd) && fire(FAULT_ADD_SEALS))
        return -1;
    return fn(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
    static void *slot;
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* as libc reads it: int or pointer */
    va_end(ap);
    return shim_fcntl("fcntl", &slot, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    static void *slot;
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shim_fcntl("fcntl64", &slot, fd, cmd, arg);
}

/* ---- segment.c: mapping a region into the segment --------------------- */

/* Only a region's memfd mapped MAP_SHARED|MAP_FIXED over its page run:
 * the loader's, libuv's and the allocator's own mappings pass. */
static void *shim_mmap(const char *name, void **slot, void *addr, size_t len, int prot, int flags,
                       int fd, off_t off)
{
    void *(*fn)(void *, size_t, int, int, int, off_t);
    real(name, slot, &fn);
    if ((flags & (MAP_SHARED | MAP_FIXED)) == (MAP_SHARED | MAP_FIXED) && fd >= 0 &&
        armed(FAULT_MAP_REGION) && region_fd(fd) && fire(FAULT_MAP_REGION))
        return MAP_FAILED;
    return fn(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *slot;
    return shim_mmap("mmap", &slot, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    static void *slot;
    return shim_mmap("mmap64", &slot, addr, len, prot, flags, fd, off);
}

/* ---- access.c: a read-only grant ---------------------------------------- */

/* Only the reopen of a memfd through /proc/self/fd (Attach read-only). */
static int shim_open(const char *name, void **slot, const char *path, int flags, mode_t mode)
{
    int (*fn)(const char *, int, ...);
    real(name, slot, &fn);
    if (armed(FAULT_OPEN_PROC_FD) && strncmp(path, "/proc/self/fd/", 14) == 0 &&
        fire(FAULT_OPEN_PROC_FD))
        return -1;
    return fn(path, flags, mode);
}

static mode_t open_mode(int flags, va_list ap)
{
    bool has_mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
    return has_mode ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
    static void *slot;
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return shim_open("open", &slot, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    static void *slot;
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return shim_open("open64", &slot, path, flags, mode);
}

/* ---- client.c: connections ------------------------------------------- */

/* Replies to clients: stream sockets only (the notifier's datagrams to
 * systemd go through sendmsg too, from its own thread). */
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static void *slot;
    ssize_t (*fn)(int, const struct msghdr *, int);
    real("sendmsg", &slot, &fn);
    if (armed(FAULT_SENDMSG)) {
        int type = 0;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM &&
            fire(FAULT_SENDMSG))
            return -1;
    }
    return fn(fd, msg, flags);
}

/* New connections on the listening socket (the daemon's only accept).
 * __SOCKADDR_ARG: the declaration's (a transparent union with _GNU_SOURCE). */
int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *addrlen, int flags)
{
    static void *slot;
    int (*fn)(int, __SOCKADDR_ARG, socklen_t *, int);
    real("accept4", &slot, &fn);
    if (fire(FAULT_ACCEPT4))
        return -1;
    return fn(fd, addr, addrlen, flags);
}
