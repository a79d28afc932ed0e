/*
 * message.c: Varlink calls and replies, parsed from and encoded to JSON.
 *
 * Parsing is strict, because every byte comes from a peer we do not trust:
 * the text must be one JSON object (jansson checks the syntax, UTF-8,
 * duplicate keys and the absence of \u0000), and every member must be one
 * Varlink defines, with its type.  A failure says what was wrong through
 * *why: a constant string, or for a JSON syntax error jansson's own message
 * in a per-thread buffer that stays valid until the next parse on the same
 * thread.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Room for "invalid JSON: " and jansson's message with its position. */
static _Thread_local char parse_why[JSON_ERROR_TEXT_LENGTH + 64];

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/*
 * Varlink's interface names: dot-separated segments of letters, digits and
 * hyphens, at least two segments, the first starting with a letter, no
 * segment starting or ending with a hyphen.  n bytes at s.
 */
static bool interface_valid(const char *s, size_t n)
{
    size_t segments = 0;
    size_t i = 0;
    while (i < n) {
        size_t begin = i;
        while (i < n && s[i] != '.') {
            if (!is_alnum(s[i]) && s[i] != '-')
                return false;
            i++;
        }
        if (i == begin || s[begin] == '-' || s[i - 1] == '-')
            return false;
        if (segments == 0 && !is_alpha(s[begin]))
            return false;
        segments++;
        if (i < n) {
            i++; /* the dot */
            if (i == n)
                return false;
        }
    }
    return segments >= 2;
}

/* Varlink's member names (methods, errors): [A-Z][A-Za-z0-9]*. */
static bool member_valid(const char *s)
{
    if (!(*s >= 'A' && *s <= 'Z'))
        return false;
    for (s++; *s != '\0'; s++)
        if (!is_alnum(*s))
            return false;
    return true;
}

/* "iface.Member": the interface is everything before the last dot. */
static bool qualified_name_valid(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return false;
    return interface_valid(name, (size_t)(dot - name)) && member_valid(dot + 1);
}

/* Parse the text as JSON into an object: 0, -EBADMSG or -EPROTO. */
static int parse_object(const char *msg, size_t len, json_t **root, const char **why)
{
    json_error_t err;
    /* JSON_DECODE_ANY so that a scalar or an array is told apart from a
     * syntax error: it is JSON, just not a Varlink message. */
    json_t *v = json_loadb(msg, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        snprintf(parse_why, sizeof(parse_why), "invalid JSON: %s (at byte %zu)", err.text,
                 (size_t)err.position);
        *why = parse_why;
        return -EBADMSG;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        *why = "message is not a JSON object";
        return -EPROTO;
    }
    *root = v;
    return 0;
}

/* Give root an empty "parameters" when it has none, so that the parsed
 * message's parameters are never NULL and belong to root. */
static json_t *parameters_of(json_t *root)
{
    json_t *p = json_object_get(root, "parameters");
    if (p != NULL)
        return p;
    p = json_object();
    if (p == NULL || json_object_set_new(root, "parameters", p) != 0)
        return NULL;
    return p;
}

int proto_call_parse(const char *msg, size_t len, struct proto_call *call, const char **why)
{
    static const struct {
        const char *name;
        unsigned flag;
    } flags[] = {
        {"oneway", PROTO_ONEWAY},
        {"more", PROTO_MORE},
        {"upgrade", PROTO_UPGRADE},
    };
    const char *dummy;
    json_t *root = NULL;
    const char *key;
    json_t *value;
    const char *method = NULL;
    unsigned set = 0;
    int rc;

    if (why == NULL)
        why = &dummy;
    memset(call, 0, sizeof(*call));
    if (msg == NULL) {
        *why = "no message";
        return -EINVAL;
    }
    rc = parse_object(msg, len, &root, why);
    if (rc < 0)
        return rc;

    json_object_foreach(root, key, value)
    {
        size_t i;
        if (strcmp(key, "method") == 0) {
            if (!json_is_string(value)) {
                *why = "\"method\" is not a string";
                goto proto;
            }
            method = json_string_value(value);
            /* A NUL inside would hide the rest of the name from every
             * string function below. */
            if (strlen(method) != json_string_length(value) || !qualified_name_valid(method)) {
                *why = "\"method\" is not of the form interface.Method";
                goto proto;
            }
            continue;
        }
        if (strcmp(key, "parameters") == 0) {
            if (!json_is_object(value)) {
                *why = "\"parameters\" is not an object";
                goto proto;
            }
            continue;
        }
        for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (strcmp(key, flags[i].name) == 0)
                break;
        if (i == sizeof(flags) / sizeof(flags[0])) {
            *why = "a member Varlink does not define in a call";
            goto proto;
        }
        if (!json_is_boolean(value)) {
            *why = "\"oneway\", \"more\" and \"upgrade\" must be booleans";
            goto proto;
        }
        if (json_is_true(value))
            set |= flags[i].flag;
    }
    if (method == NULL) {
        *why = "\"method\" is missing";
        goto proto;
    }
    call->parameters = parameters_of(root);
    if (call->parameters == NULL) {
        json_decref(root);
        memset(call, 0, sizeof(*call));
        *why = "out of memory";
        return -ENOMEM;
    }
    call->root = root;
    call->method = method;
    call->flags = set;
    return 0;

proto:
    json_decref(root);
    return -EPROTO;
}

void proto_call_release(struct proto_call *call)
{
    json_decref(call->root);
    memset(call, 0, sizeof(*call));
}

int proto_reply_parse(const char *msg, size_t len, struct proto_reply *reply, const char **why)
{
    const char *dummy;
    json_t *root = NULL;
    const char *key;
    json_t *value;
    const char *error = NULL;
    bool continues = false;
    int rc;

    if (why == NULL)
        why = &dummy;
    memset(reply, 0, sizeof(*reply));
    if (msg == NULL) {
        *why = "no message";
        return -EINVAL;
    }
    rc = parse_object(msg, len, &root, why);
    if (rc < 0)
        return rc;

    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "error") == 0) {
            if (!json_is_string(value)) {
                *why = "\"error\" is not a string";
                goto proto;
            }
            error = json_string_value(value);
            if (strlen(error) != json_string_length(value) || !qualified_name_valid(error)) {
                *why = "\"error\" is not of the form interface.Error";
                goto proto;
            }
        } else if (strcmp(key, "parameters") == 0) {
            if (!json_is_object(value)) {
                *why = "\"parameters\" is not an object";
                goto proto;
            }
        } else if (strcmp(key, "continues") == 0) {
            if (!json_is_boolean(value)) {
                *why = "\"continues\" is not a boolean";
                goto proto;
            }
            continues = json_is_true(value);
        } else {
            *why = "a member Varlink does not define in a reply";
            goto proto;
        }
    }
    reply->parameters = parameters_of(root);
    if (reply->parameters == NULL) {
        json_decref(root);
        memset(reply, 0, sizeof(*reply));
        *why = "out of memory";
        return -ENOMEM;
    }
    reply->root = root;
    reply->error = error;
    reply->continues = continues;
    return 0;

proto:
    json_decref(root);
    return -EPROTO;
}

void proto_reply_release(struct proto_reply *reply)
{
    json_decref(reply->root);
    memset(reply, 0, sizeof(*reply));
}

/* Serialize obj (consumed) compactly, with the NUL counted in *len. */
static char *encode(json_t *obj, size_t *len)
{
    char *text = NULL;
    if (obj != NULL)
        text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text != NULL && len != NULL)
        *len = strlen(text) + 1;
    return text;
}

/* An object holding "parameters": params (consumed), or NULL. */
static json_t *with_parameters(json_t *params)
{
    json_t *obj;
    if (params == NULL)
        params = json_object();
    if (params == NULL)
        return NULL;
    obj = json_object();
    if (obj == NULL) {
        json_decref(params);
        return NULL;
    }
    if (json_object_set_new(obj, "parameters", params) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Set key to value (consumed); on failure release obj and return NULL. */
static json_t *set_or_drop(json_t *obj, const char *key, json_t *value)
{
    if (obj == NULL) {
        json_decref(value);
        return NULL;
    }
    if (json_object_set_new(obj, key, value) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

char *proto_encode_call(const char *method, json_t *params, unsigned flags, size_t *len)
{
    json_t *obj;
    if (method == NULL) {
        json_decref(params);
        return NULL;
    }
    obj = set_or_drop(json_object(), "method", json_string(method));
    if (obj == NULL) {
        json_decref(params);
        return NULL;
    }
    if (params == NULL)
        params = json_object();
    obj = set_or_drop(obj, "parameters", params);
    if (flags & PROTO_ONEWAY)
        obj = set_or_drop(obj, "oneway", json_true());
    if (flags & PROTO_MORE)
        obj = set_or_drop(obj, "more", json_true());
    if (flags & PROTO_UPGRADE)
        obj = set_or_drop(obj, "upgrade", json_true());
    return encode(obj, len);
}

char *proto_encode_reply(json_t *params, bool continues, size_t *len)
{
    json_t *obj = with_parameters(params);
    if (continues)
        obj = set_or_drop(obj, "continues", json_true());
    return encode(obj, len);
}

char *proto_encode_error(const char *error, json_t *params, size_t *len)
{
    json_t *obj;
    if (error == NULL) {
        json_decref(params);
        return NULL;
    }
    obj = set_or_drop(json_object(), "error", json_string(error));
    if (obj == NULL) {
        json_decref(params);
        return NULL;
    }
    if (params == NULL)
        params = json_object();
    obj = set_or_drop(obj, "parameters", params);
    return encode(obj, len);
}
