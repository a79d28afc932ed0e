/*
 * main.c: mmsrvd's options, start-up, signals and shutdown.
 *
 * Start-up order: configuration (flags override the file), descriptors
 * systemd passed (a listening socket, a stored table and regions), the
 * segment (its geometry from the stored table when there is one), the
 * restored regions, the configured regions, the socket, then READY=1.
 * SIGTERM (or SIGINT) stops accepting, closes every connection without
 * reclaiming (the clients live on, and keep their mappings), and exits 0
 * once work in flight is done.  SIGHUP reads the configuration again and
 * creates the regions newly listed in it.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef MMSRV_VERSION
#define MMSRV_VERSION "0"
#endif

/* How long a stop waits for work in flight (a reclaim blocked on a lock a
 * live client holds) before it exits anyway. */
#define STOP_GRACE_MS 5000

/* The longest the daemon waits for a heap's or pool's lock.  A client
 * holds one for microseconds; one stopped in a debugger, or one that wrote
 * over the lock word, would hold it for ever, and every worker of the
 * thread pool that waited on it would be gone for the daemon's other work
 * (other regions' statistics and reclaims, CreateRegion's descriptor-store
 * wait).  A call that gives up reports the region busy. */
#define LOCK_WAIT_MS 2000

static uv_loop_t loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t stop_timer;
static bool stopping;
static const char *config_path;    /* NULL: the default */
static char socket_path[108];      /* what we bound, unlinked at exit */
static bool socket_bound;          /* we made it (not socket activation) */
static uint64_t flag_segment_size; /* 0: from the configuration */
static char flag_socket[108];      /* "" : from the configuration */
static unsigned flag_socket_mode = 0666;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: mmsrvd [OPTION]...\n"
            "Serve named shared-memory regions (mm heaps, IOB pools) over Varlink.\n"
            "\n"
            "  -c, --config=PATH        configuration file (default %s)\n"
            "      --varlink=ADDRESS    listen on unix:PATH[;mode=0666] instead of the\n"
            "                           configured or default socket\n"
            "      --segment-size=SIZE  size of the segment (bytes, or 64M, 1G, ...)\n"
            "      --check-config       read the configuration, report, and exit\n"
            "  -v, --verbose            log debug lines too\n"
            "  -h, --help               show this help\n"
            "  -V, --version            show the version\n"
            "\n"
            "The default socket is /run/mmsrvd/io.mmsrvd for root and\n"
            "$XDG_RUNTIME_DIR/mmsrvd/io.mmsrvd otherwise.  SIGHUP reloads the\n"
            "configuration; SIGTERM stops.\n",
#ifdef MMSRVD_CONFIG_PATH
            MMSRVD_CONFIG_PATH
#else
            "/etc/mmsrvd/mmsrvd.conf"
#endif
    );
}

/* "unix:/path[;mode=0666]" or a plain path. */
static int parse_address(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0)
        addr += 5;
    if (addr[0] != '/') {
        fprintf(stderr, "mmsrvd: --varlink: only unix:/absolute/path addresses are served\n");
        return -1;
    }
    const char *semi = strchr(addr, ';');
    size_t len = semi != NULL ? (size_t)(semi - addr) : strlen(addr);
    if (len >= sizeof(flag_socket)) {
        fprintf(stderr, "mmsrvd: --varlink: path longer than %zu bytes\n", sizeof(flag_socket) - 1);
        return -1;
    }
    memcpy(flag_socket, addr, len);
    flag_socket[len] = '\0';
    if (semi != NULL) {
        char *end;
        if (strncmp(semi, ";mode=", 6) != 0 ||
            (flag_socket_mode = (unsigned)strtoul(semi + 6, &end, 8), *end != '\0') ||
            flag_socket_mode > 0777) {
            fprintf(stderr, "mmsrvd: --varlink: the only parameter is ;mode=OCTAL\n");
            return -1;
        }
    }
    return 0;
}

/* mkdir -p of the socket's directory. */
static int make_parent(const char *path)
{
    char dir[sizeof(socket_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int open_listener(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_err("socket %s: path too long", path);
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int rc = make_parent(path);
    if (rc < 0) {
        log_err("socket %s: cannot make its directory: %s", path, strerror(-rc));
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_err("socket %s: exists and is not a socket", path);
            return -1;
        }
        /* a socket file: stale unless something answers on it */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            log_err("socket %s: another server listens on it", path);
            return -1;
        }
        if (probe >= 0)
            close(probe);
        log_info("socket %s: removing a stale socket file", path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_err("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        log_err("socket %s: bind: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* anyone may connect; each region's mode decides what they get */
    if (chmod(path, flag_socket_mode) != 0 || listen(fd, SOMAXCONN) != 0) {
        log_err("socket %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    snprintf(socket_path, sizeof(socket_path), "%s", path);
    socket_bound = true;
    return fd;
}

static int default_socket(char *out, size_t len)
{
    if (geteuid() == 0) {
        snprintf(out, len, "/run/mmsrvd/io.mmsrvd");
        return 0;
    }
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg == NULL || xdg[0] != '/') {
        log_err("socket: not root and XDG_RUNTIME_DIR is unset: give --varlink=unix:PATH");
        return -1;
    }
    if ((size_t)snprintf(out, len, "%s/mmsrvd/io.mmsrvd", xdg) >= len) {
        log_err("socket: $XDG_RUNTIME_DIR/mmsrvd/io.mmsrvd is too long");
        return -1;
    }
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the descriptor limit: %s", strerror(errno));
    }
}

/* Create the configured regions that do not exist yet.  Returns the number
 * created, or -1 at the first that could not be (at start that is fatal);
 * with keep_going (a reload) every one is tried and *failed counts those
 * that could not be. */
static int create_configured(const struct config *cfg, bool keep_going, int *failed)
{
    int created = 0;
    *failed = 0;
    for (size_t i = 0; i < cfg->nregions; i++) {
        const struct region_spec *spec = &cfg->regions[i];
        if (region_find(spec->name) != NULL)
            continue;
        struct region *r;
        const char *bad;
        uint64_t need, avail;
        int rc = region_create(spec, geteuid(), getegid(), getpid(), &r, &bad, &need, &avail);
        if (rc == 0) {
            created++;
            continue;
        }
        if (rc == -EUSERS)
            log_err("config %s: regions[%zu] \"%s\": max_regions (%zu) reached", cfg->path, i,
                    spec->name, region_limit());
        else if (rc == -ENOSPC)
            log_err("config %s: regions[%zu] \"%s\": no space: needs %llu bytes, %llu free in "
                    "one run",
                    cfg->path, i, spec->name, (unsigned long long)need, (unsigned long long)avail);
        else
            log_err("config %s: regions[%zu] \"%s\": cannot create%s%s: %s", cfg->path, i,
                    spec->name, bad != NULL ? ", bad " : "", bad != NULL ? bad : "", strerror(-rc));
        (*failed)++;
        if (!keep_going)
            return -1;
    }
    return created;
}

/* What the daemon started with that only a restart changes: a reload says
 * so when the file asks for something else, rather than ignore it. */
static struct config started;

static void warn_restart_only(const struct config *cfg)
{
    const char *what[6];
    int n = 0;
    if (flag_segment_size == 0 && cfg->segment_size != started.segment_size)
        what[n++] = "segment_size";
    if (cfg->page_size != started.page_size)
        what[n++] = "page_size";
    if (flag_socket[0] == '\0' && strcmp(cfg->socket, started.socket) != 0)
        what[n++] = "socket";
    if (cfg->limits.max_clients != started.limits.max_clients ||
        cfg->limits.output_limit != started.limits.output_limit ||
        cfg->limits.stall_ms != started.limits.stall_ms ||
        cfg->limits.monitor_limit != started.limits.monitor_limit)
        what[n++] = "the connection limits";
    for (int i = 0; i < n; i++)
        log_warn("reload: config %s: %s changed; it takes effect at the next start", cfg->path,
                 what[i]);
}

/* ---- Signals ------------------------------------------------------------ */

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    log_err("stop: work still blocked after %d ms (a lock in a region?); exiting anyway",
            STOP_GRACE_MS);
    _exit(1);
}

static void begin_stop(const char *why)
{
    if (stopping)
        return;
    stopping = true;
    log_notice("stop: %s; closing %zu connections", why, server_client_count());
    sd_stopping();
    server_stop_listening();
    if (socket_bound)
        unlink(socket_path);
    server_close_all(false);
    orphans_stop();
    reclaim_stop();
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_timer_init(&loop, &stop_timer);
    uv_timer_start(&stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&stop_timer);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (signum == SIGHUP) {
        struct config cfg;
        if (config_load(config_path, &cfg) != 0) {
            log_err("reload: the configuration has errors; nothing changed");
            return;
        }
        if (config_check(&cfg) != 0) {
            config_free(&cfg);
            log_err("reload: the configuration has errors; nothing changed");
            return;
        }
        warn_restart_only(&cfg);
        region_set_defaults(&cfg.defaults);
        int failed;
        int n = create_configured(&cfg, true, &failed);
        if (failed != 0)
            log_err("reload: config %s: %d regions created, %d could not be (see above)",
                    cfg.path[0] ? cfg.path : "(defaults)", n, failed);
        else
            log_notice("reload: config %s: %d regions created",
                       cfg.path[0] ? cfg.path : "(defaults)", n);
        config_free(&cfg);
        return;
    }
    begin_stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
    enum { OPT_VARLINK = 256, OPT_SEGMENT, OPT_CHECK };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"varlink", required_argument, NULL, OPT_VARLINK},
        {"segment-size", required_argument, NULL, OPT_SEGMENT},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool check_only = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case OPT_VARLINK:
            if (parse_address(optarg) != 0)
                return 2;
            break;
        case OPT_SEGMENT:
            if (config_parse_size(optarg, &flag_segment_size) != 0 || flag_segment_size == 0) {
                fprintf(stderr, "mmsrvd: --segment-size: not a size: %s\n", optarg);
                return 2;
            }
            break;
        case OPT_CHECK:
            check_only = true;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("mmsrvd %s\n", MMSRV_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mmsrvd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct config cfg;
    if (config_load(config_path, &cfg) != 0)
        return 1;
    mm_set_lock_wait(LOCK_WAIT_MS);
    if (flag_segment_size != 0)
        cfg.segment_size = flag_segment_size;
    if (flag_socket[0] != '\0')
        snprintf(cfg.socket, sizeof(cfg.socket), "%s", flag_socket);
    if (config_check(&cfg) != 0) {
        config_free(&cfg);
        return 1;
    }
    started = cfg; /* the settings only, for warn_restart_only */
    started.regions = NULL;
    started.nregions = 0;
    if (check_only) {
        printf("mmsrvd: configuration %s is valid (%zu regions)\n",
               cfg.path[0] ? cfg.path : "(defaults)", cfg.nregions);
        config_free(&cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    struct sd_passed passed;
    if (sd_collect(&passed) != 0)
        return 1;
    if (passed.table != NULL) {
        /* the regions' page runs are offsets in the old segment */
        json_int_t ss = json_integer_value(json_object_get(passed.table, "segment_size"));
        json_int_t ps = json_integer_value(json_object_get(passed.table, "page_size"));
        if (ps > 0 && (size_t)ps != cfg.page_size) {
            log_notice("restore: keeping the stored page size %lld (configured %zu)", (long long)ps,
                       cfg.page_size);
            cfg.page_size = (size_t)ps;
        }
        if (ss > 0 && (uint64_t)ss > cfg.segment_size) {
            log_notice("restore: keeping the stored segment size %lld (configured %llu)",
                       (long long)ss, (unsigned long long)cfg.segment_size);
            cfg.segment_size = (uint64_t)ss;
        }
    }
    int rc = segment_init(cfg.segment_size, cfg.page_size);
    if (rc != 0) {
        log_err("segment: cannot reserve %llu bytes in pages of %zu: %s",
                (unsigned long long)cfg.segment_size, cfg.page_size, strerror(-rc));
        return 1;
    }
    region_set_defaults(&cfg.defaults);
    monitor_set_limit(cfg.limits.monitor_limit);
    methods_register();

    int restored = sd_restore(&passed);
    int listen_fd = passed.listen_fd;
    passed.listen_fd = -1;
    sd_passed_free(&passed);
    int failed;
    if (create_configured(&cfg, false, &failed) < 0)
        goto fail;

    if (listen_fd < 0) {
        char path[108];
        if (cfg.socket[0] != '\0')
            snprintf(path, sizeof(path), "%s", cfg.socket);
        else if (default_socket(path, sizeof(path)) != 0)
            goto fail;
        listen_fd = open_listener(path);
        if (listen_fd < 0)
            goto fail;
    } else {
        fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    }

    uv_loop_init(&loop);
    work_init(&loop);
    if (server_init(&loop, listen_fd, &cfg.limits) != 0) {
        log_err("cannot watch the listening socket");
        goto fail;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_hup);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    if (restored > 0)
        orphans_adopt();

    log_notice("ready socket=%s segment=%llu page=%zu regions=%zu restored=%d config=%s",
               socket_bound ? socket_path : "(passed by systemd)",
               (unsigned long long)segment_size(), segment_page_size(), region_count(), restored,
               cfg.path[0] ? cfg.path : "(defaults)");
    sd_ready();

    uv_run(&loop, UV_RUN_DEFAULT);

    /* everything closed and no work in flight */
    uv_close((uv_handle_t *)&stop_timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_warn("stop: handles left open");
    region_release_all();
    segment_fini();
    config_free(&cfg);
    sd_flush(STOP_GRACE_MS);
    log_notice("stopped");
    return 0;

fail:
    sd_flush(STOP_GRACE_MS);
    region_release_all();
    segment_fini();
    config_free(&cfg);
    return 1;
}
