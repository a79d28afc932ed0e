/*
 * test_fault.c - mmsrvd when its own system calls fail.
 *
 * The daemon under test is mmsrvd-fault: the real daemon linked with
 * fault_shim.c, which fails one chosen libc call on one path of the daemon
 * when this program arms it through a shared control block (fault_ctl.h).
 * For each fault: the caller gets a named error (ResourceUnavailable, saying
 * what ran short: descriptors, memory or the system, and the system's words
 * for it), nothing is half made (ListRegions), the pages and the
 * descriptors the failed call took come back (a region as big as the
 * largest free run still fits; the daemon's descriptor count returns to its
 * baseline), other clients go on, the same call succeeds once the fault is
 * cleared, and the daemon still exits cleanly on SIGTERM.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_ctl.h"
#include "itest.h"
#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "proto.h"
#include "region.h"
#include "test_util.h"

#define NO_SPACE    "io.mmsrvd.NoSpace"
#define UNAVAILABLE "io.mmsrvd.ResourceUnavailable"
/* A small segment, so that a heap as big as its largest free run is
 * within what a heap may hold. */
#define CONFIG    "{ \"segment_size\": 4194304 }\n"
#define SEG_BYTES 4194304ll
#define REG_BYTES 65536ll

static struct fault_ctl *g_fault;
static char g_fault_path[64];
static struct td_daemon g_d;
static int g_base_fds;
static long long g_base_free;

/* ---- The control block ------------------------------------------------ */

static int fault_setup(void)
{
    snprintf(g_fault_path, sizeof g_fault_path, "/tmp/mmsrv-fault-XXXXXX");
    int fd = mkstemp(g_fault_path);
    if (fd < 0 || ftruncate(fd, sizeof(struct fault_ctl)) != 0)
        return -1;
    void *m = mmap(NULL, sizeof(struct fault_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    g_fault = m;
    g_fault->magic = FAULT_CTL_MAGIC;
    return setenv("MMSRV_FAULT_CTL", g_fault_path, 1);
}

/* Let skip matching calls through, then fail `fail` of them with err. */
static void fault_arm(enum fault_call call, int skip, int fail, int err)
{
    atomic_store(&g_fault->call, FAULT_NONE);
    atomic_store(&g_fault->skip, skip);
    atomic_store(&g_fault->fail, fail);
    atomic_store(&g_fault->err, err);
    atomic_store(&g_fault->injected, 0);
    atomic_store(&g_fault->call, (int)call);
}

static void fault_clear(void)
{
    atomic_store(&g_fault->fail, 0);
    atomic_store(&g_fault->call, FAULT_NONE);
}

static int fault_injected(void)
{
    return atomic_load(&g_fault->injected);
}

/* ---- Calls -------------------------------------------------------------- */

static int connect_or_fail(void)
{
    int fd = td_connect(&g_d);
    CU_ASSERT_FATAL(fd >= 0);
    return fd;
}

/* The reply must be a result. */
static void expect_result(json_t *reply)
{
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
}

/* The reply must be ResourceUnavailable for a system call that failed with
 * err: what ran short, and the system's words for err. */
static void expect_unavailable(json_t *reply, int err)
{
    const char *resource = err == EMFILE || err == ENFILE ? "descriptors"
                           : err == ENOMEM                ? "memory"
                                                          : "system";
    CU_ASSERT(it_is_error(reply, UNAVAILABLE, "resource", resource));
    CU_ASSERT(it_is_error(reply, UNAVAILABLE, "reason", strerror(err)));
    json_decref(reply);
}

static json_t *create_heap(int fd, const char *name, long long size)
{
    char call[256];
    snprintf(call, sizeof call,
             "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"%s\","
             "\"kind\":\"heap\",\"size\":%lld}}",
             name, size);
    return it_call(fd, call);
}

static void destroy(int fd, const char *name)
{
    char call[160];
    snprintf(call, sizeof call,
             "{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":{\"name\":\"%s\"}}", name);
    expect_result(it_call(fd, call));
}

/* Attach name over fd; the reply, with the descriptor that came in *rfd
 * (-1: none). */
static json_t *attach(int fd, const char *name, bool writable, int *rfd)
{
    char call[200];
    snprintf(call, sizeof call,
             "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"%s\",\"writable\":%s}}",
             name, writable ? "true" : "false");
    int fds[TD_MAX_RECV_FDS];
    size_t nfds = 0;
    char *text = td_call_fds(fd, call, IT_CALL_MS, fds, TD_MAX_RECV_FDS, &nfds);
    for (size_t i = 1; i < nfds; i++)
        close(fds[i]);
    *rfd = nfds > 0 ? fds[0] : -1;
    json_t *reply = it_parse(text);
    free(text);
    return reply;
}

/* Attach, which must succeed: the descriptor that came. */
static int attach_ok(int fd, const char *name, bool writable)
{
    int rfd;
    expect_result(attach(fd, name, writable, &rfd));
    CU_ASSERT(rfd >= 0);
    return rfd;
}

/* The regions ListRegions shows (a new reference). */
static json_t *list_regions(void)
{
    int fd = connect_or_fail();
    json_t *reply = it_call(fd, "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{}}");
    close(fd);
    CU_ASSERT(it_is_result(reply));
    json_t *list = json_incref(it_param(reply, "regions"));
    json_decref(reply);
    return list != NULL ? list : json_array();
}

/* The largest free run of the segment, as a too-big create reports it. */
static long long largest_free(void)
{
    int fd = connect_or_fail();
    json_t *reply = create_heap(fd, "probe", SEG_BYTES * 2);
    close(fd);
    CU_ASSERT(it_is_error(reply, NO_SPACE, NULL, NULL));
    long long avail = it_int_at(reply, "parameters.available", -1);
    json_decref(reply);
    return avail;
}

/* Its clients count, or -1 if ListRegions does not show it. */
static long long region_clients(const char *name)
{
    json_t *list = list_regions();
    long long clients = -1;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "name")), name) == 0)
            clients = json_integer_value(json_object_get(r, "clients"));
    }
    json_decref(list);
    return clients;
}

struct clients_arg {
    const char *name;
    long long n;
};

static int clients_are(void *arg)
{
    const struct clients_arg *a = arg;
    return region_clients(a->name) == a->n;
}

/* Wait (bounded) until name has n clients. */
static bool wait_clients(const char *name, long long n)
{
    struct clients_arg a = {name, n};
    return tu_wait_until(clients_are, &a, IT_WAIT_MS) != 0;
}

/* Close fd, the last connection attached to name; once the daemon has seen
 * it go, destroy name over a new connection. */
static void close_and_destroy(int fd, const char *name)
{
    close(fd);
    CU_ASSERT(wait_clients(name, 0));
    fd = connect_or_fail();
    destroy(fd, name);
    close(fd);
}

/* ---- The daemon ------------------------------------------------------ */

static void begin(void)
{
    fault_clear();
    IT_START(&g_d, CONFIG);
    CU_ASSERT_FATAL(it_served(&g_d));
    g_base_free = largest_free();
    CU_ASSERT_FATAL(g_base_free > REG_BYTES);
    g_base_fds = it_settled_fds(g_d.pid);
    CU_ASSERT_FATAL(g_base_fds > 0);
}

/* What the daemon has open, on stderr (for a failing leak check). */
static void print_fds(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[sizeof dir + sizeof e->d_name], target[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            fprintf(stderr, "      %s -> %s\n", e->d_name, target);
        }
    }
    if (d != NULL)
        closedir(d);
}

/* The daemon serves and has at most `most` descriptors open (waited for). */
static void check_fds(int most, const char *after)
{
    CU_ASSERT(it_served(&g_d));
    int n = td_wait_fd_count(g_d.pid, most, IT_WAIT_MS);
    if (n > most) {
        fprintf(stderr, "\n    after %s: the daemon has %d descriptors open, %d expected:\n", after,
                n, most);
        print_fds(g_d.pid);
    }
    CU_ASSERT(n >= 0 && n <= most);
}

/* begin, then a heap region name made over a connection (returned);
 * *base: the daemon's descriptors with both. */
static int begin_with_region(const char *name, int *base)
{
    begin();
    int fd = connect_or_fail();
    expect_result(create_heap(fd, name, REG_BYTES));
    *base = it_settled_fds(g_d.pid);
    return fd;
}

static void end(void)
{
    fault_clear();
    check_fds(g_base_fds, "the test");
    it_stop(&g_d);
}

/* ---- CreateRegion -------------------------------------------------------- */

/*
 * Fail the create's call with err: a ResourceUnavailable reply naming what
 * ran short, no region listed, every page back (a heap as big as the largest free
 * run before still fits), every descriptor back; then the same create
 * succeeds.
 */
static void create_fails_cleanly(enum fault_call call, int err)
{
    begin();
    int fd = connect_or_fail();
    int base = it_settled_fds(g_d.pid); /* with this connection */
    fault_arm(call, 0, 1, err);
    expect_unavailable(create_heap(fd, "victim", REG_BYTES), err);
    CU_ASSERT_EQUAL(fault_injected(), 1);
    fault_clear();

    json_t *list = list_regions();
    CU_ASSERT_EQUAL(json_array_size(list), 0);
    json_decref(list);
    CU_ASSERT_EQUAL(largest_free(), g_base_free);
    check_fds(base, "the failed create");

    expect_result(create_heap(fd, "victim", REG_BYTES));
    destroy(fd, "victim");
    expect_result(create_heap(fd, "whole", g_base_free));
    destroy(fd, "whole");
    close(fd);
    end();
}

static void test_create_memfd_emfile_replies_unavailable_and_leaks_nothing(void)
{
    create_fails_cleanly(FAULT_MEMFD_CREATE, EMFILE);
}

static void test_create_ftruncate_enomem_replies_unavailable_and_leaks_nothing(void)
{
    create_fails_cleanly(FAULT_FTRUNCATE, ENOMEM);
}

static void test_create_add_seals_ebusy_replies_unavailable_and_leaks_nothing(void)
{
    create_fails_cleanly(FAULT_ADD_SEALS, EBUSY);
}

static void test_create_mmap_enomem_replies_unavailable_and_leaks_nothing(void)
{
    create_fails_cleanly(FAULT_MAP_REGION, ENOMEM);
}

/*
 * A create that fails after another one succeeded (the fault armed for the
 * second mapping) leaves the first region and its data as they were.
 */
static void test_failed_create_keeps_existing_region_and_data(void)
{
    begin();
    int fd = connect_or_fail();
    fault_arm(FAULT_MAP_REGION, 1, 1, ENOMEM);
    expect_result(create_heap(fd, "keep", REG_BYTES));
    int rfd = attach_ok(fd, "keep", true);
    CU_ASSERT_FATAL(rfd >= 0);
    uint8_t *mem = mmap(NULL, (size_t)REG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
    CU_ASSERT_FATAL(mem != MAP_FAILED);
    /* past the region header and the allocator's: bytes a client owns */
    size_t data_off = (size_t)REG_BYTES / 2, data_len = (size_t)REG_BYTES / 4;
    tu_pattern_fill(mem + data_off, data_len, 42);

    expect_unavailable(create_heap(fd, "victim", REG_BYTES), ENOMEM);
    CU_ASSERT_EQUAL(fault_injected(), 1);
    fault_clear();

    CU_ASSERT_EQUAL(tu_pattern_check(mem + data_off, data_len, 42), data_len);
    CU_ASSERT_EQUAL(region_clients("keep"), 1);
    CU_ASSERT_EQUAL(region_clients("victim"), -1);
    json_t *stats = it_region_stats(&g_d, "keep");
    const char *state = json_string_value(json_object_get(it_param(stats, "heap"), "state"));
    CU_ASSERT(state != NULL && strcmp(state, "ok") == 0);
    json_decref(stats);
    munmap(mem, (size_t)REG_BYTES);
    close(rfd);
    destroy(fd, "keep");
    close(fd);
    end();
}

/* ---- Attach read-only ---------------------------------------------------- */

/*
 * The read-only grant's reopen through /proc fails: ResourceUnavailable
 * (descriptors), no descriptor sent, no attachment counted, nothing leaked;
 * the next read-only attach gets a descriptor that really is read-only.
 */
static void test_attach_readonly_reopen_failure_replies_unavailable_and_leaks_nothing(void)
{
    int base;
    int fd = begin_with_region("ro", &base);

    fault_arm(FAULT_OPEN_PROC_FD, 0, 1, EMFILE);
    int rfd;
    expect_unavailable(attach(fd, "ro", false, &rfd), EMFILE);
    CU_ASSERT_EQUAL(rfd, -1);
    CU_ASSERT_EQUAL(fault_injected(), 1);
    fault_clear();
    CU_ASSERT_EQUAL(region_clients("ro"), 0);
    check_fds(base, "the failed attach");

    rfd = attach_ok(fd, "ro", false);
    CU_ASSERT_FATAL(rfd >= 0);
    CU_ASSERT_EQUAL(fcntl(rfd, F_GETFL) & O_ACCMODE, O_RDONLY);
    void *m = mmap(NULL, (size_t)REG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
    CU_ASSERT(m == MAP_FAILED);
    m = mmap(NULL, (size_t)REG_BYTES, PROT_READ, MAP_SHARED, rfd, 0);
    CU_ASSERT_FATAL(m != MAP_FAILED);
    CU_ASSERT_EQUAL(((const struct region_header *)m)->magic, REGION_MAGIC);
    munmap(m, (size_t)REG_BYTES);
    close(rfd);
    CU_ASSERT_EQUAL(region_clients("ro"), 1);
    close_and_destroy(fd, "ro");
    end();
}

/* ---- Replies ------------------------------------------------------------ */

/*
 * The socket takes nothing once (EAGAIN): the reply is queued, with a copy
 * of its descriptor, and arrives; nothing is left behind.
 */
static void test_reply_write_eagain_is_queued_and_arrives_with_its_descriptor(void)
{
    int base;
    int fd = begin_with_region("q", &base);

    fault_arm(FAULT_SENDMSG, 0, 1, EAGAIN);
    int rfd = attach_ok(fd, "q", true);
    CU_ASSERT_EQUAL(fault_injected(), 1);
    CU_ASSERT_FATAL(rfd >= 0);
    struct stat st;
    CU_ASSERT(fstat(rfd, &st) == 0 && st.st_size == REG_BYTES);
    close(rfd);
    check_fds(base, "the queued reply");

    close_and_destroy(fd, "q");
    end();
}

/* One write fails with ENOBUFS: the reply stays queued, the next write
 * sends it, and the connection goes on. */
static void test_reply_write_error_once_is_retried_and_arrives(void)
{
    begin();
    int fd = connect_or_fail();
    fault_arm(FAULT_SENDMSG, 0, 1, ENOBUFS);
    expect_result(create_heap(fd, "r", REG_BYTES));
    CU_ASSERT_EQUAL(fault_injected(), 1);
    expect_result(it_call(fd, "{\"method\":\"org.varlink.service.GetInfo\"}"));
    destroy(fd, "r");
    close(fd);
    end();
}

/*
 * Writes to one connection keep failing (EPIPE): that connection is
 * dropped with its attachment and the descriptor its reply carried; another
 * connected client, attached to the same region, goes on as before.
 */
static void test_reply_write_failing_drops_only_that_connection(void)
{
    begin();
    int other = connect_or_fail();
    expect_result(create_heap(other, "shared", REG_BYTES));
    close(attach_ok(other, "shared", true));

    int victim = connect_or_fail();
    expect_result(it_call(victim, "{\"method\":\"org.varlink.service.GetInfo\"}"));
    int base = it_settled_fds(g_d.pid); /* with the victim's connection */

    fault_arm(FAULT_SENDMSG, 0, 1 << 30, EPIPE);
    static const char call[] =
        "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"shared\"}}";
    CU_ASSERT_EQUAL(td_send(victim, call, sizeof call), 0);
    CU_ASSERT(td_wait_closed(victim, IT_CALL_MS));
    CU_ASSERT(fault_injected() >= 1);
    fault_clear();
    close(victim);
    check_fds(base - 1, "the dropped connection");
    CU_ASSERT(wait_clients("shared", 1));

    expect_result(it_call(other, "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{}}"));
    close(attach_ok(other, "shared", true));
    close_and_destroy(other, "shared");
    end();
}

/* ---- Accepting ---------------------------------------------------------- */

/* The process's user and system CPU time, in clock ticks, or -1. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* after the command's closing parenthesis: state is field 3; utime
     * and stime are fields 14 and 15 */
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

static int accept_failed(void *arg)
{
    (void)arg;
    return fault_injected() > 0;
}

/*
 * accept4 keeps failing with err while a connection waits: the daemon backs
 * off instead of spinning (over one second it uses under a fifth of a CPU
 * and tries a handful of times, not thousands), a client already connected
 * is served meanwhile, and once the fault clears the waiting connection is
 * accepted and answered.
 */
static void accept_fails_without_spinning(int err)
{
    begin();
    int other = connect_or_fail();
    expect_result(it_call(other, "{\"method\":\"org.varlink.service.GetInfo\"}"));

    fault_arm(FAULT_ACCEPT4, 0, 1 << 30, err);
    int late = connect_or_fail(); /* waits in the listening socket's backlog */
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
    CU_ASSERT_EQUAL(td_send(late, call, sizeof call), 0);
    CU_ASSERT_FATAL(tu_wait_until(accept_failed, NULL, IT_WAIT_MS));

    long long hz = sysconf(_SC_CLK_TCK);
    long long t0 = cpu_ticks(g_d.pid);
    int n0 = fault_injected();
    uint64_t start = tu_now_ms();
    struct timespec second = {1, 0};
    nanosleep(&second, NULL); /* a measurement window, not a wait for a condition */
    long long used = cpu_ticks(g_d.pid) - t0;
    int tries = fault_injected() - n0;
    uint64_t ms = tu_now_ms() - start;
    if (used * 5 > hz || tries > 10)
        fprintf(stderr, "\n    accept failing with %s: %lld ticks of CPU, %d tries in %llu ms\n",
                strerror(err), used, tries, (unsigned long long)ms);
    CU_ASSERT(t0 >= 0 && used >= 0 && used * 5 <= hz);
    CU_ASSERT(tries <= 10);

    expect_result(it_call(other, "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{}}"));

    fault_clear();
    char *text = td_recv(late, IT_CALL_MS, NULL);
    expect_result(it_parse(text));
    free(text);
    close(late);
    close(other);
    end();
}

static void test_accept_emfile_backs_off_and_accepts_after(void)
{
    accept_fails_without_spinning(EMFILE);
}

static void test_accept_enfile_backs_off_and_accepts_after(void)
{
    accept_fails_without_spinning(ENFILE);
}

/* An error accept4 is not expected to return (EPROTO): no spin either. */
static void test_accept_unexpected_error_backs_off_and_accepts_after(void)
{
    accept_fails_without_spinning(EPROTO);
}

/* ---- A client killed under a fault -------------------------------------- */

#define POOL_COUNT 64
#define POOL_HELD  5

/* Attach the pool, hold POOL_HELD buffers, say so, wait to be killed. */
static int victim_main(void *arg, int rd, int wr)
{
    (void)arg;
    struct mmsrv_client *c = NULL;
    struct mmsrv_region *r = NULL;
    IT_CHECK(mmsrv_connect(g_d.address, &c) == 0);
    if (c == NULL)
        return 1;
    IT_CHECK(mmsrv_attach(c, "pool", 0, &r) == 0);
    if (r == NULL || r->pool == NULL)
        return 1;
    for (int i = 0; i < POOL_HELD; i++)
        IT_CHECK(iob_alloc(r->pool, false) != NULL);
    IT_CHECK(it_put(wr, 1) == 0);
    uint64_t v;
    it_get(rd, &v, 3 * IT_WAIT_MS);
    return 0;
}

static int pool_free_is(void *arg)
{
    json_t *stats = it_region_stats(&g_d, "pool");
    long long n = it_int_at(stats, "parameters.pool.free", -1);
    json_decref(stats);
    return n == *(const long long *)arg;
}

/*
 * A client holding IOBs is SIGKILLed while every CreateRegion fails
 * (memfd_create): its buffers and its attachment are reclaimed all the
 * same, and creates work again once the fault clears.
 */
static void test_killed_client_is_reclaimed_while_creates_fail(void)
{
    begin();
    int fd = connect_or_fail();
    json_t *reply =
        it_call(fd, "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{"
                    "\"name\":\"pool\",\"kind\":\"iob\",\"bufsize\":256,\"count\":64}}");
    CU_ASSERT_FATAL(it_is_result(reply));
    json_decref(reply);

    struct it_child child;
    CU_ASSERT_FATAL(it_spawn(&child, victim_main, NULL) == 0);
    uint64_t v;
    CU_ASSERT_FATAL(it_get(child.from, &v, IT_WAIT_MS) == 0);
    long long held = POOL_COUNT - POOL_HELD, all = POOL_COUNT;
    CU_ASSERT(pool_free_is(&held));

    fault_arm(FAULT_MEMFD_CREATE, 0, 1 << 30, ENOMEM);
    expect_unavailable(create_heap(fd, "blocked", REG_BYTES), ENOMEM);
    kill(child.pid, SIGKILL);
    int status = it_finish(&child, IT_WAIT_MS);
    CU_ASSERT(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CU_ASSERT(tu_wait_until(pool_free_is, &all, IT_WAIT_MS));
    CU_ASSERT(wait_clients("pool", 0));
    expect_unavailable(create_heap(fd, "blocked", REG_BYTES), ENOMEM);
    CU_ASSERT_EQUAL(fault_injected(), 2);

    fault_clear();
    expect_result(create_heap(fd, "blocked", REG_BYTES));
    destroy(fd, "blocked");
    destroy(fd, "pool");
    close(fd);
    end();
}

int main(void)
{
    if (fault_setup() != 0) {
        perror("test_fault: cannot make the fault control block");
        return 1;
    }
    static const struct tu_test tests[] = {
        TU_TEST(test_create_memfd_emfile_replies_unavailable_and_leaks_nothing),
        TU_TEST(test_create_ftruncate_enomem_replies_unavailable_and_leaks_nothing),
        TU_TEST(test_create_add_seals_ebusy_replies_unavailable_and_leaks_nothing),
        TU_TEST(test_create_mmap_enomem_replies_unavailable_and_leaks_nothing),
        TU_TEST(test_failed_create_keeps_existing_region_and_data),
        TU_TEST(test_attach_readonly_reopen_failure_replies_unavailable_and_leaks_nothing),
        TU_TEST(test_reply_write_eagain_is_queued_and_arrives_with_its_descriptor),
        TU_TEST(test_reply_write_error_once_is_retried_and_arrives),
        TU_TEST(test_reply_write_failing_drops_only_that_connection),
        TU_TEST(test_accept_emfile_backs_off_and_accepts_after),
        TU_TEST(test_accept_enfile_backs_off_and_accepts_after),
        TU_TEST(test_accept_unexpected_error_backs_off_and_accepts_after),
        TU_TEST(test_killed_client_is_reclaimed_while_creates_fail),
        TU_END,
    };
    int rc = tu_main("fault", tests);
    unlink(g_fault_path);
    return rc;
}
