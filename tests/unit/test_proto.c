/*
 * test_proto.c - unit tests of the protocol layer (proto.h, region.h).
 *
 * The main idea: every rule the parser enforces gets a message that breaks
 * it and only it, next to a message that keeps it, so a test fails when a
 * rule is missing and when it is too eager.  The framing is driven the way a
 * socket drives it (read into the space it offers, then take messages),
 * with the stream cut at random places from a printed seed, and every
 * message must come out byte for byte.  The region header is written into a
 * real shared-memory object and read back through a second mapping.
 */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "region.h"
#include "test_util.h"

/* ---- Framing ------------------------------------------------------------ */

/* Feed n bytes through the reader's space/commit in chunks of at most
 * chunk bytes (0: as much as offered).  Returns what space() returned last. */
static int feed(struct proto_reader *r, const char *data, size_t n, size_t chunk)
{
    while (n > 0) {
        char *dst;
        size_t room;
        int rc = proto_reader_space(r, &dst, &room);
        if (rc < 0)
            return rc;
        CU_ASSERT_FATAL(room >= 1);
        size_t k = n < room ? n : room;
        if (chunk != 0 && k > chunk)
            k = chunk;
        memcpy(dst, data, k);
        proto_reader_commit(r, k);
        data += k;
        n -= k;
    }
    return 0;
}

static void test_reader_one_message(void)
{
    struct proto_reader r;
    const char *msg;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, 0), 0);
    CU_ASSERT_EQUAL(r.max, PROTO_MAX_MESSAGE);
    CU_ASSERT_FALSE(proto_reader_partial(&r));
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
    CU_ASSERT_EQUAL(feed(&r, "{}\0", 3, 0), 0);
    CU_ASSERT_TRUE(proto_reader_partial(&r) == false);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_STRING_EQUAL(msg, "{}");
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
    CU_ASSERT_FALSE(proto_reader_partial(&r));
    proto_reader_release(&r);
    CU_ASSERT_PTR_NULL(r.buf);
}

static void test_reader_several_in_one_read(void)
{
    static const char stream[] = "a\0bb\0\0ccc\0dd";
    struct proto_reader r;
    const char *msg;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, 16), 0);
    CU_ASSERT_EQUAL(feed(&r, stream, sizeof(stream) - 1, 0), 0);
    /* Complete messages are held: nothing unfinished yet from the
     * owner's point of view until they are taken. */
    CU_ASSERT_FALSE(proto_reader_partial(&r));
    CU_ASSERT_EQUAL(proto_reader_held(&r), sizeof(stream) - 1);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, 1);
    CU_ASSERT_STRING_EQUAL(msg, "a");
    /* what is held behind a message taken: "bb\0\0ccc\0dd" */
    CU_ASSERT_EQUAL(proto_reader_held(&r), sizeof(stream) - 1 - 2);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_STRING_EQUAL(msg, "bb");
    /* An empty message is a message (the parser refuses it). */
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_STRING_EQUAL(msg, "ccc");
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
    CU_ASSERT_TRUE(proto_reader_partial(&r));
    CU_ASSERT_EQUAL(feed(&r, "d\0", 2, 0), 0);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_STRING_EQUAL(msg, "ddd");
    CU_ASSERT_FALSE(proto_reader_partial(&r));
    CU_ASSERT_EQUAL(proto_reader_held(&r), 0);
    proto_reader_release(&r);
}

static void test_reader_byte_by_byte(void)
{
    static const char text[] = "{\"method\":\"io.mmsrvd.ListRegions\"}";
    struct proto_reader r;
    const char *msg;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, 0), 0);
    for (size_t i = 0; i < sizeof(text); i++) {
        CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
        CU_ASSERT_EQUAL(feed(&r, text + i, 1, 1), 0);
        /* Each byte is searched once: scan covers everything held. */
        if (i + 1 < sizeof(text)) {
            CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
            CU_ASSERT_EQUAL(r.scan, i + 1);
            CU_ASSERT_TRUE(proto_reader_partial(&r));
        }
    }
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, sizeof(text) - 1);
    CU_ASSERT_STRING_EQUAL(msg, text);
    proto_reader_release(&r);
}

static void test_reader_exactly_max(void)
{
    enum { MAX = 100 };
    char data[MAX + 1];
    struct proto_reader r;
    const char *msg;
    size_t len;
    memset(data, 'x', MAX);
    data[MAX] = '\0';
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
    /* Twice, so the second one is received after compaction. */
    for (int round = 0; round < 2; round++) {
        CU_ASSERT_EQUAL(feed(&r, data, MAX, 7), 0);
        CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
        CU_ASSERT_EQUAL(feed(&r, data + MAX, 1, 0), 0);
        CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
        CU_ASSERT_EQUAL(len, MAX);
        CU_ASSERT_EQUAL(memcmp(msg, data, MAX + 1), 0);
        CU_ASSERT_TRUE(r.cap <= MAX + 1);
    }
    proto_reader_release(&r);
}

static void test_reader_default_max(void)
{
    size_t n = PROTO_MAX_MESSAGE;
    char *data = malloc(n + 2);
    struct proto_reader r;
    const char *msg;
    size_t len;
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    memset(data, ' ', n + 1);
    data[n] = '\0';
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, 0), 0);
    CU_ASSERT_EQUAL(feed(&r, data, n + 1, 0), 0);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    CU_ASSERT_EQUAL(len, n);
    CU_ASSERT_TRUE(r.cap <= n + 1);
    proto_reader_release(&r);

    data[n] = ' ';
    data[n + 1] = '\0';
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, 0), 0);
    CU_ASSERT_EQUAL(feed(&r, data, n + 2, 0), -EMSGSIZE);
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), -EMSGSIZE);
    proto_reader_release(&r);
    free(data);
}

static void test_reader_over_max(void)
{
    enum { MAX = 64 };
    char data[MAX + 2];
    struct proto_reader r;
    const char *msg;
    size_t len;
    memset(data, 'y', sizeof(data));

    /* max bytes without a NUL: still waiting. */
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
    CU_ASSERT_EQUAL(feed(&r, data, MAX, 0), 0);
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
    /* One more byte without a NUL: refused at once, and for good. */
    CU_ASSERT_EQUAL(feed(&r, data, 1, 0), 0);
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), -EMSGSIZE);
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), -EMSGSIZE);
    CU_ASSERT_TRUE(r.cap <= MAX + 1);
    /* No more room is offered for it. */
    char *dst;
    size_t room;
    CU_ASSERT_EQUAL(proto_reader_space(&r, &dst, &room), -EMSGSIZE);
    proto_reader_release(&r);

    /* max + 1 bytes and then the NUL, in one read after a good message. */
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
    CU_ASSERT_EQUAL(feed(&r, "ok\0", 3, 0), 0);
    CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
    data[MAX + 1] = '\0';
    (void)feed(&r, data, MAX + 2, 0);
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), -EMSGSIZE);
    proto_reader_release(&r);
}

static void test_reader_compaction(void)
{
    /* A long stream of messages with the reader never holding more than
     * one message and a bit: consumed bytes are dropped, the buffer stays
     * at its first size, and the partial tail moves to the front. */
    enum { MAX = 32 };
    struct proto_reader r;
    const char *msg;
    size_t len;
    char text[16];
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
    size_t cap0 = r.cap;
    for (unsigned i = 0; i < 1000; i++) {
        int n = snprintf(text, sizeof(text), "m%u", i);
        CU_ASSERT_EQUAL(feed(&r, text, (size_t)n + 1, 5), 0);
        CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
        CU_ASSERT_STRING_EQUAL(msg, text);
        CU_ASSERT_EQUAL(r.cap, cap0);
    }
    CU_ASSERT_EQUAL(feed(&r, "tail", 4, 0), 0);
    char *dst;
    size_t room;
    CU_ASSERT_EQUAL(proto_reader_space(&r, &dst, &room), 0);
    CU_ASSERT_EQUAL(r.start, 0);
    CU_ASSERT_EQUAL(memcmp(r.buf, "tail", 4), 0);
    CU_ASSERT_PTR_EQUAL(dst, r.buf + 4);
    proto_reader_release(&r);
}

/* A random call message of about size bytes, NUL included in *len. */
static char *random_message(struct tu_rng *g, size_t size, size_t *len)
{
    size_t n = size > 128 ? size - 128 : 1; /* the rest: method, flags, "n" */
    char *pad = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
    for (size_t i = 0; i < n; i++)
        pad[i] = (char)('a' + tu_rng_range(g, 0, 25));
    pad[n] = '\0';
    json_t *p = json_pack("{s:s, s:I}", "pad", pad, "n", (json_int_t)tu_rng_next(g) / 2);
    free(pad);
    return proto_encode_call("io.mmsrvd.Attach", p, (unsigned)tu_rng_range(g, 0, 7), len);
}

static void test_reader_random_splits(void)
{
    struct tu_rng g;
    tu_rng_init(&g, tu_seed());
    enum { COUNT = 200, MAX = 4096 };
    for (int round = 0; round < 20; round++) {
        char *msgs[COUNT];
        size_t lens[COUNT];
        size_t total = 0;
        for (int i = 0; i < COUNT; i++) {
            size_t size = tu_rng_range(&g, 0, 3) == 0 ? tu_rng_range(&g, MAX - 200, MAX)
                                                      : tu_rng_range(&g, 1, 300);
            msgs[i] = random_message(&g, size, &lens[i]);
            CU_ASSERT_PTR_NOT_NULL_FATAL(msgs[i]);
            CU_ASSERT_FATAL(lens[i] <= MAX + 1);
            total += lens[i];
        }
        char *stream = malloc(total);
        CU_ASSERT_PTR_NOT_NULL_FATAL(stream);
        size_t off = 0;
        for (int i = 0; i < COUNT; i++) {
            memcpy(stream + off, msgs[i], lens[i]);
            off += lens[i];
        }

        struct proto_reader r;
        CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
        int next = 0;
        off = 0;
        while (off < total) {
            /* Reads of 1 byte to a few messages' worth. */
            size_t want =
                tu_rng_range(&g, 0, 2) == 0 ? tu_rng_range(&g, 1, 8) : tu_rng_range(&g, 1, 3 * MAX);
            if (want > total - off)
                want = total - off;
            char *dst;
            size_t room;
            CU_ASSERT_EQUAL_FATAL(proto_reader_space(&r, &dst, &room), 0);
            if (want > room)
                want = room;
            memcpy(dst, stream + off, want);
            proto_reader_commit(&r, want);
            off += want;
            const char *msg;
            size_t len;
            int rc;
            while ((rc = proto_reader_next(&r, &msg, &len)) == 1) {
                CU_ASSERT_FATAL(next < COUNT);
                CU_ASSERT_EQUAL(len + 1, lens[next]);
                CU_ASSERT_EQUAL(memcmp(msg, msgs[next], lens[next]), 0);
                next++;
            }
            CU_ASSERT_EQUAL_FATAL(rc, 0);
            /* The buffer never grows past one message plus its NUL when
             * messages are taken as they come. */
            CU_ASSERT_TRUE(r.cap <= MAX + 1);
        }
        CU_ASSERT_EQUAL(next, COUNT);
        CU_ASSERT_FALSE(proto_reader_partial(&r));
        proto_reader_release(&r);
        free(stream);
        for (int i = 0; i < COUNT; i++)
            free(msgs[i]);
    }
}

static void test_reader_space_with_messages_held(void)
{
    /* The owner reads again before taking what it has: the reader grows
     * rather than refusing or losing bytes. */
    enum { MAX = 8 };
    struct proto_reader r;
    const char *msg;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(proto_reader_init(&r, MAX), 0);
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(feed(&r, "abcdefgh\0", 9, 0), 0);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL_FATAL(proto_reader_next(&r, &msg, &len), 1);
        CU_ASSERT_STRING_EQUAL(msg, "abcdefgh");
    }
    CU_ASSERT_EQUAL(proto_reader_next(&r, &msg, &len), 0);
    proto_reader_release(&r);
}

/* ---- Calls -------------------------------------------------------------- */

static int call_rc(const char *text)
{
    struct proto_call c;
    const char *why = NULL;
    int rc = proto_call_parse(text, strlen(text), &c, &why);
    if (rc == 0) {
        proto_call_release(&c);
    } else {
        CU_ASSERT_PTR_NULL(c.root);
        CU_ASSERT_PTR_NULL(c.method);
        CU_ASSERT_PTR_NULL(c.parameters);
        CU_ASSERT_PTR_NOT_NULL(why);
        CU_ASSERT_TRUE(why != NULL && why[0] != '\0');
    }
    return rc;
}

static void test_call_parse_valid(void)
{
    struct proto_call c;
    const char *why = NULL;
    const char *t = "{\"method\":\"io.mmsrvd.ListRegions\"}";
    CU_ASSERT_EQUAL_FATAL(proto_call_parse(t, strlen(t), &c, &why), 0);
    CU_ASSERT_STRING_EQUAL(c.method, "io.mmsrvd.ListRegions");
    CU_ASSERT_TRUE(json_is_object(c.parameters));
    CU_ASSERT_EQUAL(json_object_size(c.parameters), 0);
    CU_ASSERT_EQUAL(c.flags, 0);
    proto_call_release(&c);
    CU_ASSERT_PTR_NULL(c.root);

    t = " {\"parameters\": {\"name\": \"frames\", \"writable\": true}, \"more\": true,"
        " \"oneway\": false, \"upgrade\": true, \"method\": \"io.mmsrvd.Attach\"} \n";
    CU_ASSERT_EQUAL_FATAL(proto_call_parse(t, strlen(t), &c, NULL), 0);
    CU_ASSERT_STRING_EQUAL(c.method, "io.mmsrvd.Attach");
    CU_ASSERT_EQUAL(c.flags, PROTO_MORE | PROTO_UPGRADE);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c.parameters, "name")), "frames");
    CU_ASSERT_PTR_EQUAL(c.parameters, json_object_get(c.root, "parameters"));
    proto_call_release(&c);

    t = "{\"method\":\"org.varlink.service.GetInfo\",\"oneway\":true}";
    CU_ASSERT_EQUAL_FATAL(proto_call_parse(t, strlen(t), &c, NULL), 0);
    CU_ASSERT_EQUAL(c.flags, PROTO_ONEWAY);
    proto_call_release(&c);

    /* Only len bytes count: what follows is not read. */
    t = "{\"method\":\"a.b.C\"}garbage";
    CU_ASSERT_EQUAL_FATAL(proto_call_parse(t, 18, &c, NULL), 0);
    proto_call_release(&c);
}

static void test_call_parse_not_json(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "{\"method\":}",
        "{\"method\":\"a.b.C\"} x",
        "{\"method\":\"a.b.C\"}{}",
        "{'method':'a.b.C'}",
        "{\"method\":\"a.b.C\",}",
        "{\"method\":\"a.b.\xff\"}",
        "{\"method\":\"a.b.C\",\"parameters\":{\"x\":\"\xc3\"}}",
        "{\"method\":\"a.b.C\",\"parameters\":{\"x\":\"a\\u0000b\"}}",
        "{\"method\":\"a.b.C\",\"method\":\"a.b.D\"}",
        "{\"method\":\"a.b.C\",\"parameters\":{\"x\":1,\"x\":2}}",
        "{\"method\":\"a.b.C\",\"parameters\":{\"x\":1e99999}}",
        "{\"method\":\"a.b.C\",\"parameters\":{\"x\":99999999999999999999999}}",
        "nul",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = call_rc(bad[i]);
        if (rc != -EBADMSG)
            printf("\n  %s -> %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, -EBADMSG);
    }
    /* A NUL byte inside what is handed over. */
    struct proto_call c;
    const char *why = NULL;
    CU_ASSERT_EQUAL(proto_call_parse("{\"method\":\"a.b.C\"}\0", 19, &c, &why), -EBADMSG);
    CU_ASSERT_EQUAL(proto_call_parse("{\"method\":\"a.b\0.C\"}", 19, &c, &why), -EBADMSG);
    CU_ASSERT_PTR_NOT_NULL(why);
}

static void test_call_parse_not_object(void)
{
    static const char *const bad[] = {
        "[]", "[{\"method\":\"a.b.C\"}]", "1", "\"a.b.C\"", "null", "true", "-0.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(call_rc(bad[i]), -EPROTO);
}

static void test_call_method_form(void)
{
    static const char *const good[] = {
        "io.mmsrvd.Attach",
        "org.varlink.service.GetInfo",
        "a.b.C",
        "io.m-m.X",
        "io.m--m.X",
        "A1.b2.C3",
        "io.9.X",
        "io.mmsrvd.X9y",
    };
    static const char *const bad[] = {
        "",         "Attach",      "io.Attach",   "io.mmsrvd.attach", "io.mmsrvd.",
        ".io.m.X",  "io..m.X",     "1o.mmsrvd.X", "io.-mm.X",         "io.mm-.X",
        "io.m_m.X", "io.mm.Li-st", "io.mm.A_b",   "io.mm.A b",        "io.mm..X",
        "-io.mm.X", "io.mm.X.",    "io mm.X",     "io.mm.\xc3\xa9",   "io.mm.9X",
    };
    char text[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "{\"method\":\"%s\"}", good[i]);
        CU_ASSERT_EQUAL(call_rc(text), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "{\"method\":\"%s\"}", bad[i]);
        int rc = call_rc(text);
        if (rc != -EPROTO)
            printf("\n  method %s -> %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, -EPROTO);
    }
    CU_ASSERT_EQUAL(call_rc("{}"), -EPROTO);
    CU_ASSERT_EQUAL(call_rc("{\"parameters\":{}}"), -EPROTO);
    CU_ASSERT_EQUAL(call_rc("{\"method\":1}"), -EPROTO);
    CU_ASSERT_EQUAL(call_rc("{\"method\":null}"), -EPROTO);
    CU_ASSERT_EQUAL(call_rc("{\"method\":[\"a.b.C\"]}"), -EPROTO);
    CU_ASSERT_EQUAL(call_rc("{\"method\":{}}"), -EPROTO);
}

static void test_call_members(void)
{
    static const char *const bad[] = {
        "{\"method\":\"a.b.C\",\"parameters\":[]}",
        "{\"method\":\"a.b.C\",\"parameters\":null}",
        "{\"method\":\"a.b.C\",\"parameters\":\"{}\"}",
        "{\"method\":\"a.b.C\",\"parameters\":1}",
        "{\"method\":\"a.b.C\",\"oneway\":1}",
        "{\"method\":\"a.b.C\",\"oneway\":null}",
        "{\"method\":\"a.b.C\",\"more\":\"true\"}",
        "{\"method\":\"a.b.C\",\"more\":0}",
        "{\"method\":\"a.b.C\",\"upgrade\":{}}",
        "{\"method\":\"a.b.C\",\"extra\":1}",
        "{\"method\":\"a.b.C\",\"Method\":\"a.b.C\"}",
        "{\"method\":\"a.b.C\",\"continues\":true}",
        "{\"method\":\"a.b.C\",\"error\":\"a.b.E\"}",
        "{\"method\":\"a.b.C\",\"\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = call_rc(bad[i]);
        if (rc != -EPROTO)
            printf("\n  %s -> %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, -EPROTO);
    }
    CU_ASSERT_EQUAL(call_rc("{\"method\":\"a.b.C\",\"oneway\":false,\"more\":false,"
                            "\"upgrade\":false,\"parameters\":{\"x\":[null]}}"),
                    0);
}

/* ---- Replies ------------------------------------------------------------ */

static int reply_rc(const char *text)
{
    struct proto_reply p;
    const char *why = NULL;
    int rc = proto_reply_parse(text, strlen(text), &p, &why);
    if (rc == 0) {
        proto_reply_release(&p);
    } else {
        CU_ASSERT_PTR_NULL(p.root);
        CU_ASSERT_PTR_NULL(p.error);
        CU_ASSERT_PTR_NULL(p.parameters);
        CU_ASSERT_TRUE(why != NULL && why[0] != '\0');
    }
    return rc;
}

static void test_reply_parse(void)
{
    struct proto_reply p;
    const char *t = "{}";
    CU_ASSERT_EQUAL_FATAL(proto_reply_parse(t, strlen(t), &p, NULL), 0);
    CU_ASSERT_PTR_NULL(p.error);
    CU_ASSERT_TRUE(json_is_object(p.parameters));
    CU_ASSERT_FALSE(p.continues);
    proto_reply_release(&p);

    t = "{\"parameters\":{\"event\":{\"kind\":\"created\"}},\"continues\":true}";
    CU_ASSERT_EQUAL_FATAL(proto_reply_parse(t, strlen(t), &p, NULL), 0);
    CU_ASSERT_PTR_NULL(p.error);
    CU_ASSERT_TRUE(p.continues);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(p.parameters, "event"));
    proto_reply_release(&p);

    t = "{\"error\":\"io.mmsrvd.RegionNotFound\",\"parameters\":{\"name\":\"x\"}}";
    CU_ASSERT_EQUAL_FATAL(proto_reply_parse(t, strlen(t), &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p.error, PROTO_ERR_REGION_NOT_FOUND);
    CU_ASSERT_FALSE(p.continues);
    proto_reply_release(&p);

    CU_ASSERT_EQUAL(reply_rc("{\"continues\":false}"), 0);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":\"a.b.E\"}"), 0);

    CU_ASSERT_EQUAL(reply_rc(""), -EBADMSG);
    CU_ASSERT_EQUAL(reply_rc("{\"parameters\":{}"), -EBADMSG);
    CU_ASSERT_EQUAL(reply_rc("{\"continues\":true,\"continues\":false}"), -EBADMSG);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":\"\xfe\"}"), -EBADMSG);
    CU_ASSERT_EQUAL(reply_rc("[]"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("0"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":1}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":null}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":\"NotQualified\"}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"error\":\"io.mmsrvd.\"}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"parameters\":[]}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"parameters\":null}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"continues\":1}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"continues\":\"yes\"}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"method\":\"a.b.C\"}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"more\":true}"), -EPROTO);
    CU_ASSERT_EQUAL(reply_rc("{\"x\":1}"), -EPROTO);
}

/* ---- Encoding ----------------------------------------------------------- */

static void test_encode_exact(void)
{
    size_t len = 0;
    char *m = proto_encode_call("io.mmsrvd.Attach",
                                json_pack("{s:s,s:b}", "name", "frames", "writable", 1), PROTO_MORE,
                                &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(
        m,
        "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"frames\",\"writable\":true},"
        "\"more\":true}");
    CU_ASSERT_EQUAL(len, strlen(m) + 1);
    free(m);

    m = proto_encode_call("a.b.C", NULL, 0, &len);
    CU_ASSERT_STRING_EQUAL(m, "{\"method\":\"a.b.C\",\"parameters\":{}}");
    CU_ASSERT_EQUAL(len, strlen(m) + 1);
    free(m);

    m = proto_encode_reply(NULL, false, &len);
    CU_ASSERT_STRING_EQUAL(m, "{\"parameters\":{}}");
    CU_ASSERT_EQUAL(len, 18);
    free(m);

    m = proto_encode_reply(json_pack("{s:i}", "n", -3), true, &len);
    CU_ASSERT_STRING_EQUAL(m, "{\"parameters\":{\"n\":-3},\"continues\":true}");
    free(m);

    m = proto_encode_error(PROTO_ERR_NO_SPACE,
                           json_pack("{s:i,s:i}", "requested", 10, "available", 2), &len);
    CU_ASSERT_STRING_EQUAL(m, "{\"error\":\"io.mmsrvd.NoSpace\",\"parameters\":{\"requested\":"
                              "10,\"available\":2}}");
    CU_ASSERT_EQUAL(len, strlen(m) + 1);
    free(m);

    /* A NUL inside a string is escaped, never a frame boundary. */
    m = proto_encode_reply(json_pack("{s:s%}", "s", "a\0b", (size_t)3), false, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(len, strlen(m) + 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "\\u0000"));
    free(m);
}

static void test_encode_round_trip(void)
{
    struct tu_rng g;
    tu_rng_init(&g, tu_seed() ^ 0x5eed);
    for (int i = 0; i < 500; i++) {
        unsigned flags = (unsigned)tu_rng_range(&g, 0, 7);
        json_int_t n = (json_int_t)tu_rng_next(&g);
        json_t *params = json_pack("{s:I,s:s,s:[i,b,n],s:{s:f}}", "n", n, "s", "\"\\\n\t\xc3\xa9",
                                   "a", (int)(n & 0xff), (int)(n & 1), "o", "f", 0.5);
        json_t *copy = json_deep_copy(params);
        size_t len;
        char *m = proto_encode_call("io.mmsrvd.CreateRegion", params, flags, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(len, strlen(m) + 1);
        CU_ASSERT_PTR_NULL(strchr(m, '\n'));
        struct proto_call c;
        CU_ASSERT_EQUAL_FATAL(proto_call_parse(m, len - 1, &c, NULL), 0);
        CU_ASSERT_STRING_EQUAL(c.method, "io.mmsrvd.CreateRegion");
        CU_ASSERT_EQUAL(c.flags, flags);
        CU_ASSERT_TRUE(json_equal(c.parameters, copy));
        proto_call_release(&c);
        free(m);

        bool continues = (n & 2) != 0;
        m = proto_encode_reply(json_incref(copy), continues, &len);
        struct proto_reply p;
        CU_ASSERT_EQUAL_FATAL(proto_reply_parse(m, len - 1, &p, NULL), 0);
        CU_ASSERT_PTR_NULL(p.error);
        CU_ASSERT_EQUAL(p.continues, continues);
        CU_ASSERT_TRUE(json_equal(p.parameters, copy));
        proto_reply_release(&p);
        free(m);

        m = proto_encode_error(PROTO_ERR_PERMISSION_DENIED, json_incref(copy), &len);
        CU_ASSERT_EQUAL_FATAL(proto_reply_parse(m, len - 1, &p, NULL), 0);
        CU_ASSERT_STRING_EQUAL(p.error, PROTO_ERR_PERMISSION_DENIED);
        CU_ASSERT_TRUE(json_equal(p.parameters, copy));
        proto_reply_release(&p);
        free(m);
        json_decref(copy);
    }
}

static void test_encode_steals(void)
{
    size_t len;
    json_t *p = json_object();
    json_incref(p);
    char *m = proto_encode_call("a.b.C", p, 0, &len);
    CU_ASSERT_EQUAL(p->refcount, 1);
    free(m);
    m = proto_encode_reply(json_incref(p), false, &len);
    CU_ASSERT_EQUAL(p->refcount, 1);
    free(m);
    m = proto_encode_error("a.b.E", json_incref(p), &len);
    CU_ASSERT_EQUAL(p->refcount, 1);
    free(m);
    /* Consumed on failure too: no method, no error, not UTF-8. */
    CU_ASSERT_PTR_NULL(proto_encode_call(NULL, json_incref(p), 0, &len));
    CU_ASSERT_EQUAL(p->refcount, 1);
    CU_ASSERT_PTR_NULL(proto_encode_call("a.b.\xff", json_incref(p), 0, &len));
    CU_ASSERT_EQUAL(p->refcount, 1);
    CU_ASSERT_PTR_NULL(proto_encode_error(NULL, json_incref(p), &len));
    CU_ASSERT_EQUAL(p->refcount, 1);
    CU_ASSERT_PTR_NULL(proto_encode_error("a.b.\xff", json_incref(p), &len));
    CU_ASSERT_EQUAL(p->refcount, 1);
    json_decref(p);
}

/* ---- Parameters --------------------------------------------------------- */

static const struct proto_param create_spec[] = {
    {"name", PROTO_T_STRING, false}, {"size", PROTO_T_UINT, true},
    {"delta", PROTO_T_INT, true},    {"writable", PROTO_T_BOOL, true},
    {"opts", PROTO_T_OBJECT, true},  {"channels", PROTO_T_ARRAY, true},
    {"ratio", PROTO_T_FLOAT, true},
};
#define CREATE_N (sizeof(create_spec) / sizeof(create_spec[0]))

/* Check text against create_spec: the offending member, or "" when fine. */
static const char *check(const char *text)
{
    static char name[64];
    json_error_t err;
    json_t *p = json_loads(text, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const char *bad = "unset";
    int rc = proto_params_check(p, create_spec, CREATE_N, &bad);
    if (rc == 0) {
        CU_ASSERT_PTR_NULL(bad);
        name[0] = '\0';
    } else {
        CU_ASSERT_EQUAL(rc, -EINVAL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        snprintf(name, sizeof(name), "%s", bad);
    }
    json_decref(p);
    return name;
}

static void test_params_check(void)
{
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\"}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":0,\"delta\":-5,\"writable\":false,"
                                 "\"opts\":{},\"channels\":[]}"),
                           "");
    /* null is absent for an optional member, not for a required one. */
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":null,\"delta\":null,\"writable\":null,"
                                 "\"opts\":null,\"channels\":null}"),
                           "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":null}"), "name");
    CU_ASSERT_STRING_EQUAL(check("{}"), "name");
    CU_ASSERT_STRING_EQUAL(check("{\"size\":1}"), "name");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":1}"), "name");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":-1}"), "size");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":1.0}"), "size");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":\"1\"}"), "size");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"size\":9223372036854775807}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"delta\":-9223372036854775808}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"delta\":2.5}"), "delta");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"delta\":true}"), "delta");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"writable\":1}"), "writable");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"opts\":[]}"), "opts");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"channels\":{}}"), "channels");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":0.25}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":-3}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":null}"), "");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":\"0.5\"}"), "ratio");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":false}"), "ratio");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"ratio\":[1]}"), "ratio");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"other\":1}"), "other");
    CU_ASSERT_STRING_EQUAL(check("{\"name\":\"a\",\"other\":null}"), "other");
    /* The first offender in the spec's order. */
    CU_ASSERT_STRING_EQUAL(check("{\"writable\":0,\"size\":-1,\"name\":\"a\"}"), "size");

    /* No members expected, and not an object. */
    json_t *empty = json_object();
    json_t *arr = json_array();
    const char *bad = "unset";
    CU_ASSERT_EQUAL(proto_params_check(empty, NULL, 0, &bad), 0);
    CU_ASSERT_EQUAL(proto_params_check(arr, create_spec, CREATE_N, &bad), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(bad);
    CU_ASSERT_EQUAL(proto_params_check(NULL, create_spec, CREATE_N, NULL), -EINVAL);
    json_object_set_new(empty, "x", json_true());
    CU_ASSERT_EQUAL(proto_params_check(empty, NULL, 0, &bad), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    CU_ASSERT_STRING_EQUAL(bad, "x");
    json_decref(empty);
    json_decref(arr);
}

static void test_name_valid(void)
{
    char name[PROTO_NAME_MAX + 2];
    CU_ASSERT_TRUE(proto_name_valid("frames"));
    CU_ASSERT_TRUE(proto_name_valid("a"));
    CU_ASSERT_TRUE(proto_name_valid("A-Z_a.z-0_9"));
    CU_ASSERT_TRUE(proto_name_valid("."));
    CU_ASSERT_FALSE(proto_name_valid(""));
    CU_ASSERT_FALSE(proto_name_valid(NULL));
    CU_ASSERT_FALSE(proto_name_valid("a b"));
    CU_ASSERT_FALSE(proto_name_valid("a/b"));
    CU_ASSERT_FALSE(proto_name_valid("\xc3\xa9"));
    CU_ASSERT_FALSE(proto_name_valid("a\n"));
    memset(name, 'n', sizeof(name));
    name[PROTO_NAME_MAX] = '\0';
    CU_ASSERT_TRUE(proto_name_valid(name));
    name[PROTO_NAME_MAX] = 'n';
    name[PROTO_NAME_MAX + 1] = '\0';
    CU_ASSERT_FALSE(proto_name_valid(name));
}

/* ---- Errors ------------------------------------------------------------- */

static void test_error_table(void)
{
    static const struct {
        int err;
        const char *name;
    } table[] = {
        {-ENOENT, PROTO_ERR_REGION_NOT_FOUND},
        {-EEXIST, PROTO_ERR_REGION_EXISTS},
        {-EACCES, PROTO_ERR_PERMISSION_DENIED},
        {-ENOSPC, PROTO_ERR_NO_SPACE},
        {-ENOTCONN, PROTO_ERR_NOT_ATTACHED},
        {-EBADMSG, PROTO_ERR_INVALID_MESSAGE},
        {-EAGAIN, PROTO_ERR_RESOURCE_UNAVAILABLE},
        {-EINVAL, PROTO_ERR_INVALID_PARAMETER},
        {-ENOSYS, PROTO_ERR_METHOD_NOT_FOUND},
        {-ESRCH, PROTO_ERR_INTERFACE_NOT_FOUND},
        {-EOPNOTSUPP, PROTO_ERR_METHOD_NOT_IMPLEMENTED},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *name = proto_error_name(table[i].err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_STRING_EQUAL(name, table[i].name);
        CU_ASSERT_EQUAL(proto_error_errno(table[i].name), table[i].err);
        /* Every name survives the wire as a reply's error. */
        size_t len;
        char *m = proto_encode_error(name, NULL, &len);
        struct proto_reply p;
        CU_ASSERT_EQUAL_FATAL(proto_reply_parse(m, len - 1, &p, NULL), 0);
        CU_ASSERT_EQUAL(proto_error_errno(p.error), table[i].err);
        proto_reply_release(&p);
        free(m);
    }
    CU_ASSERT_PTR_NULL(proto_error_name(0));
    CU_ASSERT_PTR_NULL(proto_error_name(-EPROTO));
    CU_ASSERT_PTR_NULL(proto_error_name(-ENOMEM));
    CU_ASSERT_PTR_NULL(proto_error_name(ENOENT));
    CU_ASSERT_EQUAL(proto_error_errno(PROTO_ERR_EXPECTED_MORE), -EPROTO);
    CU_ASSERT_EQUAL(proto_error_errno("io.mmsrvd.Unknown"), -EPROTO);
    CU_ASSERT_EQUAL(proto_error_errno("io.mmsrvd.regionnotfound"), -EPROTO);
    CU_ASSERT_EQUAL(proto_error_errno(""), -EPROTO);
    CU_ASSERT_EQUAL(proto_error_errno(NULL), -EPROTO);
}

/* ---- Region header ------------------------------------------------------ */

enum { REGION_SIZE = 8192 };

static void test_region_round_trip(void)
{
    int fd = tu_shm_create(REGION_SIZE);
    CU_ASSERT_FATAL(fd >= 0);
    void *a = tu_shm_map(fd, REGION_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(a, 0xa5, REGION_SIZE);
    CU_ASSERT_EQUAL(region_header_write(a, REGION_SIZE, REGION_KIND_IOB, 42, "net.rx-0"), 0);
    /* The allocator's memory is left alone. */
    CU_ASSERT_EQUAL(((unsigned char *)a)[REGION_ALLOC_OFFSET], 0xa5);

    /* Read through another mapping of the same object. */
    void *b = tu_shm_map_elsewhere(fd, REGION_SIZE, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    struct region_layout l;
    memset(&l, 0xff, sizeof(l));
    CU_ASSERT_EQUAL(region_header_read(b, REGION_SIZE, &l), 0);
    CU_ASSERT_EQUAL(l.kind, REGION_KIND_IOB);
    CU_ASSERT_EQUAL(l.size, REGION_SIZE);
    CU_ASSERT_EQUAL(l.generation, 42);
    CU_ASSERT_EQUAL(l.alloc_offset, REGION_ALLOC_OFFSET);
    CU_ASSERT_EQUAL(l.alloc_size, REGION_SIZE - REGION_ALLOC_OFFSET);
    CU_ASSERT_STRING_EQUAL(l.name, "net.rx-0");

    const struct region_header *h = b;
    CU_ASSERT_EQUAL(h->magic, REGION_MAGIC);
    CU_ASSERT_EQUAL(memcmp(&h->magic, "rsmm", 4), 0);
    CU_ASSERT_EQUAL(h->version, REGION_VERSION);
    for (size_t i = 0; i < sizeof(h->reserved); i++)
        CU_ASSERT_EQUAL(h->reserved[i], 0);

    /* A mapping larger than the region is fine; the smallest region too. */
    CU_ASSERT_EQUAL(region_header_read(b, REGION_SIZE * 2, &l), 0);
    CU_ASSERT_EQUAL(region_header_write(a, REGION_ALLOC_OFFSET, REGION_KIND_HEAP, 1, "h"), 0);
    CU_ASSERT_EQUAL(region_header_read(b, REGION_SIZE, &l), 0);
    CU_ASSERT_EQUAL(l.kind, REGION_KIND_HEAP);
    CU_ASSERT_EQUAL(l.alloc_size, 0);

    char longest[PROTO_NAME_MAX + 1];
    memset(longest, 'L', PROTO_NAME_MAX);
    longest[PROTO_NAME_MAX] = '\0';
    CU_ASSERT_EQUAL(region_header_write(a, REGION_SIZE, REGION_KIND_HEAP, 7, longest), 0);
    CU_ASSERT_EQUAL(region_header_read(b, REGION_SIZE, &l), 0);
    CU_ASSERT_STRING_EQUAL(l.name, longest);

    tu_shm_unmap(b, REGION_SIZE);
    tu_shm_unmap(a, REGION_SIZE);
    close(fd);
}

static void test_region_write_refuses(void)
{
    static uint64_t mem[REGION_SIZE / 8];
    memset(mem, 0x5a, sizeof(mem));
    CU_ASSERT_EQUAL(region_header_write(mem, REGION_ALLOC_OFFSET - 1, REGION_KIND_HEAP, 1, "a"),
                    -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, 0, REGION_KIND_HEAP, 1, "a"), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, sizeof(mem), (enum region_kind)0, 1, "a"), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, sizeof(mem), (enum region_kind)3, 1, "a"), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, sizeof(mem), REGION_KIND_HEAP, 1, ""), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, sizeof(mem), REGION_KIND_HEAP, 1, "a/b"), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(mem, sizeof(mem), REGION_KIND_HEAP, 1, NULL), -EINVAL);
    CU_ASSERT_EQUAL(region_header_write(NULL, sizeof(mem), REGION_KIND_HEAP, 1, "a"), -EINVAL);
    /* A refused write leaves the memory as it was. */
    for (size_t i = 0; i < sizeof(mem) / 8; i++)
        CU_ASSERT_EQUAL_FATAL(mem[i], 0x5a5a5a5a5a5a5a5aull);
}

/* Write a good header, corrupt it with fn, and read it back. */
static int read_corrupted(void (*fn)(struct region_header *h), size_t mapped)
{
    static union {
        struct region_header h;
        unsigned char bytes[REGION_SIZE];
    } mem;
    struct region_layout l;
    CU_ASSERT_EQUAL_FATAL(region_header_write(&mem, REGION_SIZE, REGION_KIND_HEAP, 9, "r"), 0);
    if (fn != NULL)
        fn(&mem.h);
    return region_header_read(&mem, mapped, &l);
}

static void bad_magic(struct region_header *h)
{
    h->magic ^= 1u;
}
static void bad_version(struct region_header *h)
{
    h->version = REGION_VERSION + 1;
}
static void bad_version0(struct region_header *h)
{
    h->version = 0;
}
static void bad_kind0(struct region_header *h)
{
    h->kind = 0;
}
static void bad_kind3(struct region_header *h)
{
    h->kind = 3;
}
static void bad_size_small(struct region_header *h)
{
    h->size = REGION_ALLOC_OFFSET - 1;
}
static void bad_size_huge(struct region_header *h)
{
    h->size = UINT64_MAX;
}
static void bad_size_over(struct region_header *h)
{
    h->size = REGION_SIZE + 1;
}
static void bad_offset_in_header(struct region_header *h)
{
    h->alloc_offset = 128;
    h->alloc_size = REGION_SIZE - 128;
}
static void bad_offset_unaligned(struct region_header *h)
{
    h->alloc_offset = REGION_ALLOC_OFFSET + 4;
    h->alloc_size = 16;
}
static void bad_offset_past(struct region_header *h)
{
    h->alloc_offset = REGION_SIZE + 16;
    h->alloc_size = 0;
}
static void bad_alloc_size(struct region_header *h)
{
    h->alloc_size = REGION_SIZE - REGION_ALLOC_OFFSET + 1;
}
static void bad_alloc_wrap(struct region_header *h)
{
    /* offset + size wraps around to a small number. */
    h->alloc_size = UINT64_MAX - REGION_ALLOC_OFFSET + 2;
}
static void bad_name_unterminated(struct region_header *h)
{
    memset(h->name, 'a', sizeof(h->name));
}
static void bad_name_empty(struct region_header *h)
{
    h->name[0] = '\0';
}
static void bad_name_char(struct region_header *h)
{
    h->name[0] = '/';
}
static void good_smaller_alloc(struct region_header *h)
{
    h->alloc_size = 64;
}
static void good_later_offset(struct region_header *h)
{
    h->alloc_offset = 512;
    h->alloc_size = REGION_SIZE - 512;
}
static void good_reserved(struct region_header *h)
{
    h->reserved[0] = 1;
}

static void test_region_read_refuses(void)
{
    static void (*const bad[])(struct region_header *) = {
        bad_magic,
        bad_version,
        bad_version0,
        bad_kind0,
        bad_kind3,
        bad_size_small,
        bad_size_huge,
        bad_size_over,
        bad_offset_in_header,
        bad_offset_unaligned,
        bad_offset_past,
        bad_alloc_size,
        bad_alloc_wrap,
        bad_name_unterminated,
        bad_name_empty,
        bad_name_char,
    };
    CU_ASSERT_EQUAL(read_corrupted(NULL, REGION_SIZE), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = read_corrupted(bad[i], REGION_SIZE);
        if (rc != -EBADMSG)
            printf("\n  corruption %zu read as %d\n", i, rc);
        CU_ASSERT_EQUAL(rc, -EBADMSG);
    }
    CU_ASSERT_EQUAL(read_corrupted(good_smaller_alloc, REGION_SIZE), 0);
    CU_ASSERT_EQUAL(read_corrupted(good_later_offset, REGION_SIZE), 0);
    CU_ASSERT_EQUAL(read_corrupted(good_reserved, REGION_SIZE), 0);

    /* A header claiming more than is mapped, and a mapping smaller than a
     * header. */
    CU_ASSERT_EQUAL(read_corrupted(NULL, REGION_SIZE - 1), -EBADMSG);
    CU_ASSERT_EQUAL(read_corrupted(NULL, 4096), -EBADMSG);
    CU_ASSERT_EQUAL(read_corrupted(NULL, sizeof(struct region_header) - 1), -EBADMSG);
    CU_ASSERT_EQUAL(read_corrupted(NULL, 0), -EBADMSG);

    struct region_layout l;
    CU_ASSERT_EQUAL(region_header_read(NULL, REGION_SIZE, &l), -EINVAL);
    CU_ASSERT_EQUAL(region_header_read(&l, sizeof(l), NULL), -EINVAL);
}

/* ---- Interface description ---------------------------------------------- */

static void test_interface_description(void)
{
    FILE *f = fopen(PROTO_VARLINK_FILE, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    CU_ASSERT_TRUE(feof(f));
    fclose(f);
    text[n] = '\0';
    CU_ASSERT_TRUE(n > 0);
    CU_ASSERT_EQUAL(strlen(proto_interface_description), n);
    CU_ASSERT_STRING_EQUAL(proto_interface_description, text);
    CU_ASSERT_PTR_NOT_NULL(strstr(proto_interface_description, "interface " PROTO_INTERFACE "\n"));
    /* It fits in a reply to GetInterfaceDescription. */
    size_t len;
    char *m = proto_encode_reply(json_pack("{s:s}", "description", proto_interface_description),
                                 false, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_TRUE(len - 1 <= PROTO_MAX_MESSAGE);
    free(m);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_reader_one_message),
        TU_TEST(test_reader_several_in_one_read),
        TU_TEST(test_reader_byte_by_byte),
        TU_TEST(test_reader_exactly_max),
        TU_TEST(test_reader_default_max),
        TU_TEST(test_reader_over_max),
        TU_TEST(test_reader_compaction),
        TU_TEST(test_reader_random_splits),
        TU_TEST(test_reader_space_with_messages_held),
        TU_TEST(test_call_parse_valid),
        TU_TEST(test_call_parse_not_json),
        TU_TEST(test_call_parse_not_object),
        TU_TEST(test_call_method_form),
        TU_TEST(test_call_members),
        TU_TEST(test_reply_parse),
        TU_TEST(test_encode_exact),
        TU_TEST(test_encode_round_trip),
        TU_TEST(test_encode_steals),
        TU_TEST(test_params_check),
        TU_TEST(test_name_valid),
        TU_TEST(test_error_table),
        TU_TEST(test_region_round_trip),
        TU_TEST(test_region_write_refuses),
        TU_TEST(test_region_read_refuses),
        TU_TEST(test_interface_description),
        TU_END,
    };
    return tu_main("proto", tests);
}
