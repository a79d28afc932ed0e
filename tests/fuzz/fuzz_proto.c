/*
 * fuzz_proto.c - fuzz target of the protocol layer (libFuzzer entry point).
 *
 * The input is a byte stream as a peer could send it.  Its first byte picks
 * the reader's maximum and the size of the reads; the rest goes through a
 * proto_reader in those reads, and each message that comes out is parsed as
 * a call and as a reply.  What must hold, whatever the bytes:
 * - the reader returns messages that are NUL-terminated, hold no NUL, are
 *   at most max bytes, and together with what it still holds account for
 *   every byte fed (until it says -EMSGSIZE, after which it says nothing
 *   else and offers no room);
 * - a parse either succeeds with a well-formed result or fails with
 *   -EBADMSG or -EPROTO, a reason, and nothing held;
 * - what parsed, encoded again, parses to the same call or reply;
 * - the parameter check answers 0 or -EINVAL naming a member;
 * - a region header read from the same bytes either fails with -EBADMSG or
 *   describes a region that fits in what was mapped.
 * A violation aborts, which the fuzzer reports with the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "proto.h"
#include "region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct proto_param fuzz_spec[] = {
    {"name", PROTO_T_STRING, false}, {"size", PROTO_T_UINT, true},
    {"delta", PROTO_T_INT, true},    {"writable", PROTO_T_BOOL, true},
    {"opts", PROTO_T_OBJECT, true},  {"channels", PROTO_T_ARRAY, true},
    {"ratio", PROTO_T_FLOAT, true},
};

static void check_params(const json_t *params)
{
    const char *bad = NULL;
    int rc = proto_params_check(params, fuzz_spec, sizeof(fuzz_spec) / sizeof(fuzz_spec[0]), &bad);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    FZ_CHECK((rc == 0) == (bad == NULL));
    if (rc == 0) {
        const json_t *name = json_object_get(params, "name");
        FZ_CHECK(json_is_string(name));
        /* The name check agrees with itself on whatever the peer sent. */
        (void)proto_name_valid(json_string_value(name));
    }
}

static void check_call(const char *msg, size_t len)
{
    struct proto_call c;
    const char *why = NULL;
    int rc = proto_call_parse(msg, len, &c, &why);
    if (rc != 0) {
        FZ_CHECK(rc == -EBADMSG || rc == -EPROTO);
        FZ_CHECK(why != NULL && why[0] != '\0');
        FZ_CHECK(c.root == NULL && c.method == NULL && c.parameters == NULL);
        return;
    }
    FZ_CHECK(c.method != NULL && strchr(c.method, '.') != NULL);
    FZ_CHECK(json_is_object(c.parameters));
    FZ_CHECK((c.flags & ~(PROTO_ONEWAY | PROTO_MORE | PROTO_UPGRADE)) == 0);
    check_params(c.parameters);

    size_t elen = 0;
    char *again = proto_encode_call(c.method, json_incref(c.parameters), c.flags, &elen);
    FZ_CHECK(again != NULL);
    FZ_CHECK(elen == strlen(again) + 1);
    struct proto_call c2;
    FZ_CHECK(proto_call_parse(again, elen - 1, &c2, &why) == 0);
    FZ_CHECK(strcmp(c.method, c2.method) == 0);
    FZ_CHECK(c.flags == c2.flags);
    FZ_CHECK(json_equal(c.parameters, c2.parameters));
    proto_call_release(&c2);
    free(again);
    proto_call_release(&c);
    FZ_CHECK(c.root == NULL);
}

static void check_reply(const char *msg, size_t len)
{
    struct proto_reply r;
    const char *why = NULL;
    int rc = proto_reply_parse(msg, len, &r, &why);
    if (rc != 0) {
        FZ_CHECK(rc == -EBADMSG || rc == -EPROTO);
        FZ_CHECK(why != NULL && why[0] != '\0');
        FZ_CHECK(r.root == NULL && r.error == NULL && r.parameters == NULL);
        return;
    }
    FZ_CHECK(json_is_object(r.parameters));

    size_t elen = 0;
    char *again;
    if (r.error != NULL) {
        int err = proto_error_errno(r.error);
        const char *name = proto_error_name(err);
        FZ_CHECK(err < 0);
        FZ_CHECK(err == -EPROTO ? name == NULL : name != NULL && strcmp(name, r.error) == 0);
        again = proto_encode_error(r.error, json_incref(r.parameters), &elen);
    } else {
        again = proto_encode_reply(json_incref(r.parameters), r.continues, &elen);
    }
    FZ_CHECK(again != NULL);
    FZ_CHECK(elen == strlen(again) + 1);
    struct proto_reply r2;
    FZ_CHECK(proto_reply_parse(again, elen - 1, &r2, &why) == 0);
    FZ_CHECK((r.error == NULL) == (r2.error == NULL));
    FZ_CHECK(r.error == NULL || strcmp(r.error, r2.error) == 0);
    /* An error carries no "continues" when encoded again. */
    FZ_CHECK(r.error != NULL || r.continues == r2.continues);
    FZ_CHECK(json_equal(r.parameters, r2.parameters));
    proto_reply_release(&r2);
    free(again);
    proto_reply_release(&r);
}

static void check_region(const uint8_t *data, size_t size)
{
    /* Aligned, as a mapping is. */
    static union {
        struct region_header h;
        uint8_t bytes[4096];
    } mem;
    size_t mapped = size < sizeof(mem) ? size : sizeof(mem);
    struct region_layout l;
    memcpy(mem.bytes, data, mapped);
    int rc = region_header_read(&mem, mapped, &l);
    if (rc != 0) {
        FZ_CHECK(rc == -EBADMSG);
        return;
    }
    FZ_CHECK(l.kind == REGION_KIND_HEAP || l.kind == REGION_KIND_IOB);
    FZ_CHECK(l.size <= mapped && l.size >= sizeof(struct region_header));
    FZ_CHECK(l.alloc_offset >= sizeof(struct region_header));
    FZ_CHECK(l.alloc_offset <= l.size && l.alloc_size <= l.size - l.alloc_offset);
    FZ_CHECK(memchr(l.name, '\0', sizeof(l.name)) != NULL && proto_name_valid(l.name));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[4] = {0, 16, 256, 4096};
    struct proto_reader r;
    size_t fed = 0, taken = 0;
    unsigned reads = 0;
    bool too_long = false;
    const char *msg;
    size_t len;
    int rc;

    if (size == 0)
        return 0;
    check_region(data, size);
    size_t max_message = maxes[data[0] & 3];
    size_t chunk = (data[0] >> 2) & 31; /* 0: as much as the reader offers */
    /* Lazy: take messages only after every fourth read, as an owner that
     * reads again before draining would; the buffer must grow, not lose. */
    bool lazy = (data[0] & 0x80) != 0;
    const char *stream = (const char *)data + 1;
    size_t n = size - 1;

    if (proto_reader_init(&r, max_message) != 0)
        return 0;
    size_t max = r.max;
    while (fed < n) {
        char *dst;
        size_t room;
        rc = proto_reader_space(&r, &dst, &room);
        if (rc == -EMSGSIZE) {
            FZ_CHECK(proto_reader_next(&r, &msg, &len) == -EMSGSIZE);
            too_long = true;
            break;
        }
        FZ_CHECK(rc == 0 && room >= 1);
        size_t k = n - fed < room ? n - fed : room;
        if (chunk != 0 && k > chunk)
            k = chunk;
        memcpy(dst, stream + fed, k);
        proto_reader_commit(&r, k);
        fed += k;
        if (lazy && ++reads % 4 != 0 && fed < n)
            continue;

        while ((rc = proto_reader_next(&r, &msg, &len)) == 1) {
            FZ_CHECK(len <= max);
            FZ_CHECK(msg[len] == '\0');
            FZ_CHECK(memchr(msg, '\0', len) == NULL);
            /* The message is the next bytes of the stream. */
            FZ_CHECK(memcmp(msg, stream + taken, len + 1) == 0);
            taken += len + 1;
            check_call(msg, len);
            check_reply(msg, len);
        }
        if (rc == -EMSGSIZE) {
            /* It says so again, and offers no more room once full. */
            FZ_CHECK(proto_reader_next(&r, &msg, &len) == -EMSGSIZE);
            too_long = true;
            break;
        }
        FZ_CHECK(rc == 0);
        /* Whatever is held is one unfinished message within the limit. */
        FZ_CHECK(fed - taken <= max);
        FZ_CHECK(proto_reader_partial(&r) == (fed > taken));
        if (!lazy)
            FZ_CHECK(r.cap <= max + 1);
    }
    if (too_long) {
        /* The unfinished message really is longer than max: max + 1 bytes
         * after the last message taken, none of them a NUL. */
        FZ_CHECK(fed - taken > max);
        const char *nul = memchr(stream + taken, '\0', fed - taken);
        FZ_CHECK(nul == NULL || (size_t)(nul - (stream + taken)) > max);
    }
    proto_reader_release(&r);
    return 0;
}
