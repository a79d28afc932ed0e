/*
 * bench_daemon.c - mmsrvd and libmmsrv against the floors of issue 5, with
 * plain UNIX sockets as the baseline in the same run.  Prints one JSON
 * document on stdout (progress on stderr).
 *
 * The benchmark starts its own mmsrvd (tests/lib/daemon_harness.h: a fresh
 * temporary directory, READY=1 on a stand-in notify socket); the binary is
 * the one this build made, or $MMSRVD.  It creates one heap region and:
 *
 *   clients_1000     opens 1000 libmmsrv connections, each making one call
 *                    (ListRegions) and staying open: the daemon's VmRSS and
 *                    descriptor count idle, with the 1000 connected, with
 *                    each of them also attaching the region, and after all
 *                    disconnected (when the descriptor count is back).
 *   attach_detach    one attach and one detach of the region, timed as one
 *                    round trip, p50 and p99, in four modes:
 *                      socket_echo     a socket pair to a blocking server
 *                                      process: the same four messages
 *                                      (request and reply of attach, then
 *                                      of detach), byte for byte the sizes
 *                                      mmsrvd's are, NUL-terminated JSON;
 *                      socket_fd_mmap  the same, the attach reply carrying a
 *                                      memfd of the region's size as
 *                                      SCM_RIGHTS, which the client maps,
 *                                      reads a byte of, unmaps and closes:
 *                                      what a hand-rolled shm_open plus
 *                                      descriptor passing costs at least;
 *                      daemon_raw      the same client code against mmsrvd
 *                                      (Varlink Attach and Detach): the
 *                                      daemon's share, without libmmsrv;
 *                      libmmsrv        mmsrv_attach + mmsrv_detach.
 *                    The server's CPU time per pair (schedstat) beside them.
 *   concurrent_64    64 threads, each with its own connection, calling
 *                    RegionStats in a loop for a fixed time: requests per
 *                    second and per-request latency p50, p99, and the
 *                    daemon's CPU time per request; the baseline is an
 *                    epoll echo server process answering the same request
 *                    with a reply of the same size.
 *
 * By default the client side and the server (mmsrvd or the baseline server)
 * are pinned to one CPU, on every mode alike, so that each hop of a round
 * trip is a context switch: on a virtual machine, waking the other, idle
 * virtual CPU costs from 40 to several hundred microseconds depending on the
 * host, which swamps what the software does.  --two-cpus pins them to two
 * CPUs and --no-pin leaves placement to the scheduler; "cpus" in the JSON
 * says which.  Each figure is measured in rounds; the JSON gives the median
 * of the rounds with their min and max, and modes alternate within each
 * round so that a noisy moment slows all of them alike.  "floors" says met
 * or not for each floor.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "daemon_harness.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h" /* tu_wait_until */

/* Set by bench/meson.build: the mmsrvd this build made. */
#ifndef MMSRVD_PATH
#define MMSRVD_PATH "mmsrvd"
#endif

#define MAX_ROUNDS     50
#define REGION_NAME    "bench-heap"
#define REGION_SIZE    (1u << 20)
#define MANY_CLIENTS   1000u
#define CONC_CLIENTS   64u
#define MSG_CAP        65536u /* the largest message either side handles */
#define LAT_CAP        32768u /* latency samples kept per thread and run */
#define SETTLE_MS      5000   /* wait for the daemon to drop closed clients */
#define FLOOR_P50_US   100.0
#define FLOOR_RSS_KIB  (16u * 1024u)
#define NOFILE_WANTED  8192u
#define RECV_TIMEOUT_S 30

/* The Varlink calls, as any client sends them. */
static const char g_req_attach[] =
    "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"" REGION_NAME
    "\",\"writable\":true}}";
static const char g_req_detach[] =
    "{\"method\":\"io.mmsrvd.Detach\",\"parameters\":{\"name\":\"" REGION_NAME "\"}}";
static const char g_req_stats[] =
    "{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":\"" REGION_NAME "\"}}";

/* ---- Configuration and state -------------------------------------------------- */

struct cfg {
    bool quick;
    bool pin;
    bool same_cpu; /* client and server pinned to one CPU (the default) */
    unsigned rounds;
    uint32_t pairs;      /* attach+detach pairs per mode and round */
    uint32_t warmup;     /* pairs before those, not recorded */
    double conc_seconds; /* per mode and round */
    unsigned mem_rounds; /* passes of the 1000 clients */
    int cpu_client, cpu_server;
};

/* Reply sizes of mmsrvd, NUL included, measured at setup: the baseline
 * servers answer with exactly as many bytes. */
struct sizes {
    size_t attach_req, attach_reply, detach_req, detach_reply, stats_req, stats_reply;
};

static struct td_daemon g_d;
static bool g_daemon_up;
static struct sizes g_sz;

static struct {
    double p50_us[4], p99_us[4];
    double rps[2], conc_p50_us[2], conc_p99_us[2];
    long rss_connected_max, rss_attached_max, rss_idle;
    uint64_t many_failures;
    bool many_settled;
} g_key = {.rss_connected_max = -1, .rss_attached_max = -1, .rss_idle = -1};

static void die(const char *what)
{
    fprintf(stderr, "bench_daemon: %s: %s\n", what, strerror(errno));
    if (g_daemon_up)
        td_cleanup(&g_d);
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_daemon: %s\n", what);
    if (g_daemon_up) {
        td_print_log(&g_d);
        td_cleanup(&g_d);
    }
    exit(1);
}

static void fail_call(const char *what, int rc)
{
    const char *name = mmsrv_error_name();
    fprintf(stderr, "bench_daemon: %s: %s (%s)\n", what, strerror(-rc),
            name != NULL ? name : "no Varlink error");
    fail("giving up");
}

/* ---- /proc ---------------------------------------------------------------------- */

/* A process's memory, KiB; -1 where /proc did not say. */
struct mem {
    long rss, hwm, anon, file, shmem;
    int fds;
};

static struct mem mem_of(pid_t pid)
{
    struct mem m = {td_rss_kib(pid), -1, -1, -1, -1, td_count_fds(pid)};
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return m;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmHWM: %ld kB", &m.hwm) == 1 ||
            sscanf(line, "RssAnon: %ld kB", &m.anon) == 1 ||
            sscanf(line, "RssFile: %ld kB", &m.file) == 1)
            continue;
        (void)sscanf(line, "RssShmem: %ld kB", &m.shmem);
    }
    fclose(f);
    return m;
}

static void js_mem(const char *key, const struct mem *m)
{
    js_open(key);
    js_int("vmrss_kib", m->rss);
    js_int("vmhwm_kib", m->hwm);
    js_int("rss_anon_kib", m->anon);
    js_int("rss_file_kib", m->file);
    js_int("rss_shmem_kib", m->shmem);
    js_int("fds", m->fds);
    js_close();
}

/* CPU time of every thread of pid so far, ns (schedstat: time on a CPU). */
static uint64_t cpu_ns_of(pid_t pid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        unsigned long long ns;
        if (fscanf(f, "%llu", &ns) == 1)
            sum += ns;
        fclose(f);
    }
    closedir(dir);
    return sum;
}

static long nofile_limit_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long soft = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Max open files %ld", &soft) == 1)
            break;
    fclose(f);
    return soft;
}

static long log_lines(const struct td_daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* ---- Raw messages ----------------------------------------------------------------- */

/* Send n bytes (a message with its NUL), with fd as SCM_RIGHTS on the first
 * byte when fd >= 0. */
static bool send_msg(int sock, const char *msg, size_t n, int fd)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    while (n > 0) {
        struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd >= 0) {
            memset(&ctl, 0, sizeof ctl);
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof ctl.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        ssize_t k = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        fd = -1;
        msg += k;
        n -= (size_t)k;
    }
    return true;
}

/* Receive one message whose NUL ends what the peer sent (every call here
 * waits for its reply before the next): its length with the NUL, or 0 on
 * error, close, or bytes past the NUL.  *fd gets a descriptor that came
 * with it, or -1 (fd NULL: any is closed). */
static size_t recv_msg(int sock, char *buf, size_t cap, int *fd)
{
    size_t len = 0;
    if (fd != NULL)
        *fd = -1;
    for (;;) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * 8)];
        } ctl;
        struct iovec iov = {.iov_base = buf + len, .iov_len = cap - len};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl};
        if (cap == len)
            return 0;
        ssize_t k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int got;
                memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                if (fd != NULL && *fd < 0)
                    *fd = got;
                else
                    close(got);
            }
        }
        len += (size_t)k;
        if (buf[len - 1] == '\0')
            return memchr(buf, '\0', len) == buf + len - 1 ? len : 0;
        if (memchr(buf, '\0', len) != NULL)
            return 0;
    }
}

/* A receive on sock that waits longer than this fails, so that a server
 * that stopped answering ends the benchmark instead of hanging it. */
static void recv_timeout(int sock)
{
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        die("SO_RCVTIMEO");
}

/* A JSON reply of *len bytes, NUL included: {"parameters":{}} padded with
 * white space inside.  *len is raised to the smallest reply if below it. */
static char *make_reply(size_t *len)
{
    static const char head[] = "{\"parameters\":{", tail[] = "}}";
    size_t frame = sizeof head - 1 + sizeof tail - 1 + 1;
    if (*len < frame)
        *len = frame;
    char *r = bu_xcalloc(*len, 1);
    memcpy(r, head, sizeof head - 1);
    memset(r + sizeof head - 1, ' ', *len - frame);
    memcpy(r + *len - sizeof tail, tail, sizeof tail - 1);
    r[*len - 1] = '\0';
    return r;
}

/* One raw call to mmsrvd: the reply's length with its NUL; exits on an error
 * reply. */
static size_t daemon_call(int sock, const char *req, char *buf, int *fd, const char *what)
{
    if (!send_msg(sock, req, strlen(req) + 1, -1))
        die(what);
    size_t n = recv_msg(sock, buf, MSG_CAP, fd);
    if (n == 0)
        fail(what);
    if (strstr(buf, "\"error\"") != NULL) {
        fprintf(stderr, "bench_daemon: %s: %s\n", what, buf);
        fail("the daemon answered with an error");
    }
    return n;
}

/* A baseline server process.  Its parent's JSON so far is flushed first,
 * and the child never cleans up the parent's daemon. */
static pid_t fork_server(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        g_daemon_up = false;
    return pid;
}

/* ---- Attach + detach ---------------------------------------------------------------- */

enum { M_ECHO, M_FD, M_RAW, M_LIB, M_COUNT };
static const char *const g_mode_names[M_COUNT] = {"socket_echo", "socket_fd_mmap", "daemon_raw",
                                                  "libmmsrv"};

/* The baseline server: answer attach and detach requests in turn, the
 * attach reply carrying memfd when >= 0, until the client closes. */
static void pair_server(int sock, int memfd, int cpu)
{
    if (cpu >= 0)
        bu_pin(cpu);
    char *buf = bu_xcalloc(MSG_CAP, 1);
    size_t la = g_sz.attach_reply, ld = g_sz.detach_reply;
    char *ra = make_reply(&la), *rd = make_reply(&ld);
    for (uint64_t i = 0;; i++) {
        if (recv_msg(sock, buf, MSG_CAP, NULL) == 0)
            _exit(0);
        bool attach = (i & 1u) == 0;
        if (!send_msg(sock, attach ? ra : rd, attach ? la : ld, attach ? memfd : -1))
            _exit(3);
    }
}

/* What a client of a descriptor does with it: map it as attach does, read
 * a byte of its first page, and undo that at detach. */
static void map_touch_unmap(int fd)
{
    if (fd < 0)
        fail("no descriptor with the attach reply");
    void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    volatile unsigned char byte = *(const volatile unsigned char *)p;
    (void)byte;
    if (munmap(p, REGION_SIZE) != 0)
        die("munmap");
    close(fd);
}

struct pair_env {
    struct mmsrv_client *lib; /* M_LIB */
    int raw;                  /* M_RAW: a raw connection to mmsrvd */
    char *buf;
};

/* One measurement: n pairs after the warm-up, samples[i] in us; the
 * server's CPU time per pair in *server_us. */
static void pair_measure(const struct cfg *cfg, struct pair_env *e, int mode, double *samples,
                         double *server_us)
{
    uint32_t total = cfg->warmup + cfg->pairs;
    int sv[2] = {-1, -1}, memfd = -1, sock;
    pid_t server;
    if (mode == M_ECHO || mode == M_FD) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            die("socketpair");
        if (mode == M_FD) {
            memfd = memfd_create("bench-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
            if (memfd < 0 || ftruncate(memfd, REGION_SIZE) != 0 ||
                fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
                die("memfd");
            /* the region's header exists before anyone attaches */
            if (pwrite(memfd, "mmsrv", 5, 0) != 5)
                die("pwrite");
        }
        server = fork_server();
        if (server == 0) {
            close(sv[0]);
            pair_server(sv[1], memfd, cfg->pin ? cfg->cpu_server : -1);
        }
        close(sv[1]);
        if (memfd >= 0)
            close(memfd);
        sock = sv[0];
        recv_timeout(sock);
    } else {
        server = g_d.pid;
        sock = e->raw;
    }

    uint64_t c0 = 0;
    for (uint32_t i = 0; i < total; i++) {
        if (i == cfg->warmup)
            c0 = cpu_ns_of(server);
        uint64_t t0 = bu_ticks();
        if (mode == M_LIB) {
            struct mmsrv_region *r;
            int rc = mmsrv_attach(e->lib, REGION_NAME, 0, &r);
            if (rc != 0)
                fail_call("mmsrv_attach", rc);
            rc = mmsrv_detach(e->lib, r);
            if (rc != 0)
                fail_call("mmsrv_detach", rc);
        } else {
            int fd = -1;
            if (!send_msg(sock, g_req_attach, g_sz.attach_req, -1) ||
                recv_msg(sock, e->buf, MSG_CAP, mode == M_ECHO ? NULL : &fd) == 0)
                fail("attach exchange");
            if (mode != M_ECHO)
                map_touch_unmap(fd);
            if (!send_msg(sock, g_req_detach, g_sz.detach_req, -1) ||
                recv_msg(sock, e->buf, MSG_CAP, NULL) == 0)
                fail("detach exchange");
        }
        uint64_t t1 = bu_ticks();
        if (i >= cfg->warmup)
            samples[i - cfg->warmup] = bu_ticks_to_ns((double)(t1 - t0)) / 1000.0;
    }
    uint64_t c1 = cpu_ns_of(server);
    *server_us = (double)(c1 - c0) / 1000.0 / (double)cfg->pairs;
    if (mode == M_RAW && strstr(e->buf, "\"error\"") != NULL) {
        fprintf(stderr, "bench_daemon: raw detach: %s\n", e->buf);
        fail("the daemon answered with an error");
    }
    if (mode == M_ECHO || mode == M_FD) {
        close(sock);
        int st;
        if (waitpid(server, &st, 0) != server || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("baseline server failed");
    }
}

static void workload_attach_detach(const struct cfg *cfg)
{
    fprintf(stderr, "bench_daemon: attach+detach\n");
    struct pair_env e = {.buf = bu_xcalloc(MSG_CAP, 1)};
    int rc = mmsrv_connect(g_d.address, &e.lib);
    if (rc != 0)
        fail_call("mmsrv_connect", rc);
    e.raw = td_connect(&g_d);
    if (e.raw < 0)
        die("connect");
    recv_timeout(e.raw);

    static double p50[M_COUNT][MAX_ROUNDS], p99[M_COUNT][MAX_ROUNDS], srv[M_COUNT][MAX_ROUNDS];
    double *samples = bu_xcalloc(cfg->pairs, sizeof *samples);
    for (unsigned r = 0; r < cfg->rounds; r++) {
        for (int k = 0; k < M_COUNT; k++) {
            int mode = (k + (int)r) % M_COUNT;
            pair_measure(cfg, &e, mode, samples, &srv[mode][r]);
            bu_sort(samples, cfg->pairs);
            p50[mode][r] = bu_quantile_sorted(samples, cfg->pairs, 0.50);
            p99[mode][r] = bu_quantile_sorted(samples, cfg->pairs, 0.99);
        }
        fprintf(stderr, "bench_daemon: attach+detach round %u/%u\n", r + 1, cfg->rounds);
    }
    free(samples);
    close(e.raw);
    mmsrv_disconnect(e.lib);
    free(e.buf);

    js_open("attach_detach");
    js_str("unit", "us per attach + detach round trip (two calls), client side");
    js_uint("pairs_per_round", cfg->pairs);
    js_uint("warmup_pairs", cfg->warmup);
    js_uint("region_size", REGION_SIZE);
    js_open("message_bytes_with_nul");
    js_uint("attach_request", g_sz.attach_req);
    js_uint("attach_reply", g_sz.attach_reply);
    js_uint("detach_request", g_sz.detach_req);
    js_uint("detach_reply", g_sz.detach_reply);
    js_close();
    js_open("modes");
    for (int m = 0; m < M_COUNT; m++) {
        js_open(g_mode_names[m]);
        js_summary("p50_us", p50[m], cfg->rounds, 2);
        js_summary("p99_us", p99[m], cfg->rounds, 2);
        js_summary("server_cpu_us_per_pair", srv[m], cfg->rounds, 2);
        js_num_array("rounds_p50_us", p50[m], cfg->rounds, 2);
        js_close();
        g_key.p50_us[m] = bu_summarize(p50[m], cfg->rounds).median;
        g_key.p99_us[m] = bu_summarize(p99[m], cfg->rounds).median;
    }
    js_close();
    js_open("ratios_of_median_p50");
    js_num("libmmsrv_over_socket_fd_mmap", g_key.p50_us[M_LIB] / g_key.p50_us[M_FD], 2);
    js_num("daemon_raw_over_socket_fd_mmap", g_key.p50_us[M_RAW] / g_key.p50_us[M_FD], 2);
    js_num("libmmsrv_over_daemon_raw", g_key.p50_us[M_LIB] / g_key.p50_us[M_RAW], 2);
    js_num("socket_fd_mmap_over_socket_echo", g_key.p50_us[M_FD] / g_key.p50_us[M_ECHO], 2);
    js_close();
    js_close();
}

/* ---- 64 concurrent clients ------------------------------------------------------------ */

enum { C_ECHO, C_LIB, C_COUNT };
static const char *const g_conc_names[C_COUNT] = {"socket_echo_epoll", "libmmsrv"};

struct worker {
    pthread_t thread;
    int mode;
    int sock;                 /* C_ECHO */
    struct mmsrv_client *lib; /* C_LIB */
    double *lat;              /* us, up to LAT_CAP */
    size_t nlat;
    uint64_t count, errors;
    uint64_t end_ns;
};

static pthread_barrier_t g_conc_ready, g_conc_go;
static uint64_t g_conc_deadline;
static const char *g_conc_address;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char *buf = bu_xcalloc(MSG_CAP, 1);
    if (w->mode == C_LIB && mmsrv_connect(g_conc_address, &w->lib) != 0)
        w->errors++;
    pthread_barrier_wait(&g_conc_ready);
    pthread_barrier_wait(&g_conc_go);
    uint64_t deadline = __atomic_load_n(&g_conc_deadline, __ATOMIC_ACQUIRE);
    while (w->lib != NULL || w->mode == C_ECHO) {
        uint64_t t0 = bu_ticks();
        bool ok;
        if (w->mode == C_LIB) {
            struct mmsrv_stats st;
            ok = mmsrv_stats(w->lib, REGION_NAME, &st) == 0;
        } else {
            ok = send_msg(w->sock, g_req_stats, g_sz.stats_req, -1) &&
                 recv_msg(w->sock, buf, MSG_CAP, NULL) == g_sz.stats_reply;
        }
        uint64_t t1 = bu_ticks();
        if (!ok) {
            w->errors++;
            break;
        }
        w->count++;
        if (w->nlat < LAT_CAP)
            w->lat[w->nlat++] = bu_ticks_to_ns((double)(t1 - t0)) / 1000.0;
        if (bu_now_ns() >= deadline)
            break;
    }
    w->end_ns = bu_now_ns();
    if (w->lib != NULL)
        mmsrv_disconnect(w->lib);
    w->lib = NULL;
    free(buf);
    return NULL;
}

/* The baseline: one process, epoll over the server ends, one reply of the
 * stats reply's size for each NUL received, until every client closed. */
static void echo_server(int *socks, unsigned n, int cpu)
{
    if (cpu >= 0)
        bu_pin(cpu);
    size_t len = g_sz.stats_reply;
    char *reply = make_reply(&len);
    char *buf = bu_xcalloc(MSG_CAP, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        _exit(2);
    for (unsigned i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = socks[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, socks[i], &ev) != 0)
            _exit(2);
    }
    unsigned open = n;
    while (open > 0) {
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            _exit(3);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            ssize_t got = recv(fd, buf, MSG_CAP, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                open--;
                continue;
            }
            for (ssize_t j = 0; j < got; j++)
                if (buf[j] == '\0' && !send_msg(fd, reply, len, -1))
                    _exit(4);
        }
    }
    _exit(0);
}

struct conc_result {
    double rps, p50, p99, server_us;
    uint64_t requests, errors, dropped;
};

static struct conc_result conc_measure(const struct cfg *cfg, int mode, struct worker *w,
                                       double *all)
{
    struct conc_result res = {0};
    pid_t server = g_d.pid;
    int socks[CONC_CLIENTS];
    if (mode == C_ECHO) {
        for (unsigned i = 0; i < CONC_CLIENTS; i++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
                die("socketpair");
            w[i].sock = sv[0];
            socks[i] = sv[1];
            recv_timeout(sv[0]);
        }
        server = fork_server();
        if (server == 0) {
            for (unsigned i = 0; i < CONC_CLIENTS; i++)
                close(w[i].sock);
            echo_server(socks, CONC_CLIENTS, cfg->pin ? cfg->cpu_server : -1);
        }
        for (unsigned i = 0; i < CONC_CLIENTS; i++)
            close(socks[i]);
    }
    pthread_barrier_init(&g_conc_ready, NULL, CONC_CLIENTS + 1);
    pthread_barrier_init(&g_conc_go, NULL, CONC_CLIENTS + 1);
    for (unsigned i = 0; i < CONC_CLIENTS; i++) {
        w[i].mode = mode;
        w[i].lib = NULL;
        w[i].nlat = 0;
        w[i].count = w[i].errors = 0;
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
            die("pthread_create");
    }
    pthread_barrier_wait(&g_conc_ready); /* every client connected */
    uint64_t c0 = cpu_ns_of(server);
    uint64_t t0 = bu_now_ns();
    __atomic_store_n(&g_conc_deadline, t0 + (uint64_t)(cfg->conc_seconds * 1e9), __ATOMIC_RELEASE);
    pthread_barrier_wait(&g_conc_go);
    uint64_t t1 = t0;
    size_t n = 0;
    for (unsigned i = 0; i < CONC_CLIENTS; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].end_ns > t1)
            t1 = w[i].end_ns;
        res.requests += w[i].count;
        res.errors += w[i].errors;
        res.dropped += w[i].count - w[i].nlat;
        memcpy(all + n, w[i].lat, w[i].nlat * sizeof *all);
        n += w[i].nlat;
    }
    uint64_t c1 = cpu_ns_of(server);
    pthread_barrier_destroy(&g_conc_ready);
    pthread_barrier_destroy(&g_conc_go);
    if (mode == C_ECHO) {
        for (unsigned i = 0; i < CONC_CLIENTS; i++)
            close(w[i].sock);
        int st;
        if (waitpid(server, &st, 0) != server || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("echo server failed");
    }
    bu_sort(all, n);
    res.rps = (double)res.requests * 1e9 / (double)(t1 - t0);
    res.p50 = bu_quantile_sorted(all, n, 0.50);
    res.p99 = bu_quantile_sorted(all, n, 0.99);
    res.server_us = res.requests > 0 ? (double)(c1 - c0) / 1000.0 / (double)res.requests : NAN;
    return res;
}

static void workload_concurrent(const struct cfg *cfg)
{
    fprintf(stderr, "bench_daemon: %u concurrent clients\n", CONC_CLIENTS);
    struct worker *w = bu_xcalloc(CONC_CLIENTS, sizeof *w);
    for (unsigned i = 0; i < CONC_CLIENTS; i++)
        w[i].lat = bu_xcalloc(LAT_CAP, sizeof(double));
    double *all = bu_xcalloc((size_t)CONC_CLIENTS * LAT_CAP, sizeof(double));
    g_conc_address = g_d.address;

    static double rps[C_COUNT][MAX_ROUNDS], p50[C_COUNT][MAX_ROUNDS], p99[C_COUNT][MAX_ROUNDS],
        srv[C_COUNT][MAX_ROUNDS];
    uint64_t requests[C_COUNT] = {0}, errors[C_COUNT] = {0}, dropped[C_COUNT] = {0};
    for (unsigned r = 0; r < cfg->rounds; r++) {
        for (int k = 0; k < C_COUNT; k++) {
            int mode = (k + (int)r) % C_COUNT;
            struct conc_result res = conc_measure(cfg, mode, w, all);
            rps[mode][r] = res.rps;
            p50[mode][r] = res.p50;
            p99[mode][r] = res.p99;
            srv[mode][r] = res.server_us;
            requests[mode] += res.requests;
            errors[mode] += res.errors;
            dropped[mode] += res.dropped;
        }
        fprintf(stderr, "bench_daemon: concurrent round %u/%u\n", r + 1, cfg->rounds);
    }
    for (unsigned i = 0; i < CONC_CLIENTS; i++)
        free(w[i].lat);
    free(w);
    free(all);

    js_open("concurrent_64");
    js_uint("clients", CONC_CLIENTS);
    js_str("call", "RegionStats of the heap region, in a loop, one connection per thread");
    js_num("seconds_per_run", cfg->conc_seconds, 2);
    js_open("message_bytes_with_nul");
    js_uint("request", g_sz.stats_req);
    js_uint("reply", g_sz.stats_reply);
    js_close();
    js_open("modes");
    for (int m = 0; m < C_COUNT; m++) {
        js_open(g_conc_names[m]);
        js_summary("requests_per_second", rps[m], cfg->rounds, 0);
        js_summary("p50_us", p50[m], cfg->rounds, 2);
        js_summary("p99_us", p99[m], cfg->rounds, 2);
        js_summary("server_cpu_us_per_request", srv[m], cfg->rounds, 2);
        js_uint("requests", requests[m]);
        js_uint("errors", errors[m]);
        js_uint("latency_samples_dropped", dropped[m]);
        js_close();
        g_key.rps[m] = bu_summarize(rps[m], cfg->rounds).median;
        g_key.conc_p50_us[m] = bu_summarize(p50[m], cfg->rounds).median;
        g_key.conc_p99_us[m] = bu_summarize(p99[m], cfg->rounds).median;
    }
    js_close();
    js_num("libmmsrv_over_echo_requests_per_second", g_key.rps[C_LIB] / g_key.rps[C_ECHO], 3);
    js_close();
    if (errors[C_LIB] != 0 || errors[C_ECHO] != 0)
        fail("errors among the concurrent clients");
}

/* ---- 1000 connected clients ------------------------------------------------------------- */

/* Whether the daemon holds at most *want descriptors (it dropped the closed
 * clients). */
static int fds_back(void *want)
{
    int n = td_count_fds(g_d.pid);
    return n >= 0 && n <= *(int *)want;
}

static void workload_many(const struct cfg *cfg, const struct mem *at_start)
{
    fprintf(stderr, "bench_daemon: %u connected clients\n", MANY_CLIENTS);
    struct mmsrv_client **c = bu_xcalloc(MANY_CLIENTS, sizeof *c);
    struct mmsrv_region **reg = bu_xcalloc(MANY_CLIENTS, sizeof *reg);
    double connected[MAX_ROUNDS], attached[MAX_ROUNDS], connect_ms[MAX_ROUNDS],
        attach_ms[MAX_ROUNDS];
    struct mem idle = mem_of(g_d.pid), m_conn = idle, m_att = idle, m_after = idle;
    g_key.rss_idle = idle.rss;
    uint64_t failures = 0;
    bool settled = true;
    for (unsigned r = 0; r < cfg->mem_rounds; r++) {
        uint64_t t0 = bu_now_ns();
        for (unsigned i = 0; i < MANY_CLIENTS; i++) {
            struct mmsrv_region_info *list = NULL;
            if (mmsrv_connect(g_d.address, &c[i]) != 0) {
                c[i] = NULL;
                failures++;
                continue;
            }
            int n = mmsrv_list(c[i], &list);
            failures += n < 1;
            free(list);
        }
        uint64_t t1 = bu_now_ns();
        m_conn = mem_of(g_d.pid);
        for (unsigned i = 0; i < MANY_CLIENTS; i++) {
            reg[i] = NULL;
            if (c[i] != NULL && mmsrv_attach(c[i], REGION_NAME, 0, &reg[i]) != 0)
                failures++;
        }
        uint64_t t2 = bu_now_ns();
        m_att = mem_of(g_d.pid);
        for (unsigned i = 0; i < MANY_CLIENTS; i++) {
            if (c[i] != NULL)
                mmsrv_disconnect(c[i]);
            c[i] = NULL;
        }
        int want = idle.fds;
        bool back = tu_wait_until(fds_back, &want, SETTLE_MS) != 0;
        settled = settled && back;
        m_after = mem_of(g_d.pid);
        connected[r] = (double)m_conn.rss;
        attached[r] = (double)m_att.rss;
        connect_ms[r] = (double)(t1 - t0) / 1e6;
        attach_ms[r] = (double)(t2 - t1) / 1e6;
        if (m_conn.rss > g_key.rss_connected_max)
            g_key.rss_connected_max = m_conn.rss;
        if (m_att.rss > g_key.rss_attached_max)
            g_key.rss_attached_max = m_att.rss;
        fprintf(stderr, "bench_daemon: clients pass %u/%u: rss %ld KiB connected, %ld attached\n",
                r + 1, cfg->mem_rounds, m_conn.rss, m_att.rss);
    }
    free(reg);
    free(c);
    g_key.many_failures = failures;
    g_key.many_settled = settled;

    js_open("clients_1000");
    js_uint("clients", MANY_CLIENTS);
    js_uint("passes", cfg->mem_rounds);
    js_str("what", "each pass: connect 1000 libmmsrv clients one after another, each calls "
                   "ListRegions and stays connected (connected); then each attaches the heap "
                   "region (attached); then all disconnect, and the daemon's descriptor count "
                   "is awaited back at idle (after_disconnect).  Memory of the last pass.");
    js_mem("daemon_at_start", at_start);
    js_mem("idle", &idle);
    js_mem("connected", &m_conn);
    js_mem("attached", &m_att);
    js_mem("after_disconnect", &m_after);
    js_summary("connected_vmrss_kib", connected, cfg->mem_rounds, 0);
    js_summary("attached_vmrss_kib", attached, cfg->mem_rounds, 0);
    js_num("connected_kib_per_client", (double)(m_conn.rss - idle.rss) / MANY_CLIENTS, 2);
    js_num("attached_kib_per_client", (double)(m_att.rss - idle.rss) / MANY_CLIENTS, 2);
    js_summary("connect_and_call_ms_for_all", connect_ms, cfg->mem_rounds, 1);
    js_summary("attach_ms_for_all", attach_ms, cfg->mem_rounds, 1);
    js_uint("failures", failures);
    js_bool("fds_back_to_idle_after_disconnect", settled);
    js_close();
}

/* ---- Setup ---------------------------------------------------------------------------- */

/* The daemon's reply sizes, by one raw call of each kind (and checks that
 * the region is there and attachable). */
static void measure_sizes(void)
{
    int before = td_count_fds(g_d.pid);
    int sock = td_connect(&g_d);
    if (sock < 0)
        die("connect");
    recv_timeout(sock);
    char *buf = bu_xcalloc(MSG_CAP, 1);
    int fd;
    g_sz.attach_req = sizeof g_req_attach;
    g_sz.detach_req = sizeof g_req_detach;
    g_sz.stats_req = sizeof g_req_stats;
    g_sz.attach_reply = daemon_call(sock, g_req_attach, buf, &fd, "raw Attach");
    map_touch_unmap(fd);
    g_sz.detach_reply = daemon_call(sock, g_req_detach, buf, NULL, "raw Detach");
    g_sz.stats_reply = daemon_call(sock, g_req_stats, buf, NULL, "raw RegionStats");
    free(buf);
    close(sock);
    /* idle is measured later: the daemon has dropped this connection */
    if (tu_wait_until(fds_back, &before, SETTLE_MS) == 0)
        fail("the daemon kept the descriptors of a closed connection");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if (rl.rlim_cur >= NOFILE_WANTED)
        return;
    if (rl.rlim_max < NOFILE_WANTED) {
        struct rlimit more = {NOFILE_WANTED, NOFILE_WANTED};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max < NOFILE_WANTED ? rl.rlim_max : NOFILE_WANTED;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit");
}

static void emit_floors(void)
{
    js_open("floors");
    js_str("source", "issue 5; medians over rounds, measured in this run");
    double p50 = g_key.p50_us[M_LIB];
    js_num("attach_detach_p50_us", p50, 2);
    bool ok_lat = p50 < FLOOR_P50_US;
    js_bool("attach_detach_p50_under_100us", ok_lat);
    js_num("attach_detach_p50_over_socket_fd_mmap", p50 / g_key.p50_us[M_FD], 2);
    js_int("rss_1000_connected_kib_max", g_key.rss_connected_max);
    js_int("rss_1000_attached_kib_max", g_key.rss_attached_max);
    js_uint("clients_1000_failures", g_key.many_failures);
    bool ok_rss = g_key.rss_connected_max >= 0 && g_key.rss_connected_max < (long)FLOOR_RSS_KIB &&
                  g_key.many_failures == 0;
    js_bool("clients_1000_served_rss_under_16MiB", ok_rss);
    js_bool("clients_1000_attached_rss_under_16MiB",
            g_key.rss_attached_max >= 0 && g_key.rss_attached_max < (long)FLOOR_RSS_KIB &&
                g_key.many_failures == 0);
    js_bool("daemon_fds_back_after_disconnect", g_key.many_settled);
    js_bool("all", ok_lat && ok_rss);
    js_close();
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_daemon [--quick] [--rounds N] [--two-cpus | --no-pin]\n"
            "  Starts its own mmsrvd ($MMSRVD, else %s) and prints one\n"
            "  JSON document on stdout: attach+detach beside socket baselines, %u\n"
            "  concurrent clients beside an epoll echo server, and the daemon's memory\n"
            "  with %u clients connected; and the floors of issue 5.\n"
            "  --quick     smoke run, a few seconds\n"
            "  --rounds N  rounds per measurement (1..%d; default 5, quick 2)\n"
            "  (default: client side and server pinned to one CPU, each hop a context\n"
            "  switch)\n"
            "  --two-cpus  pin the client side and the server to two CPUs: each hop\n"
            "              wakes the other CPU (costly on virtual machines)\n"
            "  --no-pin    leave placement to the scheduler\n",
            MMSRVD_PATH, CONC_CLIENTS, MANY_CLIENTS, MAX_ROUNDS);
}

int main(int argc, char **argv)
{
    struct cfg cfg = {.pin = true, .same_cpu = true};
    struct bu_opts opts = {false, 0};
    for (int i = 1; i < argc; i++) {
        enum bu_opt_result r = bu_opt(argc, argv, &i, MAX_ROUNDS, &opts);
        if (r == BU_OPT_OTHER) {
            if (strcmp(argv[i], "--no-pin") == 0) {
                cfg.pin = false;
                cfg.same_cpu = false;
            } else if (strcmp(argv[i], "--two-cpus") == 0)
                cfg.same_cpu = false;
            else
                r = BU_OPT_BAD;
        }
        if (r == BU_OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (r == BU_OPT_BAD) {
            usage(stderr);
            return 2;
        }
    }
    cfg.quick = opts.quick;
    cfg.rounds = opts.rounds != 0 ? opts.rounds : cfg.quick ? 2u : 5u;
    cfg.pairs = cfg.quick ? 500u : 5000u;
    cfg.warmup = cfg.pairs / 10u;
    cfg.conc_seconds = cfg.quick ? 0.3 : 2.0;
    cfg.mem_rounds = cfg.rounds < 3u ? cfg.rounds : 3u;

    int cpus[2];
    int ncpu = bu_cpus(cpus, 2);
    cfg.cpu_client = ncpu > 0 ? cpus[0] : -1;
    cfg.cpu_server = ncpu > 1 && !cfg.same_cpu ? cpus[1] : cfg.cpu_client;
    if (ncpu < 2 && !cfg.same_cpu)
        cfg.pin = false;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(); /* before the daemon starts: it inherits the limit */
    if (getenv("MMSRVD") == NULL)
        setenv("MMSRVD", MMSRVD_PATH, 1);
    bu_warn_unoptimized();
    double load[1];
    if (getloadavg(load, 1) == 1 && load[0] > 1.0)
        fprintf(stderr, "bench_daemon: warning: load average %.2f; timings will be noisy\n",
                load[0]);
    bu_calibrate(cfg.quick ? 20u : 100u);

    if (td_start(&g_d, NULL, NULL) != 0)
        fail("mmsrvd did not start");
    g_daemon_up = true;
    struct mem at_start = mem_of(g_d.pid);
    bool daemon_pinned = false;
    if (cfg.pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((size_t)cfg.cpu_server, &set);
        daemon_pinned = sched_setaffinity(g_d.pid, sizeof set, &set) == 0;
        bu_pin(cfg.cpu_client); /* threads created later inherit it */
    }

    struct mmsrv_client *ctl;
    int rc = mmsrv_connect(g_d.address, &ctl);
    if (rc != 0)
        fail_call("mmsrv_connect", rc);
    struct mmsrv_region_spec spec = {.name = REGION_NAME,
                                     .kind = MMSRV_HEAP,
                                     .size = REGION_SIZE,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    struct mmsrv_region_info info;
    rc = mmsrv_create(ctl, &spec, &info);
    if (rc != 0)
        fail_call("mmsrv_create", rc);
    if (info.size != REGION_SIZE)
        fail("the region is not of the size asked for");
    measure_sizes();

    uint64_t t0 = bu_now_ns();
    js_open(NULL);
    js_str("benchmark", "bench_daemon");
    js_uint("rounds", cfg.rounds);
    js_bool("quick", cfg.quick);
    js_str("statistic", "median over rounds (min, max beside); modes alternate within rounds");
    js_open("build");
    bu_emit_build_fields();
    js_close();
    bu_emit_machine();
    js_open("cpus");
    js_bool("pinned", cfg.pin);
    js_bool("same_cpu", cfg.same_cpu);
    js_int("client", cfg.cpu_client);
    js_int("server", cfg.cpu_server);
    js_bool("daemon_pinned", daemon_pinned);
    js_close();
    js_open("daemon");
    js_str("binary", getenv("MMSRVD"));
    js_str("configuration", "the harness default (64 MiB segment)");
    js_str("region", REGION_NAME);
    js_str("region_kind", "heap");
    js_uint("region_size", REGION_SIZE);
    js_int("nofile_limit", nofile_limit_of(g_d.pid));
    js_str("nofile_limit_note", "inherited from this benchmark, which raised its own");
    js_close();

    js_open("workloads");
    workload_many(&cfg, &at_start);
    workload_attach_detach(&cfg);
    workload_concurrent(&cfg);
    js_close();

    struct mmsrv_stats st;
    rc = mmsrv_stats(ctl, REGION_NAME, &st);
    if (rc != 0)
        fail_call("mmsrv_stats", rc);
    js_open("daemon_at_end");
    struct mem end = mem_of(g_d.pid);
    js_mem("memory", &end);
    js_uint("region_attached_clients", st.nattached);
    js_str("heap_state", st.heap_state);
    js_int("log_lines", log_lines(&g_d));
    double end_load[1];
    if (getloadavg(end_load, 1) == 1)
        js_num("machine_loadavg_1min", end_load[0], 2);
    js_close();
    emit_floors();
    js_num("run_seconds", (double)(bu_now_ns() - t0) / 1e9, 1);
    js_close();

    rc = mmsrv_destroy(ctl, REGION_NAME);
    mmsrv_disconnect(ctl);
    int status = td_stop(&g_d);
    g_daemon_up = false;
    td_cleanup(&g_d);
    if (rc != 0)
        fprintf(stderr, "bench_daemon: destroying the region: %s\n", strerror(-rc));
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "bench_daemon: mmsrvd did not stop cleanly (status %#x)\n",
                (unsigned)status);
    if (fflush(stdout) != 0) {
        perror("bench_daemon: stdout");
        return 1;
    }
    return 0;
}
