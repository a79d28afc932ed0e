/*
 * methods.c: the io.mmsrvd interface (proto/io.mmsrvd.varlink).
 *
 * Every handler takes the caller's credentials from its connection, looks
 * the region up in the daemon's table (never in the region's memory), and
 * answers with a reply or a named error.  A heap's figures need the heap's
 * lock, which lives in client-writable memory: RegionStats takes them on the
 * thread pool and answers when they come back.
 */
#include "mmsrvd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* RegionStats lists at most this many attached clients, so that its reply
 * stays well within the 64 KiB a message may have. */
#define STATS_MAX_ATTACHED 256
/* How long a CreateRegion reply waits for the descriptor store at most. */
#define CREATE_STORE_WAIT_MS 5000

static int reply_errno(struct dispatch_call *call, int err, const char *name)
{
    const char *error = proto_error_name(err);
    json_t *p;
    switch (err) {
    case -ENOENT:
    case -EEXIST:
    case -EACCES:
    case -ENOTCONN:
        p = json_pack("{s:s}", "name", name);
        break;
    default:
        p = json_object();
        break;
    }
    return dispatch_error(call, error != NULL ? error : PROTO_ERR_METHOD_NOT_IMPLEMENTED, p);
}

/* ResourceUnavailable for a system call that failed with err (negative
 * errno): what ran short, in the interface's words, and the system's text. */
static int reply_unavailable(struct dispatch_call *call, int err)
{
    const char *resource = err == -EMFILE || err == -ENFILE                      ? "descriptors"
                           : err == -ENOMEM || err == -ENOBUFS || err == -EAGAIN ? "memory"
                                                                                 : "system";
    return dispatch_error(call, PROTO_ERR_RESOURCE_UNAVAILABLE,
                          json_pack("{s:s, s:s}", "resource", resource, "reason", strerror(-err)));
}

/* The region named by the "name" parameter, or NULL after an error went. */
static struct region *lookup(struct dispatch_call *call, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    if (!proto_name_valid(name) ||
        strlen(name) != json_string_length(json_object_get(params, "name"))) {
        dispatch_invalid_parameter(call, "name");
        return NULL;
    }
    struct region *r = region_find(name);
    if (r == NULL)
        reply_errno(call, -ENOENT, name);
    return r;
}

/* ---- CreateRegion ------------------------------------------------------ */

/* The reply to CreateRegion once the store holds the region (sd_store_wait). */
struct create_job {
    struct conn *conn;
    struct region *region;
    unsigned flags;
    uint64_t mark;
    bool stored;
};

static void create_store_work(void *arg)
{
    struct create_job *job = arg;
    job->stored = sd_store_wait(job->mark, CREATE_STORE_WAIT_MS);
}

static void create_store_done(void *arg)
{
    struct create_job *job = arg;
    if (!job->stored)
        log_warn("create region=%s: not yet in systemd's descriptor store; a crash now would "
                 "lose it",
                 job->region->name);
    if (!job->conn->closing && (job->flags & PROTO_ONEWAY) == 0)
        conn_send_reply(job->conn, json_pack("{s:o}", "region", region_to_json(job->region)), false,
                        NULL, 0);
    region_unref(job->region);
    conn_release(job->conn);
    free(job);
}

/* Reply with the new region r: at once without systemd, else once its
 * descriptor and the table are in the store. */
static void create_reply(struct dispatch_call *call, struct region *r)
{
    struct create_job *job = sd_enabled() ? calloc(1, sizeof(*job)) : NULL;
    if (job != NULL) {
        job->conn = call->conn;
        job->region = r;
        job->flags = call->flags;
        job->mark = sd_store_mark();
        region_ref(r);
        conn_hold(call->conn);
        if (work_submit(create_store_work, create_store_done, job) == 0) {
            dispatch_defer(call);
            return;
        }
        region_unref(r);
        conn_release(call->conn);
        free(job);
    }
    dispatch_reply(call, json_pack("{s:o}", "region", region_to_json(r)));
}

static void m_create(struct dispatch_call *call, json_t *params)
{
    struct region_spec spec;
    const char *bad = NULL;
    char why[128];
    const struct peer *peer = &call->conn->peer;

    if (region_spec_parse(params, &spec, &bad, why, sizeof(why)) != 0) {
        log_debug("create refused pid=%d: %s: %s", (int)peer->pid, bad, why);
        dispatch_invalid_parameter(call, bad);
        return;
    }
    /* Giving a region away, or to a group one is not in, is for
     * administrators. */
    if (!access_is_admin(peer) && ((spec.uid >= 0 && (uid_t)spec.uid != peer->uid) ||
                                   (spec.gid >= 0 && !access_in_group(peer, (gid_t)spec.gid)))) {
        log_notice("create refused region=%s pid=%d uid=%u: foreign owner or group", spec.name,
                   (int)peer->pid, (unsigned)peer->uid);
        reply_errno(call, -EACCES, spec.name);
        return;
    }
    struct region *r;
    uint64_t need, avail;
    int rc = region_create(&spec, peer->uid, peer->gid, peer->pid, &r, &bad, &need, &avail);
    switch (rc) {
    case 0:
        create_reply(call, r);
        return;
    case -EEXIST:
        reply_errno(call, rc, spec.name);
        return;
    case -EINVAL:
        dispatch_invalid_parameter(call, bad != NULL ? bad : "parameters");
        return;
    case -ENOSPC:
        dispatch_error(
            call, PROTO_ERR_NO_SPACE,
            json_pack("{s:I, s:I}", "requested", (json_int_t)need, "available", (json_int_t)avail));
        return;
    case -EUSERS:
        snprintf(why, sizeof(why), "max_regions (%zu) reached", region_limit());
        dispatch_error(call, PROTO_ERR_RESOURCE_UNAVAILABLE,
                       json_pack("{s:s, s:s}", "resource", "regions", "reason", why));
        return;
    default:
        log_err("create region=%s: %s", spec.name, strerror(-rc));
        reply_unavailable(call, rc);
        return;
    }
}

/* ---- DestroyRegion ------------------------------------------------------ */

static void m_destroy(struct dispatch_call *call, json_t *params)
{
    struct region *r = lookup(call, params);
    if (r == NULL)
        return;
    const struct peer *peer = &call->conn->peer;
    if (!access_is_admin(peer) && peer->uid != r->uid) {
        log_notice("destroy refused region=%s pid=%d uid=%u", r->name, (int)peer->pid,
                   (unsigned)peer->uid);
        reply_errno(call, -EACCES, r->name);
        return;
    }
    region_destroy(r);
    dispatch_reply(call, NULL);
}

/* ---- ListRegions --------------------------------------------------------- */

static void m_list(struct dispatch_call *call, json_t *params)
{
    (void)params;
    const struct peer *peer = &call->conn->peer;
    bool admin = access_is_admin(peer);
    json_t *list = json_array();
    for (struct region *r = region_first(); r != NULL; r = r->next) {
        /* destroyed regions still holding memory: their owner and
         * administrators see them */
        if (r->destroying ? (admin || peer->uid == r->uid)
                          : (access_granted(peer, r) & ACCESS_READ) != 0)
            json_array_append_new(list, region_to_json(r));
    }
    dispatch_reply(call, json_pack("{s:o}", "regions", list));
}

/* ---- Attach, Detach ----------------------------------------------------- */

static void m_attach(struct dispatch_call *call, json_t *params)
{
    struct region *r = lookup(call, params);
    if (r == NULL)
        return;
    struct conn *c = call->conn;
    unsigned granted = access_granted(&c->peer, r);
    const json_t *w = json_object_get(params, "writable");
    bool writable = json_is_boolean(w) ? json_is_true(w) : (granted & ACCESS_WRITE) != 0;
    if ((granted & ACCESS_READ) == 0 || (writable && (granted & ACCESS_WRITE) == 0)) {
        log_notice("attach refused region=%s pid=%d uid=%u writable=%d mode=%04o", r->name,
                   (int)c->peer.pid, (unsigned)c->peer.uid, writable, r->mode);
        reply_errno(call, -EACCES, r->name);
        return;
    }
    int fd = writable ? r->fd : access_readonly_fd(r);
    if (fd < 0) {
        log_err("attach region=%s: no read-only descriptor: %s", r->name, strerror(-fd));
        reply_unavailable(call, fd);
        return;
    }

    struct attachment *a;
    for (a = c->attachments; a != NULL && a->region != r; a = a->next) {
    }
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL) {
            if (fd != r->fd)
                close(fd);
            log_err("attach region=%s: out of memory", r->name);
            reply_unavailable(call, -ENOMEM);
            return;
        }
        a->region = r;
        a->next = c->attachments;
        c->attachments = a;
        r->clients++;
        region_ref(r);
    }
    a->count++;
    a->writable = a->writable || writable;
    if (writable)
        owner_touch(c->owner, r);

    json_t *reply = json_pack("{s:o, s:i, s:b, s:I, s:I}", "region", region_to_json(r), "fd", 0,
                              "writable", writable, "owner", (json_int_t)owner_id(c->owner),
                              "offset", (json_int_t)REGION_ALLOC_OFFSET);
    dispatch_reply_fds(call, reply, &fd, 1);
    if (fd != r->fd)
        close(fd);
    log_info("attach region=%s pid=%d uid=%u writable=%d owner=%u", r->name, (int)c->peer.pid,
             (unsigned)c->peer.uid, writable, owner_id(c->owner));
    monitor_emit(MONITOR_ATTACHED, r, c->peer.pid);
}

static void m_detach(struct dispatch_call *call, json_t *params)
{
    const json_t *jname = json_object_get(params, "name");
    const char *name = json_string_value(jname);
    if (!proto_name_valid(name) || strlen(name) != json_string_length(jname)) {
        dispatch_invalid_parameter(call, "name");
        return;
    }
    struct conn *c = call->conn;
    struct attachment *a = conn_find_attachment(c, name);
    if (a == NULL) {
        reply_errno(call, -ENOTCONN, name);
        return;
    }
    struct region *r = a->region;
    log_info("detach region=%s pid=%d", r->name, (int)c->peer.pid);
    monitor_emit(MONITOR_DETACHED, r, c->peer.pid);
    if (--a->count == 0) {
        for (struct attachment **p = &c->attachments; *p != NULL; p = &(*p)->next) {
            if (*p == a) {
                *p = a->next;
                break;
            }
        }
        free(a);
        region_client_gone(r);
        region_unref(r);
    }
    dispatch_reply(call, NULL);
}

/* ---- RegionStats ---------------------------------------------------------- */

static json_t *stats_attached(const struct region *r)
{
    json_t *list = json_array();
    size_t n = 0;
    for (struct conn *c = server_first_conn(); c != NULL && n < STATS_MAX_ATTACHED; c = c->next) {
        for (struct attachment *a = c->attachments; a != NULL; a = a->next) {
            if (a->region != r)
                continue;
            json_array_append_new(list,
                                  json_pack("{s:i, s:I, s:I, s:b}", "pid", (int)c->peer.pid, "uid",
                                            (json_int_t)c->peer.uid, "gid", (json_int_t)c->peer.gid,
                                            "writable", a->writable));
            n++;
        }
    }
    return list;
}

static json_t *stats_pool(struct region *r)
{
    struct iob_stats_s st = iob_pool_stats(r->pool);
    json_t *channels = json_array();
    for (size_t i = 0; i < r->nchannels; i++) {
        int id = iob_channel_lookup(r->pool, r->channels[i].name);
        int queued = id >= 0 ? iob_channel_count(r->pool, id) : id;
        json_array_append_new(channels, json_pack("{s:s, s:I, s:i}", "name", r->channels[i].name,
                                                  "depth", (json_int_t)r->channels[i].depth,
                                                  "queued", queued < 0 ? 0 : queued));
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:o}", "bufsize", (json_int_t)st.bufsize, "count",
                     (json_int_t)st.count, "free", (json_int_t)st.nfree, "waits",
                     (json_int_t)st.waits, "channels", channels);
}

struct stats_job {
    struct conn *conn;
    struct region *region;
    unsigned flags;
    struct mm_mallinfo_s info;
    enum mm_error state;
};

static void stats_heap_work(void *arg)
{
    struct stats_job *job = arg;
    struct region *r = job->region;
    if (r->heap == NULL) {
        job->state = MM_ERR_NOTHEAP;
        return;
    }
    job->info = mm_mallinfo(r->heap); /* takes the lock: repairs after a dead holder */
    if (job->info.arena == 0) {       /* no figures: the lock was not to be had */
        enum mm_error e = mm_last_error(r->heap);
        job->state = e != MM_OK ? e : MM_ERR_LOCK;
    } else {
        job->state = mm_heap_state(r->heap);
    }
}

static const char *heap_state_name(enum mm_error state)
{
    switch (state) {
    case MM_OK:
        return "ok";
    case MM_ERR_BROKEN:
        return "broken";
    case MM_ERR_LOCK:
        return "lock-lost";
    case MM_ERR_NOTHEAP:
        return "not-a-heap";
    case MM_ERR_BUSY:
        return "busy";
    default:
        return "error";
    }
}

static void stats_reply(struct conn *c, unsigned flags, struct region *r, json_t *heap,
                        json_t *pool)
{
    json_t *p = json_pack("{s:o, s:o}", "region", region_to_json(r), "attached", stats_attached(r));
    if (heap != NULL)
        json_object_set_new(p, "heap", heap);
    if (pool != NULL)
        json_object_set_new(p, "pool", pool);
    if ((flags & PROTO_ONEWAY) != 0)
        json_decref(p);
    else
        conn_send_reply(c, p, false, NULL, 0);
}

static void stats_heap_done(void *arg)
{
    struct stats_job *job = arg;
    if (!job->conn->closing) {
        json_t *heap = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:s}", "arena", (json_int_t)job->info.arena, "ordblks",
            (json_int_t)job->info.ordblks, "mxordblk", (json_int_t)job->info.mxordblk, "uordblks",
            (json_int_t)job->info.uordblks, "fordblks", (json_int_t)job->info.fordblks, "state",
            heap_state_name(job->state));
        stats_reply(job->conn, job->flags, job->region, heap, NULL);
    }
    region_unref(job->region);
    conn_release(job->conn);
    free(job);
}

static void m_stats(struct dispatch_call *call, json_t *params)
{
    struct region *r = lookup(call, params);
    if (r == NULL)
        return;
    struct conn *c = call->conn;
    if ((access_granted(&c->peer, r) & ACCESS_READ) == 0) {
        reply_errno(call, -EACCES, r->name);
        return;
    }
    if (r->kind == REGION_KIND_IOB) {
        call->answered = true;
        stats_reply(c, call->flags, r, NULL, r->pool != NULL ? stats_pool(r) : NULL);
        return;
    }
    struct stats_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        reply_unavailable(call, -ENOMEM);
        return;
    }
    job->conn = c;
    job->region = r;
    job->flags = call->flags;
    region_ref(r);
    conn_hold(c);
    int rc = work_submit(stats_heap_work, stats_heap_done, job);
    if (rc != 0) {
        region_unref(r);
        conn_release(c);
        free(job);
        reply_unavailable(call, rc < 0 ? rc : -ENOMEM);
        return;
    }
    dispatch_defer(call);
}

/* ---- Monitor ---------------------------------------------------------- */

static void m_monitor(struct dispatch_call *call, json_t *params)
{
    (void)params;
    if ((call->flags & PROTO_MORE) == 0) {
        dispatch_error(call, PROTO_ERR_EXPECTED_MORE, NULL);
        return;
    }
    if ((call->flags & PROTO_ONEWAY) != 0) {
        call->answered = true;
        return;
    }
    monitor_start(call->conn);
    dispatch_stream(call);
}

/* ---- The interface ---------------------------------------------------- */

static const struct proto_param p_create[] = {
    {"name", PROTO_T_STRING, false}, {"kind", PROTO_T_STRING, false},
    {"size", PROTO_T_UINT, true},    {"bufsize", PROTO_T_UINT, true},
    {"count", PROTO_T_UINT, true},   {"channels", PROTO_T_ARRAY, true},
    {"uid", PROTO_T_INT, true},      {"gid", PROTO_T_INT, true},
    {"mode", PROTO_T_INT, true},
};
static const struct proto_param p_name[] = {
    {"name", PROTO_T_STRING, false},
};
static const struct proto_param p_attach[] = {
    {"name", PROTO_T_STRING, false},
    {"writable", PROTO_T_BOOL, true},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct dispatch_method mmsrvd_methods[] = {
    {"CreateRegion", p_create, N(p_create), m_create},
    {"DestroyRegion", p_name, N(p_name), m_destroy},
    {"ListRegions", NULL, 0, m_list},
    {"Attach", p_attach, N(p_attach), m_attach},
    {"Detach", p_name, N(p_name), m_detach},
    {"RegionStats", p_name, N(p_name), m_stats},
    {"Monitor", NULL, 0, m_monitor},
};

static const struct dispatch_interface mmsrvd_interface = {
    PROTO_INTERFACE,
    proto_interface_description,
    mmsrvd_methods,
    N(mmsrvd_methods),
};

void methods_register(void)
{
    dispatch_register_service();
    dispatch_register(&mmsrvd_interface);
}
