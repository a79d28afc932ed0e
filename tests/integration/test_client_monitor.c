/*
 * test_client_monitor.c - libmmsrv's monitor stream (mmsrv_monitor_start,
 * mmsrv_monitor_next) against a real mmsrvd: the events of another
 * client's calls in order, a SIGKILLed client's attach and reclaim,
 * timeouts that leave the stream usable, -EBUSY for every other call on a
 * monitor connection, -ECONNRESET when the daemon stops, -EINVAL for bad
 * arguments.  Then against a peer that sends what no mmsrvd sends on
 * purpose (an event in two pieces, an unknown kind, a descriptor, a bad
 * event, an error, a last reply): the forms the library must survive.
 *
 * A monitor is known to be in place once it has read the "created" event
 * the daemon sends for a region made before it started: what happens after
 * that comes after in its stream.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "itest.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

static struct td_daemon g_d;

static int create_heap(struct mmsrv_client *c, const char *name)
{
    struct mmsrv_region_spec s = {
        .name = name, .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    return mmsrv_create(c, &s, NULL);
}

/* Read events until one names region, waiting at most timeout_ms in all:
 * mmsrv_monitor_next's result (0 with *ev). */
static int next_for(struct mmsrv_client *m, const char *region, struct mmsrv_event *ev,
                    int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = tu_now_ms();
        int rc = mmsrv_monitor_next(m, ev, now < deadline ? (int)(deadline - now) : 0);
        if (rc != 0 || strcmp(ev->region, region) == 0)
            return rc;
    }
}

/* The next event for region is kind (and pid, unless pid is 0). */
static bool expect(struct mmsrv_client *m, const char *region, enum mmsrv_event_kind kind,
                   int64_t pid)
{
    struct mmsrv_event ev;
    int rc = next_for(m, region, &ev, IT_WAIT_MS);
    bool ok = rc == 0 && ev.kind == kind && (pid == 0 || ev.pid == pid);
    if (!ok)
        fprintf(stderr, "\n    %s: wanted kind %d pid %lld; got rc %d kind %d pid %lld\n", region,
                (int)kind, (long long)pid, rc, rc == 0 ? (int)ev.kind : -1,
                rc == 0 ? (long long)ev.pid : 0LL);
    return ok;
}

/* A monitor connection in place: it has seen the creation of "mark", which
 * c makes first. */
static struct mmsrv_client *monitor_open(struct mmsrv_client *c)
{
    struct mmsrv_client *m;
    int rc = create_heap(c, "mark");
    CU_ASSERT_FATAL(rc == 0 || rc == -EEXIST);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &m), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_monitor_start(m), 0);
    CU_ASSERT_FATAL(expect(m, "mark", MMSRV_EVENT_CREATED, 0));
    return m;
}

static void test_lifecycle_in_order(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_client *m = monitor_open(c);

    struct mmsrv_region *r;
    CU_ASSERT_EQUAL_FATAL(create_heap(c, "life"), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "life", 0, &r), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, r), 0);
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "life"), 0);
    CU_ASSERT(expect(m, "life", MMSRV_EVENT_CREATED, getpid()));
    CU_ASSERT(expect(m, "life", MMSRV_EVENT_ATTACHED, getpid()));
    CU_ASSERT(expect(m, "life", MMSRV_EVENT_DETACHED, getpid()));
    struct mmsrv_event ev;
    CU_ASSERT_EQUAL(next_for(m, "life", &ev, IT_WAIT_MS), 0);
    CU_ASSERT_EQUAL(ev.kind, MMSRV_EVENT_DESTROYED);
    CU_ASSERT_EQUAL(ev.pid, -1); /* the daemon names no client for it */

    mmsrv_disconnect(m);
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
}

static void test_killed_client_is_reclaimed(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_client *m = monitor_open(c);
    CU_ASSERT_EQUAL_FATAL(create_heap(c, "victim"), 0);
    CU_ASSERT(expect(m, "victim", MMSRV_EVENT_CREATED, getpid()));

    pid_t kpid = it_kill_attached(&g_d, "victim");
    CU_ASSERT_FATAL(kpid > 0);
    CU_ASSERT(expect(m, "victim", MMSRV_EVENT_ATTACHED, kpid));
    /* the daemon may report the closed connection's detach first */
    struct mmsrv_event ev;
    int rc = next_for(m, "victim", &ev, IT_WAIT_MS);
    if (rc == 0 && ev.kind == MMSRV_EVENT_DETACHED) {
        CU_ASSERT_EQUAL(ev.pid, kpid);
        rc = next_for(m, "victim", &ev, IT_WAIT_MS);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(ev.kind, MMSRV_EVENT_RECLAIMED);
    CU_ASSERT_EQUAL(ev.pid, kpid);

    mmsrv_disconnect(m);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

static void test_timeout_keeps_the_stream(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_client *m = monitor_open(c);
    struct mmsrv_event ev = {.kind = MMSRV_EVENT_RECLAIMED, .region = "untouched", .pid = 7};

    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ETIMEDOUT);
    CU_ASSERT_PTR_NULL(mmsrv_error_name());
    uint64_t t0 = tu_now_ms();
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 100), -ETIMEDOUT);
    uint64_t took = tu_now_ms() - t0;
    CU_ASSERT(took >= 90 && took < 5000);
    CU_ASSERT_STRING_EQUAL(ev.region, "untouched"); /* a failure leaves *ev alone */

    CU_ASSERT_EQUAL(create_heap(c, "later"), 0);
    CU_ASSERT(expect(m, "later", MMSRV_EVENT_CREATED, getpid()));
    /* and once more after a timeout that came with nothing held */
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ETIMEDOUT);
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "later"), 0);
    CU_ASSERT(expect(m, "later", MMSRV_EVENT_DESTROYED, -1));

    mmsrv_disconnect(m);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

static void test_other_calls_are_busy(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_event ev;

    /* bad arguments, and a connection that is not a monitor */
    CU_ASSERT_EQUAL(mmsrv_monitor_start(NULL), -EINVAL);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(NULL, &ev, 0), -EINVAL);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(c, NULL, 0), -EINVAL);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(c, &ev, 0), -EINVAL);

    /* a connection with a region attached cannot become a monitor */
    struct mmsrv_region *r;
    CU_ASSERT_EQUAL_FATAL(create_heap(c, "held"), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "held", 0, &r), 0);
    CU_ASSERT_EQUAL(mmsrv_monitor_start(c), -EBUSY);
    CU_ASSERT_EQUAL(mmsrv_detach(c, r), 0); /* and it still makes calls */
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "held"), 0);

    struct mmsrv_client *m = monitor_open(c);
    struct mmsrv_region_info *list = NULL;
    struct mmsrv_stats st;
    struct mmsrv_region *mr = NULL, other = {0};
    CU_ASSERT_EQUAL(mmsrv_monitor_start(m), -EBUSY);
    CU_ASSERT_EQUAL(create_heap(m, "nope"), -EBUSY);
    CU_ASSERT_PTR_NULL(mmsrv_error_name());
    CU_ASSERT_EQUAL(mmsrv_destroy(m, "held"), -EBUSY);
    CU_ASSERT_EQUAL(mmsrv_attach(m, "held", 0, &mr), -EBUSY);
    CU_ASSERT_PTR_NULL(mr);
    CU_ASSERT_EQUAL(mmsrv_detach(m, &other), -EBUSY);
    CU_ASSERT_EQUAL(mmsrv_list(m, &list), -EBUSY);
    CU_ASSERT_PTR_NULL(list);
    CU_ASSERT_EQUAL(mmsrv_stats(m, "held", &st), -EBUSY);
    CU_ASSERT(mmsrv_fd(m) >= 0);

    /* nothing of that reached the daemon or disturbed the stream */
    CU_ASSERT_EQUAL(mmsrv_stats(c, "nope", &st), -ENOENT);
    CU_ASSERT_EQUAL(create_heap(c, "after"), 0);
    CU_ASSERT(expect(m, "after", MMSRV_EVENT_CREATED, getpid()));

    mmsrv_disconnect(m);
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
}

static void test_daemon_stop_resets(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_client *m = monitor_open(c);
    mmsrv_disconnect(c);

    CU_ASSERT(tu_exited_ok(td_stop(&g_d)));
    struct mmsrv_event ev;
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), -ECONNRESET);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ECONNRESET);
    mmsrv_disconnect(m);
    it_stop(&g_d);
}

/* ---- A peer that is not mmsrvd --------------------------------------- */

/* What the peer sends after the Monitor call: chunk i once the parent says
 * so; then it closes once the parent says so.  Chunk 0 goes with a
 * descriptor. */
struct script {
    const char *chunks[4];
    size_t lens[4];
    int listen_fd;
};

static int peer(void *arg, int rd, int wr)
{
    const struct script *s = arg;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    IT_CHECK(fd >= 0);
    char *call = td_recv(fd, IT_WAIT_MS, NULL);
    json_t *j = it_parse(call);
    free(call);
    const char *method = json_string_value(json_object_get(j, "method"));
    IT_CHECK(json_is_true(json_object_get(j, "more")));
    IT_CHECK(method != NULL && strcmp(method, "io.mmsrvd.Monitor") == 0);
    json_decref(j);
    uint64_t go;
    for (size_t i = 0; i < 4 && s->chunks[i] != NULL; i++) {
        IT_CHECK(it_get(rd, &go, IT_WAIT_MS) == 0);
        int passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
        IT_CHECK(td_send_fds(fd, s->chunks[i], s->lens[i], &passed, i == 0 ? 1 : 0) == 0);
        close(passed);
        it_put(wr, i);
    }
    IT_CHECK(it_get(rd, &go, IT_WAIT_MS) == 0);
    close(fd);
    return 0;
}

/* Serve s to one monitor connection, *m. */
static void peer_start(struct script *s, struct it_child *k, struct mmsrv_client **m)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char address[sizeof sa.sun_path + 8];
    int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "mmsrv-monitor-%d", (int)getpid());
    snprintf(address, sizeof address, "unix:@%s", sa.sun_path + 1);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(s->listen_fd >= 0);
    CU_ASSERT_FATAL(bind(s->listen_fd, (struct sockaddr *)&sa,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) == 0);
    CU_ASSERT_FATAL(listen(s->listen_fd, 1) == 0);
    CU_ASSERT_EQUAL_FATAL(it_spawn(k, peer, s), 0);
    close(s->listen_fd);
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(address, m), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_monitor_start(*m), 0);
}

/* Let the peer send its next chunk and wait until it has. */
static void peer_step(struct it_child *k)
{
    uint64_t sent;
    CU_ASSERT(it_put(k->to, 0) == 0 && it_get(k->from, &sent, IT_WAIT_MS) == 0);
}

#define EVENT(kind, rest)                                                                          \
    "{\"parameters\":{\"event\":{\"kind\":\"" kind "\",\"region\":" rest "}},\"continues\":true}"

static void test_forms_no_daemon_sends(void)
{
    /* an event, an unknown kind, half an event (and a descriptor); the other
     * half; an event that is not one */
    static const char c0[] = EVENT("created", "\"a\"") "\0" EVENT("renamed", "\"a\"") "\0"
                                                                                      "{\"parame";
    static const char c1[] = "ters\":{\"event\":{\"kind\":\"attached\",\"region\":\"a\",\"pid\":"
                             "42}},\"continues\":true}";
    static const char c2[] = EVENT("created", "\"not a name\"");
    /* c0 without its terminating NUL: the message goes on in c1 */
    struct script s = {.chunks = {c0, c1, c2}, .lens = {sizeof c0 - 1, sizeof c1, sizeof c2}};
    struct it_child k;
    struct mmsrv_client *m;
    struct mmsrv_event ev;
    peer_start(&s, &k, &m);
    int fds0 = it_count_own_fds();

    peer_step(&k);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), 0);
    CU_ASSERT(ev.kind == MMSRV_EVENT_CREATED && strcmp(ev.region, "a") == 0 && ev.pid == -1);
    /* "renamed" is skipped; half an event is kept, not lost */
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ETIMEDOUT);
    CU_ASSERT_EQUAL(it_count_own_fds(), fds0); /* the descriptor was closed */
    peer_step(&k);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), 0);
    CU_ASSERT(ev.kind == MMSRV_EVENT_ATTACHED && strcmp(ev.region, "a") == 0 && ev.pid == 42);
    peer_step(&k);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), -EPROTO);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ECONNRESET);

    it_put(k.to, 0);
    CU_ASSERT(tu_exited_ok(it_finish(&k, IT_WAIT_MS)));
    mmsrv_disconnect(m);
}

static void test_the_peer_ends_the_stream(void)
{
    /* a daemon that does not know Monitor */
    static const char no[] = "{\"error\":\"org.varlink.service.MethodNotFound\","
                             "\"parameters\":{\"method\":\"io.mmsrvd.Monitor\"}}";
    struct script s = {.chunks = {no}, .lens = {sizeof no}};
    struct it_child k;
    struct mmsrv_client *m;
    struct mmsrv_event ev;
    peer_start(&s, &k, &m);
    peer_step(&k);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), -ENOSYS);
    CU_ASSERT(mmsrv_error_name() != NULL &&
              strcmp(mmsrv_error_name(), "org.varlink.service.MethodNotFound") == 0);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ECONNRESET);
    it_put(k.to, 0);
    CU_ASSERT(tu_exited_ok(it_finish(&k, IT_WAIT_MS)));
    mmsrv_disconnect(m);

    /* a last reply ("continues" false): its event, then the end */
    static const char last[] = "{\"parameters\":{\"event\":{\"kind\":\"destroyed\","
                               "\"region\":\"b\"}}}";
    struct script s2 = {.chunks = {last}, .lens = {sizeof last}};
    peer_start(&s2, &k, &m);
    peer_step(&k);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, IT_WAIT_MS), 0);
    CU_ASSERT(ev.kind == MMSRV_EVENT_DESTROYED && strcmp(ev.region, "b") == 0);
    CU_ASSERT_EQUAL(mmsrv_monitor_next(m, &ev, 0), -ECONNRESET);
    it_put(k.to, 0);
    CU_ASSERT(tu_exited_ok(it_finish(&k, IT_WAIT_MS)));
    mmsrv_disconnect(m);
}

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_lifecycle_in_order),
        TU_TEST(test_killed_client_is_reclaimed),
        TU_TEST(test_timeout_keeps_the_stream),
        TU_TEST(test_other_calls_are_busy),
        TU_TEST(test_daemon_stop_resets),
        TU_TEST(test_forms_no_daemon_sends),
        TU_TEST(test_the_peer_ends_the_stream),
        TU_END,
    };
    // clang-format on
    return tu_main("client_monitor", tests);
}
