/*
 * pub.c: example_pub, the publisher half of a zero-copy stream.
 *
 * It connects to mmsrvd, creates an IOB region with one channel (or
 * attaches it, if it exists already), and sends messages through the
 * channel: each one a chain of buffers that the publisher fills in place
 * (a header, then the payload) and hands to the subscriber (example_sub, a
 * separate program) without copying it.  A 64 KiB message spans 17 buffers
 * of 4 KiB; sending it is one O(1) step whatever its length.
 *
 * The daemon takes part only in the create and attach calls; every message
 * travels through shared memory alone.  The publisher runs as fast as the
 * subscriber takes messages (or at -hz messages per second): when the
 * channel is full, or the pool has no free buffer, it waits for the
 * subscriber, at most -t seconds per message.
 *
 *   example_pub [-a ADDRESS] [-r REGION] [-c CHANNEL] [-n COUNT] [-s BYTES]
 *               [-hz RATE] [-t SECONDS]
 *
 * ADDRESS is the daemon's socket (unix:/path); without it $MMSRV_ADDRESS,
 * else the default.  The region stays when the publisher exits, for the
 * next run (`mmsrvctl destroy REGION` removes it).  Prints one line of
 * figures; exits 0 when every message, the end-of-stream one included, was
 * handed to the channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "stream.h"

struct pub_opts {
    struct stream_opts common;
    uint64_t count; /* messages */
    uint64_t size;  /* payload bytes per message */
    double hz;      /* messages per second; 0: as fast as they are taken */
};

/* Buffers of bufsize bytes that one message of size payload bytes takes. */
static uint64_t buffers_per_message(uint64_t size, uint32_t bufsize)
{
    return (sizeof(struct stream_hdr) + size + bufsize - 1) / bufsize;
}

/*
 * Create the region with its channel, or attach it if it exists.  A fresh
 * region has room for a full channel plus the message each side holds, so
 * that the publisher never waits for buffers that only the channel keeps.
 */
static int region_open(struct mmsrv_client *client, const struct pub_opts *o,
                       struct mmsrv_region **out)
{
    uint64_t per = buffers_per_message(o->size, STREAM_BUFSIZE);
    uint64_t count = (STREAM_DEPTH + 2) * per;
    const struct mmsrv_channel_spec channel = {.name = o->common.channel, .depth = STREAM_DEPTH};
    const struct mmsrv_region_spec spec = {
        .name = o->common.region,
        .kind = MMSRV_IOB,
        .bufsize = STREAM_BUFSIZE,
        .count = (uint32_t)(count < STREAM_BUFFERS ? STREAM_BUFFERS : count),
        .channels = &channel,
        .nchannels = 1,
        .uid = -1,
        .gid = -1,
        .mode = -1,
    };
    int rc = mmsrv_create(client, &spec, NULL);
    if (rc == -EEXIST) {
        fprintf(stderr, "%s: region \"%s\" exists: attaching it\n", program_invocation_short_name,
                o->common.region);
    } else if (rc < 0) {
        return stream_fail(o->common.region, rc);
    }
    rc = mmsrv_attach(client, o->common.region, 0, out);
    if (rc < 0) {
        return stream_fail(o->common.region, rc);
    }
    struct iob_pool_s *pool = (*out)->pool;
    if (pool == NULL) {
        return stream_fail("the region is not an IOB pool", -EINVAL);
    }
    /* An existing region was made by someone else: check it can carry
     * these messages at all. */
    uint32_t bufsize = iob_pool_bufsize(pool);
    if (bufsize < sizeof(struct stream_hdr) ||
        buffers_per_message(o->size, bufsize) > iob_pool_count(pool)) {
        fprintf(stderr,
                "%s: region \"%s\" (%" PRIu32 " buffers of %" PRIu32
                " bytes) cannot hold a message of %" PRIu64 " bytes; try a smaller -s\n",
                program_invocation_short_name, o->common.region, iob_pool_count(pool), bufsize,
                o->size);
        return -1;
    }
    return 0;
}

/* Milliseconds left until deadline (ns), at least 1 so that a wait that
 * was due waits a little rather than not at all. */
static int32_t ms_left(uint64_t deadline)
{
    uint64_t now = stream_now_ns();
    uint64_t ms = now < deadline ? (deadline - now) / 1000000u : 0;
    return ms == 0 ? 1 : (int32_t)(ms > INT32_MAX ? INT32_MAX : ms);
}

/*
 * Allocate a chain long enough for the header and len payload bytes:
 * iob_update_pktlen takes the free buffers it finds without waiting; when
 * the subscriber still holds the rest, wait for one (at most until
 * deadline) and try again.
 */
static struct iob_s *chain_alloc(struct iob_pool_s *pool, uint32_t len, uint64_t deadline)
{
    uint32_t want = (uint32_t)sizeof(struct stream_hdr) + len;
    struct iob_s *head = iob_timedalloc(pool, false, (uint32_t)ms_left(deadline));
    if (head == NULL) {
        stream_fail("no free buffer (is a subscriber receiving?)", iob_pool_error(pool));
        return NULL;
    }
    for (;;) {
        int got = iob_update_pktlen(pool, head, want, false);
        if (got < 0) {
            stream_fail("iob_update_pktlen", got);
            break;
        }
        if ((uint32_t)got == want) {
            return head;
        }
        struct iob_s *more = iob_timedalloc(pool, false, (uint32_t)ms_left(deadline));
        if (more == NULL) {
            stream_fail("no free buffer (is a subscriber receiving?)", iob_pool_error(pool));
            break;
        }
        int rc = iob_concat(pool, head, more);
        if (rc < 0) {
            iob_free_chain(pool, more);
            stream_fail("iob_concat", rc);
            break;
        }
    }
    iob_free_chain(pool, head);
    return NULL;
}

/*
 * Fill the payload in place, buffer by buffer: here a pattern that differs
 * per message, where a camera would write a frame.  Returns the payload's
 * checksum.
 */
static uint32_t payload_fill(struct iob_pool_s *pool, struct iob_s *head, uint64_t seq)
{
    uint32_t check = 1, skip = (uint32_t)sizeof(struct stream_hdr), pos = 0;
    for (struct iob_s *b = head; b != NULL; b = iob_next(pool, b)) {
        uint8_t *data = iob_data(pool, b) + skip;
        uint32_t len = iob_len(pool, b) - skip;
        for (uint32_t i = 0; i < len; i++, pos++) {
            data[i] = (uint8_t)(seq * 131u + pos * 7u);
        }
        check = stream_adler32(check, data, len);
        skip = 0;
    }
    return check;
}

/* Build one message (h says which) and hand it to the channel. */
static int message_send(struct iob_pool_s *pool, int channel, struct stream_hdr *h, int32_t wait_ms)
{
    uint64_t deadline = stream_now_ns() + (uint64_t)wait_ms * 1000000u;
    struct iob_s *head = chain_alloc(pool, h->len, deadline);
    if (head == NULL) {
        return -1;
    }
    h->check = payload_fill(pool, head, h->seq);
    h->sent_ns = stream_now_ns();
    memcpy(iob_data(pool, head), h, sizeof(*h));
    int rc = iob_send(pool, channel, head, ms_left(deadline));
    if (rc < 0) {
        iob_free_chain(pool, head); /* still ours: the channel did not take it */
        return stream_fail(rc == -ETIMEDOUT ? "the channel stayed full (is a subscriber receiving?)"
                                            : "iob_send",
                           rc);
    }
    return 0;
}

/* Send every message, then the end of the stream. */
static int publish(struct iob_pool_s *pool, int channel, const struct pub_opts *o)
{
    struct stream_hdr h = {
        .magic = STREAM_MAGIC,
        .stream = ((uint64_t)getpid() << 32) ^ stream_now_ns(),
        .len = (uint32_t)o->size,
    };
    uint64_t start = stream_now_ns();
    for (h.seq = 0; h.seq < o->count; h.seq++) {
        if (o->hz > 0) {
            uint64_t due = start + (uint64_t)((double)h.seq * 1e9 / o->hz);
            struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
        }
        if (message_send(pool, channel, &h, o->common.wait_ms) < 0) {
            fprintf(stderr, "%s: stopped after %" PRIu64 " of %" PRIu64 " messages\n",
                    program_invocation_short_name, h.seq, o->count);
            return -1;
        }
    }
    h.flags = STREAM_EOS;
    h.len = 0;
    if (message_send(pool, channel, &h, o->common.wait_ms) < 0) {
        return -1;
    }
    double secs = (double)(stream_now_ns() - start) / 1e9;
    printf("%s: sent %" PRIu64 " messages of %" PRIu64 " bytes (%" PRIu64
           " buffers each) through %s/%s in %.3f s: %.0f messages/s, %.1f MB/s\n",
           program_invocation_short_name, o->count, o->size,
           buffers_per_message(o->size, iob_pool_bufsize(pool)), o->common.region,
           o->common.channel, secs, secs > 0 ? (double)o->count / secs : 0.0,
           secs > 0 ? (double)(o->count * o->size) / secs / 1e6 : 0.0);
    return 0;
}

static int run(const struct pub_opts *o)
{
    struct mmsrv_client *client;
    struct mmsrv_region *region = NULL;
    if (stream_connect(&o->common, &client) < 0) {
        return -1;
    }
    int status = region_open(client, o, &region);
    int channel = -1;
    if (status == 0) {
        channel = stream_channel_open(region->pool, o->common.channel, IOB_CHANNEL_SEND);
        status = channel < 0 ? -1 : publish(region->pool, channel, o);
    }
    if (channel >= 0) {
        iob_channel_disconnect(region->pool, channel, IOB_CHANNEL_SEND);
    }
    /* Chains already sent stay in the channel for the subscriber. */
    mmsrv_disconnect(client);
    return status;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [-a ADDRESS] [-r REGION] [-c CHANNEL] [-n COUNT] [-s BYTES] [-hz RATE]"
            " [-t SECONDS]\n" STREAM_USAGE "  -n  messages to send (default 1000)\n"
            "  -s  payload bytes per message, K and M allowed (default 64K)\n"
            "  -hz messages per second (default: as fast as the subscriber takes them)\n"
            "  -t  the longest wait for the subscriber, per message (default 10)\n"
            "The region is created if it does not exist.\n",
            program_invocation_short_name);
}

int main(int argc, char **argv)
{
    struct pub_opts o = {.common = STREAM_OPTS_INIT, .count = 1000, .size = 64 * 1024};
    /* getopt_long_only, so that -hz reads as one option. */
    static const struct option longopts[] = {{"hz", required_argument, NULL, 'z'},
                                             {NULL, 0, NULL, 0}};
    int c, rc = 0;
    while (rc >= 0 &&
           (c = getopt_long_only(argc, argv, STREAM_OPTSTRING "n:s:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            rc = stream_parse_size("-n", optarg, 0, UINT32_MAX, &o.count);
            break;
        case 's':
            rc = stream_parse_size("-s", optarg, 0, 64u << 20, &o.size);
            break;
        case 'z':
            rc = stream_parse_real("-hz", optarg, 0, 1e6, &o.hz);
            break;
        default:
            rc = stream_option(c, optarg, &o.common) - 1; /* not ours: -1 */
            break;
        }
    }
    if (rc < 0 || optind != argc) {
        usage();
        return 2;
    }
    return run(&o) == 0 ? 0 : 1;
}
