/*
 * test_config.c - mmsrvd's configuration: mistakes stop startup with a
 * message that names the file, the line or key, and what is wrong; regions
 * listed there exist once the daemon is ready; flags override the file;
 * SIGHUP rereads it, creates newly listed regions and leaves the others
 * (and their contents) alone, and a broken file on SIGHUP changes nothing.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The whole of a small file, in a static buffer. */
static const char *read_text(const char *path)
{
    static char buf[8192];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- Mistakes stop startup ------------------------------------------------ */

struct bad_config {
    const char *text;
    const char *where; /* what the message must name besides the file */
    const char *what;  /* and what it must say is wrong */
};

static const struct bad_config bad_configs[] = {
    {"{\n  \"segment_size\": \"64M\",\n  \"page_size\": 4096,\n}\n", ":4:", "invalid JSON"},
    {"{ \"segment_size\": \"64M\", \"colour\": 1 }", "colour", "unknown"},
    {"{ \"segment_size\": true }", "segment_size", "number"},
    {"{ \"page_size\": 1000 }", "page_size", "power of two"},
    {"[ 1, 2 ]", "", "object"},
    {"{ \"regions\": [ {\"name\": \"a\", \"kind\": \"heap\", \"size\": 4096},"
     " {\"name\": \"bad/name\", \"kind\": \"heap\", \"size\": 4096} ] }",
     "regions[1].name", "characters"},
    {"{ \"regions\": [ {\"name\": \"n\", \"kind\": \"iob\", \"bufsize\": 256, \"count\": 8,"
     " \"channels\": [ {\"name\": \"x\"} ] } ] }",
     "regions[0].channels", "depth"},
    {"{ \"regions\": [ {\"name\": \"k\", \"kind\": \"stack\", \"size\": 4096} ] }",
     "regions[0].kind", ""},
    /* each setting sound, the whole not */
    {"{ \"segment_size\": 0 }", "segment_size", "at least 4 pages"},
    {"{ \"segment_size\": \"4K\" }", "segment_size", "at least 4 pages"},
    {"{ \"segment_size\": \"8M\", \"regions\": [ {\"name\": \"huge\", \"kind\": \"heap\","
     " \"size\": \"9M\"} ] }",
     "regions[0].size", "larger than segment_size"},
    {"{ \"max_regions\": 1, \"regions\": [ {\"name\": \"a\", \"kind\": \"heap\", \"size\": 4096},"
     " {\"name\": \"b\", \"kind\": \"heap\", \"size\": 4096} ] }",
     "regions", "max_regions"},
    /* valid JSON, but the region cannot fit: startup stops all the same */
    {"{ \"segment_size\": \"8M\", \"regions\": [ {\"name\": \"huge\", \"kind\": \"heap\","
     " \"size\": \"64M\"} ] }",
     "huge", ""},
};

/* Run the daemon on config text; it must exit 1 within 10 s.  Returns what
 * it logged. */
static const char *run_bad(const char *dir, const char *text, int *status)
{
    char config[128], log[128], varlink[160];
    snprintf(config, sizeof config, "%s/bad.conf", dir);
    snprintf(log, sizeof log, "%s/bad.log", dir);
    snprintf(varlink, sizeof varlink, "--varlink=unix:%s/io.mmsrvd", dir);
    CU_ASSERT_EQUAL_FATAL(write_text(config, text), 0);
    unlink(log);

    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("LISTEN_FDS");
        const char *bin = getenv("MMSRVD");
        execl(bin, bin, "--config", config, varlink, (char *)NULL);
        _exit(127);
    }
    *status = tu_wait_child(pid, 10000);
    return read_text(log);
}

static void test_bad_configuration_stops_startup(void)
{
    char dir[] = "/tmp/mmsrv-config-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char config[128], sock[128];
    snprintf(config, sizeof config, "%s/bad.conf", dir);
    snprintf(sock, sizeof sock, "%s/io.mmsrvd", dir);

    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        const struct bad_config *b = &bad_configs[i];
        int status;
        const char *log = run_bad(dir, b->text, &status);
        bool exited_1 = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1;
        bool names_file = strstr(log, config) != NULL;
        bool names_where = strstr(log, b->where) != NULL;
        bool says_what = strstr(log, b->what) != NULL;
        bool one_line = strchr(log, '\n') == strrchr(log, '\n');
        bool priority = strncmp(log, "<3>", 3) == 0;
        if (!(exited_1 && names_file && names_where && says_what && one_line && priority))
            fprintf(stderr, "\n    config %zu (status 0x%x) logged: %s", i, status, log);
        CU_ASSERT(exited_1);
        CU_ASSERT(names_file);
        CU_ASSERT(names_where);
        CU_ASSERT(says_what);
        CU_ASSERT(one_line);
        CU_ASSERT(priority);
        /* nothing half started is left behind */
        CU_ASSERT(access(sock, F_OK) != 0);
    }
    /* a file that is not there */
    int status;
    char missing[160];
    snprintf(missing, sizeof missing, "--config=%s/none.conf", dir);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char log[128];
        snprintf(log, sizeof log, "%s/bad.log", dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        const char *bin = getenv("MMSRVD");
        execl(bin, bin, missing, "--varlink=unix:/nonexistent/dir/sock", (char *)NULL);
        _exit(127);
    }
    status = tu_wait_child(pid, 10000);
    CU_ASSERT(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char log[128];
    snprintf(log, sizeof log, "%s/bad.log", dir);
    CU_ASSERT(strstr(read_text(log), "none.conf") != NULL);

    unlink(config);
    unlink(log);
    rmdir(dir);
}

/* ---- Regions from the configuration ----------------------------------------- */

static const char regions_config[] =
    "{\n"
    "  \"segment_size\": \"64M\",\n"
    "  \"regions\": [\n"
    "    { \"name\": \"cfg-heap\", \"kind\": \"heap\", \"size\": \"1M\", \"mode\": \"0640\" },\n"
    "    { \"name\": \"cfg-net\", \"kind\": \"iob\", \"bufsize\": 512, \"count\": 16,\n"
    "      \"channels\": [ { \"name\": \"rx\", \"depth\": 8 } ] }\n"
    "  ]\n"
    "}\n";

/* The region called name in a ListRegions reply, or NULL. */
static json_t *listed(json_t *reply, const char *name)
{
    json_t *regions = it_param(reply, "regions");
    size_t i;
    json_t *r;
    json_array_foreach(regions, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "name")), name) == 0 &&
            !json_is_true(json_object_get(r, "destroying")))
            return r;
    }
    return NULL;
}

static json_t *list_regions(const struct td_daemon *d)
{
    int fd = td_connect(d);
    if (fd < 0)
        return NULL;
    json_t *reply = it_call(fd, "{\"method\": \"io.mmsrvd.ListRegions\"}");
    close(fd);
    return reply;
}

static void test_regions_from_configuration(void)
{
    struct td_daemon d;
    IT_START(&d, regions_config);

    json_t *reply = list_regions(&d);
    CU_ASSERT_FATAL(it_is_result(reply));
    json_t *heap = listed(reply, "cfg-heap");
    json_t *net = listed(reply, "cfg-net");
    CU_ASSERT_FATAL(heap != NULL && net != NULL);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(heap, "kind")), "heap");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(heap, "mode")), 0640);
    CU_ASSERT(json_integer_value(json_object_get(heap, "size")) >= (1 << 20));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(net, "kind")), "iob");
    json_decref(reply);

    /* and they work: allocate in the heap, find the channel in the pool */
    struct mmsrv_client *c;
    struct mmsrv_region *h, *n;
    CU_ASSERT_FATAL(mmsrv_connect(d.address, &c) == 0);
    CU_ASSERT_FATAL(mmsrv_attach(c, "cfg-heap", 0, &h) == 0);
    CU_ASSERT_FATAL(mmsrv_attach(c, "cfg-net", 0, &n) == 0);
    void *p = mm_malloc(h->heap, 1000);
    CU_ASSERT(p != NULL);
    mm_free(h->heap, p);
    CU_ASSERT(iob_pool_bufsize(n->pool) >= 512);
    CU_ASSERT_EQUAL(iob_pool_count(n->pool), 16);
    CU_ASSERT(iob_channel_lookup(n->pool, "rx") >= 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, h), 0);
    CU_ASSERT_EQUAL(mmsrv_detach(c, n), 0);
    mmsrv_disconnect(c);
    it_stop(&d);
}

/* ---- Flags override the file ------------------------------------------------ */

static void test_flags_override_configuration(void)
{
    struct td_daemon d;
    static const char *const args[] = {"--segment-size=8M", NULL};
    CU_ASSERT_FATAL(td_start(&d, "{ \"segment_size\": \"64M\" }\n", args) == 0);

    int fd = td_connect(&d);
    CU_ASSERT_FATAL(fd >= 0);
    json_t *reply = it_call(fd, "{\"method\": \"io.mmsrvd.CreateRegion\", \"parameters\": "
                                "{\"name\": \"big\", \"kind\": \"heap\", \"size\": 16777216}}");
    CU_ASSERT(it_is_error(reply, "io.mmsrvd.NoSpace", NULL, NULL));
    json_decref(reply);
    reply = it_call(fd, "{\"method\": \"io.mmsrvd.CreateRegion\", \"parameters\": "
                        "{\"name\": \"small\", \"kind\": \"heap\", \"size\": 4194304}}");
    CU_ASSERT(it_is_result(reply));
    json_decref(reply);
    close(fd);
    it_stop(&d);
}

/* ---- SIGHUP ------------------------------------------------------------------ */

struct listed_wait {
    const struct td_daemon *d;
    const char *name;
};

static int region_listed(void *arg)
{
    struct listed_wait *w = arg;
    json_t *reply = list_regions(w->d);
    int found = reply != NULL && listed(reply, w->name) != NULL;
    json_decref(reply);
    return found;
}

static int log_says(void *arg)
{
    const struct td_daemon *d = arg;
    return strstr(read_text(d->log), "invalid JSON") != NULL;
}

static int log_says_reloaded(void *arg)
{
    const struct td_daemon *d = arg;
    return strstr(read_text(d->log), "1 regions created, 1 could not be") != NULL;
}

static void test_sighup_rereads_configuration(void)
{
    struct td_daemon d;
    IT_START(&d, "{ \"segment_size\": \"64M\", \"regions\": [ { \"name\": \"first\", "
                 "\"kind\": \"heap\", \"size\": \"1M\" } ] }\n");

    /* something in the first region that must survive the reload */
    struct mmsrv_client *c;
    struct mmsrv_region *first;
    CU_ASSERT_FATAL(mmsrv_connect(d.address, &c) == 0);
    CU_ASSERT_FATAL(mmsrv_attach(c, "first", 0, &first) == 0);
    char *p = mm_malloc(first->heap, 4096);
    CU_ASSERT_FATAL(p != NULL);
    tu_pattern_fill(p, 4096, 77);

    CU_ASSERT_EQUAL_FATAL(
        write_text(d.config,
                   "{ \"segment_size\": \"64M\", \"regions\": [\n"
                   "  { \"name\": \"first\", \"kind\": \"heap\", \"size\": \"1M\" },\n"
                   "  { \"name\": \"second\", \"kind\": \"iob\", \"bufsize\": 256, \"count\": 8 }\n"
                   "] }\n"),
        0);
    CU_ASSERT_EQUAL(kill(d.pid, SIGHUP), 0);
    struct listed_wait w = {&d, "second"};
    CU_ASSERT(tu_wait_until(region_listed, &w, 5000));
    CU_ASSERT_EQUAL(tu_pattern_check(p, 4096, 77), 4096);
    CU_ASSERT_EQUAL(mm_checkcorruption(first->heap), 0);

    /* a broken file on SIGHUP: logged, and nothing changes */
    CU_ASSERT_EQUAL_FATAL(write_text(d.config, "{ \"regions\": [ \n"), 0);
    CU_ASSERT_EQUAL(kill(d.pid, SIGHUP), 0);
    CU_ASSERT(tu_wait_until(log_says, &d, 5000));
    CU_ASSERT(it_served(&d));
    json_t *reply = list_regions(&d);
    CU_ASSERT(reply != NULL && listed(reply, "first") != NULL && listed(reply, "second") != NULL);
    json_decref(reply);
    CU_ASSERT_EQUAL(tu_pattern_check(p, 4096, 77), 4096);

    /* a region that does not fit: the ones after it are still made, the
     * log counts both, and a setting only a restart applies is named */
    CU_ASSERT_EQUAL_FATAL(
        write_text(d.config,
                   "{ \"segment_size\": \"128M\", \"regions\": [\n"
                   "  { \"name\": \"first\", \"kind\": \"heap\", \"size\": \"1M\" },\n"
                   "  { \"name\": \"too-big\", \"kind\": \"heap\", \"size\": \"100M\" },\n"
                   "  { \"name\": \"third\", \"kind\": \"heap\", \"size\": \"1M\" }\n"
                   "] }\n"),
        0);
    CU_ASSERT_EQUAL(kill(d.pid, SIGHUP), 0);
    CU_ASSERT(tu_wait_until(log_says_reloaded, &d, 5000));
    w.name = "third";
    CU_ASSERT(region_listed(&w));
    const char *log = read_text(d.log);
    CU_ASSERT(strstr(log, "too-big") != NULL);
    CU_ASSERT(strstr(log, "segment_size changed") != NULL);
    CU_ASSERT(it_served(&d));

    mm_free(first->heap, p);
    CU_ASSERT_EQUAL(mmsrv_detach(c, first), 0);
    mmsrv_disconnect(c);
    it_stop(&d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_bad_configuration_stops_startup),
        TU_TEST(test_regions_from_configuration),
        TU_TEST(test_flags_override_configuration),
        TU_TEST(test_sighup_rereads_configuration),
        TU_END,
    };
    return tu_main("config", tests);
}
