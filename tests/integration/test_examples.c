/*
 * test_examples.c - the publisher and subscriber examples, as users run
 * them: two separate programs (the built executables, $EXAMPLE_PUB and
 * $EXAMPLE_SUB, started with fork and exec) beside a real mmsrvd.
 *
 * The subscriber starts first and waits for the region the publisher
 * creates; both must exit 0, and the subscriber's line must report every
 * message, none lost, duplicated or corrupt.  Also: messages that wait in
 * the channel for a subscriber that comes later, leftovers of a run that
 * nobody received dropped by the next one, a subscriber that gives up in
 * time when no publisher comes, a subscriber that sees lost, repeated and
 * spoiled messages (sent by the test in the publisher's format, stream.h)
 * and says so, and options that make no sense.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "stream.h"
#include "test_util.h"

#define RUN_MS 60000 /* the longest an example may run */

static struct td_daemon g_d;

/* One example process, and what it printed (stdout and stderr, in one
 * pipe). */
struct ex_proc {
    struct it_child child;
    const char *argv[16];
    int status; /* wait status, -1 if it had to be killed */
    char out[8192];
    size_t nout;
};

/* In the child it_spawn made: become the example. */
static int ex_exec(void *arg, int rd, int wr)
{
    struct ex_proc *p = arg;
    (void)rd;
    dup2(wr, STDOUT_FILENO);
    dup2(wr, STDERR_FILENO);
    execv(p->argv[0], (char *const *)p->argv);
    return 127;
}

/* Start the example named by environment variable var with the daemon's
 * address and args (NULL-terminated). */
static int ex_start(struct ex_proc *p, const char *var, const char *const *args)
{
    memset(p, 0, sizeof(*p));
    p->argv[0] = getenv(var);
    if (p->argv[0] == NULL) {
        fprintf(stderr, "\n    $%s is not set: run this test through meson test\n", var);
        return -1;
    }
    p->argv[1] = "-a";
    p->argv[2] = g_d.address;
    for (size_t i = 0; args[i] != NULL && i + 3 < 15; i++)
        p->argv[i + 3] = args[i];
    return it_spawn(&p->child, ex_exec, p);
}

/* Read what it prints until needle appears or it exits, at most
 * timeout_ms.  Whether needle appeared. */
static bool ex_read_until(struct ex_proc *p, const char *needle, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    while ((needle == NULL || strstr(p->out, needle) == NULL) && p->nout < sizeof(p->out) - 1) {
        uint64_t now = tu_now_ms();
        if (now >= deadline ||
            tu_read_full(p->child.from, p->out + p->nout, 1, (int)(deadline - now)) != 1)
            break;
        p->out[++p->nout] = '\0';
    }
    return needle != NULL && strstr(p->out, needle) != NULL;
}

/* Read what it prints until it exits, at most timeout_ms, and reap it.
 * Whether it exited with want_exit and no sanitizer complained; if not,
 * what it printed goes to stderr. */
static bool ex_finish(struct ex_proc *p, int want_exit, int timeout_ms)
{
    ex_read_until(p, NULL, timeout_ms);
    p->status = it_finish(&p->child, 1000);
    bool ok = p->status != -1 && WIFEXITED(p->status) && WEXITSTATUS(p->status) == want_exit &&
              strstr(p->out, "Sanitizer") == NULL && strstr(p->out, "runtime error:") == NULL;
    if (!ok)
        fprintf(stderr, "\n    %s: wait status %#x, not exit %d; it printed:\n%s", p->argv[0],
                p->status, want_exit, p->out);
    return ok;
}

/* What the subscriber's summary line says. */
struct sub_line {
    unsigned long long messages, bytes, lost, duplicated, corrupt;
    double p50_us, p99_us;
};

/* Find the summary among the lines the subscriber printed; 0 or -1. */
static int sub_line_parse(const char *out, struct sub_line *s)
{
    for (const char *line = strstr(out, "example_sub: "); line != NULL;
         line = strstr(line + 1, "example_sub: ")) {
        if (sscanf(line,
                   "example_sub: %llu messages, %llu bytes, %llu lost, %llu duplicated, %llu "
                   "corrupt, latency p50 %lf us p99 %lf us",
                   &s->messages, &s->bytes, &s->lost, &s->duplicated, &s->corrupt, &s->p50_us,
                   &s->p99_us) == 7)
            return 0;
    }
    fprintf(stderr, "\n    no summary line in: %s\n", out);
    return -1;
}

/* Run the subscriber, then the publisher with pub_args (once the
 * subscriber says it waits for the region, if wait_for_region); both must
 * exit 0.  The subscriber's summary in *s. */
static void run_pair(const char *const *pub_args, bool wait_for_region, struct sub_line *s,
                     struct ex_proc *sub)
{
    struct ex_proc pub;
    static const char *const sub_args[] = {"-w", "20", "-t", "20", NULL};
    CU_ASSERT_EQUAL_FATAL(ex_start(sub, "EXAMPLE_SUB", sub_args), 0);
    if (wait_for_region) /* the publisher starts only once the subscriber waits */
        CU_ASSERT(ex_read_until(sub, "waiting up to 20.0 s for region", IT_WAIT_MS));
    CU_ASSERT_EQUAL_FATAL(ex_start(&pub, "EXAMPLE_PUB", pub_args), 0);
    CU_ASSERT(ex_finish(&pub, 0, RUN_MS));
    CU_ASSERT(ex_finish(sub, 0, RUN_MS));
    CU_ASSERT(strstr(pub.out, "example_pub: sent ") != NULL);
    CU_ASSERT_EQUAL_FATAL(sub_line_parse(sub->out, s), 0);
}

/* Run the subscriber alone; it must exit with want_exit and print its
 * summary, in *s. */
static void run_sub(const char *const *args, int want_exit, struct ex_proc *sub, struct sub_line *s)
{
    CU_ASSERT_EQUAL_FATAL(ex_start(sub, "EXAMPLE_SUB", args), 0);
    CU_ASSERT(ex_finish(sub, want_exit, RUN_MS));
    CU_ASSERT_EQUAL_FATAL(sub_line_parse(sub->out, s), 0);
}

/* After both exited, every buffer of the pool is free again. */
static void assert_pool_all_free(const char *region)
{
    struct mmsrv_client *c;
    struct mmsrv_stats st;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL(mmsrv_stats(c, region, &st), 0);
    CU_ASSERT(st.count > 0);
    CU_ASSERT_EQUAL(st.free, st.count);
    CU_ASSERT_EQUAL(st.nattached, 0);
    mmsrv_disconnect(c);
    CU_ASSERT(it_served(&g_d));
}

static void test_sub_waits_then_streams(void)
{
    IT_START(&g_d, NULL);
    static const char *const pub_args[] = {"-n", "1000", NULL}; /* 64 KiB each */
    struct sub_line s;
    struct ex_proc sub;
    run_pair(pub_args, true, &s, &sub);
    CU_ASSERT_EQUAL(s.messages, 1000);
    CU_ASSERT_EQUAL(s.bytes, 1000ull * 65536);
    CU_ASSERT_EQUAL(s.lost, 0);
    CU_ASSERT_EQUAL(s.duplicated, 0);
    CU_ASSERT_EQUAL(s.corrupt, 0);
    CU_ASSERT(s.p50_us > 0 && s.p99_us >= s.p50_us);
    fprintf(stderr, "\n    64 KiB messages: latency p50 %.1f us, p99 %.1f us\n", s.p50_us,
            s.p99_us);
    assert_pool_all_free("frames");
    it_stop(&g_d);
}

static void test_messages_wait_for_a_late_sub(void)
{
    IT_START(&g_d, NULL);
    /* 5 messages and the end of the stream fit in the channel (depth 8):
     * the publisher is done before anyone receives. */
    static const char *const pub_args[] = {"-r", "late", "-n", "5", "-s", "10000", NULL};
    static const char *const sub_args[] = {"-r", "late", "-w", "5", "-t", "5", NULL};
    struct ex_proc pub, sub;
    CU_ASSERT_EQUAL_FATAL(ex_start(&pub, "EXAMPLE_PUB", pub_args), 0);
    CU_ASSERT(ex_finish(&pub, 0, RUN_MS));
    struct sub_line s;
    run_sub(sub_args, 0, &sub, &s);
    CU_ASSERT_EQUAL(s.messages, 5);
    CU_ASSERT_EQUAL(s.bytes, 50000);
    CU_ASSERT_EQUAL(s.lost + s.duplicated + s.corrupt, 0);
    assert_pool_all_free("late");
    it_stop(&g_d);
}

static void test_leftovers_of_a_failed_run_are_skipped(void)
{
    IT_START(&g_d, NULL);
    /* Nobody receives: the publisher fills the channel (8 messages) and
     * gives up waiting for room. */
    static const char *const lone_args[] = {"-n", "50", "-s", "1000", "-t", "0.3", NULL};
    struct ex_proc lone;
    CU_ASSERT_EQUAL_FATAL(ex_start(&lone, "EXAMPLE_PUB", lone_args), 0);
    CU_ASSERT(ex_finish(&lone, 1, RUN_MS));
    CU_ASSERT(strstr(lone.out, "stopped after 8 of 50 messages") != NULL);

    /* The next pair streams through the same channel; the subscriber
     * receives those 8 first, and drops them when the new stream begins. */
    static const char *const pub_args[] = {"-n", "100", "-s", "1000", NULL};
    struct sub_line s;
    struct ex_proc sub;
    run_pair(pub_args, false, &s, &sub);
    CU_ASSERT_EQUAL(s.messages, 100);
    CU_ASSERT_EQUAL(s.lost + s.duplicated + s.corrupt, 0);
    CU_ASSERT(strstr(sub.out, "a new stream began; the last one stopped after 8 messages") != NULL);
    assert_pool_all_free("frames");
    it_stop(&g_d);
}

/* Send one message as example_pub would, through the test's own
 * connection; spoil makes its checksum wrong. */
static void send_as_pub(struct iob_pool_s *pool, int id, struct stream_hdr h, bool spoil)
{
    uint8_t msg[sizeof(h) + 5000];
    h.len = 5000;
    tu_pattern_fill(msg + sizeof(h), h.len, h.seq);
    h.check = stream_adler32(1, msg + sizeof(h), h.len) ^ (spoil ? 1u : 0u);
    h.sent_ns = stream_now_ns();
    memcpy(msg, &h, sizeof(h));
    struct iob_s *iob = iob_timedalloc(pool, false, IT_WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(iob);
    CU_ASSERT_EQUAL(iob_copyin(pool, iob, msg, sizeof(msg), 0, false), (int)sizeof(msg));
    CU_ASSERT_EQUAL(iob_send(pool, id, iob, IT_WAIT_MS), 0);
}

static void test_sub_reports_what_went_wrong(void)
{
    IT_START(&g_d, NULL);
    struct mmsrv_client *c;
    struct mmsrv_region *r;
    const struct mmsrv_channel_spec ch = {.name = STREAM_CHANNEL, .depth = STREAM_DEPTH};
    const struct mmsrv_region_spec spec = {.name = STREAM_REGION,
                                           .kind = MMSRV_IOB,
                                           .bufsize = STREAM_BUFSIZE,
                                           .count = STREAM_BUFFERS,
                                           .channels = &ch,
                                           .nchannels = 1,
                                           .uid = -1,
                                           .gid = -1,
                                           .mode = -1};
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_create(c, &spec, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, STREAM_REGION, 0, &r), 0);
    int id = iob_channel_lookup(r->pool, STREAM_CHANNEL);
    CU_ASSERT_FATAL(id >= 0);
    CU_ASSERT_EQUAL_FATAL(iob_channel_connect(r->pool, id, IOB_CHANNEL_SEND), 0);

    /* 0 intact, 1 spoiled, 2 missing, 3 twice, then the end after 4. */
    struct stream_hdr h = {.magic = STREAM_MAGIC, .stream = 42};
    static const uint64_t seqs[] = {0, 1, 3, 3};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        h.seq = seqs[i];
        send_as_pub(r->pool, id, h, seqs[i] == 1);
    }
    h.seq = 4;
    h.flags = STREAM_EOS;
    send_as_pub(r->pool, id, h, false);

    static const char *const sub_args[] = {"-w", "5", "-t", "5", NULL};
    struct ex_proc sub;
    struct sub_line sl;
    run_sub(sub_args, 1, &sub, &sl);
    CU_ASSERT_EQUAL(sl.messages, 2);
    CU_ASSERT_EQUAL(sl.bytes, 10000);
    CU_ASSERT_EQUAL(sl.lost, 1);
    CU_ASSERT_EQUAL(sl.duplicated, 1);
    CU_ASSERT_EQUAL(sl.corrupt, 1);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

static void test_sub_gives_up_without_a_publisher(void)
{
    IT_START(&g_d, NULL);
    static const char *const sub_args[] = {"-w", "1", NULL};
    struct ex_proc sub;
    uint64_t t0 = tu_now_ms();
    CU_ASSERT_EQUAL_FATAL(ex_start(&sub, "EXAMPLE_SUB", sub_args), 0);
    CU_ASSERT(ex_finish(&sub, 1, 10000));
    uint64_t took = tu_now_ms() - t0;
    CU_ASSERT(took >= 1000 && took < 5000);
    CU_ASSERT(strstr(sub.out, "region \"frames\" did not appear within 1.0 s") != NULL);
    CU_ASSERT(it_served(&g_d));
    it_stop(&g_d);
}

static void test_bad_options_are_refused(void)
{
    IT_START(&g_d, NULL);
    static const char *const bad_size[] = {"-s", "64X", NULL};
    static const char *const bad_rate[] = {"-hz", "-3", NULL};
    static const char *const too_big[] = {"-s", "1G", NULL};
    const char *const *cases[] = {bad_size, bad_rate, too_big};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ex_proc pub;
        CU_ASSERT_EQUAL_FATAL(ex_start(&pub, "EXAMPLE_PUB", cases[i]), 0);
        CU_ASSERT(ex_finish(&pub, 2, 10000));
        CU_ASSERT(strstr(pub.out, cases[i][0]) != NULL && strstr(pub.out, "wants a") != NULL);
    }
    /* Nothing was created. */
    struct mmsrv_client *c;
    struct mmsrv_region_info *list;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    int n = mmsrv_list(c, &list);
    CU_ASSERT_EQUAL(n, 0);
    if (n >= 0)
        free(list);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_sub_waits_then_streams),
        TU_TEST(test_messages_wait_for_a_late_sub),
        TU_TEST(test_leftovers_of_a_failed_run_are_skipped),
        TU_TEST(test_sub_reports_what_went_wrong),
        TU_TEST(test_sub_gives_up_without_a_publisher),
        TU_TEST(test_bad_options_are_refused),
        TU_END,
    };
    return tu_main("examples", tests);
}
