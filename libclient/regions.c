/*
 * regions.c: the control calls on regions (CreateRegion, DestroyRegion,
 * ListRegions, RegionStats) as Varlink parameters and back.
 *
 * Arguments are checked here, before anything is sent: a NULL, a bad name or
 * a spec that cannot make a region fails with -EINVAL and the daemon never
 * sees it.  What only the daemon can judge (sizes against its segment,
 * channel depths, access) it judges.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static const char *kind_name(enum mmsrv_kind kind)
{
    switch (kind) {
    case MMSRV_HEAP:
        return "heap";
    case MMSRV_IOB:
        return "iob";
    }
    return NULL;
}

/* An optional access member: -1 leaves it to the daemon. */
static int set_access(json_t *params, const char *key, int64_t value)
{
    if (value == -1) {
        return 0;
    }
    if (value < 0 || value > UINT32_MAX) {
        return -EINVAL;
    }
    return json_object_set_new(params, key, json_integer(value)) == 0 ? 0 : -ENOMEM;
}

static int channels_encode(json_t *params, const struct mmsrv_region_spec *spec)
{
    if (spec->nchannels == 0) {
        return 0;
    }
    if (spec->channels == NULL) {
        return -EINVAL;
    }
    json_t *array = json_array();
    if (array == NULL || json_object_set_new(params, "channels", array) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < spec->nchannels; i++) {
        const struct mmsrv_channel_spec *ch = &spec->channels[i];
        if (ch->name == NULL || ch->name[0] == '\0' || ch->depth == 0) {
            return -EINVAL;
        }
        json_t *obj = json_pack("{s:s, s:I}", "name", ch->name, "depth", (json_int_t)ch->depth);
        if (obj == NULL) {
            return -EINVAL; /* a name that is not UTF-8 */
        }
        if (json_array_append_new(array, obj) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int create_params(const struct mmsrv_region_spec *spec, json_t **out)
{
    const char *kind = kind_name(spec->kind);
    int rc;

    if (!proto_name_valid(spec->name) || kind == NULL) {
        return -EINVAL;
    }
    json_t *params = json_pack("{s:s, s:s}", "name", spec->name, "kind", kind);
    if (params == NULL) {
        return -ENOMEM;
    }
    if (spec->kind == MMSRV_HEAP) {
        if (spec->size == 0 || spec->size > INT64_MAX || spec->nchannels != 0) {
            rc = -EINVAL;
            goto fail;
        }
        rc = json_object_set_new(params, "size", json_integer((json_int_t)spec->size));
    } else {
        if (spec->bufsize == 0 || spec->count == 0) {
            rc = -EINVAL;
            goto fail;
        }
        rc = json_object_set_new(params, "bufsize", json_integer(spec->bufsize));
        if (rc == 0) {
            rc = json_object_set_new(params, "count", json_integer(spec->count));
        }
        if (rc == 0) {
            rc = channels_encode(params, spec);
        }
    }
    if (rc == 0) {
        rc = set_access(params, "uid", spec->uid);
    }
    if (rc == 0) {
        rc = set_access(params, "gid", spec->gid);
    }
    if (rc == 0) {
        rc = set_access(params, "mode", spec->mode);
    }
    if (rc < 0) {
        goto fail;
    }
    *out = params;
    return 0;

fail:
    json_decref(params);
    return rc < 0 ? rc : -ENOMEM;
}

int mmsrv_create(struct mmsrv_client *client, const struct mmsrv_region_spec *spec,
                 struct mmsrv_region_info *info)
{
    struct mmsrv__reply reply;
    struct mmsrv_region_info got;
    json_t *params;

    if (client == NULL || spec == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    int rc = create_params(spec, &params);
    if (rc < 0) {
        return mmsrv__fail(rc);
    }
    pthread_mutex_lock(&client->lock);
    rc = mmsrv__call(client, PROTO_INTERFACE ".CreateRegion", params, &reply);
    pthread_mutex_unlock(&client->lock);
    if (rc < 0) {
        return rc;
    }
    rc = mmsrv__region_info_parse(json_object_get(reply.msg.parameters, "region"), &got);
    mmsrv__reply_release(&reply);
    if (rc < 0) {
        return mmsrv__fail(rc);
    }
    if (info != NULL) {
        *info = got;
    }
    return 0;
}

int mmsrv__call_name(struct mmsrv_client *client, const char *method, const char *name)
{
    struct mmsrv__reply reply;

    json_t *params = json_pack("{s:s}", "name", name);
    if (params == NULL) {
        return mmsrv__fail(-ENOMEM);
    }
    int rc = mmsrv__call(client, method, params, &reply);
    if (rc == 0) {
        mmsrv__reply_release(&reply);
    }
    return rc;
}

int mmsrv_destroy(struct mmsrv_client *client, const char *name)
{
    if (client == NULL || !proto_name_valid(name)) {
        return mmsrv__fail(-EINVAL);
    }
    pthread_mutex_lock(&client->lock);
    int rc = mmsrv__call_name(client, PROTO_INTERFACE ".DestroyRegion", name);
    pthread_mutex_unlock(&client->lock);
    return rc;
}

int mmsrv_list(struct mmsrv_client *client, struct mmsrv_region_info **out)
{
    struct mmsrv__reply reply;

    if (client == NULL || out == NULL) {
        return mmsrv__fail(-EINVAL);
    }
    *out = NULL;
    pthread_mutex_lock(&client->lock);
    int rc = mmsrv__call(client, PROTO_INTERFACE ".ListRegions", NULL, &reply);
    pthread_mutex_unlock(&client->lock);
    if (rc < 0) {
        return rc;
    }
    const json_t *regions = json_object_get(reply.msg.parameters, "regions");
    size_t n = json_array_size(regions);
    struct mmsrv_region_info *list = NULL;
    if (!json_is_array(regions) || n > INT32_MAX) {
        rc = -EPROTO;
        goto out;
    }
    if (n > 0) {
        list = calloc(n, sizeof(*list));
        if (list == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rc = mmsrv__region_info_parse(json_array_get(regions, i), &list[i]);
        if (rc < 0) {
            free(list);
            goto out;
        }
    }
    *out = list;
    rc = (int)n;

out:
    mmsrv__reply_release(&reply);
    return rc < 0 ? mmsrv__fail(rc) : rc;
}

static int heap_stats_parse(const json_t *heap, struct mmsrv_stats *out)
{
    if (heap == NULL || json_is_null(heap)) {
        return 0;
    }
    if (mmsrv__json_uint(heap, "arena", INT64_MAX, &out->arena) < 0 ||
        mmsrv__json_uint(heap, "ordblks", INT64_MAX, &out->ordblks) < 0 ||
        mmsrv__json_uint(heap, "mxordblk", INT64_MAX, &out->mxordblk) < 0 ||
        mmsrv__json_uint(heap, "uordblks", INT64_MAX, &out->uordblks) < 0 ||
        mmsrv__json_uint(heap, "fordblks", INT64_MAX, &out->fordblks) < 0) {
        return -EPROTO;
    }
    const json_t *state = json_object_get(heap, "state");
    if (!json_is_string(state)) {
        return -EPROTO;
    }
    /* a state name longer than the field is cut: it is for display */
    strncpy(out->heap_state, json_string_value(state), sizeof(out->heap_state) - 1);
    out->heap_state[sizeof(out->heap_state) - 1] = '\0';
    return 0;
}

static int pool_stats_parse(const json_t *pool, struct mmsrv_stats *out)
{
    if (pool == NULL || json_is_null(pool)) {
        return 0;
    }
    const json_t *channels = json_object_get(pool, "channels");
    if (mmsrv__json_u32(pool, "bufsize", &out->bufsize) < 0 ||
        mmsrv__json_u32(pool, "count", &out->count) < 0 ||
        mmsrv__json_u32(pool, "free", &out->free) < 0 ||
        mmsrv__json_uint(pool, "waits", INT64_MAX, &out->waits) < 0 || !json_is_array(channels) ||
        json_array_size(channels) > UINT32_MAX) {
        return -EPROTO;
    }
    out->nchannels = (uint32_t)json_array_size(channels);
    return 0;
}

int mmsrv_stats(struct mmsrv_client *client, const char *name, struct mmsrv_stats *out)
{
    struct mmsrv__reply reply;
    struct mmsrv_stats st;

    if (client == NULL || out == NULL || !proto_name_valid(name)) {
        return mmsrv__fail(-EINVAL);
    }
    json_t *params = json_pack("{s:s}", "name", name);
    if (params == NULL) {
        return mmsrv__fail(-ENOMEM);
    }
    pthread_mutex_lock(&client->lock);
    int rc = mmsrv__call(client, PROTO_INTERFACE ".RegionStats", params, &reply);
    pthread_mutex_unlock(&client->lock);
    if (rc < 0) {
        return rc;
    }
    memset(&st, 0, sizeof(st));
    const json_t *p = reply.msg.parameters;
    const json_t *attached = json_object_get(p, "attached");
    rc = mmsrv__region_info_parse(json_object_get(p, "region"), &st.info);
    if (rc == 0) {
        rc = heap_stats_parse(json_object_get(p, "heap"), &st);
    }
    if (rc == 0) {
        rc = pool_stats_parse(json_object_get(p, "pool"), &st);
    }
    if (rc == 0 && (!json_is_array(attached) || json_array_size(attached) > UINT32_MAX)) {
        rc = -EPROTO;
    }
    if (rc == 0) {
        st.nattached = (uint32_t)json_array_size(attached);
        *out = st;
    }
    mmsrv__reply_release(&reply);
    return rc < 0 ? mmsrv__fail(rc) : 0;
}
