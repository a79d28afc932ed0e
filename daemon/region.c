/*
 * region.c: the daemon's table of regions.
 *
 * A region is a run of the segment's pages backed by its own memfd (sized,
 * then sealed so that nobody can grow or shrink it under the others),
 * starting with the region header (proto/region.h) and, after it, an mm heap
 * or an IOB pool with its channels.  The table, not the header, is the
 * authority on every region: clients can write the header.
 *
 * Lifetime: a region is referenced by each connection that has it attached,
 * by each departed owner whose reclaim is pending, and by work in flight on
 * libuv's thread pool.  Destroying it removes its name at once (a new region
 * may take the name) and frees its pages and descriptor when the last
 * reference goes.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct region *regions;
static size_t nregions; /* live and destroying */
static struct region_defaults defaults = {.mode = 0600, .uid = -1, .gid = -1, .max_regions = 256};
static uint64_t next_generation;

void region_set_defaults(const struct region_defaults *d)
{
    defaults = *d;
}

size_t region_count(void)
{
    return nregions;
}

size_t region_limit(void)
{
    return defaults.max_regions;
}

struct region *region_first(void)
{
    return regions;
}

struct region *region_find(const char *name)
{
    for (struct region *r = regions; r != NULL; r = r->next)
        if (!r->destroying && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

uint64_t region_next_generation(void)
{
    if (next_generation == 0) {
        /* Unique across this host's daemons without any state: the start
         * time in microseconds, then counted up. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        next_generation = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    }
    return next_generation;
}

void region_set_next_generation(uint64_t gen)
{
    if (gen > region_next_generation())
        next_generation = gen;
}

const char *region_kind_name(enum region_kind kind)
{
    return kind == REGION_KIND_HEAP ? "heap" : "iob";
}

/* ---- Specs ------------------------------------------------------------ */

static int spec_bad(const char **bad, const char *member, char *why, size_t whylen,
                    const char *text)
{
    *bad = member;
    snprintf(why, whylen, "%s", text);
    return -EINVAL;
}

/* An optional integer member in [lo, hi]: 0 (absent: *out untouched),
 * -EINVAL. */
static int spec_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    bool *present)
{
    const json_t *v = json_object_get(obj, key);
    if (present != NULL)
        *present = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return -EINVAL;
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return -EINVAL;
    *out = x;
    if (present != NULL)
        *present = true;
    return 0;
}

static int spec_channels(const json_t *arr, struct region_spec *spec, const char **bad, char *why,
                         size_t whylen)
{
    size_t i;
    const json_t *ch;

    if (!json_is_array(arr))
        return spec_bad(bad, "channels", why, whylen, "must be an array of {name, depth}");
    if (json_array_size(arr) > REGION_MAX_CHANNELS) {
        *bad = "channels";
        snprintf(why, whylen, "at most %u channels per region", (unsigned)REGION_MAX_CHANNELS);
        return -EINVAL;
    }
    json_array_foreach(arr, i, ch)
    {
        const char *k;
        json_t *v;
        const json_t *name = json_object_get(ch, "name");
        const json_t *depth = json_object_get(ch, "depth");
        if (!json_is_object(ch) || !json_is_string(name) || !json_is_integer(depth))
            return spec_bad(bad, "channels", why, whylen,
                            "each channel must be {\"name\": string, \"depth\": int}");
        json_object_foreach((json_t *)ch, k, v)
        {
            if (strcmp(k, "name") != 0 && strcmp(k, "depth") != 0)
                return spec_bad(bad, "channels", why, whylen, "a channel has only name and depth");
        }
        size_t nlen = json_string_length(name);
        const char *s = json_string_value(name);
        if (nlen == 0 || nlen >= IOB_CHANNEL_NAME_MAX || strlen(s) != nlen) {
            *bad = "channels";
            snprintf(why, whylen, "channel names have 1 to %u bytes",
                     (unsigned)IOB_CHANNEL_NAME_MAX - 1);
            return -EINVAL;
        }
        json_int_t d = json_integer_value(depth);
        if (d < 1 || d > IOB_CONFIG_CHANNEL_DEPTH || (d & (d - 1)) != 0) {
            *bad = "channels";
            snprintf(why, whylen, "channel depth must be a power of two from 1 to %u",
                     (unsigned)IOB_CONFIG_CHANNEL_DEPTH);
            return -EINVAL;
        }
        for (size_t j = 0; j < spec->nchannels; j++)
            if (strcmp(spec->channels[j].name, s) == 0)
                return spec_bad(bad, "channels", why, whylen, "channel names must be distinct");
        memcpy(spec->channels[spec->nchannels].name, s, nlen + 1);
        spec->channels[spec->nchannels].depth = (uint32_t)d;
        spec->nchannels++;
    }
    return 0;
}

int region_spec_parse(const json_t *obj, struct region_spec *spec, const char **bad, char *why,
                      size_t whylen)
{
    static const char *const known[] = {"name",     "kind", "size", "bufsize", "count",
                                        "channels", "uid",  "gid",  "mode"};
    const char *key;
    json_t *v;
    bool present;
    int64_t x;

    memset(spec, 0, sizeof(*spec));
    spec->uid = spec->gid = spec->mode = -1;
    if (!json_is_object(obj))
        return spec_bad(bad, "parameters", why, whylen, "must be an object");
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok) {
            *bad = key;
            snprintf(why, whylen, "unknown member");
            return -EINVAL;
        }
    }

    const json_t *name = json_object_get(obj, "name");
    if (!json_is_string(name))
        return spec_bad(bad, "name", why, whylen, "a string is required");
    if (!proto_name_valid(json_string_value(name)) ||
        strlen(json_string_value(name)) != json_string_length(name))
        return spec_bad(bad, "name", why, whylen, "must be 1 to 63 characters of [A-Za-z0-9._-]");
    snprintf(spec->name, sizeof(spec->name), "%s", json_string_value(name));

    const json_t *kind = json_object_get(obj, "kind");
    if (!json_is_string(kind))
        return spec_bad(bad, "kind", why, whylen, "must be \"heap\" or \"iob\"");
    if (strcmp(json_string_value(kind), "heap") == 0)
        spec->kind = REGION_KIND_HEAP;
    else if (strcmp(json_string_value(kind), "iob") == 0)
        spec->kind = REGION_KIND_IOB;
    else
        return spec_bad(bad, "kind", why, whylen, "must be \"heap\" or \"iob\"");

    if (spec->kind == REGION_KIND_HEAP) {
        x = 0;
        if (spec_int(obj, "size", 1, INT64_MAX, &x, &present) != 0 || !present)
            return spec_bad(bad, "size", why, whylen,
                            "a heap needs size, a positive integer (bytes)");
        if ((uint64_t)x > (uint64_t)MM_MAX_HEAPSIZE) {
            *bad = "size";
            snprintf(why, whylen, "a heap holds at most %llu bytes",
                     (unsigned long long)MM_MAX_HEAPSIZE);
            return -EINVAL;
        }
        spec->size = (uint64_t)x;
        if (json_object_get(obj, "bufsize") != NULL)
            return spec_bad(bad, "bufsize", why, whylen, "only for iob regions");
        if (json_object_get(obj, "count") != NULL)
            return spec_bad(bad, "count", why, whylen, "only for iob regions");
        if (json_object_get(obj, "channels") != NULL)
            return spec_bad(bad, "channels", why, whylen, "only for iob regions");
    } else {
        x = 0;
        if (spec_int(obj, "bufsize", 1, IOB_MAX_BUFSIZE, &x, &present) != 0 || !present) {
            *bad = "bufsize";
            snprintf(why, whylen, "an iob region needs bufsize, 1 to %u bytes",
                     (unsigned)IOB_MAX_BUFSIZE);
            return -EINVAL;
        }
        spec->bufsize = (uint32_t)x;
        x = 0;
        if (spec_int(obj, "count", 1, IOB_MAX_BUFFERS, &x, &present) != 0 || !present) {
            *bad = "count";
            snprintf(why, whylen, "an iob region needs count, 1 to %u buffers",
                     (unsigned)IOB_MAX_BUFFERS);
            return -EINVAL;
        }
        spec->count = (uint32_t)x;
        if (json_object_get(obj, "size") != NULL && !json_is_null(json_object_get(obj, "size")))
            return spec_bad(bad, "size", why, whylen,
                            "only for heap regions (an iob region's size follows from bufsize "
                            "and count)");
        const json_t *ch = json_object_get(obj, "channels");
        if (ch != NULL && !json_is_null(ch)) {
            int rc = spec_channels(ch, spec, bad, why, whylen);
            if (rc != 0)
                return rc;
        }
    }

    /* absent means the default; there is no in-band "default" value */
    if (spec_int(obj, "uid", 0, (int64_t)UINT32_MAX - 1, &spec->uid, NULL) != 0)
        return spec_bad(bad, "uid", why, whylen, "must be a user id");
    if (spec_int(obj, "gid", 0, (int64_t)UINT32_MAX - 1, &spec->gid, NULL) != 0)
        return spec_bad(bad, "gid", why, whylen, "must be a group id");
    if (spec_int(obj, "mode", 0, 0777, &spec->mode, NULL) != 0)
        return spec_bad(bad, "mode", why, whylen, "must be a mode from 0 to 0777");
    return 0;
}

/* ---- Creating and freeing ------------------------------------------- */

static size_t round_pages(uint64_t bytes)
{
    uint64_t page = segment_page_size();
    if (bytes > UINT64_MAX - page)
        return 0;
    uint64_t r = (bytes + page - 1) / page * page;
    return r > SIZE_MAX ? 0 : (size_t)r;
}

/* A sealed memfd of size bytes: its size can never change, and only the
 * daemon's user can open it again through /proc (access_readonly_fd). */
static int region_memfd(const char *name, size_t size)
{
    char label[80];
    snprintf(label, sizeof(label), "mmsrv:%s", name);
    int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)size) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static void region_link(struct region *r)
{
    r->next = regions;
    regions = r;
    nregions++;
}

int region_create(const struct region_spec *spec, uid_t uid, gid_t gid, pid_t pid,
                  struct region **out, const char **bad, uint64_t *need, uint64_t *avail)
{
    size_t size;
    int rc;

    *bad = NULL;
    *need = *avail = 0;
    if (region_find(spec->name) != NULL)
        return -EEXIST;
    if (spec->kind == REGION_KIND_HEAP) {
        size = round_pages(spec->size);
        if (size - REGION_ALLOC_OFFSET > MM_MAX_HEAPSIZE || size <= REGION_ALLOC_OFFSET) {
            *bad = "size";
            return -EINVAL;
        }
    } else {
        size_t pool = iob_pool_size(spec->bufsize, spec->count);
        if (pool == 0 || pool > SIZE_MAX - REGION_ALLOC_OFFSET) {
            *bad = "count";
            return -EINVAL;
        }
        size = round_pages(REGION_ALLOC_OFFSET + (uint64_t)pool);
    }
    *need = size;
    if (nregions >= defaults.max_regions)
        return -EUSERS; /* the table is full, whatever the space */
    if (size == 0 || size > segment_size()) {
        *avail = segment_largest_free();
        return -ENOSPC;
    }

    struct region *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    snprintf(r->name, sizeof(r->name), "%s", spec->name);
    r->kind = spec->kind;
    r->size = size;
    r->uid = spec->uid >= 0 ? (uint32_t)spec->uid
                            : (defaults.uid >= 0 ? (uint32_t)defaults.uid : (uint32_t)uid);
    r->gid = spec->gid >= 0 ? (uint32_t)spec->gid
                            : (defaults.gid >= 0 ? (uint32_t)defaults.gid : (uint32_t)gid);
    r->mode = spec->mode >= 0 ? (uint32_t)spec->mode : defaults.mode;
    r->bufsize = spec->bufsize;
    r->count = spec->count;
    memcpy(r->channels, spec->channels, sizeof(r->channels));
    r->nchannels = spec->nchannels;
    r->fd = -1;

    r->base = segment_alloc(size);
    if (r->base == NULL) {
        *avail = segment_largest_free();
        free(r);
        return -ENOSPC;
    }
    rc = region_memfd(r->name, size);
    if (rc < 0)
        goto fail_pages;
    r->fd = rc;
    rc = segment_map(r->base, size, r->fd);
    if (rc < 0)
        goto fail_fd;

    r->generation = region_next_generation();
    rc = region_header_write(r->base, size, r->kind, r->generation, r->name);
    if (rc < 0)
        goto fail_map;
    uint8_t *alloc = r->base + REGION_ALLOC_OFFSET;
    size_t alloc_size = size - REGION_ALLOC_OFFSET;
    if (r->kind == REGION_KIND_HEAP) {
        r->heap = mm_initialize(r->name, alloc, alloc_size);
        if (r->heap == NULL) {
            /* the size is within the model's limit: no handle left */
            *avail = 0;
            rc = -ENOSPC;
            goto fail_map;
        }
    } else {
        r->pool = iob_pool_initialize(alloc, alloc_size, r->bufsize, r->count, 0);
        if (r->pool == NULL) {
            *avail = 0;
            rc = -ENOSPC;
            goto fail_map;
        }
        for (size_t i = 0; i < r->nchannels; i++) {
            rc = iob_channel_create(r->pool, r->channels[i].name, r->channels[i].depth, 0);
            if (rc < 0) {
                *bad = "channels";
                rc = -EINVAL;
                goto fail_alloc;
            }
        }
    }
    next_generation = r->generation + 1;
    region_link(r);
    *out = r;

    log_info("create region=%s kind=%s size=%zu generation=%llu uid=%u gid=%u mode=%04o pid=%d",
             r->name, region_kind_name(r->kind), r->size, (unsigned long long)r->generation, r->uid,
             r->gid, r->mode, (int)pid);
    sd_region_stored(r);
    sd_table_changed();
    monitor_emit(MONITOR_CREATED, r, pid);
    return 0;

fail_alloc:
    if (r->pool != NULL)
        iob_pool_detach(r->pool);
fail_map:
fail_fd:
    close(r->fd);
fail_pages:
    segment_free(r->base, size);
    free(r);
    return rc;
}

int region_restore(const char *name, enum region_kind kind, uint64_t generation, uint64_t offset,
                   uint64_t size, uint32_t uid, uint32_t gid, uint32_t mode, uint32_t bufsize,
                   uint32_t count, const struct channel_spec *channels, size_t nchannels, int fd)
{
    struct stat st;
    int rc;

    if (size <= REGION_ALLOC_OFFSET || size > SIZE_MAX || fstat(fd, &st) != 0 ||
        (uint64_t)st.st_size != size) {
        close(fd);
        return -EBADMSG;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        close(fd);
        return -EBADMSG;
    }
    if (region_find(name) != NULL) {
        close(fd);
        return -EEXIST;
    }
    struct region *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        close(fd);
        return -ENOMEM;
    }
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->kind = kind;
    r->generation = generation;
    r->size = (size_t)size;
    r->uid = uid;
    r->gid = gid;
    r->mode = mode;
    r->bufsize = bufsize;
    r->count = count;
    memcpy(r->channels, channels, nchannels * sizeof(*channels));
    r->nchannels = nchannels;
    r->fd = fd;
    rc = segment_reserve(offset, r->size, &r->base);
    if (rc < 0) {
        close(fd);
        free(r);
        return rc;
    }
    rc = segment_map(r->base, r->size, fd);
    if (rc < 0) {
        segment_free(r->base, r->size);
        close(fd);
        free(r);
        return rc;
    }
    /* Clients may have scribbled over the allocator's header while the
     * daemon was away: a region that no longer attaches is kept (its data
     * may still matter to them), and reports itself broken. */
    uint8_t *alloc = r->base + REGION_ALLOC_OFFSET;
    if (kind == REGION_KIND_HEAP)
        r->heap = mm_attach(alloc, r->size - REGION_ALLOC_OFFSET);
    else
        r->pool = iob_pool_attach(alloc, r->size - REGION_ALLOC_OFFSET);
    if (r->heap == NULL && r->pool == NULL)
        log_warn("restore region=%s: its %s no longer attaches (overwritten?)", name,
                 region_kind_name(kind));
    region_link(r);
    region_set_next_generation(generation + 1);
    log_info("restore region=%s kind=%s size=%zu generation=%llu offset=%llu", r->name,
             region_kind_name(kind), r->size, (unsigned long long)generation,
             (unsigned long long)offset);
    return 0;
}

static void region_unlink(struct region *r)
{
    for (struct region **p = &regions; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            nregions--;
            return;
        }
    }
}

static void region_drop(struct region *r)
{
    if (r->heap != NULL)
        mm_detach(r->heap);
    if (r->pool != NULL)
        iob_pool_detach(r->pool);
    r->heap = NULL;
    r->pool = NULL;
    close(r->fd);
    r->fd = -1;
}

static void region_free(struct region *r)
{
    region_unlink(r);
    region_drop(r);
    segment_free(r->base, r->size);
    log_info("free region=%s generation=%llu size=%zu", r->name, (unsigned long long)r->generation,
             r->size);
    sd_region_removed(r);
    sd_table_changed();
    free(r);
}

void region_destroy(struct region *r)
{
    if (r->destroying)
        return;
    r->destroying = true;
    log_info("destroy region=%s generation=%llu clients=%u", r->name,
             (unsigned long long)r->generation, r->clients);
    monitor_emit(MONITOR_DESTROYED, r, 0);
    if (r->refs == 0) {
        region_free(r);
        return;
    }
    sd_table_changed();
    /* Owners that attached it earlier and detached since still hold it for
     * their reclaim; with no client attached, nothing is left to reclaim,
     * so the memory goes now rather than when those processes disconnect. */
    if (r->clients == 0)
        owner_forget_region(r);
}

void region_client_gone(struct region *r)
{
    r->clients--;
    if (r->clients == 0 && r->destroying)
        owner_forget_region(r);
}

void region_ref(struct region *r)
{
    r->refs++;
}

void region_unref(struct region *r)
{
    if (--r->refs == 0 && r->destroying)
        region_free(r);
}

void region_release_all(void)
{
    while (regions != NULL) {
        struct region *r = regions;
        regions = r->next;
        region_drop(r);
        free(r);
    }
    nregions = 0;
}

json_t *region_to_json(const struct region *r)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "name", r->name, "kind",
                     region_kind_name(r->kind), "size", (json_int_t)r->size, "uid",
                     (json_int_t)r->uid, "gid", (json_int_t)r->gid, "mode", (json_int_t)r->mode,
                     "clients", (json_int_t)r->clients, "destroying", r->destroying);
}
