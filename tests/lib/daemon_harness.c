/*
 * daemon_harness.c - a real mmsrvd for integration tests, with a stand-in
 * for the parts of systemd the daemon talks to (notify socket, descriptor
 * store, LISTEN_FDS).  See daemon_harness.h.
 */
#define _GNU_SOURCE
#include "daemon_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define TD_READY_MS 10000
#define TD_STOP_MS  10000

static const char td_default_config[] = "{ \"segment_size\": 67108864 }\n";

static int td_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int td_bind_notify(struct td_daemon *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", d->dir);
    unlink(sa.sun_path);
    d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->notify_fd < 0)
        return -1;
    if (bind(d->notify_fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    /* systemd accepts notifications only with credentials attached */
    int one = 1;
    setsockopt(d->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    return 0;
}

static void td_remove_fd(struct td_daemon *d, const char *name);

static void td_store_fd(struct td_daemon *d, const char *name, int fd)
{
    if (d->nstored == TD_MAX_STORED) {
        close(fd);
        return;
    }
    snprintf(d->stored[d->nstored].name, sizeof d->stored[0].name, "%s", name);
    d->stored[d->nstored++].fd = fd;
}

static void td_remove_fd(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nstored;) {
        if (strcmp(d->stored[i].name, name) == 0) {
            close(d->stored[i].fd);
            d->stored[i] = d->stored[--d->nstored];
        } else {
            i++;
        }
    }
}

/* Value of KEY= in a newline-separated notification, copied to out. */
static bool td_field(const char *msg, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *line = msg; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, line + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* One notification: 1 read (with *ready set if it said READY=1), 0 none
 * waiting, -1 error. */
static int td_read_notify(struct td_daemon *d, bool *ready)
{
    char msg[4096];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * TD_MAX_STORED) + CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof msg - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(d->notify_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    msg[n] = '\0';

    int fds[TD_MAX_STORED];
    size_t nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && nfds < TD_MAX_STORED; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
    }

    char value[256];
    if (td_field(msg, "READY", value, sizeof value) && strcmp(value, "1") == 0 && ready != NULL)
        *ready = true;
    td_field(msg, "STATUS", d->status, sizeof d->status);
    if (td_field(msg, "FDSTOREREMOVE", value, sizeof value) && strcmp(value, "1") == 0 &&
        td_field(msg, "FDNAME", value, sizeof value))
        td_remove_fd(d, value);
    if (td_field(msg, "FDSTORE", value, sizeof value) && strcmp(value, "1") == 0) {
        if (!td_field(msg, "FDNAME", value, sizeof value))
            snprintf(value, sizeof value, "stored");
        /* systemd keeps both; a test wants the newest under one name (all
         * the descriptors of this message) */
        td_remove_fd(d, value);
        for (size_t i = 0; i < nfds; i++)
            td_store_fd(d, value, fds[i]);
        nfds = 0;
    }
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    return 1;
}

int td_drain_notify(struct td_daemon *d)
{
    int count = 0;
    bool ready = false;
    pthread_mutex_lock(&d->lock);
    while (td_read_notify(d, &ready) > 0)
        count++;
    if (ready) {
        d->ready = true;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
    return count;
}

/* The stand-in reads the notify socket all the time, as systemd does: the
 * socket queues only a few datagrams (net.unix.max_dgram_qlen), and a
 * daemon whose notifications are not taken blocks or loses them. */
static void *td_notify_thread(void *arg)
{
    struct td_daemon *d = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = d->notify_fd, .events = POLLIN},
                              {.fd = d->wake[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents != 0)
            break;
        if (p[0].revents != 0)
            td_drain_notify(d);
    }
    return NULL;
}

void td_print_log(const struct td_daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(stderr, "---- mmsrvd log (%s)\n", d->log);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fprintf(stderr, "---- end of log\n");
    fclose(f);
}

/* Close every descriptor from first up. */
static void td_close_from(int first)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0u, 0u) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

/* In the child: the stored descriptors become 3, 4, ... as systemd passes
 * them, with their names; then exec the daemon. */
static void td_exec_daemon(struct td_daemon *d, const char *const *extra_args)
{
    /* A test that dies leaves no daemon behind (SIGTERM: it cleans up). */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log < 0)
        _exit(126);
    dup2(log, STDERR_FILENO);

    char names[TD_MAX_STORED * 257] = "";
    if (d->nstored > 0) {
        /* move the originals out of the way first, so dup2 onto 3.. cannot
         * clobber one still to be moved */
        int moved[TD_MAX_STORED];
        for (size_t i = 0; i < d->nstored; i++)
            moved[i] = fcntl(d->stored[i].fd, F_DUPFD, 3 + TD_MAX_STORED + 16);
        for (size_t i = 0; i < d->nstored; i++) {
            dup2(moved[i], (int)(3 + i));
            if (i > 0)
                strcat(names, ":");
            strcat(names, d->stored[i].name);
        }
        for (size_t i = 0; i < d->nstored; i++)
            close(moved[i]);
        char buf[32];
        snprintf(buf, sizeof buf, "%zu", d->nstored);
        setenv("LISTEN_FDS", buf, 1);
        setenv("LISTEN_FDNAMES", names, 1);
        snprintf(buf, sizeof buf, "%d", (int)getpid());
        setenv("LISTEN_PID", buf, 1);
    } else {
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("LISTEN_PID");
    }
    /* Nothing else of the test's reaches the daemon, as under systemd: an
     * inherited client socket or pipe end would keep a connection or a pipe
     * open behind the test's back. */
    td_close_from((int)(3 + d->nstored));

    /* Under AddressSanitizer, freed memory waits in a quarantine of up to
     * 256 MiB, which would read as growth in the tests that bound the
     * daemon's memory. */
    const char *asan = getenv("ASAN_OPTIONS");
    if (asan == NULL || strstr(asan, "quarantine_size_mb") == NULL) {
        char opts[512];
        snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", asan != NULL ? asan : "",
                 asan != NULL && *asan != '\0' ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }

    char notify[64];
    snprintf(notify, sizeof notify, "%s/notify", d->dir);
    setenv("NOTIFY_SOCKET", notify, 1);

    const char *bin = getenv("MMSRVD");
    if (bin == NULL)
        bin = "mmsrvd";
    char varlink[256];
    snprintf(varlink, sizeof varlink, "--varlink=%s", d->address);
    const char *argv[32] = {bin, "--config", d->config, varlink};
    size_t argc = 4;
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && argc < 31; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    execvp(bin, (char *const *)argv);
    fprintf(stderr, "daemon_harness: cannot run %s: %s\n", bin, strerror(errno));
    _exit(127);
}

static int td_spawn(struct td_daemon *d)
{
    td_drain_notify(d);
    /* The stored list must not change while the child copies it. */
    pthread_mutex_lock(&d->lock);
    d->ready = false;
    fflush(NULL);
    d->pid = fork();
    if (d->pid == 0)
        td_exec_daemon(d, d->args);
    pthread_mutex_unlock(&d->lock);
    if (d->pid < 0)
        return -1;

    /* Stored descriptors now belong to the daemon; systemd keeps its own
     * copies, and so do we until the daemon stores them again. */
    uint64_t deadline = tu_now_ms() + TD_READY_MS;
    bool ready = false;
    while (!ready && tu_now_ms() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 5000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&d->lock);
        if (!d->ready)
            pthread_cond_timedwait(&d->cond, &d->lock, &until);
        ready = d->ready;
        pthread_mutex_unlock(&d->lock);
        int status;
        if (!ready && waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "daemon_harness: mmsrvd exited before ready (status 0x%x)\n", status);
            d->pid = 0;
            td_print_log(d);
            return -1;
        }
    }
    if (!ready) {
        fprintf(stderr, "daemon_harness: mmsrvd not ready in %d ms\n", TD_READY_MS);
        td_print_log(d);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
        return -1;
    }
    return 0;
}

/* Bind and listen on the daemon's socket, as systemd does for a socket
 * unit, and keep it with the stored descriptors under name. */
static int td_listen(struct td_daemon *d, const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unlink(d->socket);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(d->socket, 0666) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        close(fd);
        return -1;
    }
    td_store_fd(d, name, fd);
    return 0;
}

static int td_start_common(struct td_daemon *d, const char *config_json,
                           const char *const *extra_args, bool activated);

int td_start(struct td_daemon *d, const char *config_json, const char *const *extra_args)
{
    return td_start_common(d, config_json, extra_args, false);
}

int td_start_activated(struct td_daemon *d, const char *config_json, const char *const *extra_args)
{
    return td_start_common(d, config_json, extra_args, true);
}

static int td_start_common(struct td_daemon *d, const char *config_json,
                           const char *const *extra_args, bool activated)
{
    memset(d, 0, sizeof *d);
    d->notify_fd = -1;
    d->wake[0] = d->wake[1] = -1;
    snprintf(d->dir, sizeof d->dir, "/tmp/mmsrv-test-XXXXXX");
    if (mkdtemp(d->dir) == NULL)
        return -1;
    /* the directory must be reachable by tests that drop privileges */
    chmod(d->dir, 0755);
    snprintf(d->socket, sizeof d->socket, "%s/io.mmsrvd", d->dir);
    snprintf(d->address, sizeof d->address, "unix:%s", d->socket);
    snprintf(d->config, sizeof d->config, "%s/mmsrvd.conf", d->dir);
    snprintf(d->log, sizeof d->log, "%s/mmsrvd.log", d->dir);
    if (td_write_file(d->config, config_json != NULL ? config_json : td_default_config) != 0)
        return -1;
    if (td_bind_notify(d) != 0)
        return -1;
    if (activated && td_listen(d, TD_SOCKET_NAME) != 0)
        return -1;
    d->args = extra_args;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (pipe2(d->wake, O_CLOEXEC) != 0)
        return -1;
    if (pthread_create(&d->thread, NULL, td_notify_thread, d) != 0)
        return -1;
    d->thread_running = true;
    return td_spawn(d);
}

int td_stop(struct td_daemon *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int status = tu_wait_child(d->pid, TD_STOP_MS);
    d->pid = 0;
    td_drain_notify(d);
    return status;
}

int td_restart(struct td_daemon *d)
{
    int status = td_stop(d);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "daemon_harness: mmsrvd did not stop cleanly (0x%x)\n", status);
        td_print_log(d);
        return -1;
    }
    return td_spawn(d);
}

int td_respawn(struct td_daemon *d)
{
    if (d->pid > 0) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) != d->pid)
            return -1; /* still running */
    }
    d->pid = 0;
    return td_spawn(d);
}

void td_cleanup(struct td_daemon *d)
{
    if (d->pid > 0)
        td_stop(d);
    if (d->thread_running) {
        if (write(d->wake[1], "x", 1) != 1)
            pthread_cancel(d->thread);
        pthread_join(d->thread, NULL);
        d->thread_running = false;
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
    }
    for (int i = 0; i < 2; i++) {
        if (d->wake[i] >= 0)
            close(d->wake[i]);
        d->wake[i] = -1;
    }
    for (size_t i = 0; i < d->nstored; i++)
        close(d->stored[i].fd);
    d->nstored = 0;
    if (d->notify_fd >= 0)
        close(d->notify_fd);
    d->notify_fd = -1;
    if (d->dir[0] != '\0') {
        DIR *dir = opendir(d->dir);
        if (dir != NULL) {
            struct dirent *e;
            while ((e = readdir(dir)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char path[512];
                snprintf(path, sizeof path, "%s/%s", d->dir, e->d_name);
                unlink(path);
            }
            closedir(dir);
        }
        rmdir(d->dir);
        d->dir[0] = '\0';
    }
}

int td_count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

long td_status_kib(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    size_t n = strlen(field);
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':' &&
            sscanf(line + n + 1, " %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

long td_rss_kib(pid_t pid)
{
    return td_status_kib(pid, "VmRSS");
}

int td_connect(const struct td_daemon *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int td_send(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Take the first byte of a message with recvmsg, so that descriptors sent
 * with it (SCM_RIGHTS travel with the first byte of a reply) are received
 * rather than peeked at or dropped.  1 with the byte, 0 closed, -1 error. */
static int td_recv_first(int fd, char *byte, int *fds, size_t max_fds, size_t *nfds,
                         bool *truncated)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * TD_MAX_RECV_FDS)];
    } ctl;
    struct iovec iov = {.iov_base = byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return (int)n;
    if ((mh.msg_flags & MSG_CTRUNC) != 0)
        *truncated = true;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            *truncated = true; /* nothing else is expected from the daemon */
            continue;
        }
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fds != NULL && *nfds < max_fds)
                fds[(*nfds)++] = got;
            else if (fds != NULL) {
                close(got);
                *truncated = true;
            } else {
                close(got);
            }
        }
    }
    return 1;
}

char *td_recv_fds(int fd, int timeout_ms, int *fds, size_t max_fds, size_t *nfds, bool *closed)
{
    /* The first byte by recvmsg (with its descriptors), then peek until a
     * NUL shows and take exactly the rest of one message, so that what
     * follows it stays in the socket for the next call. */
    size_t cap = 4096;
    char *buf = malloc(cap);
    size_t have = 0; /* bytes of the message already taken */
    size_t got_fds = 0;
    bool truncated = false;
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    if (closed != NULL)
        *closed = false;
    if (nfds != NULL)
        *nfds = 0;
    while (buf != NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - tu_now_ms());
        if (tu_now_ms() >= deadline)
            break;
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        if (have == 0) {
            int r = td_recv_first(fd, buf, fds, max_fds, &got_fds, &truncated);
            if (r == 0 || (r < 0 && errno == ECONNRESET)) {
                if (closed != NULL)
                    *closed = true;
                break;
            }
            if (r < 0) {
                if (errno == EAGAIN)
                    continue;
                break;
            }
            have = 1;
            if (buf[0] == '\0')
                goto done;
            continue;
        }
        ssize_t n = recv(fd, buf + have, cap - have, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            if (closed != NULL)
                *closed = true;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            if (closed != NULL)
                *closed = errno == ECONNRESET;
            break;
        }
        char *nul = memchr(buf + have, '\0', (size_t)n);
        if (nul != NULL) {
            size_t len = (size_t)(nul - (buf + have)) + 1;
            if (recv(fd, buf + have, len, MSG_DONTWAIT) != (ssize_t)len)
                break;
            goto done;
        }
        if (have + (size_t)n == cap) {
            /* no NUL in what is there: take it, and make room for more */
            if (recv(fd, buf + have, (size_t)n, MSG_DONTWAIT) != n)
                break;
            have += (size_t)n;
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL)
                break;
            buf = bigger;
            cap *= 2;
        } else {
            /* part of a message: wait for the rest */
            struct pollfd q = {.fd = fd, .events = POLLIN | POLLRDHUP};
            poll(&q, 1, 1);
        }
    }
    free(buf);
    if (fds != NULL && nfds != NULL)
        *nfds = got_fds;
    return NULL;

done:
    if (truncated)
        fprintf(stderr, "daemon_harness: a message brought unexpected control data\n");
    if (nfds != NULL)
        *nfds = got_fds;
    return buf;
}

char *td_recv(int fd, int timeout_ms, bool *closed)
{
    return td_recv_fds(fd, timeout_ms, NULL, 0, NULL, closed);
}

char *td_call(int fd, const char *call, int timeout_ms)
{
    if (td_send(fd, call, strlen(call) + 1) != 0)
        return NULL;
    return td_recv(fd, timeout_ms, NULL);
}

char *td_call_fds(int fd, const char *call, int timeout_ms, int *fds, size_t max_fds, size_t *nfds)
{
    if (nfds != NULL)
        *nfds = 0;
    if (td_send(fd, call, strlen(call) + 1) != 0)
        return NULL;
    return td_recv_fds(fd, timeout_ms, fds, max_fds, nfds, NULL);
}

int td_send_fds(int fd, const void *buf, size_t n, const int *fds, size_t nfds)
{
    if (n == 0 || nfds > TD_MAX_RECV_FDS)
        return -1;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * TD_MAX_RECV_FDS)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t k;
    do
        k = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    if (k != 1)
        return -1;
    return td_send(fd, (const char *)buf + 1, n - 1);
}

int td_wait_fd_count(pid_t pid, int most, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    int n;
    while ((n = td_count_fds(pid)) > most && tu_now_ms() < deadline) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return n;
}

bool td_wait_closed(int fd, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    while (tu_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - tu_now_ms())) <= 0)
            return false;
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}
