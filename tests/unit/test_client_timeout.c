/*
 * test_client_timeout.c - libmmsrv against peers that misbehave at the
 * socket level, which no real mmsrvd does on purpose: one that never
 * answers (the call gives up after $MMSRV_TIMEOUT_MS and the connection is
 * broken, since a late reply could no longer be told from the next one), one
 * that sends a message nobody asked for behind its reply (-EPROTO, broken),
 * and one that hangs up (-ECONNRESET).  The peer is a plain listening socket
 * in this process or a forked child; the daemon's own behaviour is tested
 * against the real daemon in tests/integration.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mmsrv/mmsrv.h"
#include "test_util.h"

static char g_dir[] = "/tmp/mmsrv-client-XXXXXX";
static char g_path[108];
static char g_address[120];

/* A listening socket at g_path; connections wait in its backlog. */
static int listen_here(void)
{
    if (g_path[0] == '\0') {
        if (mkdtemp(g_dir) == NULL)
            return -1;
        snprintf(g_path, sizeof g_path, "%s/sock", g_dir);
        snprintf(g_address, sizeof g_address, "unix:%s", g_path);
    }
    unlink(g_path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0)
        return -1;
    return fd;
}

/* In a child: accept one connection, read one call, then do what is asked. */
static pid_t serve_once(int lfd, const char *answer, size_t len)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = accept(lfd, NULL, NULL);
    char buf[4096];
    ssize_t n = fd >= 0 ? recv(fd, buf, sizeof buf, 0) : -1;
    if (n > 0 && answer != NULL)
        (void)send(fd, answer, len, MSG_NOSIGNAL);
    close(fd);
    _exit(0);
}

static void test_silent_peer_times_out(void)
{
    int lfd = listen_here();
    CU_ASSERT_FATAL(lfd >= 0);
    setenv("MMSRV_TIMEOUT_MS", "300", 1);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_address, &c), 0);
    uint64_t t0 = tu_now_ms();
    struct mmsrv_region_info *list = NULL;
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), -ETIMEDOUT);
    uint64_t took = tu_now_ms() - t0;
    CU_ASSERT(took >= 250 && took < 5000);
    CU_ASSERT_PTR_NULL(mmsrv_error_name());
    /* the connection cannot pair replies with calls any more */
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), -ECONNRESET);
    mmsrv_disconnect(c);
    unsetenv("MMSRV_TIMEOUT_MS");
    close(lfd);
}

static void test_unasked_message_breaks_the_connection(void)
{
    static const char answer[] = "{\"parameters\":{\"regions\":[]}}\0{\"parameters\":{}}";
    int lfd = listen_here();
    CU_ASSERT_FATAL(lfd >= 0);
    pid_t pid = serve_once(lfd, answer, sizeof answer);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_address, &c), 0);
    struct mmsrv_region_info *list = NULL;
    /* the reply and the unasked message may arrive in one read or two:
     * either way the call must not pass the second off as a reply */
    int rc = mmsrv_list(c, &list);
    free(list);
    if (rc == 0)
        rc = mmsrv_list(c, &list);
    CU_ASSERT(rc == -EPROTO || rc == -ECONNRESET);
    mmsrv_disconnect(c);
    CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 5000)));
    close(lfd);
}

static void test_peer_hangs_up(void)
{
    int lfd = listen_here();
    CU_ASSERT_FATAL(lfd >= 0);
    pid_t pid = serve_once(lfd, NULL, 0);
    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_address, &c), 0);
    struct mmsrv_region_info *list = NULL;
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), -ECONNRESET);
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), -ECONNRESET);
    mmsrv_disconnect(c);
    CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 5000)));
    close(lfd);
    unlink(g_path);
    rmdir(g_dir);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_silent_peer_times_out),
        TU_TEST(test_unasked_message_breaks_the_connection),
        TU_TEST(test_peer_hangs_up),
        TU_END,
    };
    return tu_main("client_timeout", tests);
}
