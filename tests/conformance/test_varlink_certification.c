/*
 * test_varlink_certification.c: our Varlink is Varlink as others speak it.
 *
 * mmsrvd-certification is mmsrvd with org.varlink.certification added
 * (daemon/certification.c).  A third-party client, Debian's
 * varlink-go-certification, runs its whole sequence against it: typed
 * values both ways, a call without parameters, a "more" call answered by a
 * stream of replies, a "oneway" call answered by nothing.  That client
 * exits 0 even when a step fails (it prints "TestNN() failed" and stops),
 * so the test reads its output: every step must print, End must say
 * 'true'.  The daemon must be up afterwards with its descriptors back to
 * where they were.
 *
 * The Go client only walks the happy path, so the error answers of the
 * certification service (ClientIdError, CertificationError, the session
 * limits) are driven here with raw calls.  And the interface descriptions
 * the daemon serves must be the files in proto/, byte for byte, and parse
 * with a third-party parser (varlink-go-interface-generator).
 *
 * $MMSRVD names mmsrvd-certification, $VARLINK_CERT_CLIENT the client,
 * $VARLINK_GENERATOR the parser, $MMSRV_PROTO_DIR the source's proto/.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "itest.h"
#include "test_util.h"

#define CERT      "org.varlink.certification"
#define CLIENT_MS 20000
#define SETTLE_MS 5000
/* The daemon's limits on certification sessions (daemon/certification.c). */
#define MAX_SESSIONS 64
#define MAX_PER_CONN 4

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL)
        fprintf(stderr, "$%s is not set (run through meson test)\n", name);
    return v;
}

/* Run argv with its stdout and stderr into a pipe: the child's pid (-1 on
 * error) and the pipe's read end in *out_fd. */
static pid_t spawn_capture(const char *const *argv, int *out_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Read what the child wrote into out (NUL-terminated) and wait for it, at
 * most CLIENT_MS each: its wait status, or -1 on timeout (it is killed). */
static int finish_capture(pid_t pid, int fd, char *out, size_t cap)
{
    long n = tu_read_full(fd, out, cap - 1, CLIENT_MS);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return tu_wait_child(pid, CLIENT_MS);
}

/* ---- Raw calls ----------------------------------------------------------- */

/* A call that must be answered: its reply, or NULL after a failed
 * assertion. */
static json_t *call_json(int fd, const char *text)
{
    json_t *r = it_call(fd, text);
    CU_ASSERT_PTR_NOT_NULL(r);
    if (r == NULL)
        fprintf(stderr, "no reply to %s\n", text);
    return r;
}

/* Start a session on fd: its client_id in id, or "" after a failed
 * assertion. */
static void start_session(int fd, char *id, size_t cap)
{
    json_t *r = call_json(fd, "{\"method\": \"" CERT ".Start\"}");
    CU_ASSERT_TRUE(it_is_result(r));
    snprintf(id, cap, "%s", it_param_str(r, "client_id"));
    CU_ASSERT_EQUAL(strlen(id), 32);
    json_decref(r);
}

/* Call a step of session id with more_params (JSON members, or "") besides
 * client_id. */
static json_t *call_step(int fd, const char *method, const char *id, const char *more_params)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"method\": \"" CERT ".%s\", \"parameters\": {\"client_id\": \"%s\"%s%s}}", method,
             id, more_params[0] != '\0' ? ", " : "", more_params);
    return call_json(fd, text);
}

/* For tu_wait_until: a Start on *(int *)arg is accepted. */
static int start_accepted(void *arg)
{
    json_t *r = it_call(*(int *)arg, "{\"method\": \"" CERT ".Start\"}");
    int ok = r != NULL && it_error(r) == NULL;
    json_decref(r);
    return ok;
}

/*
 * The daemon's descriptors at rest, counted while one connection of ours is
 * open and answered (one descriptor in the daemon), so the daemon is past
 * its start-up.  Its notify thread may still hold the socket that sent
 * READY=1 for a moment, so the baseline can be one high: a leak shows as
 * more than the baseline, and every test below opens at least two
 * connections, so a descriptor left per connection always does.
 */
static int fd_baseline(const struct td_daemon *d)
{
    int fd = td_connect(d);
    CU_ASSERT_FATAL(fd >= 0);
    json_t *r = it_call(fd, "{\"method\": \"org.varlink.service.GetInfo\"}");
    CU_ASSERT_TRUE(it_is_result(r));
    json_decref(r);
    int n = td_count_fds(d->pid) - 1;
    close(fd);
    return n;
}

/* The daemon serves, and holds no more descriptors than at baseline. */
static void assert_settled(const struct td_daemon *d, int baseline)
{
    CU_ASSERT_TRUE(it_served(d));
    int n = td_wait_fd_count(d->pid, baseline, SETTLE_MS);
    CU_ASSERT_TRUE(n >= 0 && n <= baseline);
    if (n > baseline)
        fprintf(stderr, "daemon descriptors: %d, baseline %d\n", n, baseline);
}

/* ---- The third-party client ------------------------------------------------ */

/* What the Go client prints, in order, when every step passed. */
static const char *const client_says[] = {
    "Start: '",
    "Test01: 'true'",
    "Test02: '1'",
    "Test03: '1'",
    "Test04: 'ping'",
    "Test05: 'false'",
    "Test06: '{false 2 3.141592653589793 a lot of string}'",
    "Test07: 'map[bar:Bar foo:Foo]'",
    "Test08: 'map[one:{} three:{} two:{}]'",
    "Test09: '",
    "Receive: 'Reply number 1'",
    "Receive: 'Reply number 10'",
    ("Test10: '[Reply number 1 Reply number 2 Reply number 3 Reply number 4 Reply number 5 "
     "Reply number 6 Reply number 7 Reply number 8 Reply number 9 Reply number 10]'"),
    "Test11: ''",
    "End: 'true'",
};

static void check_client_output(const char *out, int status)
{
    const char *at = out;
    bool ok = tu_exited_ok(status) && strstr(out, "failed") == NULL;

    for (size_t i = 0; ok && i < sizeof client_says / sizeof client_says[0]; i++) {
        const char *found = strstr(at, client_says[i]);
        if (found == NULL) {
            fprintf(stderr, "missing, in order: %s\n", client_says[i]);
            ok = false;
        } else {
            at = found + strlen(client_says[i]);
        }
    }
    CU_ASSERT_TRUE(ok);
    if (!ok)
        fprintf(stderr, "varlink-go-certification (status 0x%x) said:\n%s\n", status, out);
}

static void run_clients(const struct td_daemon *d, size_t n)
{
    const char *client = env_or_fail("VARLINK_CERT_CLIENT");
    const char *argv[] = {client, "-client", "-varlink", d->address, NULL};
    pid_t pids[8];
    int fds[8];
    static char out[1 << 16];

    CU_ASSERT_FATAL(client != NULL && n <= 8);
    for (size_t i = 0; i < n; i++) {
        pids[i] = spawn_capture(argv, &fds[i]);
        CU_ASSERT_FATAL(pids[i] > 0);
    }
    for (size_t i = 0; i < n; i++)
        check_client_output(out, finish_capture(pids[i], fds[i], out, sizeof out));
}

static void test_go_client_passes(void)
{
    struct td_daemon d;
    IT_START(&d, NULL);
    int baseline = fd_baseline(&d);

    run_clients(&d, 1);
    assert_settled(&d, baseline);
    /* again, to show the session was dropped and nothing carries over */
    run_clients(&d, 1);
    assert_settled(&d, baseline);

    it_stop(&d);
}

/* Clients at once: sessions are separate, streams do not mix. */
static void test_go_clients_concurrent(void)
{
    struct td_daemon d;
    IT_START(&d, NULL);
    int baseline = fd_baseline(&d);

    run_clients(&d, 6);
    assert_settled(&d, baseline);

    it_stop(&d);
}

/* ---- The descriptions ---------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static const size_t cap = 1 << 20;
    char *buf = malloc(cap);
    size_t n = buf != NULL ? fread(buf, 1, cap - 1, f) : 0;
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

static void check_description(const struct td_daemon *d, int fd, const char *iface)
{
    char path[512];
    char call[256];
    const char *dir = env_or_fail("MMSRV_PROTO_DIR");
    CU_ASSERT_FATAL(dir != NULL);
    snprintf(path, sizeof path, "%s/%s.varlink", dir, iface);
    char *file = read_file(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);

    snprintf(call, sizeof call,
             "{\"method\": \"org.varlink.service.GetInterfaceDescription\","
             " \"parameters\": {\"interface\": \"%s\"}}",
             iface);
    json_t *r = call_json(fd, call);
    const char *text = json_string_value(it_param(r, "description"));
    CU_ASSERT_PTR_NOT_NULL(text);
    CU_ASSERT_TRUE(text != NULL && strcmp(text, file) == 0);

    /* The text served parses with another implementation's parser, which
     * writes Go code for it next to the file. */
    if (text != NULL) {
        const char *gen = env_or_fail("VARLINK_GENERATOR");
        char file_path[256];
        char out[4096];
        int out_fd;
        snprintf(file_path, sizeof file_path, "%s/%s.varlink", d->dir, iface);
        FILE *f = fopen(file_path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs(text, f);
        fclose(f);
        const char *argv[] = {gen, file_path, NULL};
        pid_t pid = spawn_capture(argv, &out_fd);
        CU_ASSERT_FATAL(pid > 0);
        int status = finish_capture(pid, out_fd, out, sizeof out);
        CU_ASSERT_TRUE(tu_exited_ok(status));
        if (!tu_exited_ok(status))
            fprintf(stderr, "%s does not parse %s:\n%s\n", gen, iface, out);
    }
    json_decref(r);
    free(file);
}

static void test_descriptions(void)
{
    struct td_daemon d;
    IT_START(&d, NULL);
    int fd = td_connect(&d);
    CU_ASSERT_FATAL(fd >= 0);

    /* GetInfo lists both interfaces. */
    json_t *info = call_json(fd, "{\"method\": \"org.varlink.service.GetInfo\"}");
    json_t *ifaces = it_param(info, "interfaces");
    bool mmsrvd = false, cert = false;
    size_t i;
    json_t *v;
    json_array_foreach(ifaces, i, v)
    {
        mmsrvd = mmsrvd || (json_is_string(v) && strcmp(json_string_value(v), "io.mmsrvd") == 0);
        cert = cert || (json_is_string(v) && strcmp(json_string_value(v), CERT) == 0);
    }
    CU_ASSERT_TRUE(mmsrvd);
    CU_ASSERT_TRUE(cert);
    json_decref(info);

    check_description(&d, fd, "io.mmsrvd");
    check_description(&d, fd, CERT);

    close(fd);
    it_stop(&d);
}

/* ---- What the Go client never tries -------------------------------------- */

static void test_certification_errors(void)
{
    struct td_daemon d;
    char id[64];
    json_t *r;
    IT_START(&d, NULL);
    int baseline = fd_baseline(&d);
    int fd = td_connect(&d);
    CU_ASSERT_FATAL(fd >= 0);

    /* An id no Start gave. */
    r = call_step(fd, "Test01", "0123456789abcdef0123456789abcdef", "");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".ClientIdError", NULL, NULL));
    json_decref(r);

    /* No client_id: the dispatcher's parameter check names it. */
    r = call_json(fd, "{\"method\": \"" CERT ".Test01\", \"parameters\": {}}");
    CU_ASSERT_TRUE(it_is_error(r, "org.varlink.service.InvalidParameter", NULL, NULL));
    CU_ASSERT_STRING_EQUAL(json_string_value(it_param(r, "parameter")), "client_id");
    json_decref(r);

    /* Out of order: wants names the step due, got the one called; the
     * session is over. */
    start_session(fd, id, sizeof id);
    r = call_step(fd, "Test02", id, "\"bool\": true");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    json_t *p = json_object_get(r, "parameters");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(p, "wants"), "method")), CERT ".Test01");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(p, "got"), "method")),
                           CERT ".Test02");
    json_decref(r);
    r = call_step(fd, "Test01", id, "");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".ClientIdError", NULL, NULL));
    json_decref(r);

    /* A wrong value: wants and got are the whole calls. */
    start_session(fd, id, sizeof id);
    r = call_step(fd, "Test01", id, "");
    CU_ASSERT_TRUE(it_is_result(r));
    json_decref(r);
    r = call_step(fd, "Test02", id, "\"bool\": false");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    p = json_object_get(r, "parameters");
    CU_ASSERT_TRUE(json_is_true(
        json_object_get(json_object_get(json_object_get(p, "wants"), "parameters"), "bool")));
    CU_ASSERT_TRUE(json_is_false(
        json_object_get(json_object_get(json_object_get(p, "got"), "parameters"), "bool")));
    json_decref(r);

    /* A float may come as an integer (Varlink's float is a JSON number),
     * an int may not come as a real. */
    start_session(fd, id, sizeof id);
    r = call_step(fd, "Test01", id, "");
    json_decref(r);
    r = call_step(fd, "Test02", id, "\"bool\": true");
    json_decref(r);
    r = call_step(fd, "Test03", id, "\"int\": 1.0");
    CU_ASSERT_TRUE(it_is_error(r, "org.varlink.service.InvalidParameter", NULL, NULL));
    json_decref(r);
    r = call_step(fd, "Test03", id, "\"int\": 1");
    CU_ASSERT_TRUE(it_is_result(r));
    json_decref(r);
    r = call_step(fd, "Test04", id, "\"float\": 1");
    CU_ASSERT_TRUE(it_is_result(r));
    json_decref(r);
    r = call_step(fd, "End", id, "");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    json_decref(r);

    /* Test11 must be oneway and gets no answer; its failure waits for
     * End.  Walk a session up to Test10, called without "more". */
    start_session(fd, id, sizeof id);
    static const char *const walk[][2] = {
        {"Test01", ""},
        {"Test02", "\"bool\": true"},
        {"Test03", "\"int\": 1"},
        {"Test04", "\"float\": 1.0"},
        {"Test05", "\"string\": \"ping\""},
        {"Test06",
         "\"bool\": false, \"int\": 2, \"float\": 3.141592653589793, \"string\": \"a lot of "
         "string\""},
        {"Test07",
         "\"struct\": {\"bool\": false, \"int\": 2, \"float\": 3.141592653589793, \"string\": "
         "\"a lot of string\"}"},
        {"Test08", "\"map\": {\"bar\": \"Bar\", \"foo\": \"Foo\"}"},
        {"Test09", "\"set\": {\"three\": {}, \"two\": {}, \"one\": {}}"},
    };
    json_t *mytype = NULL;
    for (size_t k = 0; k < sizeof walk / sizeof walk[0]; k++) {
        r = call_step(fd, walk[k][0], id, walk[k][1]);
        CU_ASSERT_TRUE(it_is_result(r));
        if (k + 1 == sizeof walk / sizeof walk[0])
            mytype = json_incref(it_param(r, "mytype"));
        json_decref(r);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(mytype);
    char *mytype_text = json_dumps(mytype, JSON_COMPACT);
    char params[2048];
    snprintf(params, sizeof params, "\"mytype\": %s", mytype_text);
    free(mytype_text);
    json_decref(mytype);
    r = call_step(fd, "Test10", id, params);
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    CU_ASSERT_TRUE(json_is_true(json_object_get(it_param(r, "wants"), "more")));
    json_decref(r);

    /* Again, with "more" this time, then a wrong oneway Test11. */
    start_session(fd, id, sizeof id);
    for (size_t k = 0; k < sizeof walk / sizeof walk[0]; k++)
        json_decref(call_step(fd, walk[k][0], id, walk[k][1]));
    char text[4096];
    snprintf(text, sizeof text,
             "{\"method\": \"" CERT ".Test10\", \"parameters\": {\"client_id\": \"%s\", %s},"
             " \"more\": true}",
             id, params);
    CU_ASSERT_FATAL(td_send(fd, text, strlen(text) + 1) == 0);
    for (int k = 1; k <= 10; k++) {
        char *m = td_recv(fd, IT_CALL_MS, NULL);
        json_t *j = m != NULL ? json_loads(m, 0, NULL) : NULL;
        char want[32];
        snprintf(want, sizeof want, "Reply number %d", k);
        CU_ASSERT_STRING_EQUAL(
            json_string_value(json_object_get(json_object_get(j, "parameters"), "string")), want);
        CU_ASSERT_EQUAL(json_is_true(json_object_get(j, "continues")), k < 10);
        json_decref(j);
        free(m);
    }
    snprintf(text, sizeof text,
             "{\"method\": \"" CERT ".Test11\", \"parameters\": {\"client_id\": \"%s\","
             " \"last_more_replies\": [\"Reply number 1\"]}, \"oneway\": true}",
             id);
    CU_ASSERT_FATAL(td_send(fd, text, strlen(text) + 1) == 0);
    r = call_step(fd, "End", id, ""); /* the next message is End's answer */
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    p = json_object_get(r, "parameters");
    CU_ASSERT_EQUAL(
        json_array_size(json_object_get(json_object_get(json_object_get(p, "got"), "parameters"),
                                        "last_more_replies")),
        1);
    CU_ASSERT_TRUE(json_is_true(json_object_get(json_object_get(p, "wants"), "oneway")));
    json_decref(r);

    /* Sessions are bounded per connection... */
    for (int k = 0; k < MAX_PER_CONN; k++)
        start_session(fd, id, sizeof id);
    r = call_json(fd, "{\"method\": \"" CERT ".Start\"}");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(it_param(r, "wants"), "sessions_at_most")),
                    MAX_PER_CONN);
    json_decref(r);
    close(fd);

    /* ...and in all; a connection's sessions go when it closes (the
     * daemon sees the close in its own time: wait for it). */
    int conns[MAX_SESSIONS / MAX_PER_CONN + 1];
    size_t nconns = sizeof conns / sizeof conns[0];
    for (size_t k = 0; k < nconns; k++) {
        conns[k] = td_connect(&d);
        CU_ASSERT_FATAL(conns[k] >= 0);
    }
    for (size_t k = 0; k + 1 < nconns; k++)
        for (int s = 0; s < MAX_PER_CONN; s++)
            CU_ASSERT_TRUE(tu_wait_until(start_accepted, &conns[k], SETTLE_MS));
    r = call_json(conns[nconns - 1], "{\"method\": \"" CERT ".Start\"}");
    CU_ASSERT_TRUE(it_is_error(r, CERT ".CertificationError", NULL, NULL));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(it_param(r, "wants"), "sessions_at_most")),
                    MAX_SESSIONS);
    json_decref(r);
    close(conns[0]);
    CU_ASSERT_TRUE(tu_wait_until(start_accepted, &conns[nconns - 1], SETTLE_MS));
    for (size_t k = 1; k < nconns; k++)
        close(conns[k]);

    assert_settled(&d, baseline);
    it_stop(&d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_go_client_passes),
        TU_TEST(test_go_clients_concurrent),
        TU_TEST(test_descriptions),
        TU_TEST(test_certification_errors),
        TU_END,
    };
    signal(SIGPIPE, SIG_IGN);
    return tu_main("varlink_certification", tests);
}
