/*
 * params.c: check a call's parameters against what a method takes, and
 * region names.
 *
 * Each method lists its members once (name, type, optional); the check
 * walks that list in order and then the parameters, so the member it names
 * as bad is the same for the same input.
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

static bool type_matches(const json_t *v, enum proto_type type)
{
    switch (type) {
    case PROTO_T_STRING:
        return json_is_string(v);
    case PROTO_T_INT:
        return json_is_integer(v);
    case PROTO_T_UINT:
        return json_is_integer(v) && json_integer_value(v) >= 0;
    case PROTO_T_BOOL:
        return json_is_boolean(v);
    case PROTO_T_OBJECT:
        return json_is_object(v);
    case PROTO_T_ARRAY:
        return json_is_array(v);
    case PROTO_T_FLOAT:
        return json_is_number(v);
    }
    return false;
}

int proto_params_check(const json_t *params, const struct proto_param *spec, size_t n,
                       const char **bad)
{
    const char *dummy;
    const char *key;
    json_t *value;

    if (bad == NULL)
        bad = &dummy;
    *bad = NULL;
    if (!json_is_object(params) || (spec == NULL && n > 0)) {
        *bad = "parameters";
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(params, spec[i].name);
        if (v == NULL || (json_is_null(v) && spec[i].optional)) {
            if (!spec[i].optional) {
                *bad = spec[i].name;
                return -EINVAL;
            }
            continue;
        }
        if (!type_matches(v, spec[i].type)) {
            *bad = spec[i].name;
            return -EINVAL;
        }
    }
    /* jansson's iteration macro takes a non-const object; it only reads. */
    json_object_foreach((json_t *)params, key, value)
    {
        size_t i;
        (void)value;
        for (i = 0; i < n; i++)
            if (strcmp(key, spec[i].name) == 0)
                break;
        if (i == n) {
            *bad = key;
            return -EINVAL;
        }
    }
    return 0;
}

bool proto_name_valid(const char *name)
{
    size_t i;
    if (name == NULL)
        return false;
    for (i = 0; name[i] != '\0'; i++) {
        char c = name[i];
        if (i == PROTO_NAME_MAX)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return i > 0;
}
