/*
 * test_monitor.c - the Monitor call streams region events.
 *
 * A raw client calls io.mmsrvd.Monitor with "more": true and reads the
 * replies ("continues": true, one event each) while other processes create,
 * attach, detach and destroy regions, and one is killed while attached.
 * Each region's events must come in their order with the right pids.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

static struct td_daemon g_d;

/* Create+destroy rounds: two events each, enough to pass the daemon's limit
 * of queued event bytes per monitor (1 MiB) with what the socket holds. */
#define LAZY_ROUNDS 8000

/* How much the daemon may grow while monitors do not read.  AddressSanitizer
 * adds redzones to every small allocation and keeps freed ones a while. */
#if defined(__SANITIZE_ADDRESS__)
#define GROWTH_KIB (48 * 1024)
#else
#define GROWTH_KIB (8 * 1024)
#endif

#define MAX_EVENTS 64

struct event {
    char kind[16];
    char region[64];
    long long pid; /* -1: absent */
};

/* Read events until n of them are for region, or timeout; returns how many
 * events for region were read into out. */
static int read_events(int fd, const char *region, struct event *out, int n, int timeout_ms)
{
    int got = 0;
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    while (got < n && tu_now_ms() < deadline) {
        char *text = td_recv(fd, (int)(deadline - tu_now_ms()) + 1, NULL);
        if (text == NULL)
            break;
        json_t *r = it_parse(text);
        free(text);
        if (r == NULL || it_error(r) != NULL) {
            it_is_result(r); /* prints it */
            json_decref(r);
            break;
        }
        if (!json_is_true(json_object_get(r, "continues")))
            fprintf(stderr, "\n    a Monitor reply without \"continues\": true\n");
        CU_ASSERT(json_is_true(json_object_get(r, "continues")));
        json_t *ev = it_param(r, "event");
        const char *kind = json_string_value(json_object_get(ev, "kind"));
        const char *name = json_string_value(json_object_get(ev, "region"));
        CU_ASSERT(kind != NULL && name != NULL);
        if (kind != NULL && name != NULL && strcmp(name, region) == 0) {
            snprintf(out[got].kind, sizeof out[got].kind, "%s", kind);
            snprintf(out[got].region, sizeof out[got].region, "%s", name);
            json_t *pid = json_object_get(ev, "pid");
            out[got].pid = json_is_integer(pid) ? (long long)json_integer_value(pid) : -1;
            got++;
        }
        json_decref(r);
    }
    return got;
}

static int monitor_open(void)
{
    int fd = td_connect(&g_d);
    CU_ASSERT_FATAL(fd >= 0);
    static const char call[] = "{\"method\":\"io.mmsrvd.Monitor\",\"more\":true}";
    CU_ASSERT_FATAL(td_send(fd, call, sizeof call) == 0);
    return fd;
}

static bool expect_kinds(const struct event *ev, int n, const char *const *kinds, int nkinds)
{
    bool ok = n == nkinds;
    for (int i = 0; ok && i < n; i++)
        ok = strcmp(ev[i].kind, kinds[i]) == 0;
    if (!ok) {
        fprintf(stderr, "\n    events for %s:", n > 0 ? ev[0].region : "?");
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %s(%lld)", ev[i].kind, ev[i].pid);
        fprintf(stderr, "; wanted");
        for (int i = 0; i < nkinds; i++)
            fprintf(stderr, " %s", kinds[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

static void test_monitor_sees_lifecycle(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    struct mmsrv_region_spec early = {
        .name = "early", .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &early, NULL), 0);

    int mon = monitor_open();
    /* The regions that exist come first, as "created". */
    struct event ev[MAX_EVENTS];
    int n = read_events(mon, "early", ev, 1, IT_WAIT_MS);
    static const char *const created[] = {"created"};
    CU_ASSERT(expect_kinds(ev, n, created, 1));

    /* create, attach, detach, destroy in this process */
    struct mmsrv_region_spec m1 = {
        .name = "m1", .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &m1, NULL), 0);
    struct mmsrv_region *r;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "m1", 0, &r), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, r), 0);
    CU_ASSERT_EQUAL(mmsrv_destroy(c, "m1"), 0);
    n = read_events(mon, "m1", ev, 4, IT_WAIT_MS);
    static const char *const life[] = {"created", "attached", "detached", "destroyed"};
    CU_ASSERT(expect_kinds(ev, n, life, 4));
    if (n == 4) {
        CU_ASSERT_EQUAL(ev[1].pid, getpid());
        CU_ASSERT_EQUAL(ev[2].pid, getpid());
    }

    /* a client killed while attached: attached, then reclaimed (a detach
     * between them is allowed) */
    struct mmsrv_region_spec m2 = {
        .name = "m2", .kind = MMSRV_HEAP, .size = 65536, .uid = -1, .gid = -1, .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &m2, NULL), 0);
    pid_t kpid = it_kill_attached(&g_d, "m2");
    n = read_events(mon, "m2", ev, 3, IT_WAIT_MS);
    bool seen = n >= 3 && strcmp(ev[0].kind, "created") == 0 &&
                strcmp(ev[1].kind, "attached") == 0 && ev[1].pid == kpid;
    bool reclaimed = false;
    for (int i = 2; i < n; i++)
        reclaimed |= strcmp(ev[i].kind, "reclaimed") == 0 && ev[i].pid == kpid;
    if (!reclaimed && n == 3 && strcmp(ev[2].kind, "detached") == 0) {
        n += read_events(mon, "m2", ev + 3, 1, IT_WAIT_MS);
        reclaimed = n == 4 && strcmp(ev[3].kind, "reclaimed") == 0 && ev[3].pid == kpid;
    }
    if (!(seen && reclaimed)) {
        static const char *const want[] = {"created", "attached", "(detached)", "reclaimed"};
        expect_kinds(ev, n, want, 4);
    }
    CU_ASSERT(seen && reclaimed);

    /* The monitor leaves: the daemon's descriptors come back. */
    int base = it_settled_fds(g_d.pid);
    close(mon);
    int now = td_wait_fd_count(g_d.pid, base - 1, IT_WAIT_MS);
    CU_ASSERT(now >= 0 && now <= base - 1);
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
}

/* Monitor without "more" is an error (Varlink's ExpectedMore); two monitors
 * both see an event; a monitor that never reads does not stall the daemon. */
static void test_monitor_misuse(void)
{
    IT_START(&g_d, NULL);
    int fd = td_connect(&g_d);
    CU_ASSERT_FATAL(fd >= 0);
    json_t *r = it_call(fd, "{\"method\":\"io.mmsrvd.Monitor\"}");
    CU_ASSERT(it_is_error(r, "org.varlink.service.ExpectedMore", NULL, NULL));
    json_decref(r);
    close(fd);

    int a = monitor_open(), b = monitor_open();
    int lazy = monitor_open(); /* never reads */
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    long rss0 = td_rss_kib(g_d.pid);
    /* Many events: the lazy monitor's queue fills; the daemon must go on
     * (it may drop that monitor). */
    for (int i = 0; i < LAZY_ROUNDS; i++) {
        char name[32];
        snprintf(name, sizeof name, "r%d", i);
        struct mmsrv_region_spec s = {
            .name = name, .kind = MMSRV_HEAP, .size = 4096, .uid = -1, .gid = -1, .mode = -1};
        int rc = mmsrv_create(c, &s, NULL);
        CU_ASSERT_EQUAL(rc, 0);
        rc = mmsrv_destroy(c, name);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            break;
        if (i == 0) {
            struct event ev[4];
            CU_ASSERT_EQUAL(read_events(a, "r0", ev, 2, IT_WAIT_MS), 2);
            CU_ASSERT_EQUAL(read_events(b, "r0", ev, 2, IT_WAIT_MS), 2);
        }
    }
    CU_ASSERT(it_served(&g_d));
    /* The lazy one was dropped once its queue passed the limit (what it
     * holds is what the socket took before): the daemon's memory did not
     * follow its queue. */
    long rss = td_rss_kib(g_d.pid);
    if (rss > rss0 + GROWTH_KIB)
        fprintf(stderr, "\n    the daemon grew from %ld to %ld KiB\n", rss0, rss);
    CU_ASSERT(rss <= rss0 + GROWTH_KIB);
    CU_ASSERT(td_wait_closed(lazy, IT_WAIT_MS));
    close(a);
    close(b);
    close(lazy);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_monitor_sees_lifecycle),
        TU_TEST(test_monitor_misuse),
        TU_END,
    };
    return tu_main("monitor", tests);
}
