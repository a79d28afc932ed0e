/*
 * attach.c: Attach and Detach, from the daemon's reply to a mapped region
 * with its heap or pool handle, and back.
 *
 * The reply is the authority on what the region is; its memory is not (any
 * attached client may have written over it).  So the descriptor's size must
 * be the size the reply gives, and the header at the start of the memory
 * must agree with the reply on kind, size and allocator offset before the
 * memory goes to mm_attach() or iob_pool_attach(), which check their own
 * state in turn.  Whatever fails after the daemon attached us is undone: the
 * mapping, the descriptor, and the attachment (a Detach call).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "mm/iob.h"
#include "mm/mm.h"
#include "region.h"

/* What the Attach reply says, checked. */
struct attach_reply {
    struct mmsrv_region_info info;
    bool writable;
    uint32_t owner;
    uint64_t offset;
};

static int attach_reply_parse(const json_t *p, const char *name, bool want_write,
                              struct attach_reply *out)
{
    bool writable;

    if (mmsrv__region_info_parse(json_object_get(p, "region"), &out->info) < 0 ||
        mmsrv__json_bool(p, "writable", &writable) < 0 ||
        mmsrv__json_u32(p, "owner", &out->owner) < 0 ||
        mmsrv__json_uint(p, "offset", INT64_MAX, &out->offset) < 0) {
        return -EPROTO;
    }
    if (strcmp(out->info.name, name) != 0 || out->info.size > SIZE_MAX ||
        out->info.size < REGION_ALLOC_OFFSET || out->offset >= out->info.size) {
        return -EPROTO;
    }
    /* A read-only request stays read-only whatever the reply says. */
    out->writable = writable && want_write;
    if (out->writable && out->owner == 0) {
        return -EPROTO; /* allocations need an owner id to be reclaimed by */
    }
    return 0;
}

/* Check the header of the mapping against the reply and open the allocator.
 * 0, or -EUCLEAN when the memory does not hold what the daemon said, or
 * -EMFILE when this process has no allocator handle left. */
static int region_open(struct mmsrv_region *r, const struct attach_reply *a)
{
    struct region_layout layout;
    enum region_kind kind = a->info.kind == MMSRV_HEAP ? REGION_KIND_HEAP : REGION_KIND_IOB;

    if (region_header_read(r->base, r->size, &layout) < 0 || layout.kind != kind ||
        layout.size != a->info.size || layout.alloc_offset != a->offset ||
        layout.alloc_size > a->info.size - a->offset || strcmp(layout.name, a->info.name) != 0) {
        return -EUCLEAN;
    }
    if (!r->writable) {
        return 0;
    }
    void *start = (char *)r->base + layout.alloc_offset;
    size_t size = (size_t)layout.alloc_size;
    if (a->info.kind == MMSRV_HEAP) {
        r->heap = mm_attach(start, size);
        if (r->heap == NULL) {
            return mm_last_error(NULL) == MM_ERR_HANDLES ? -EMFILE : -EUCLEAN;
        }
        /* Process-wide: blocks this process caches are recorded under the
         * id the daemon reclaims when this connection closes. */
        mm_set_owner_id(a->owner);
    } else {
        r->pool = iob_pool_attach(start, size);
        if (r->pool == NULL) {
            return iob_pool_error(NULL) == -MM_ENOSPC ? -EMFILE : -EUCLEAN;
        }
        iob_pool_set_owner(r->pool, a->owner);
    }
    return 0;
}

/* Release the allocator handle and the mapping. */
static void region_close(struct mmsrv_region *r)
{
    if (r->heap != NULL) {
        mm_detach(r->heap);
        r->heap = NULL;
    }
    if (r->pool != NULL) {
        iob_pool_detach(r->pool);
        r->pool = NULL;
    }
    if (r->base != NULL) {
        munmap(r->base, r->size);
        r->base = NULL;
    }
}

/* Map the descriptor the reply carries; it is closed either way. */
static int region_map(struct mmsrv__reply *reply, const struct attach_reply *a,
                      struct mmsrv_region *r)
{
    struct stat st;
    int fd = mmsrv__reply_take_fd(reply, reply->msg.parameters, "fd");
    if (fd < 0) {
        return -EPROTO;
    }
    int rc = 0;
    if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size != a->info.size) {
        rc = -EPROTO;
        goto out;
    }
    r->size = (size_t)a->info.size;
    r->writable = a->writable;
    void *base =
        mmap(NULL, r->size, a->writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    r->base = base;

out:
    close(fd);
    return rc;
}

int mmsrv_attach(struct mmsrv_client *client, const char *name, unsigned flags,
                 struct mmsrv_region **out)
{
    struct mmsrv__reply reply;
    struct attach_reply a;

    if (out != NULL) {
        *out = NULL;
    }
    if (client == NULL || out == NULL || !proto_name_valid(name) ||
        (flags & ~MMSRV_ATTACH_READONLY) != 0) {
        return mmsrv__fail(-EINVAL);
    }
    bool want_write = (flags & MMSRV_ATTACH_READONLY) == 0;
    json_t *params = json_pack("{s:s, s:b}", "name", name, "writable", want_write);
    if (params == NULL) {
        return mmsrv__fail(-ENOMEM);
    }
    struct mmsrv__region *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        json_decref(params);
        return mmsrv__fail(-ENOMEM);
    }

    pthread_mutex_lock(&client->lock);
    int rc = mmsrv__call(client, PROTO_INTERFACE ".Attach", params, &reply);
    if (rc < 0) {
        pthread_mutex_unlock(&client->lock);
        free(entry);
        return rc;
    }
    rc = attach_reply_parse(reply.msg.parameters, name, want_write, &a);
    if (rc == 0) {
        rc = region_map(&reply, &a, &entry->pub);
    }
    mmsrv__reply_release(&reply); /* closes any other descriptor it brought */
    if (rc == 0) {
        rc = region_open(&entry->pub, &a);
    }
    if (rc < 0) {
        region_close(&entry->pub);
        /* Best effort: the daemon counts us attached until told otherwise or
         * until the connection closes. */
        mmsrv__call_name(client, PROTO_INTERFACE ".Detach", name);
        pthread_mutex_unlock(&client->lock);
        free(entry);
        return mmsrv__fail(rc);
    }
    entry->pub.info = a.info;
    entry->pub.owner = a.owner;
    entry->next = client->regions;
    client->regions = entry;
    pthread_mutex_unlock(&client->lock);
    *out = &entry->pub;
    return 0;
}

int mmsrv_detach(struct mmsrv_client *client, struct mmsrv_region *region)
{
    if (client == NULL || region == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    pthread_mutex_lock(&client->lock);
    if (client->monitoring) {
        pthread_mutex_unlock(&client->lock);
        return mmsrv__fail(-EBUSY); /* as every call: it could not be sent */
    }
    struct mmsrv__region **link = &client->regions;
    while (*link != NULL && &(*link)->pub != region) {
        link = &(*link)->next;
    }
    struct mmsrv__region *entry = *link;
    if (entry == NULL) {
        pthread_mutex_unlock(&client->lock);
        return mmsrv__fail(-EINVAL); /* not a region of this connection */
    }
    *link = entry->next;
    region_close(&entry->pub);
    int rc = mmsrv__call_name(client, PROTO_INTERFACE ".Detach", entry->pub.info.name);
    pthread_mutex_unlock(&client->lock);
    free(entry);
    return rc;
}

void mmsrv__regions_release(struct mmsrv_client *client)
{
    struct mmsrv__region *entry = client->regions;
    while (entry != NULL) {
        struct mmsrv__region *next = entry->next;
        region_close(&entry->pub);
        free(entry);
        entry = next;
    }
    client->regions = NULL;
}
