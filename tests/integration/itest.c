/*
 * itest.c - helpers of the integration tests (see itest.h).
 */
#define _GNU_SOURCE
#include "itest.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

int it_child_failures;

const char it_default_config[] = "{ \"segment_size\": 67108864 }\n";

static unsigned it_failures_at_start;

static bool it_verbose(void)
{
    const char *v = getenv("MMSRV_TEST_VERBOSE");
    return v != NULL && *v != '\0' && *v != '0';
}

json_t *it_parse(const char *msg)
{
    if (msg == NULL)
        return NULL;
    json_error_t err;
    json_t *j = json_loads(msg, 0, &err);
    if (j == NULL)
        fprintf(stderr, "itest: reply is not JSON (%s): %.200s\n", err.text, msg);
    return j;
}

json_t *it_call(int fd, const char *call)
{
    char *msg = td_call(fd, call, IT_CALL_MS);
    if (it_verbose())
        fprintf(stderr, "itest: %.200s -> %.300s\n", call, msg != NULL ? msg : "(nothing)");
    json_t *j = it_parse(msg);
    free(msg);
    return j;
}

const char *it_error(const json_t *reply)
{
    return json_string_value(json_object_get(reply, "error"));
}

json_t *it_param(const json_t *reply, const char *key)
{
    return json_object_get(json_object_get(reply, "parameters"), key);
}

const char *it_param_str(const json_t *reply, const char *key)
{
    const char *s = json_string_value(it_param(reply, key));
    return s != NULL ? s : "";
}

static void it_show(const char *what, const json_t *reply)
{
    char *text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
    fprintf(stderr, "\n    expected %s, got %s\n", what, text != NULL ? text : "no reply");
    free(text);
}

bool it_is_error(const json_t *reply, const char *name, const char *param_key,
                 const char *param_value)
{
    const char *e = it_error(reply);
    bool ok = e != NULL && strcmp(e, name) == 0;
    if (ok && param_key != NULL)
        ok = strcmp(it_param_str(reply, param_key), param_value) == 0;
    if (!ok) {
        char what[256];
        snprintf(what, sizeof what, "%s%s%s%s%s", name, param_key != NULL ? " with " : "",
                 param_key != NULL ? param_key : "", param_key != NULL ? "=" : "",
                 param_key != NULL ? param_value : "");
        it_show(what, reply);
    }
    return ok;
}

bool it_is_result(const json_t *reply)
{
    bool ok = reply != NULL && it_error(reply) == NULL &&
              json_is_object(json_object_get(reply, "parameters"));
    if (!ok)
        it_show("a result", reply);
    return ok;
}

bool it_served(const struct td_daemon *d)
{
    int fd = td_connect(d);
    if (fd < 0) {
        fprintf(stderr, "\n    cannot connect to the daemon: %s\n", strerror(errno));
        return false;
    }
    json_t *info = it_call(fd, "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{}}");
    json_t *list = it_call(fd, "{\"method\":\"io.mmsrvd.ListRegions\",\"parameters\":{}}");
    bool ok = it_is_result(info) && json_is_array(it_param(info, "interfaces")) &&
              it_is_result(list) && json_is_array(it_param(list, "regions"));
    json_decref(info);
    json_decref(list);
    close(fd);
    return ok;
}

json_t *it_region_stats(const struct td_daemon *d, const char *name)
{
    int fd = td_connect(d);
    if (fd < 0)
        return NULL;
    json_t *call =
        json_pack("{s:s, s:{s:s}}", "method", "io.mmsrvd.RegionStats", "parameters", "name", name);
    char *text = json_dumps(call, JSON_COMPACT);
    json_t *reply = text != NULL ? it_call(fd, text) : NULL;
    free(text);
    json_decref(call);
    close(fd);
    if (reply != NULL && it_error(reply) != NULL) {
        it_show("RegionStats", reply);
        json_decref(reply);
        return NULL;
    }
    return reply;
}

long long it_int_at(const json_t *obj, const char *path, long long def)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = obj;
    for (char *save = NULL, *key = strtok_r(buf, ".", &save); key != NULL && cur != NULL;
         key = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, key);
    return json_is_integer(cur) ? (long long)json_integer_value(cur) : def;
}

int it_spawn(struct it_child *c, int (*fn)(void *arg, int rd, int wr), void *arg)
{
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(up, O_CLOEXEC) != 0) {
        close(down[0]);
        close(down[1]);
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    c->pid = fork();
    if (c->pid < 0)
        return -1;
    if (c->pid == 0) {
        /* A test that fails fatally leaves no client running behind it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(99);
        close(down[1]);
        close(up[0]);
        it_child_failures = 0;
        int rc = fn(arg, down[0], up[1]);
        if (rc == 0 && it_child_failures != 0)
            rc = 1;
        fflush(NULL);
        _exit(rc);
    }
    close(down[0]);
    close(up[1]);
    c->to = down[1];
    c->from = up[0];
    return 0;
}

int it_finish(struct it_child *c, int timeout_ms)
{
    if (c->to >= 0)
        close(c->to);
    if (c->from >= 0)
        close(c->from);
    c->to = c->from = -1;
    if (c->pid <= 0)
        return -1;
    int status = tu_wait_child(c->pid, timeout_ms);
    if (status == -1)
        fprintf(stderr, "\n    child %d did not finish in %d ms: killed\n", (int)c->pid,
                timeout_ms);
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "\n    child %d exited with %d\n", (int)c->pid, WEXITSTATUS(status));
    c->pid = 0;
    return status;
}

int it_put(int fd, uint64_t v)
{
    return write(fd, &v, sizeof v) == (ssize_t)sizeof v ? 0 : -1;
}

int it_get(int fd, uint64_t *v, int timeout_ms)
{
    return tu_read_full(fd, v, sizeof *v, timeout_ms) == (long)sizeof *v ? 0 : -1;
}

void *it_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int it_count_own_fds(void)
{
    struct rlimit rl;
    int max = 4096;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max)
        max = (int)rl.rlim_cur;
    int n = 0;
    for (int fd = 0; fd < max; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

int it_start(struct td_daemon *d, const char *config)
{
    it_failures_at_start = CU_get_number_of_failures();
    int rc = td_start(d, config != NULL ? config : it_default_config, NULL);
    if (rc != 0)
        fprintf(stderr, "\n    mmsrvd did not start ($MMSRVD=%s)\n",
                getenv("MMSRVD") != NULL ? getenv("MMSRVD") : "unset");
    return rc;
}

int it_start_activated(struct td_daemon *d, const char *config)
{
    it_failures_at_start = CU_get_number_of_failures();
    int rc = td_start_activated(d, config != NULL ? config : it_default_config, NULL);
    if (rc != 0)
        fprintf(stderr, "\n    mmsrvd did not start with a passed socket\n");
    return rc;
}

void it_stop(struct td_daemon *d)
{
    if (d->pid > 0) {
        int status = td_stop(d);
        bool clean = tu_exited_ok(status);
        if (!clean)
            fprintf(stderr, "\n    mmsrvd did not exit cleanly on SIGTERM: status %#x\n",
                    (unsigned)status);
        CU_ASSERT(clean);
    }
    if (CU_get_number_of_failures() != it_failures_at_start)
        td_print_log(d);
    td_cleanup(d);
}

int it_settled_fds(pid_t pid)
{
    uint64_t deadline = tu_now_ms() + 3000;
    int last = td_count_fds(pid), same = 0;
    while (same < 20 && tu_now_ms() < deadline) {
        usleep(10000);
        int n = td_count_fds(pid);
        same = n == last ? same + 1 : 0;
        last = n;
    }
    return last;
}

struct kill_target {
    const struct td_daemon *d;
    const char *name;
};

static int attach_until_killed(void *arg, int rd, int wr)
{
    const struct kill_target *t = arg;
    json_t *call =
        json_pack("{s:s, s:{s:s}}", "method", "io.mmsrvd.Attach", "parameters", "name", t->name);
    char *text = call != NULL ? json_dumps(call, JSON_COMPACT) : NULL;
    json_decref(call);
    int fd = td_connect(t->d);
    json_t *reply = fd >= 0 && text != NULL ? it_call(fd, text) : NULL;
    free(text);
    if (!it_is_result(reply))
        return 2;
    json_decref(reply);
    it_put(wr, 1);
    uint64_t go;
    it_get(rd, &go, 30000); /* killed here */
    return 0;
}

pid_t it_kill_attached(const struct td_daemon *d, const char *name)
{
    struct kill_target t = {d, name};
    struct it_child k;
    uint64_t ok;
    if (it_spawn(&k, attach_until_killed, &t) != 0) {
        CU_FAIL("fork");
        return -1;
    }
    bool attached = it_get(k.from, &ok, IT_WAIT_MS) == 0;
    pid_t pid = k.pid; /* it_finish forgets it */
    kill(pid, SIGKILL);
    int status = it_finish(&k, IT_WAIT_MS);
    bool killed = status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    CU_ASSERT(attached && killed);
    return attached && killed ? pid : -1;
}

bool it_log_has(const struct td_daemon *d, const char *text)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

struct log_wait {
    const struct td_daemon *d;
    const char *text;
};

static int log_wait_has(void *arg)
{
    const struct log_wait *w = arg;
    return it_log_has(w->d, w->text);
}

bool it_wait_log(const struct td_daemon *d, const char *text, int timeout_ms)
{
    struct log_wait w = {d, text};
    return tu_wait_until(log_wait_has, &w, timeout_ms);
}
