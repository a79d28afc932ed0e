/*
 * systemd.c: readiness, socket activation, and the descriptor store.
 *
 * Type=notify: READY=1 once the socket listens and the regions exist,
 * STATUS= as regions come and go, STOPPING=1 on SIGTERM.  A listening
 * socket systemd passes (mmsrvd.socket) is used instead of binding one.
 *
 * Surviving a restart.  Each region's memfd goes to systemd's store when
 * the region is made (FDSTORE=1, FDNAME=region-<generation>: the generation
 * is unique where a name is not, since a destroyed region's name is free
 * while its memory lives on), and leaves it when the memory is freed
 * (FDSTOREREMOVE=1).  The daemon's table (names, kinds, generations, access
 * rules, page runs, the segment's geometry) is stored beside them as JSON in
 * a sealed memfd named table-<n>; each change stores table-<n+1> and then
 * removes table-<n>, so that a crash between the two leaves a table, and the
 * highest one wins at start.  No client ever receives the table: what a
 * client writes into a region cannot change who may attach after a restart.
 *
 * At start, sd_listen_fds_with_names() hands all of it back: the regions
 * listed in the newest table are mapped at the same page runs of a new
 * segment; stored descriptors the table does not list (regions destroyed
 * while attached) are removed from the store.  Without NOTIFY_SOCKET none of
 * this runs.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define TABLE_VERSION 1

static int sd_state = -1;  /* -1 unknown, 0 no notify socket, 1 systemd listens */
static uint64_t table_seq; /* the table in the store, 0 when none */
static bool table_frozen;  /* restoring: write the table once, at the end */

bool sd_enabled(void)
{
    if (sd_state < 0) {
        const char *e = getenv("NOTIFY_SOCKET");
        sd_state = e != NULL && e[0] != '\0';
    }
    return sd_state == 1;
}

/*
 * Notifications go out from a thread of their own, in order.  The notify
 * socket is a datagram socket whose reader may be slow (a test's stand-in,
 * or systemd busy): a full queue blocks the sender, and that must be this
 * thread, never the loop.  Descriptors are duplicated when queued, so that
 * a region freed meanwhile cannot close one under the thread.
 */
struct note {
    struct note *next;
    uint64_t seq; /* 1, 2, ... in the order queued */
    int fd;       /* -1: none */
    char msg[];
};

static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t note_cond = PTHREAD_COND_INITIALIZER;
static struct note *note_head, *note_tail;
static size_t note_count;     /* queued or being sent */
static uint64_t note_queued;  /* seq of the last note queued */
static uint64_t note_handled; /* seq of the last note sent (or given up) */
static bool note_quit;
static bool note_started;
static pthread_t note_thread;

static void *note_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&note_lock);
    for (;;) {
        while (note_head == NULL && !note_quit)
            pthread_cond_wait(&note_cond, &note_lock);
        if (note_head == NULL)
            break;
        struct note *n = note_head;
        note_head = n->next;
        if (note_head == NULL)
            note_tail = NULL;
        pthread_mutex_unlock(&note_lock);

        int rc =
            sd_pid_notify_with_fds(0, 0, n->msg, n->fd >= 0 ? &n->fd : NULL, n->fd >= 0 ? 1u : 0u);
        if (rc < 0)
            log_warn("systemd: cannot notify \"%.40s\": %s", n->msg, strerror(-rc));
        uint64_t n_seq = n->seq;
        if (n->fd >= 0)
            close(n->fd);
        free(n);

        pthread_mutex_lock(&note_lock);
        note_count--;
        note_handled = n_seq;
        pthread_cond_broadcast(&note_cond);
    }
    pthread_mutex_unlock(&note_lock);
    return NULL;
}

static void sd_send(const char *msg, const int *fds, unsigned nfds)
{
    if (!sd_enabled())
        return;
    size_t len = strlen(msg);
    struct note *n = malloc(sizeof(*n) + len + 1);
    if (n == NULL) {
        log_err("systemd: out of memory: \"%.40s\" not sent", msg);
        return;
    }
    memcpy(n->msg, msg, len + 1);
    n->next = NULL;
    n->fd = -1;
    if (nfds > 0) {
        n->fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
        if (n->fd < 0) {
            log_err("systemd: \"%.40s\" not sent: %s", msg, strerror(errno));
            free(n);
            return;
        }
    }
    pthread_mutex_lock(&note_lock);
    if (!note_started) {
        /* the thread blocks no signal the loop wants: libuv's signal
         * handlers only write to a pipe, from any thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        note_started = pthread_create(&note_thread, NULL, note_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!note_started) {
            pthread_mutex_unlock(&note_lock);
            log_err("systemd: cannot start the notifier thread");
            if (n->fd >= 0)
                close(n->fd);
            free(n);
            return;
        }
    }
    n->seq = ++note_queued;
    if (note_tail != NULL)
        note_tail->next = n;
    else
        note_head = n;
    note_tail = n;
    note_count++;
    pthread_cond_broadcast(&note_cond);
    pthread_mutex_unlock(&note_lock);
}

/* The moment timeout_ms from now, as pthread_cond_timedwait() wants it. */
static struct timespec deadline_after(unsigned timeout_ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += timeout_ms / 1000;
    t.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

uint64_t sd_store_mark(void)
{
    pthread_mutex_lock(&note_lock);
    uint64_t mark = note_queued;
    pthread_mutex_unlock(&note_lock);
    return mark;
}

bool sd_store_wait(uint64_t mark, unsigned timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    pthread_mutex_lock(&note_lock);
    while (note_handled < mark) {
        if (pthread_cond_timedwait(&note_cond, &note_lock, &deadline) != 0)
            break;
    }
    bool done = note_handled >= mark;
    pthread_mutex_unlock(&note_lock);
    return done;
}

void sd_flush(unsigned timeout_ms)
{
    if (!note_started)
        return;
    struct timespec deadline = deadline_after(timeout_ms);
    pthread_mutex_lock(&note_lock);
    note_quit = true;
    pthread_cond_broadcast(&note_cond);
    while (note_count > 0) {
        if (pthread_cond_timedwait(&note_cond, &note_lock, &deadline) != 0)
            break;
    }
    size_t left = note_count;
    pthread_mutex_unlock(&note_lock);
    if (left > 0) {
        /* the reader of the notify socket is not reading: leave the thread
         * blocked, the process exits around it */
        log_err("systemd: %zu notifications not taken by the notify socket", left);
        return;
    }
    pthread_join(note_thread, NULL);
    note_started = false;
}

void sd_ready(void)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=Serving %zu regions", region_count());
    sd_send(msg, NULL, 0);
}

void sd_stopping(void)
{
    sd_send("STOPPING=1\nSTATUS=Stopping", NULL, 0);
}

static void region_fdname(const struct region *r, char *buf, size_t len)
{
    snprintf(buf, len, "region-%llu", (unsigned long long)r->generation);
}

void sd_region_stored(const struct region *r)
{
    char msg[128], name[64];
    region_fdname(r, name, sizeof(name));
    snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
    sd_send(msg, &r->fd, 1);
}

void sd_region_removed(const struct region *r)
{
    char msg[128], name[64];
    region_fdname(r, name, sizeof(name));
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    sd_send(msg, NULL, 0);
}

/* ---- The table ----------------------------------------------------------- */

static json_t *table_build(void)
{
    json_t *list = json_array();
    for (struct region *r = region_first(); r != NULL; r = r->next) {
        if (r->destroying)
            continue; /* its memory goes; its name already has */
        json_t *ch = json_array();
        for (size_t i = 0; i < r->nchannels; i++)
            json_array_append_new(ch, json_pack("{s:s, s:I}", "name", r->channels[i].name, "depth",
                                                (json_int_t)r->channels[i].depth));
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "name", r->name,
                      "kind", region_kind_name(r->kind), "generation", (json_int_t)r->generation,
                      "offset", (json_int_t)segment_offset(r->base), "size", (json_int_t)r->size,
                      "uid", (json_int_t)r->uid, "gid", (json_int_t)r->gid, "mode",
                      (json_int_t)r->mode, "bufsize", (json_int_t)r->bufsize, "count",
                      (json_int_t)r->count, "channels", ch));
    }
    return json_pack("{s:i, s:I, s:I, s:I, s:o}", "version", TABLE_VERSION, "segment_size",
                     (json_int_t)segment_size(), "page_size", (json_int_t)segment_page_size(),
                     "next_generation", (json_int_t)region_next_generation(), "regions", list);
}

/* The text in a memfd sealed against any change. */
static int table_memfd(const char *text, size_t len)
{
    int fd = memfd_create("mmsrvd-table", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            close(fd);
            return err;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0600) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

void sd_table_changed(void)
{
    if (!sd_enabled() || table_frozen)
        return;
    json_t *t = table_build();
    char *text = t != NULL ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    if (text == NULL) {
        log_err("systemd: cannot encode the table: out of memory");
        return;
    }
    int fd = table_memfd(text, strlen(text));
    free(text);
    if (fd < 0) {
        log_err("systemd: cannot store the table: %s", strerror(-fd));
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=table-%llu\nSTATUS=Serving %zu regions",
             (unsigned long long)table_seq + 1, region_count());
    sd_send(msg, &fd, 1);
    close(fd);
    if (table_seq > 0) {
        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=table-%llu",
                 (unsigned long long)table_seq);
        sd_send(msg, NULL, 0);
    }
    table_seq++;
    log_debug("systemd: stored table-%llu", (unsigned long long)table_seq);
}

/* ---- Start-up ------------------------------------------------------------ */

static json_t *table_read(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > 64 * 1024 * 1024)
        return NULL;
    char *buf = malloc((size_t)st.st_size);
    if (buf == NULL)
        return NULL;
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        off += (size_t)n;
    }
    json_error_t err;
    json_t *t = json_loadb(buf, off, 0, &err);
    free(buf);
    if (t == NULL)
        log_err("systemd: the stored table is not JSON: %s", err.text);
    return t;
}

int sd_collect(struct sd_passed *p)
{
    char **names = NULL;
    int fd_table = -1;
    uint64_t best = 0;

    memset(p, 0, sizeof(*p));
    p->listen_fd = -1;
    int n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        log_err("systemd: cannot read the passed descriptors: %s", strerror(-n));
        return n;
    }
    if (n == 0)
        return 0;
    p->fds = calloc((size_t)n, sizeof(int));
    p->names = calloc((size_t)n, sizeof(char *));
    if (p->fds == NULL || p->names == NULL)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names != NULL && names[i] != NULL ? names[i] : "unknown";
        unsigned long long seq;
        char tail;
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) {
            if (p->listen_fd < 0) {
                p->listen_fd = fd;
                log_info("systemd: listening socket passed (%s)", name);
            } else {
                log_warn("systemd: a second listening socket (%s) is not used", name);
                close(fd);
            }
        } else if (sscanf(name, "table-%llu%c", &seq, &tail) == 1) {
            /* the newest table wins; older ones leave the store */
            if (seq > table_seq)
                table_seq = seq;
            if (seq >= best) {
                if (fd_table >= 0)
                    close(fd_table);
                fd_table = fd;
                best = seq;
            } else {
                close(fd);
            }
            p->names[p->nfds] = strdup(name);
            p->fds[p->nfds++] = -1;
        } else if (strncmp(name, "region-", 7) == 0) {
            p->names[p->nfds] = strdup(name);
            p->fds[p->nfds++] = fd;
        } else {
            log_warn("systemd: unexpected descriptor \"%s\" closed", name);
            close(fd);
        }
    }
    if (names != NULL) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    if (fd_table >= 0) {
        p->table = table_read(fd_table);
        close(fd_table);
        if (p->table == NULL ||
            json_integer_value(json_object_get(p->table, "version")) != TABLE_VERSION) {
            log_err("systemd: stored table-%llu unusable; regions are not restored",
                    (unsigned long long)best);
            json_decref(p->table);
            p->table = NULL;
        }
    }
    return 0;
}

static int restore_one(struct sd_passed *p, const json_t *e)
{
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *kind = json_string_value(json_object_get(e, "kind"));
    json_int_t gen = json_integer_value(json_object_get(e, "generation"));
    json_int_t offset = json_integer_value(json_object_get(e, "offset"));
    json_int_t size = json_integer_value(json_object_get(e, "size"));
    json_int_t uid = json_integer_value(json_object_get(e, "uid"));
    json_int_t gid = json_integer_value(json_object_get(e, "gid"));
    json_int_t mode = json_integer_value(json_object_get(e, "mode"));
    json_int_t bufsize = json_integer_value(json_object_get(e, "bufsize"));
    json_int_t count = json_integer_value(json_object_get(e, "count"));
    const json_t *chans = json_object_get(e, "channels");
    struct channel_spec ch[REGION_MAX_CHANNELS];
    size_t nch = 0;

    if (name == NULL || !proto_name_valid(name) || kind == NULL || gen <= 0 || offset < 0 ||
        size <= 0 || uid < 0 || gid < 0 || mode < 0 || mode > 0777 || bufsize < 0 || count < 0 ||
        (strcmp(kind, "heap") != 0 && strcmp(kind, "iob") != 0) ||
        json_array_size(chans) > REGION_MAX_CHANNELS) {
        log_err("systemd: a table entry is malformed; skipped");
        return -EBADMSG;
    }
    memset(ch, 0, sizeof(ch));
    for (size_t i = 0; i < json_array_size(chans); i++) {
        const json_t *c = json_array_get(chans, i);
        snprintf(ch[nch].name, sizeof(ch[nch].name), "%s",
                 json_string_value(json_object_get(c, "name")) != NULL
                     ? json_string_value(json_object_get(c, "name"))
                     : "");
        ch[nch].depth = (uint32_t)json_integer_value(json_object_get(c, "depth"));
        nch++;
    }
    char fdname[64];
    snprintf(fdname, sizeof(fdname), "region-%llu", (unsigned long long)gen);
    int fd = -1;
    for (size_t i = 0; i < p->nfds; i++) {
        if (p->fds[i] >= 0 && strcmp(p->names[i], fdname) == 0) {
            fd = p->fds[i];
            p->fds[i] = -1;
            break;
        }
    }
    if (fd < 0) {
        log_err("systemd: region=%s lost: its descriptor %s is not in the store", name, fdname);
        return -ENOENT;
    }
    int rc = region_restore(name, strcmp(kind, "heap") == 0 ? REGION_KIND_HEAP : REGION_KIND_IOB,
                            (uint64_t)gen, (uint64_t)offset, (uint64_t)size, (uint32_t)uid,
                            (uint32_t)gid, (uint32_t)mode, (uint32_t)bufsize, (uint32_t)count, ch,
                            nch, fd);
    if (rc < 0) {
        char msg[128];
        log_err("systemd: region=%s cannot be restored: %s", name, strerror(-rc));
        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", fdname);
        sd_send(msg, NULL, 0);
    }
    return rc;
}

int sd_restore(struct sd_passed *p)
{
    int restored = 0;
    char msg[320];

    if (p->table != NULL) {
        const json_t *list = json_object_get(p->table, "regions");
        json_int_t next = json_integer_value(json_object_get(p->table, "next_generation"));
        table_frozen = true;
        for (size_t i = 0; i < json_array_size(list); i++)
            if (restore_one(p, json_array_get(list, i)) == 0)
                restored++;
        table_frozen = false;
        if (next > 0)
            region_set_next_generation((uint64_t)next);
    }
    /* What the table does not list leaves the store: regions destroyed
     * while still attached, and older tables. */
    for (size_t i = 0; i < p->nfds; i++) {
        if (p->names[i] == NULL)
            continue;
        if (p->fds[i] >= 0) {
            log_info("systemd: stored %s is no region of the table; removed", p->names[i]);
            close(p->fds[i]);
            p->fds[i] = -1;
        } else if (strncmp(p->names[i], "table-", 6) != 0) {
            continue; /* a region restored (or already reported) */
        }
        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", p->names[i]);
        sd_send(msg, NULL, 0);
    }
    /* the stored tables were removed with the rest: store the current one */
    sd_table_changed();
    return restored;
}

void sd_passed_free(struct sd_passed *p)
{
    for (size_t i = 0; i < p->nfds; i++) {
        if (p->fds[i] >= 0)
            close(p->fds[i]);
        free(p->names[i]);
    }
    free(p->fds);
    free(p->names);
    json_decref(p->table);
    memset(p, 0, sizeof(*p));
    p->listen_fd = -1;
}
