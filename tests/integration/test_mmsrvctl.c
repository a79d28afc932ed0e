/*
 * test_mmsrvctl.c - mmsrvctl, the built program ($MMSRVCTL, run with fork
 * and exec), against a real mmsrvd: what it prints and its exit status.
 *
 * The figures mmsrvctl prints are checked against what libmmsrv reads from
 * the same daemon, and its waits against the clock.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

static struct td_daemon g_d;

struct ctl_run {
    const char *argv[16];
    int status; /* wait status; -1 if it had to be killed */
    char out[4096];
};

static int ctl_exec(void *arg, int rd, int wr)
{
    struct ctl_run *r = arg;
    (void)rd;
    dup2(wr, STDOUT_FILENO);
    dup2(wr, STDERR_FILENO);
    execv(r->argv[0], (char *const *)r->argv);
    return 127;
}

/* Run mmsrvctl -a address args... (NULL-terminated); what it printed in
 * r->out.  Its exit status, or -1 if it did not end in time. */
static int ctl(struct ctl_run *r, const char *address, const char *const *args)
{
    memset(r, 0, sizeof(*r));
    r->argv[0] = getenv("MMSRVCTL");
    if (r->argv[0] == NULL) {
        fprintf(stderr, "\n    $MMSRVCTL is not set: run this test through meson test\n");
        return -1;
    }
    r->argv[1] = "-a";
    r->argv[2] = address;
    for (size_t i = 0; args[i] != NULL && i + 3 < 15; i++)
        r->argv[i + 3] = args[i];
    struct it_child child;
    if (it_spawn(&child, ctl_exec, r) != 0)
        return -1;
    long n = tu_read_full(child.from, r->out, sizeof(r->out) - 1, IT_WAIT_MS);
    r->out[n > 0 ? n : 0] = '\0';
    r->status = it_finish(&child, IT_WAIT_MS);
    return r->status >= 0 && WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

/* Whether mmsrvctl's size text ("922.7K", "1.0M", "96") says bytes, to
 * the tenth of a unit it prints. */
static bool says(const char *text, uint64_t bytes)
{
    char *end;
    double v = strtod(text, &end);
    double unit = *end == 'K' ? 1024.0 : *end == 'M' ? 1048576.0 : *end == 'G' ? 1073741824.0 : 1.0;
    double diff = v * unit - (double)bytes;
    return diff < 0.06 * unit && diff > -0.06 * unit;
}

/* The heap line's figures are the daemon's: a heap with a block held, so
 * that arena, in use, free and largest all differ. */
static void test_stats_figures(void)
{
    IT_START(&g_d, NULL);
    struct ctl_run r;
    const char *create[] = {"create", "figures", "heap", "1M", NULL};
    CU_ASSERT_EQUAL(ctl(&r, g_d.address, create), 0);

    struct mmsrv_client *c;
    struct mmsrv_region *reg;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "figures", 0, &reg), 0);
    void *held = mm_malloc(reg->heap, 100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(held);
    mm_cache_flush(reg->heap);
    struct mmsrv_stats st;
    CU_ASSERT_EQUAL_FATAL(mmsrv_stats(c, "figures", &st), 0);

    const char *stats[] = {"stats", "figures", NULL};
    CU_ASSERT_EQUAL(ctl(&r, g_d.address, stats), 0);
    char state[16], arena[32], used[32], free_[32], largest[32];
    unsigned long long chunks = 0;
    const char *line = strstr(r.out, "heap: ");
    int n = line == NULL ? 0
                         : sscanf(line,
                                  "heap: %15[^,], arena %31[^,], in use %31[^,], free %31s "
                                  "(largest %31[^,], %llu chunks)",
                                  state, arena, used, free_, largest, &chunks);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    bool ok = strcmp(state, "ok") == 0 && says(arena, st.arena) && says(used, st.uordblks) &&
              says(free_, st.fordblks) && says(largest, st.mxordblk) && chunks == st.ordblks;
    if (!ok)
        fprintf(stderr,
                "\n    mmsrvctl printed:\n%s    the daemon says arena %" PRIu64 ", in use %" PRIu64
                ", free %" PRIu64 ", largest %" PRIu64 ", %" PRIu64 " chunks\n",
                r.out, st.arena, st.uordblks, st.fordblks, st.mxordblk, st.ordblks);
    CU_ASSERT(ok);
    CU_ASSERT(st.fordblks != st.arena && st.mxordblk != st.uordblks);

    mm_free(reg->heap, held);
    mmsrv_disconnect(c);
    const char *destroy[] = {"destroy", "figures", NULL};
    CU_ASSERT_EQUAL(ctl(&r, g_d.address, destroy), 0);
    const char *again[] = {"stats", "figures", NULL};
    CU_ASSERT_NOT_EQUAL(ctl(&r, g_d.address, again), 0);
    it_stop(&g_d);
}

/* wait N gives up after N seconds, not before; and returns at once when
 * the daemon answers. */
static void test_wait_bounds(void)
{
    char nowhere[128];
    snprintf(nowhere, sizeof nowhere, "unix:/tmp/mmsrvctl-test-%d/none", (int)getpid());
    struct ctl_run r;
    const char *wait1[] = {"wait", "1", NULL};
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = tu_now_ms();
        CU_ASSERT_NOT_EQUAL(ctl(&r, nowhere, wait1), 0);
        uint64_t ms = tu_now_ms() - t0;
        if (ms < 1000)
            fprintf(stderr, "\n    wait 1 gave up after %" PRIu64 " ms\n", ms);
        CU_ASSERT(ms >= 1000);
    }
    IT_START(&g_d, NULL);
    uint64_t t0 = tu_now_ms();
    const char *wait10[] = {"wait", "10", NULL};
    CU_ASSERT_EQUAL(ctl(&r, g_d.address, wait10), 0);
    CU_ASSERT(tu_now_ms() - t0 < 5000);
    it_stop(&g_d);
}

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_stats_figures),
        TU_TEST(test_wait_bounds),
        TU_END,
    };
    // clang-format on
    return tu_main("mmsrvctl", tests);
}
