/*
 * port_host_liveness.c - whether the thread that holds a lock still lives
 * (port_host_lock.c asks after a waiter slept a while).
 *
 * A holder of the waiter's own pid namespace is looked up by its thread id
 * in /proc: gone, or a zombie (killed, not yet reaped), is dead.
 *
 * A holder of another namespace names a thread id that means nothing here.
 * Only from the initial pid namespace, and as root (where mmsrvd runs), is
 * every task of every namespace visible, so only there is it judged: a scan of /proc for
 * the tasks of that namespace, matching the last field of their NSpid line
 * (a task's id in its own namespace).  A namespace with no task left, or
 * none with that id, means the holder is dead.  The scan costs a walk of
 * /proc, so a process runs one at most every MM_PORT__SCAN_MS.  Elsewhere
 * (a client in a container waiting on the client of another container) the
 * holder is taken to live, and the waiter waits, up to mm_set_lock_wait.
 */
#define _GNU_SOURCE
#include "mm_port.h"
#include "port_host_liveness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The kernel's fixed inode number of the initial pid namespace
 * (PROC_PID_INIT_INO). */
#define MM_PORT__INIT_PIDNS 0xeffffffcu
/* Fewest milliseconds between two scans of /proc by one process. */
#define MM_PORT__SCAN_MS 100

static uint32_t g_pidns_tag; /* 0: not read yet in this process */

uint32_t mm_port_pidns(void)
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

void mm_port_pidns_forget(void)
{
    __atomic_store_n(&g_pidns_tag, 0u, __ATOMIC_RELAXED);
}

/* path = prefix + number + suffix, in a buffer of 64 bytes. */
static void mm_port__proc_path(char *path, const char *prefix, unsigned long n, const char *suffix)
{
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + n % 10u);
        n /= 10u;
    } while (n != 0);
    size_t len = strlen(prefix);
    memcpy(path, prefix, len);
    while (nd > 0)
        path[len++] = digits[--nd];
    size_t sl = strlen(suffix);
    memcpy(path + len, suffix, sl + 1u);
}

/* The whole of a small /proc file into buf (NUL-terminated); its length, or
 * -1 with errno set. */
static ssize_t mm_port__read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, size - 1u);
    int err = errno;
    close(fd);
    if (got < 0) {
        errno = err;
        return -1;
    }
    buf[got] = '\0';
    return got;
}

/* ---- A holder of this namespace ------------------------------------------- */

static bool mm_port__same_ns_dead(uint32_t tid)
{
    char path[64], buf[512];
    mm_port__proc_path(path, "/proc/", tid, "/stat");
    if (mm_port__read_small(path, buf, sizeof(buf)) < 0) {
        if (errno == ESRCH)
            return true; /* went away while we looked */
        /* No such entry: gone, or hidden (no /proc here, or one mounted
         * with hidepid=2 hides other users' tasks).  A signal 0 tells: a
         * task that is gone is ESRCH, a hidden one is not (a hidden
         * zombie then counts as alive: a wait, never a wrong takeover).
         * A thread id is a pid to kill(), which would signal its whole
         * process: fine for 0. */
        return kill((pid_t)tid, 0) != 0 && errno == ESRCH;
    }
    /* "pid (comm) S ...": comm may hold anything, so the state follows the
     * last ')'. */
    const char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return false;
    return p[2] == 'Z' || p[2] == 'X';
}

/* ---- A holder of another namespace ----------------------------------------- */

/* The NSpid line of a status file: how many pid namespaces it lists (1:
 * the task is of the initial namespace; 0: no such line) and, in *id, the
 * last of them, the task's id in its own namespace. */
static int mm_port__nspid(const char *status, unsigned long *id)
{
    const char *p = strstr(status, "\nNSpid:");
    if (p == NULL)
        return 0;
    int levels = 0;
    for (p += 7; *p != '\0' && *p != '\n'; p++) {
        if (*p >= '0' && *p <= '9' && (p[-1] < '0' || p[-1] > '9')) {
            levels++;
            *id = strtoul(p, NULL, 10);
        }
    }
    return levels;
}

/* Whether /proc/<pid> is of the pid namespace ns: 1 if it is, 0 if not
 * (or gone), -1 if this process may not tell. */
static int mm_port__in_ns(unsigned long pid, uint32_t ns)
{
    char path[64], buf[2048];
    struct stat st;
    mm_port__proc_path(path, "/proc/", pid, "/ns/pid");
    if (stat(path, &st) == 0)
        return (uint32_t)st.st_ino == ns;
    if (errno == ENOENT || errno == ESRCH)
        return 0; /* gone */
    /* Not allowed to look (another user's process, or one that forbids
     * ptrace): a task of the initial namespace is not of ns all the same,
     * and its status, which anyone may read, says so. */
    mm_port__proc_path(path, "/proc/", pid, "/status");
    if (mm_port__read_small(path, buf, sizeof(buf)) < 0)
        return errno == ENOENT || errno == ESRCH ? 0 : -1;
    unsigned long id;
    return mm_port__nspid(buf, &id) == 1 ? 0 : -1;
}

/* Among the threads of process pid: 1 if one is tid of its own namespace
 * and alive, 0 if none is (or the one that is, is a zombie). */
static int mm_port__has_live_thread(unsigned long pid, uint32_t tid)
{
    char path[64];
    mm_port__proc_path(path, "/proc/", pid, "/task/");
    size_t dirlen = strlen(path);
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long t = strtoul(e->d_name, &end, 10);
        if (*end != '\0' || e->d_name[0] == '\0')
            continue;
        char spath[96], buf[2048];
        memcpy(spath, path, dirlen);
        mm_port__proc_path(spath + dirlen, "", t, "/status");
        unsigned long id = 0;
        const char *st;
        if (mm_port__read_small(spath, buf, sizeof(buf)) < 0 || mm_port__nspid(buf, &id) == 0 ||
            id != tid || (st = strstr(buf, "\nState:")) == NULL)
            continue; /* went away, or another thread */
        st += 7;
        while (*st == ' ' || *st == '\t')
            st++;
        found = *st == 'Z' || *st == 'X' ? 0 : 1; /* that thread: dead or alive */
        break;
    }
    closedir(d);
    return found;
}

static bool mm_port__other_ns_dead(uint32_t tid, uint32_t ns)
{
    /* That namespace's tasks may be out of sight: from a namespace below
     * the initial one, or, without root, behind /proc's hidepid. */
    if (mm_port_pidns() != MM_PORT__INIT_PIDNS || geteuid() != 0)
        return false;
    static uint64_t next_scan;
    uint64_t now = mm_port_now_ms();
    if (now < __atomic_load_n(&next_scan, __ATOMIC_RELAXED))
        return false;
    __atomic_store_n(&next_scan, now + MM_PORT__SCAN_MS, __ATOMIC_RELAXED);

    DIR *d = opendir("/proc");
    if (d == NULL)
        return false;
    bool dead = true;
    struct dirent *e;
    while (dead && (e = readdir(d)) != NULL) {
        char *end;
        unsigned long pid = strtoul(e->d_name, &end, 10);
        if (*end != '\0' || e->d_name[0] == '\0')
            continue;
        int in = mm_port__in_ns(pid, ns);
        if (in == 0)
            continue;
        /* a process of that namespace we may not look into, or the one
         * with the holder alive in it */
        if (in < 0 || mm_port__has_live_thread(pid, tid) != 0)
            dead = false;
    }
    closedir(d);
    return dead;
}

bool mm_port_thread_dead(uint32_t tid, uint32_t ns)
{
    return ns == mm_port_pidns() ? mm_port__same_ns_dead(tid) : mm_port__other_ns_dead(tid, ns);
}
