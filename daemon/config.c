/*
 * config.c: the configuration file, JSON read by jansson.
 *
 *   {
 *     "socket": "/run/mmsrvd/io.mmsrvd",
 *     "segment_size": "256M",          bytes, or a string with K, M, G, T
 *     "page_size": 4096,
 *     "default_mode": "0660",          octal string or integer
 *     "default_uid": -1,               -1: the creator's; a number or a name
 *     "default_gid": -1,
 *     "max_clients": 4096,
 *     "max_regions": 256,
 *     "output_limit": "256K",          queued reply bytes before a client is not read
 *     "stall_timeout_ms": 10000,       a client whose replies do not move is closed
 *     "regions": [ { CreateRegion's parameters }, ... ]
 *   }
 *
 * Every member is optional; unknown members are refused (a typo must not
 * pass silently).  Each problem is logged with the file, the line and
 * column (a JSON syntax error) or the key path ("regions[1].size"), and
 * what is wrong, and the whole file is refused.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"
#include "mm/iob.h"
#include "mm/mm.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The daemon holds a heap or pool handle per region it serves: the
 * allocators' per-process tables must not run out before the region
 * table does. */
#define CONFIG_MAX_REGIONS 256
_Static_assert(MM_CONFIG_MAX_HEAPS >= CONFIG_MAX_REGIONS &&
                   IOB_CONFIG_MAX_POOLS >= CONFIG_MAX_REGIONS,
               "every region the configuration allows gets a handle");

#ifndef MMSRVD_CONFIG_PATH
#define MMSRVD_CONFIG_PATH "/etc/mmsrvd/mmsrvd.conf"
#endif

int config_parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    if (text == NULL || *text < '0' || *text > '9')
        return -EINVAL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case '\0':
        break;
    default:
        return -EINVAL;
    }
    if (shift != 0) {
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
            end += strlen(end);
    }
    if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

static void defaults_init(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->segment_size = 256ull << 20;
    c->page_size = 4096;
    c->defaults.mode = 0600;
    c->defaults.uid = -1;
    c->defaults.gid = -1;
    c->defaults.max_regions = 256;
    c->limits.max_clients = 4096;
    c->limits.output_limit = 256 * 1024;
    c->limits.stall_ms = 10000;
    c->limits.monitor_limit = 1024 * 1024;
}

void config_free(struct config *c)
{
    free(c->regions);
    c->regions = NULL;
    c->nregions = 0;
}

/* The file and the problem, one line. */
#define CFG_ERR(c, key, ...)                                                                       \
    do {                                                                                           \
        char msg_[512];                                                                            \
        snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                                 \
        log_err("config %s: %s: %s", (c)->path, (key), msg_);                                      \
    } while (0)

/* A size member: an integer, or a string with a unit. */
static int cfg_size(struct config *c, const char *key, const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && config_parse_size(json_string_value(v), out) == 0)
        return 0;
    CFG_ERR(c, key, "must be a number of bytes, or a string such as \"64M\"");
    return -EINVAL;
}

/* A mode: an integer, or an octal string ("0660"). */
static int cfg_mode(struct config *c, const char *key, const json_t *v, int64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 0777) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        long m = strtol(s, &end, 8);
        if (*s != '\0' && *end == '\0' && m >= 0 && m <= 0777) {
            *out = m;
            return 0;
        }
    }
    CFG_ERR(c, key, "must be a mode from 0 to 0777, as an octal string (\"0660\") or a number");
    return -EINVAL;
}

/* A user or group: -1, a number, or a name looked up now. */
static int cfg_id(struct config *c, const char *key, const json_t *v, bool group, int64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= -1 &&
        json_integer_value(v) < (json_int_t)UINT32_MAX) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *name = json_string_value(v);
        if (group) {
            struct group *g = getgrnam(name);
            if (g != NULL) {
                *out = g->gr_gid;
                return 0;
            }
        } else {
            struct passwd *p = getpwnam(name);
            if (p != NULL) {
                *out = p->pw_uid;
                return 0;
            }
        }
        CFG_ERR(c, key, "no %s named \"%s\"", group ? "group" : "user", name);
        return -EINVAL;
    }
    CFG_ERR(c, key, "must be a %s id, a name, or -1", group ? "group" : "user");
    return -EINVAL;
}

static int cfg_uint(struct config *c, const char *key, const json_t *v, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) >= lo &&
        (uint64_t)json_integer_value(v) <= hi) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    CFG_ERR(c, key, "must be an integer from %llu to %llu", (unsigned long long)lo,
            (unsigned long long)hi);
    return -EINVAL;
}

/* One entry of "regions": the config's conveniences (units, octal modes,
 * names of users and groups) turned into CreateRegion's plain integers,
 * then the same check as a CreateRegion call. */
static int cfg_region(struct config *c, size_t i, const json_t *in, struct region_spec *spec)
{
    char key[96];
    int errors = 0;

    snprintf(key, sizeof(key), "regions[%zu]", i);
    if (!json_is_object(in)) {
        CFG_ERR(c, key, "must be an object with CreateRegion's members");
        return -EINVAL;
    }
    json_t *obj = json_deep_copy(in);
    if (obj == NULL)
        return -ENOMEM;
    const json_t *v;
    if ((v = json_object_get(obj, "size")) != NULL && json_is_string(v)) {
        uint64_t n;
        snprintf(key, sizeof(key), "regions[%zu].size", i);
        if (cfg_size(c, key, v, &n) == 0 && n <= INT64_MAX)
            json_object_set_new(obj, "size", json_integer((json_int_t)n));
        else
            errors++;
    }
    if ((v = json_object_get(obj, "bufsize")) != NULL && json_is_string(v)) {
        uint64_t n;
        snprintf(key, sizeof(key), "regions[%zu].bufsize", i);
        if (cfg_size(c, key, v, &n) == 0 && n <= INT64_MAX)
            json_object_set_new(obj, "bufsize", json_integer((json_int_t)n));
        else
            errors++;
    }
    if ((v = json_object_get(obj, "mode")) != NULL && json_is_string(v)) {
        int64_t m;
        snprintf(key, sizeof(key), "regions[%zu].mode", i);
        if (cfg_mode(c, key, v, &m) == 0)
            json_object_set_new(obj, "mode", json_integer(m));
        else
            errors++;
    }
    static const char *const ids[] = {"uid", "gid"};
    for (size_t k = 0; k < 2; k++) {
        if ((v = json_object_get(obj, ids[k])) != NULL && json_is_string(v)) {
            int64_t id;
            snprintf(key, sizeof(key), "regions[%zu].%s", i, ids[k]);
            if (cfg_id(c, key, v, k == 1, &id) == 0)
                json_object_set_new(obj, ids[k], json_integer(id));
            else
                errors++;
        }
    }
    if (errors == 0) {
        const char *bad = NULL;
        char why[128];
        if (region_spec_parse(obj, spec, &bad, why, sizeof(why)) != 0) {
            snprintf(key, sizeof(key), "regions[%zu].%s", i, bad != NULL ? bad : "?");
            CFG_ERR(c, key, "%s", why);
            errors++;
        }
    }
    json_decref(obj);
    return errors == 0 ? 0 : -EINVAL;
}

static int cfg_apply(struct config *c, json_t *root)
{
    const char *key;
    json_t *v;
    int errors = 0;
    uint64_t n;
    int64_t x;

    if (!json_is_object(root)) {
        CFG_ERR(c, "(top level)", "must be a JSON object");
        return -EINVAL;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "socket") == 0) {
            const char *s = json_string_value(v);
            if (s != NULL && strncmp(s, "unix:", 5) == 0)
                s += 5;
            if (s == NULL || s[0] != '/' || strlen(s) >= sizeof(c->socket)) {
                CFG_ERR(c, key, "must be an absolute path (or unix:PATH) of at most %zu bytes",
                        sizeof(c->socket) - 1);
                errors++;
            } else {
                snprintf(c->socket, sizeof(c->socket), "%s", s);
            }
        } else if (strcmp(key, "segment_size") == 0) {
            if (cfg_size(c, key, v, &n) == 0)
                c->segment_size = n;
            else
                errors++;
        } else if (strcmp(key, "page_size") == 0) {
            if (cfg_size(c, key, v, &n) != 0) {
                errors++;
            } else if (n < 4096 || n > (1u << 30) || (n & (n - 1)) != 0) {
                CFG_ERR(c, key, "must be a power of two from 4096 to 1G");
                errors++;
            } else {
                c->page_size = (size_t)n;
            }
        } else if (strcmp(key, "default_mode") == 0) {
            if (cfg_mode(c, key, v, &x) == 0)
                c->defaults.mode = (uint32_t)x;
            else
                errors++;
        } else if (strcmp(key, "default_uid") == 0) {
            if (cfg_id(c, key, v, false, &c->defaults.uid) != 0)
                errors++;
        } else if (strcmp(key, "default_gid") == 0) {
            if (cfg_id(c, key, v, true, &c->defaults.gid) != 0)
                errors++;
        } else if (strcmp(key, "max_clients") == 0) {
            if (cfg_uint(c, key, v, 1, 1000000, &n) == 0)
                c->limits.max_clients = (size_t)n;
            else
                errors++;
        } else if (strcmp(key, "max_regions") == 0) {
            /* ListRegions must fit in one 64 KiB message */
            if (cfg_uint(c, key, v, 1, CONFIG_MAX_REGIONS, &n) == 0)
                c->defaults.max_regions = (size_t)n;
            else
                errors++;
        } else if (strcmp(key, "output_limit") == 0) {
            if (cfg_size(c, key, v, &n) != 0) {
                errors++;
            } else if (n < 4096 || n > (1u << 30)) {
                CFG_ERR(c, key, "must be from 4K to 1G");
                errors++;
            } else {
                c->limits.output_limit = (size_t)n;
            }
        } else if (strcmp(key, "stall_timeout_ms") == 0) {
            if (cfg_uint(c, key, v, 10, 3600000, &n) == 0)
                c->limits.stall_ms = n;
            else
                errors++;
        } else if (strcmp(key, "regions") == 0) {
            if (!json_is_array(v)) {
                CFG_ERR(c, key, "must be an array of regions");
                errors++;
                continue;
            }
            size_t count = json_array_size(v);
            c->regions = calloc(count > 0 ? count : 1, sizeof(*c->regions));
            if (c->regions == NULL)
                return -ENOMEM;
            for (size_t i = 0; i < count; i++) {
                if (cfg_region(c, i, json_array_get(v, i), &c->regions[c->nregions]) != 0) {
                    errors++;
                    continue;
                }
                for (size_t j = 0; j < c->nregions; j++) {
                    if (strcmp(c->regions[j].name, c->regions[c->nregions].name) == 0) {
                        char k[64];
                        snprintf(k, sizeof(k), "regions[%zu].name", i);
                        CFG_ERR(c, k, "\"%s\" is listed twice", c->regions[j].name);
                        errors++;
                    }
                }
                c->nregions++;
            }
        } else {
            CFG_ERR(c, key, "unknown setting");
            errors++;
        }
    }
    return errors == 0 ? 0 : -EINVAL;
}

/* The smallest segment the page allocator takes: its state and a page. */
#define CONFIG_SEGMENT_MIN_PAGES 4

int config_check(const struct config *c)
{
    int errors = 0;
    char k[64];
    if (c->segment_size < CONFIG_SEGMENT_MIN_PAGES * (uint64_t)c->page_size) {
        CFG_ERR(c, "segment_size", "must be at least %d pages of page_size (%llu bytes)",
                CONFIG_SEGMENT_MIN_PAGES,
                (unsigned long long)(CONFIG_SEGMENT_MIN_PAGES * (uint64_t)c->page_size));
        errors++;
    }
    for (size_t i = 0; i < c->nregions; i++) {
        const struct region_spec *r = &c->regions[i];
        if (r->kind == REGION_KIND_HEAP && r->size > c->segment_size) {
            snprintf(k, sizeof(k), "regions[%zu].size", i);
            CFG_ERR(c, k, "\"%s\" is larger than segment_size (%llu bytes)", r->name,
                    (unsigned long long)c->segment_size);
            errors++;
        }
    }
    if (c->nregions > c->defaults.max_regions) {
        CFG_ERR(c, "regions", "lists %zu regions, more than max_regions (%zu)", c->nregions,
                c->defaults.max_regions);
        errors++;
    }
    return errors == 0 ? 0 : -EINVAL;
}

int config_load(const char *path, struct config *out)
{
    json_error_t err;
    bool explicit_path = path != NULL;

    defaults_init(out);
    if (path == NULL)
        path = MMSRVD_CONFIG_PATH;
    snprintf(out->path, sizeof(out->path), "%s", path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT && !explicit_path) {
            log_info("config %s: not found, using the defaults", path);
            out->path[0] = '\0';
            return 0;
        }
        log_err("config %s: cannot open: %s", path, strerror(errno));
        return -EINVAL;
    }
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (root == NULL) {
        log_err("config %s:%d:%d: invalid JSON: %s", path, err.line, err.column, err.text);
        return -EINVAL;
    }
    int rc = cfg_apply(out, root);
    json_decref(root);
    if (rc != 0)
        config_free(out);
    return rc;
}
