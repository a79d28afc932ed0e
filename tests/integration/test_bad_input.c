/*
 * test_bad_input.c - what no well-behaved client sends, sent to a real
 * mmsrvd over raw sockets.
 *
 * Every bad input gets a named error (InvalidMessage and a closed
 * connection when the stream itself is bad; the Varlink service errors and
 * InvalidParameter with the parameter's name when the message is sound but
 * the call is not); after each one a second client is served; and at the end
 * of each test the daemon's descriptor count returns to where it was (waited
 * for, bounded).  Also: a 1 MiB message, partial messages, 1000 connections
 * at once, a client that never reads its replies, descriptors sent to the
 * daemon, and regions whose memory (locks included) a client scribbled over.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define INVALID_MESSAGE   "io.mmsrvd.InvalidMessage"
#define INVALID_PARAMETER "org.varlink.service.InvalidParameter"
#define METHOD_NOT_FOUND  "org.varlink.service.MethodNotFound"
#define IFACE_NOT_FOUND   "org.varlink.service.InterfaceNotFound"

static struct td_daemon g_d;
static int g_base_fds;
static long g_base_rss;

static void begin_with(const char *config)
{
    IT_START(&g_d, config);
    /* One served call first, so that whatever the daemon sets up lazily is
     * in the baseline; then wait for the count to settle. */
    CU_ASSERT_FATAL(it_served(&g_d));
    g_base_fds = it_settled_fds(g_d.pid);
    g_base_rss = td_rss_kib(g_d.pid);
    CU_ASSERT_FATAL(g_base_fds > 0);
}

static void begin(void)
{
    begin_with(NULL);
}

/* The daemon serves, and its descriptor count returns to the baseline. */
static void check_no_leak(const char *after)
{
    CU_ASSERT(it_served(&g_d));
    int n = td_wait_fd_count(g_d.pid, g_base_fds, IT_WAIT_MS);
    if (n > g_base_fds)
        fprintf(stderr, "\n    after %s: the daemon has %d descriptors open, %d before\n", after, n,
                g_base_fds);
    CU_ASSERT(n >= 0 && n <= g_base_fds);
}

static void end(void)
{
    check_no_leak("the test");
    it_stop(&g_d);
}

static int connect_or_fail(void)
{
    int fd = td_connect(&g_d);
    CU_ASSERT_FATAL(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Send len bytes as they are (the caller includes any NUL); the reply must
 * be the error name, and then the daemon must close the connection. */
static void expect_error_and_close(const void *msg, size_t len, const char *error, const char *what)
{
    int fd = connect_or_fail();
    td_send(fd, msg, len); /* may fail part-way once the daemon closes */
    char *text = td_recv(fd, IT_CALL_MS, NULL);
    json_t *reply = it_parse(text);
    bool ok = it_is_error(reply, error, NULL, NULL);
    if (!ok)
        fprintf(stderr, "    (for %s)\n", what);
    CU_ASSERT(ok);
    bool closed = td_wait_closed(fd, IT_CALL_MS);
    if (!closed)
        fprintf(stderr, "\n    the connection stayed open after %s\n", what);
    CU_ASSERT(closed);
    free(text);
    json_decref(reply);
    close(fd);
    CU_ASSERT(it_served(&g_d));
}

static void expect_text_error_and_close(const char *msg, const char *error)
{
    expect_error_and_close(msg, strlen(msg) + 1, error, msg);
}

/* On an open connection: call gets the error (with param = value if param
 * is not NULL), and the connection goes on serving. */
static void expect_error(int fd, const char *call, const char *error, const char *param,
                         const char *value)
{
    json_t *reply = it_call(fd, call);
    bool ok = it_is_error(reply, error, param, value);
    if (!ok)
        fprintf(stderr, "    (for %s)\n", call);
    CU_ASSERT(ok);
    json_decref(reply);
    json_t *again = it_call(fd, "{\"method\":\"org.varlink.service.GetInfo\"}");
    ok = it_is_result(again);
    if (!ok)
        fprintf(stderr, "    (the connection no longer serves after %s)\n", call);
    CU_ASSERT(ok);
    json_decref(again);
    CU_ASSERT(it_served(&g_d)); /* and another client is served */
}

/* ---- Malformed messages ------------------------------------------------- */

static void test_invalid_json(void)
{
    begin();
    static const char *const bad[] = {
        "{",
        "{\"method\":",
        "not json at all",
        "{\"method\":\"io.mmsrvd.ListRegions\",}",
        "{\"method\":\"io.mmsrvd.ListRegions\"}{\"method\":\"io.mmsrvd.ListRegions\"}",
        "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"\xff\xfe\"}}",
        "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"a\\u0000b\"}}",
        "{'method':'io.mmsrvd.ListRegions'}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_text_error_and_close(bad[i], INVALID_MESSAGE);
    end();
}

static void test_not_an_object(void)
{
    begin();
    static const char *const bad[] = {
        "[]",   "[{\"method\":\"io.mmsrvd.ListRegions\"}]",
        "42",   "\"io.mmsrvd.ListRegions\"",
        "null", "true",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_text_error_and_close(bad[i], INVALID_MESSAGE);
    /* Objects that are not calls. */
    static const char *const not_calls[] = {
        "{}",
        "{\"parameters\":{}}",
        "{\"method\":42}",
        "{\"method\":null}",
        "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":[]}",
        "{\"method\":\"io.mmsrvd.ListRegions\",\"more\":\"yes\"}",
        "{\"method\":\"io.mmsrvd.listRegions\"}", /* Varlink: methods start upper case */
        "{\"method\":\"io..ListRegions\"}",
        "{\"method\":\"ListRegions\"}",
    };
    for (size_t i = 0; i < sizeof not_calls / sizeof not_calls[0]; i++) {
        int fd = connect_or_fail();
        json_t *reply = it_call(fd, not_calls[i]);
        const char *e = it_error(reply);
        bool ok =
            e != NULL && (strcmp(e, INVALID_MESSAGE) == 0 || strcmp(e, INVALID_PARAMETER) == 0 ||
                          (strstr(not_calls[i], "istRegions") != NULL &&
                           (strcmp(e, METHOD_NOT_FOUND) == 0 || strcmp(e, IFACE_NOT_FOUND) == 0)));
        if (!ok)
            fprintf(stderr, "\n    %s: got %s\n", not_calls[i], e != NULL ? e : "no error");
        CU_ASSERT(ok);
        json_decref(reply);
        close(fd);
        CU_ASSERT(it_served(&g_d));
    }
    end();
}

static void test_unknown_method_and_interface(void)
{
    begin();
    int fd = connect_or_fail();
    expect_error(fd, "{\"method\":\"io.mmsrvd.Nope\"}", METHOD_NOT_FOUND, "method",
                 "io.mmsrvd.Nope");
    expect_error(fd, "{\"method\":\"io.mmsrvd.AttachAll\",\"parameters\":{\"name\":\"x\"}}",
                 METHOD_NOT_FOUND, "method", "io.mmsrvd.AttachAll");
    expect_error(fd, "{\"method\":\"org.varlink.service.Nope\"}", METHOD_NOT_FOUND, "method",
                 "org.varlink.service.Nope");
    expect_error(fd, "{\"method\":\"com.example.Frob\"}", IFACE_NOT_FOUND, "interface",
                 "com.example");
    expect_error(fd, "{\"method\":\"io.mmsrvd2.Attach\"}", IFACE_NOT_FOUND, "interface",
                 "io.mmsrvd2");
    expect_error(fd,
                 "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                 "\"parameters\":{\"interface\":\"com.example\"}}",
                 IFACE_NOT_FOUND, "interface", "com.example");
    close(fd);
    CU_ASSERT(it_served(&g_d));
    end();
}

/* ---- Bad parameters ---------------------------------------------------------- */

struct param_case {
    const char *call;
    const char *param;
};

static void run_param_cases(const struct param_case *cases, size_t n)
{
    int fd = connect_or_fail();
    for (size_t i = 0; i < n; i++)
        expect_error(fd, cases[i].call, INVALID_PARAMETER, "parameter", cases[i].param);
    close(fd);
    CU_ASSERT(it_served(&g_d));
}

static void test_missing_parameters(void)
{
    begin();
    static const struct param_case cases[] = {
        {"{\"method\":\"io.mmsrvd.Attach\"}", "name"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{}}", "name"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"writable\":true}}", "name"},
        {"{\"method\":\"io.mmsrvd.Detach\",\"parameters\":{}}", "name"},
        {"{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":{}}", "name"},
        {"{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{}}", "name"},
        {"{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"kind\":\"heap\",\"size\":4096}}",
         "name"},
        {"{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"a\",\"size\":4096}}",
         "kind"},
        {"{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"a\",\"kind\":\"heap\"}"
         "}",
         "size"},
        {"{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":"
         "{\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":256}}",
         "count"},
        {"{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":"
         "{\"name\":\"a\",\"kind\":\"iob\",\"count\":16}}",
         "bufsize"},
        {"{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{}}",
         "interface"},
    };
    run_param_cases(cases, sizeof cases / sizeof cases[0]);
    end();
}

static void test_wrong_types(void)
{
    begin();
#define CREATE(members) "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{" members "}}"
    static const struct param_case cases[] = {
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":42}}", "name"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":null}}", "name"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":[\"a\"]}}", "name"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"a\",\"writable\":\"yes\"}}",
         "writable"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"a\",\"writable\":1}}",
         "writable"},
        {"{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"a\",\"nmae\":\"b\"}}",
         "nmae"},
        {"{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{\"all\":true}}", "all"},
        {"{\"method\":\"io.mmsrvd.Detach\",\"parameters\":{\"name\":{}}}", "name"},
        {"{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":{\"name\":false}}", "name"},
        {"{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":1.5}}", "name"},
        {CREATE("\"name\":\"a\",\"kind\":\"banana\",\"size\":4096"), "kind"},
        {CREATE("\"name\":\"a\",\"kind\":1,\"size\":4096"), "kind"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":\"big\""), "size"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":1.5"), "size"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":-4096"), "size"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":0"), "size"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"mode\":\"rw\""), "mode"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"mode\":-1"), "mode"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"mode\":4096"), "mode"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"uid\":\"root\""), "uid"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"uid\":-5"), "uid"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"gid\":true"), "gid"},
        {CREATE("\"name\":\"a\",\"kind\":\"heap\",\"size\":4096,\"colour\":\"red\""), "colour"},
        {CREATE("\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":true,\"count\":16"), "bufsize"},
        {CREATE("\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":256,\"count\":\"16\""), "count"},
        {CREATE("\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":256,\"count\":0"), "count"},
        {CREATE("\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":0,\"count\":16"), "bufsize"},
        {CREATE("\"name\":\"a\",\"kind\":\"iob\",\"bufsize\":256,\"count\":16,\"channels\":{}"),
         "channels"},
    };
#undef CREATE
    run_param_cases(cases, sizeof cases / sizeof cases[0]);

    /* Channel specs: the parameter named is "channels" (maybe with a path
     * into it). */
    static const char *const chans[] = {
        "[{\"name\":1,\"depth\":4}]",
        "[{\"name\":\"c\"}]",
        "[{\"name\":\"c\",\"depth\":3}]",
        "[{\"name\":\"c\",\"depth\":0}]",
        "[{\"name\":\"c\",\"depth\":4,\"x\":1}]",
        "[{\"name\":\"0123456789012345678901234567890123456789\",\"depth\":4}]",
        "[{\"name\":\"\",\"depth\":4}]",
        "[{\"name\":\"c\",\"depth\":4},{\"name\":\"c\",\"depth\":4}]",
        "[1]",
    };
    int fd = connect_or_fail();
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
        char call[512];
        snprintf(call, sizeof call,
                 "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"c%zu\","
                 "\"kind\":\"iob\",\"bufsize\":256,\"count\":16,\"channels\":%s}}",
                 i, chans[i]);
        json_t *reply = it_call(fd, call);
        bool ok = it_is_error(reply, INVALID_PARAMETER, NULL, NULL) &&
                  strncmp(it_param_str(reply, "parameter"), "channels", 8) == 0;
        if (!ok)
            fprintf(stderr, "\n    channels %s: parameter \"%s\"\n", chans[i],
                    it_param_str(reply, "parameter"));
        CU_ASSERT(ok);
        json_decref(reply);
    }
    /* None of them made a region. */
    json_t *list = it_call(fd, "{\"method\":\"io.mmsrvd.ListRegions\"}");
    CU_ASSERT(it_is_result(list));
    CU_ASSERT_EQUAL(json_array_size(it_param(list, "regions")), 0);
    json_decref(list);
    close(fd);
    end();
}

static void test_bad_names(void)
{
    begin();
    char long64[65], long63[64], huge[2001];
    memset(long64, 'a', 64);
    long64[64] = '\0';
    memset(long63, 'b', 63);
    long63[63] = '\0';
    memset(huge, 'c', 2000);
    huge[2000] = '\0';
    const char *const bad[] = {
        long64,    huge,  "",         "a b",    "a/b",   "../etc", "a:b",     "*",
        "name\\n", "\\t", "\xc3\xa4", "a\\\\b", "$HOME", "a\\\"b", "\\u00e9",
    };
    static const char *const methods[] = {"Attach", "Detach", "DestroyRegion", "RegionStats"};
    int fd = connect_or_fail();
    char call[4096];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(call, sizeof call,
                 "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"%s\","
                 "\"kind\":\"heap\",\"size\":65536}}",
                 bad[i]);
        expect_error(fd, call, INVALID_PARAMETER, "parameter", "name");
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            snprintf(call, sizeof call,
                     "{\"method\":\"io.mmsrvd.%s\",\"parameters\":{\"name\":\"%s\"}}", methods[m],
                     bad[i]);
            expect_error(fd, call, INVALID_PARAMETER, "parameter", "name");
        }
    }
    /* The edges that are fine: 63 characters, every allowed character. */
    const char *const good[] = {long63, "a", "A.b-c_D9", ".", "-", "_x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(call, sizeof call,
                 "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"%s\","
                 "\"kind\":\"heap\",\"size\":65536}}",
                 good[i]);
        json_t *reply = it_call(fd, call);
        bool ok = it_is_result(reply);
        if (!ok)
            fprintf(stderr, "    (name \"%s\")\n", good[i]);
        CU_ASSERT(ok);
        CU_ASSERT_STRING_EQUAL(
            json_string_value(json_object_get(it_param(reply, "region"), "name"))
                ? json_string_value(json_object_get(it_param(reply, "region"), "name"))
                : "",
            good[i]);
        json_decref(reply);
        snprintf(call, sizeof call,
                 "{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":{\"name\":\"%s\"}}",
                 good[i]);
        reply = it_call(fd, call);
        CU_ASSERT(it_is_result(reply));
        json_decref(reply);
    }
    close(fd);
    end();
}

/* The named errors of io.mmsrvd, each with its parameters. */
static void test_named_errors(void)
{
    begin();
    int fd = connect_or_fail();
    expect_error(fd, "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"ghost\"}}",
                 "io.mmsrvd.RegionNotFound", "name", "ghost");
    expect_error(fd, "{\"method\":\"io.mmsrvd.RegionStats\",\"parameters\":{\"name\":\"ghost\"}}",
                 "io.mmsrvd.RegionNotFound", "name", "ghost");
    expect_error(fd, "{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":{\"name\":\"ghost\"}}",
                 "io.mmsrvd.RegionNotFound", "name", "ghost");
    const char *create = "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":"
                         "{\"name\":\"there\",\"kind\":\"heap\",\"size\":65536}}";
    json_t *reply = it_call(fd, create);
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
    expect_error(fd, create, "io.mmsrvd.RegionExists", "name", "there");
    expect_error(fd, "{\"method\":\"io.mmsrvd.Detach\",\"parameters\":{\"name\":\"there\"}}",
                 "io.mmsrvd.NotAttached", "name", "there");
    /* More than the segment holds. */
    reply = it_call(fd, "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":"
                        "{\"name\":\"huge\",\"kind\":\"heap\",\"size\":134217728}}");
    CU_ASSERT(it_is_error(reply, "io.mmsrvd.NoSpace", NULL, NULL));
    CU_ASSERT(it_int_at(reply, "parameters.requested", -1) >= 134217728ll);
    long long avail = it_int_at(reply, "parameters.available", -1);
    CU_ASSERT(avail >= 0 && avail <= 67108864);
    json_decref(reply);
    /* Its memory is the only descriptor a region holds in the daemon. */
    reply = it_call(fd, "{\"method\":\"io.mmsrvd.DestroyRegion\",\"parameters\":"
                        "{\"name\":\"there\"}}");
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
    close(fd);
    end();
}

/* ---- Size ------------------------------------------------------------------- */

/* A GetInfo call padded with spaces to exactly len bytes (NUL excluded). */
static char *padded_call(size_t len)
{
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{}}";
    char *msg = malloc(len + 1);
    CU_ASSERT_FATAL(msg != NULL);
    memset(msg, ' ', len);
    memcpy(msg, call, sizeof call - 1);
    msg[len] = '\0';
    return msg;
}

static void test_message_size_limits(void)
{
    begin();
    /* 64 KiB exactly is a message. */
    int fd = connect_or_fail();
    char *msg = padded_call(64 * 1024);
    CU_ASSERT_EQUAL(td_send(fd, msg, 64 * 1024 + 1), 0);
    char *text = td_recv(fd, IT_CALL_MS, NULL);
    json_t *reply = it_parse(text);
    CU_ASSERT(it_is_result(reply));
    free(text);
    json_decref(reply);
    free(msg);
    close(fd);

    /* One byte more is not. */
    msg = padded_call(64 * 1024 + 1);
    expect_error_and_close(msg, 64 * 1024 + 2, INVALID_MESSAGE, "a message of 64 KiB + 1");
    free(msg);

    /* 1 MiB, valid JSON: refused long before its end. */
    size_t big = 1024 * 1024;
    msg = malloc(big + 1);
    CU_ASSERT_FATAL(msg != NULL);
    static const char head[] =
        "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{\"p\":\"";
    memset(msg, 'x', big);
    memcpy(msg, head, sizeof head - 1);
    memcpy(msg + big - 3, "\"}}", 3);
    msg[big] = '\0';
    expect_error_and_close(msg, big + 1, INVALID_MESSAGE, "a message of 1 MiB");
    /* And 1 MiB without any NUL. */
    expect_error_and_close(msg, big, INVALID_MESSAGE, "1 MiB without a NUL");
    free(msg);

    long rss = td_rss_kib(g_d.pid);
    if (rss > g_base_rss + 8192)
        fprintf(stderr, "\n    the daemon grew from %ld to %ld KiB\n", g_base_rss, rss);
    CU_ASSERT(rss <= g_base_rss + 8192);
    end();
}

/* ---- Partial messages ---------------------------------------------------------- */

static void test_partial_message_then_close(void)
{
    begin();
    static const char *const parts[] = {
        "{",
        "{\"method\":\"io.mmsrvd.ListRe",
        "{\"method\":\"io.mmsrvd.CreateRegion\",\"parameters\":{\"name\":\"p\",\"kind\":\"heap\"",
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int fd = connect_or_fail();
        CU_ASSERT_EQUAL(td_send(fd, parts[i], strlen(parts[i])), 0);
        /* Held open: the others are served meanwhile, and this one gets
         * nothing. */
        CU_ASSERT(it_served(&g_d));
        char *text = td_recv(fd, 100, NULL);
        CU_ASSERT_PTR_NULL(text);
        free(text);
        close(fd);
        check_no_leak(parts[i]);
    }
    /* Half a message, then the writing side shut: the daemon closes. */
    int fd = connect_or_fail();
    CU_ASSERT_EQUAL(td_send(fd, parts[1], strlen(parts[1])), 0);
    shutdown(fd, SHUT_WR);
    CU_ASSERT(td_wait_closed(fd, IT_WAIT_MS));
    close(fd);
    /* A whole call then the shut: it is answered before the close. */
    fd = connect_or_fail();
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
    CU_ASSERT_EQUAL(td_send(fd, call, sizeof call), 0);
    shutdown(fd, SHUT_WR);
    char *text = td_recv(fd, IT_CALL_MS, NULL);
    json_t *reply = it_parse(text);
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
    free(text);
    CU_ASSERT(td_wait_closed(fd, IT_WAIT_MS));
    close(fd);
    /* A large part, 60 KiB, then close. */
    fd = connect_or_fail();
    char *big = padded_call(60 * 1024);
    CU_ASSERT_EQUAL(td_send(fd, big, 60 * 1024), 0);
    free(big);
    CU_ASSERT(it_served(&g_d));
    close(fd);
    end();
}

/* ---- Many clients ------------------------------------------------------------------ */

#define NCONN 1000

static void test_thousand_connections(void)
{
    /* The daemon gets systemd's default soft limit of descriptors: it must
     * serve 1000 clients within it (or raise it itself). */
    struct rlimit saved, low;
    CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    low = saved;
    if (low.rlim_cur > 1024)
        low.rlim_cur = 1024;
    setrlimit(RLIMIT_NOFILE, &low);
    begin();
    struct rlimit high = saved;
    if (high.rlim_cur < NCONN + 256)
        high.rlim_cur = high.rlim_max;
    setrlimit(RLIMIT_NOFILE, &high);

    static int fds[NCONN];
    int opened = 0;
    uint64_t t0 = tu_now_ms();
    for (; opened < NCONN; opened++) {
        fds[opened] = td_connect(&g_d);
        if (fds[opened] < 0)
            break;
    }
    if (opened != NCONN)
        fprintf(stderr, "\n    connection %d failed: %s\n", opened, strerror(errno));
    CU_ASSERT_EQUAL(opened, NCONN);
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
    int sent = 0;
    for (int i = 0; i < opened; i++)
        sent += td_send(fds[i], call, sizeof call) == 0;
    CU_ASSERT_EQUAL(sent, opened);
    /* While all are open, it still serves others. */
    CU_ASSERT(it_served(&g_d));
    int answered = 0;
    for (int i = 0; i < opened; i++) {
        int left = (int)(30000 - (int64_t)(tu_now_ms() - t0));
        char *text = td_recv(fds[i], left > 0 ? left : 1, NULL);
        json_t *reply = it_parse(text);
        if (reply != NULL && it_error(reply) == NULL && it_param(reply, "vendor") != NULL)
            answered++;
        json_decref(reply);
        free(text);
    }
    if (answered != opened)
        fprintf(stderr, "\n    %d of %d clients answered\n", answered, opened);
    CU_ASSERT_EQUAL(answered, opened);
    printf("\n    %d connections answered in %llu ms ", answered,
           (unsigned long long)(tu_now_ms() - t0));
    /* All answered and still open: all held by the daemon at once. */
    int held = td_count_fds(g_d.pid);
    if (held < g_base_fds + opened)
        fprintf(stderr, "\n    the daemon holds %d descriptors, %d + %d expected\n", held,
                g_base_fds, opened);
    CU_ASSERT(held >= g_base_fds + opened);
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    end();
    setrlimit(RLIMIT_NOFILE, &saved);
}

/* A client that floods calls and never reads: the daemon's memory stays
 * bounded, the others are served, promptly, and the daemon closes the
 * flooder once its replies have not moved for stall_timeout_ms. */
static void test_client_never_reads(void)
{
    begin_with("{ \"segment_size\": 67108864, \"stall_timeout_ms\": 1000 }\n");
    int flood = connect_or_fail();
    int fl = fcntl(flood, F_GETFL);
    fcntl(flood, F_SETFL, fl | O_NONBLOCK);
    /* The largest reply there is, to grow an unbounded queue fast. */
    static const char call[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{\"interface\":\"io.mmsrvd\"}}";
    uint64_t sent = 0, t0 = tu_now_ms(), next_check = t0;
    uint64_t worst_ms = 0;
    long worst_rss = g_base_rss;
    bool closed = false;
    while (tu_now_ms() - t0 < 5000) {
        ssize_t k = send(flood, call, sizeof call, MSG_NOSIGNAL);
        if (k == (ssize_t)sizeof call) {
            sent++;
        } else if (k > 0) {
            /* the rest of this call, blocking at most briefly */
            struct pollfd p = {.fd = flood, .events = POLLOUT};
            poll(&p, 1, 100);
            ssize_t r = send(flood, call + k, sizeof call - (size_t)k, MSG_NOSIGNAL);
            (void)r;
        } else if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            closed = true;
            break;
        } else {
            struct pollfd p = {.fd = flood, .events = POLLOUT};
            poll(&p, 1, 20);
        }
        if (tu_now_ms() >= next_check) {
            uint64_t c0 = tu_now_ms();
            CU_ASSERT(it_served(&g_d));
            uint64_t took = tu_now_ms() - c0;
            worst_ms = took > worst_ms ? took : worst_ms;
            long rss = td_rss_kib(g_d.pid);
            worst_rss = rss > worst_rss ? rss : worst_rss;
            next_check = tu_now_ms() + 200;
        }
    }
    printf("\n    flooder sent %llu calls (%s); others served in %llu ms at worst; "
           "daemon RSS %ld -> %ld KiB at most ",
           (unsigned long long)sent, closed ? "then the daemon closed it" : "never closed",
           (unsigned long long)worst_ms, g_base_rss, worst_rss);
    CU_ASSERT(sent > 0);
    CU_ASSERT(closed);
    CU_ASSERT(worst_ms < 2000);
    CU_ASSERT(worst_rss <= g_base_rss + 16384);
    close(flood);
    end();
}

/* ---- Descriptors and framing ---------------------------------------------------------- */

/* Descriptors sent to the daemon are not kept. */
static void test_descriptors_sent_to_daemon(void)
{
    begin();
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    int mem = tu_shm_create(4096);
    CU_ASSERT_FATAL(mem >= 0);
    int send_fds[TD_MAX_RECV_FDS];
    for (int i = 0; i < TD_MAX_RECV_FDS; i++)
        send_fds[i] = i % 3 == 0 ? p[0] : i % 3 == 1 ? p[1] : mem;
    static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
    for (int round = 0; round < 3; round++) {
        int fd = connect_or_fail();
        size_t n = round == 0 ? 1 : round == 1 ? 3 : TD_MAX_RECV_FDS;
        CU_ASSERT_EQUAL(td_send_fds(fd, call, sizeof call, send_fds, n), 0);
        /* An answer (a result or an error) or a close: never a hang. */
        bool closed = false;
        char *text = td_recv(fd, IT_CALL_MS, &closed);
        CU_ASSERT(text != NULL || closed);
        free(text);
        close(fd);
        check_no_leak("descriptors sent to the daemon");
    }
    /* The pipe has no other reader or writer left in the daemon: closing
     * ours gives EOF at once. */
    close(p[1]);
    char b;
    CU_ASSERT_EQUAL(read(p[0], &b, 1), 0);
    close(p[0]);
    close(mem);
    end();
}

/* Several calls in one write are answered in order; a oneway call is not
 * answered at all. */
static void test_pipelined_calls(void)
{
    begin();
    int fd = connect_or_fail();
    static const char calls[] = "{\"method\":\"org.varlink.service.GetInfo\"}\0"
                                "{\"method\":\"io.mmsrvd.ListRegions\"}\0"
                                "{\"method\":\"io.mmsrvd.Nope\"}\0"
                                "{\"method\":\"io.mmsrvd.ListRegions\",\"oneway\":true}\0"
                                "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                                "\"parameters\":{\"interface\":\"io.mmsrvd\"}}";
    CU_ASSERT_EQUAL(td_send(fd, calls, sizeof calls), 0);
    json_t *r[4];
    for (int i = 0; i < 4; i++) {
        char *text = td_recv(fd, IT_CALL_MS, NULL);
        r[i] = it_parse(text);
        free(text);
    }
    CU_ASSERT(it_is_result(r[0]) && it_param(r[0], "interfaces") != NULL);
    CU_ASSERT(it_is_result(r[1]) && it_param(r[1], "regions") != NULL);
    CU_ASSERT(it_is_error(r[2], METHOD_NOT_FOUND, NULL, NULL));
    CU_ASSERT(it_is_result(r[3]) && it_param(r[3], "description") != NULL);
    for (int i = 0; i < 4; i++)
        json_decref(r[i]);
    char *extra = td_recv(fd, 200, NULL);
    CU_ASSERT_PTR_NULL(extra);
    free(extra);
    close(fd);
    end();
}

/* ---- Scribbled shared memory ---------------------------------------------- */

/* A client (a forked process) creates a heap and an IOB region, writes a
 * pattern over the first 16 KiB of each (the regions' headers, and in them
 * the locks mmsrvd takes for stats and for reclaim), asks for their stats
 * and exits, so that the daemon reclaims what it owned there.  The daemon
 * answers each call, stays up, serves others, and destroys both regions.
 * Patterns: zeros, ones, the int 0xc0 everywhere (the type field of a glibc
 * mutex that means priority-protect: when the locks were pthread mutexes,
 * glibc aborted mmsrvd on it), and seeded random bytes. */
#define SCRIBBLE_BYTES 16384
#define SCRIBBLE_HEAP  "scribbled-heap"
#define SCRIBBLE_POOL  "scribbled-pool"
#define PATTERN_INT_C0 0x100
#define PATTERN_RANDOM 0x101

static void scribble(void *base, size_t size, int pattern)
{
    size_t n = size < SCRIBBLE_BYTES ? size : SCRIBBLE_BYTES;
    if (pattern == PATTERN_INT_C0) {
        for (size_t i = 0; i + sizeof(int) <= n; i += sizeof(int)) {
            int v = 0xc0;
            memcpy((char *)base + i, &v, sizeof v);
        }
    } else if (pattern == PATTERN_RANDOM) {
        tu_pattern_fill(base, n, 0x5c81bb1e);
    } else {
        memset(base, pattern, n);
    }
}

/* The child: 0 when every call got an answer (a result or a named error). */
static int scribbler(void *arg, int rd, int wr)
{
    (void)rd, (void)wr;
    int pattern = *(const int *)arg;
    struct mmsrv_client *c;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return 1;
    struct mmsrv_channel_spec ch[] = {{"ch", 8}};
    struct mmsrv_region_spec heap = {.name = SCRIBBLE_HEAP,
                                     .kind = MMSRV_HEAP,
                                     .size = 1u << 20,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    struct mmsrv_region_spec pool = {.name = SCRIBBLE_POOL,
                                     .kind = MMSRV_IOB,
                                     .bufsize = 256,
                                     .count = 64,
                                     .channels = ch,
                                     .nchannels = 1,
                                     .uid = -1,
                                     .gid = -1,
                                     .mode = -1};
    struct mmsrv_region *rh, *rp;
    if (mmsrv_create(c, &heap, NULL) != 0 || mmsrv_create(c, &pool, NULL) != 0 ||
        mmsrv_attach(c, SCRIBBLE_HEAP, 0, &rh) != 0 || mmsrv_attach(c, SCRIBBLE_POOL, 0, &rp) != 0)
        return 2;
    /* something for the reclaim to find: a block and a buffer */
    if (mm_malloc(rh->heap, 100) == NULL || iob_tryalloc(rp->pool, false) == NULL)
        return 3;
    scribble(rh->base, rh->size, pattern);
    scribble(rp->base, rp->size, pattern);
    struct mmsrv_stats st;
    int a = mmsrv_stats(c, SCRIBBLE_HEAP, &st), b = mmsrv_stats(c, SCRIBBLE_POOL, &st);
    if (a == -ECONNRESET || a == -EPIPE || b == -ECONNRESET || b == -EPIPE)
        return 4; /* the daemon went away */
    return 0;     /* exits attached, holding the block and the buffer */
}

static void test_scribbled_region_memory(void)
{
    begin();
    static const int patterns[] = {0x00, 0xff, PATTERN_INT_C0, PATTERN_RANDOM};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        struct it_child child;
        CU_ASSERT_EQUAL_FATAL(it_spawn(&child, scribbler, (void *)&patterns[i]), 0);
        int status = it_finish(&child, IT_WAIT_MS);
        if (!tu_exited_ok(status))
            fprintf(stderr, "\n    pattern %#x: the scribbler ended with status %#x\n", patterns[i],
                    status);
        CU_ASSERT(tu_exited_ok(status));
        CU_ASSERT(it_served(&g_d));
        struct mmsrv_client *c;
        CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
        CU_ASSERT_EQUAL(mmsrv_destroy(c, SCRIBBLE_HEAP), 0);
        CU_ASSERT_EQUAL(mmsrv_destroy(c, SCRIBBLE_POOL), 0);
        mmsrv_disconnect(c);
    }
    end();
}

/* A connection beyond max_clients is told why (ResourceUnavailable naming
 * the connections), not reset; once a client leaves, the next is served. */
static int served(void *arg)
{
    (void)arg;
    return it_served(&g_d);
}

static void test_max_clients_refused_by_name(void)
{
    begin_with("{ \"max_clients\": 2 }\n");
    struct mmsrv_client *c[3];
    struct mmsrv_region_info *list;
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c[i]), 0);
        CU_ASSERT_FATAL(mmsrv_list(c[i], &list) >= 0);
        free(list);
    }
    for (int round = 0; round < 3; round++) {
        CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c[2]), 0);
        int rc = mmsrv_list(c[2], &list);
        const char *name = mmsrv_error_name();
        if (rc != -EAGAIN)
            fprintf(stderr, "\n    third client: %d %s\n", rc, name != NULL ? name : "");
        CU_ASSERT_EQUAL(rc, -EAGAIN);
        CU_ASSERT(name != NULL && strcmp(name, "io.mmsrvd.ResourceUnavailable") == 0);
        mmsrv_disconnect(c[2]);
    }
    mmsrv_disconnect(c[0]);
    CU_ASSERT(tu_wait_until(served, NULL, IT_WAIT_MS));
    mmsrv_disconnect(c[1]);
    end();
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_invalid_json),
        TU_TEST(test_not_an_object),
        TU_TEST(test_unknown_method_and_interface),
        TU_TEST(test_missing_parameters),
        TU_TEST(test_wrong_types),
        TU_TEST(test_bad_names),
        TU_TEST(test_named_errors),
        TU_TEST(test_message_size_limits),
        TU_TEST(test_partial_message_then_close),
        TU_TEST(test_thousand_connections),
        TU_TEST(test_client_never_reads),
        TU_TEST(test_descriptors_sent_to_daemon),
        TU_TEST(test_pipelined_calls),
        TU_TEST(test_scribbled_region_memory),
        TU_TEST(test_max_clients_refused_by_name),
        TU_END,
    };
    return tu_main("bad_input", tests);
}
