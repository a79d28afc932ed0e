/*
 * reply.c: typed readers of reply parameters.
 *
 * The daemon is trusted with the answers it gives (it decides who may attach
 * what), but not with their form: every member is looked up, its type and
 * range checked, and a reply the library cannot use fails its call with
 * -EPROTO instead of filling a struct with guesses.  Members the library
 * does not know are ignored, so a newer daemon may add some.
 */
#include <errno.h>
#include <string.h>

#include "client.h"

int mmsrv__json_uint(const json_t *obj, const char *key, uint64_t max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        return -EPROTO;
    }
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max) {
        return -EPROTO;
    }
    *out = (uint64_t)i;
    return 0;
}

int mmsrv__json_u32(const json_t *obj, const char *key, uint32_t *out)
{
    uint64_t v;
    int rc = mmsrv__json_uint(obj, key, UINT32_MAX, &v);
    if (rc == 0) {
        *out = (uint32_t)v;
    }
    return rc;
}

int mmsrv__json_bool(const json_t *obj, const char *key, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v)) {
        return -EPROTO;
    }
    *out = json_is_true(v);
    return 0;
}

int mmsrv__json_string(const json_t *obj, const char *key, char *dst, size_t size)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        return -EPROTO;
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len >= size || memchr(s, '\0', len) != NULL) {
        return -EPROTO;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

int mmsrv__region_info_parse(const json_t *region, struct mmsrv_region_info *out)
{
    char kind[8];

    if (!json_is_object(region)) {
        return -EPROTO;
    }
    memset(out, 0, sizeof(*out));
    if (mmsrv__json_string(region, "name", out->name, sizeof(out->name)) < 0 ||
        !proto_name_valid(out->name) ||
        mmsrv__json_string(region, "kind", kind, sizeof(kind)) < 0 ||
        mmsrv__json_uint(region, "size", INT64_MAX, &out->size) < 0 ||
        mmsrv__json_u32(region, "uid", &out->uid) < 0 ||
        mmsrv__json_u32(region, "gid", &out->gid) < 0 ||
        mmsrv__json_u32(region, "mode", &out->mode) < 0 ||
        mmsrv__json_u32(region, "clients", &out->clients) < 0 ||
        mmsrv__json_bool(region, "destroying", &out->destroying) < 0) {
        return -EPROTO;
    }
    if (strcmp(kind, "heap") == 0) {
        out->kind = MMSRV_HEAP;
    } else if (strcmp(kind, "iob") == 0) {
        out->kind = MMSRV_IOB;
    } else {
        return -EPROTO;
    }
    return 0;
}
