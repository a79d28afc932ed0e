/*
 * mmsrvctl: control mmsrvd from a shell, through libmmsrv.
 *
 *   mmsrvctl [-a ADDRESS] list
 *   mmsrvctl [-a ADDRESS] create NAME heap SIZE [access]
 *   mmsrvctl [-a ADDRESS] create NAME iob BUFSIZE COUNT [-c CHANNEL:DEPTH]... [access]
 *   mmsrvctl [-a ADDRESS] destroy NAME
 *   mmsrvctl [-a ADDRESS] stats NAME
 *   mmsrvctl [-a ADDRESS] wait [SECONDS]
 *   mmsrvctl [-a ADDRESS] monitor [-n COUNT] [-t TIMEOUT_MS]
 *
 * access: -m MODE (octal), -u UID, -g GID.  Sizes take K, M, G suffixes.
 * ADDRESS is unix:/path (else $MMSRV_ADDRESS, else the default socket).
 * `wait` returns once the daemon answers, for scripts that start it.
 * `monitor` prints region events, one line each ("created NAME", "attached
 * NAME pid PID", ...), starting with "created" for every region that
 * exists; each line is flushed, for pipes.  It stops after COUNT events
 * (status 0), when TIMEOUT_MS have passed (status 0 without -n, 1 with it:
 * the events did not come), or when the daemon closes the stream (1).
 * Exit status: 0 done, 1 the daemon refused or could not be reached,
 * 2 a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmsrv/mmsrv.h"

#define MAX_CHANNELS 8

static const char *address;

static int usage(void)
{
    fprintf(stderr,
            "usage: mmsrvctl [-a unix:PATH] list\n"
            "       mmsrvctl [-a unix:PATH] create NAME heap SIZE [-m MODE] [-u UID] [-g GID]\n"
            "       mmsrvctl [-a unix:PATH] create NAME iob BUFSIZE COUNT [-c CHANNEL:DEPTH]...\n"
            "                                    [-m MODE] [-u UID] [-g GID]\n"
            "       mmsrvctl [-a unix:PATH] destroy NAME\n"
            "       mmsrvctl [-a unix:PATH] stats NAME\n"
            "       mmsrvctl [-a unix:PATH] wait [SECONDS]\n"
            "       mmsrvctl [-a unix:PATH] monitor [-n COUNT] [-t TIMEOUT_MS]\n");
    return 2;
}

/* Report a failed call: what, the errno text, the daemon's error name. */
static int fail(const char *what, int rc)
{
    const char *name = mmsrv_error_name();
    fprintf(stderr, "mmsrvctl: %s: %s%s%s\n", what, strerror(-rc), name != NULL ? " - " : "",
            name != NULL ? name : "");
    return 1;
}

/* A number with an optional K, M or G suffix (powers of 1024); base 0
 * accepts 0x and leading-0 octal, base 8 is for modes. */
static int parse_number(const char *s, int base, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno != 0 || end == s || s[0] == '-') {
        return -1;
    }
    unsigned shift = 0;
    if (base != 8 && *end != '\0') {
        const char *units = "KMG";
        const char *u = strchr(units, *end);
        if (u == NULL || end[1] != '\0') {
            return -1;
        }
        shift = 10u * (unsigned)(u - units + 1);
        end++;
    }
    if (*end != '\0' || v > (max >> shift)) {
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

static const char *kind_name(enum mmsrv_kind kind)
{
    return kind == MMSRV_HEAP ? "heap" : kind == MMSRV_IOB ? "iob" : "?";
}

/* Bytes in the largest unit that keeps them whole-ish. */
static const char *human(uint64_t bytes, char *buf, size_t size)
{
    if (bytes >= (1ull << 30) && bytes % (1ull << 20) == 0) {
        snprintf(buf, size, "%.1fG", (double)bytes / (double)(1ull << 30));
    } else if (bytes >= (1ull << 20)) {
        snprintf(buf, size, "%.1fM", (double)bytes / (double)(1ull << 20));
    } else if (bytes >= 1024) {
        snprintf(buf, size, "%.1fK", (double)bytes / 1024.0);
    } else {
        snprintf(buf, size, "%" PRIu64, bytes);
    }
    return buf;
}

static int cmd_list(struct mmsrv_client *c)
{
    struct mmsrv_region_info *list;
    char size[32];
    int n = mmsrv_list(c, &list);
    if (n < 0) {
        return fail("list", n);
    }
    printf("%-32s %-4s %8s %4s %6s %6s %7s %s\n", "NAME", "KIND", "SIZE", "MODE", "UID", "GID",
           "CLIENTS", "STATE");
    for (int i = 0; i < n; i++) {
        const struct mmsrv_region_info *r = &list[i];
        printf("%-32s %-4s %8s %04o %6" PRIu32 " %6" PRIu32 " %7" PRIu32 " %s\n", r->name,
               kind_name(r->kind), human(r->size, size, sizeof(size)), (unsigned)r->mode, r->uid,
               r->gid, r->clients, r->destroying ? "destroying" : "live");
    }
    free(list);
    return 0;
}

static int cmd_create(struct mmsrv_client *c, int argc, char **argv)
{
    struct mmsrv_region_spec spec = {.uid = -1, .gid = -1, .mode = -1};
    struct mmsrv_channel_spec channels[MAX_CHANNELS];
    char channel_names[MAX_CHANNELS][64];
    uint64_t v;
    int i;

    if (argc < 3) {
        return usage();
    }
    spec.name = argv[0];
    if (strcmp(argv[1], "heap") == 0) {
        spec.kind = MMSRV_HEAP;
        if (parse_number(argv[2], 0, INT64_MAX, &spec.size) < 0) {
            fprintf(stderr, "mmsrvctl: bad size: %s\n", argv[2]);
            return 2;
        }
        i = 3;
    } else if (strcmp(argv[1], "iob") == 0) {
        spec.kind = MMSRV_IOB;
        if (argc < 4 || parse_number(argv[2], 0, UINT32_MAX, &v) < 0) {
            return usage();
        }
        spec.bufsize = (uint32_t)v;
        if (parse_number(argv[3], 0, UINT32_MAX, &v) < 0) {
            fprintf(stderr, "mmsrvctl: bad count: %s\n", argv[3]);
            return 2;
        }
        spec.count = (uint32_t)v;
        i = 4;
    } else {
        fprintf(stderr, "mmsrvctl: kind is heap or iob, not %s\n", argv[1]);
        return 2;
    }
    for (; i < argc; i += 2) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            return usage();
        }
        if (strcmp(opt, "-c") == 0 && spec.kind == MMSRV_IOB) {
            const char *colon = strrchr(val, ':');
            size_t len = colon != NULL ? (size_t)(colon - val) : 0;
            if (spec.nchannels == MAX_CHANNELS || len == 0 || len >= sizeof(channel_names[0]) ||
                parse_number(colon + 1, 0, UINT32_MAX, &v) < 0) {
                fprintf(stderr, "mmsrvctl: bad channel (NAME:DEPTH, at most %d): %s\n",
                        MAX_CHANNELS, val);
                return 2;
            }
            memcpy(channel_names[spec.nchannels], val, len);
            channel_names[spec.nchannels][len] = '\0';
            channels[spec.nchannels].name = channel_names[spec.nchannels];
            channels[spec.nchannels].depth = (uint32_t)v;
            spec.nchannels++;
        } else if (strcmp(opt, "-m") == 0 && parse_number(val, 8, 07777, &v) == 0) {
            spec.mode = (int64_t)v;
        } else if (strcmp(opt, "-u") == 0 && parse_number(val, 10, UINT32_MAX, &v) == 0) {
            spec.uid = (int64_t)v;
        } else if (strcmp(opt, "-g") == 0 && parse_number(val, 10, UINT32_MAX, &v) == 0) {
            spec.gid = (int64_t)v;
        } else {
            return usage();
        }
    }
    spec.channels = spec.nchannels > 0 ? channels : NULL;

    struct mmsrv_region_info info;
    char size[32];
    int rc = mmsrv_create(c, &spec, &info);
    if (rc < 0) {
        return fail(spec.name, rc);
    }
    printf("created %s: %s, %s, mode %04o, uid %" PRIu32 ", gid %" PRIu32 "\n", info.name,
           kind_name(info.kind), human(info.size, size, sizeof(size)), (unsigned)info.mode,
           info.uid, info.gid);
    return 0;
}

static int cmd_stats(struct mmsrv_client *c, const char *name)
{
    struct mmsrv_stats st;
    char a[32], b[32], f[32], l[32]; /* one buffer per figure of a printf */
    int rc = mmsrv_stats(c, name, &st);
    if (rc < 0) {
        return fail(name, rc);
    }
    printf("%s: %s, %s, mode %04o, uid %" PRIu32 ", gid %" PRIu32 "%s\n", st.info.name,
           kind_name(st.info.kind), human(st.info.size, a, sizeof(a)), (unsigned)st.info.mode,
           st.info.uid, st.info.gid, st.info.destroying ? ", destroying" : "");
    if (st.info.kind == MMSRV_HEAP) {
        printf("  heap: %s, arena %s, in use %s, free %s (largest %s, %" PRIu64 " chunks)\n",
               st.heap_state, human(st.arena, a, sizeof(a)), human(st.uordblks, b, sizeof(b)),
               human(st.fordblks, f, sizeof(f)), human(st.mxordblk, l, sizeof(l)), st.ordblks);
    } else {
        printf("  pool: %" PRIu32 " buffers of %" PRIu32 " bytes, %" PRIu32 " free, %" PRIu64
               " waits, %" PRIu32 " channels\n",
               st.count, st.bufsize, st.free, st.waits, st.nchannels);
    }
    printf("  attached: %" PRIu32 "\n", st.nattached);
    return 0;
}

/* Retry until the daemon answers a ListRegions, at most seconds. */
static int cmd_wait(const char *arg)
{
    uint64_t seconds = 10;
    if (arg != NULL && parse_number(arg, 10, 3600, &seconds) < 0) {
        return usage();
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc;
    for (;;) {
        struct mmsrv_client *c;
        rc = mmsrv_connect(address, &c);
        if (rc == 0) {
            struct mmsrv_region_info *list;
            rc = mmsrv_list(c, &list);
            mmsrv_disconnect(c);
            if (rc >= 0) {
                free(list);
                return 0;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        /* in milliseconds: whole seconds would give up to a second early */
        int64_t waited_ms =
            (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited_ms >= (int64_t)seconds * 1000) {
            return fail("the daemon did not answer in time", rc);
        }
        /* the socket appears when the daemon binds it: look again soon */
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static const char *event_name(enum mmsrv_event_kind kind)
{
    static const char *const names[] = {
        [MMSRV_EVENT_CREATED] = "created",     [MMSRV_EVENT_DESTROYED] = "destroyed",
        [MMSRV_EVENT_ATTACHED] = "attached",   [MMSRV_EVENT_DETACHED] = "detached",
        [MMSRV_EVENT_RECLAIMED] = "reclaimed",
    };
    size_t i = (size_t)kind;
    return i < sizeof(names) / sizeof(names[0]) && names[i] != NULL ? names[i] : "?";
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Print events until COUNT of them, TIMEOUT_MS, or the end of the stream. */
static int cmd_monitor(struct mmsrv_client *c, int argc, char **argv)
{
    uint64_t count = 0, timeout = 0;
    bool has_count = false, has_timeout = false;
    for (int i = 0; i < argc; i += 2) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val != NULL && strcmp(argv[i], "-n") == 0 &&
            parse_number(val, 10, UINT64_MAX, &count) == 0 && count > 0) {
            has_count = true;
        } else if (val != NULL && strcmp(argv[i], "-t") == 0 &&
                   parse_number(val, 10, INT32_MAX, &timeout) == 0) {
            has_timeout = true;
        } else {
            return usage();
        }
    }
    int rc = mmsrv_monitor_start(c);
    if (rc < 0) {
        return fail("monitor", rc);
    }
    int64_t deadline = monotonic_ms() + (int64_t)timeout;
    for (uint64_t seen = 0; !has_count || seen < count; seen++) {
        int wait = -1;
        if (has_timeout) {
            int64_t left = deadline - monotonic_ms();
            wait = left > 0 ? (int)left : 0;
        }
        struct mmsrv_event ev;
        rc = mmsrv_monitor_next(c, &ev, wait);
        if (rc == -ETIMEDOUT && !has_count) {
            return 0;
        }
        if (rc < 0) {
            return fail(rc == -ECONNRESET  ? "monitor: the daemon closed the stream"
                        : rc == -ETIMEDOUT ? "monitor: fewer events than -n in -t"
                                           : "monitor",
                        rc);
        }
        printf("%s %s", event_name(ev.kind), ev.region);
        if (ev.pid >= 0) {
            printf(" pid %" PRId64, ev.pid);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-a") == 0) {
        address = argv[i + 1];
        i += 2;
    }
    if (i >= argc) {
        return usage();
    }
    const char *cmd = argv[i++];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return 0;
    }
    if (strcmp(cmd, "wait") == 0) {
        return i + 1 < argc ? usage() : cmd_wait(i < argc ? argv[i] : NULL);
    }

    struct mmsrv_client *c;
    int rc = mmsrv_connect(address, &c);
    if (rc < 0) {
        return fail("connect", rc);
    }
    if (strcmp(cmd, "list") == 0 && i == argc) {
        rc = cmd_list(c);
    } else if (strcmp(cmd, "create") == 0) {
        rc = cmd_create(c, argc - i, argv + i);
    } else if (strcmp(cmd, "destroy") == 0 && i + 1 == argc) {
        rc = mmsrv_destroy(c, argv[i]);
        rc = rc < 0 ? fail(argv[i], rc) : 0;
    } else if (strcmp(cmd, "stats") == 0 && i + 1 == argc) {
        rc = cmd_stats(c, argv[i]);
    } else if (strcmp(cmd, "monitor") == 0) {
        rc = cmd_monitor(c, argc - i, argv + i);
    } else {
        rc = usage();
    }
    mmsrv_disconnect(c);
    return rc;
}
