/*
 * sub.c: example_sub, the subscriber half of a zero-copy stream.
 *
 * It waits for the publisher's region to appear (example_pub creates it),
 * attaches it, connects to its channel as the receiver, and takes messages
 * until the end of the stream.  Each message is a chain of buffers that the
 * publisher filled; the subscriber checks it where it lies in shared
 * memory, walking the chain buffer by buffer, and frees it, which gives the
 * buffers back to the publisher.  Nothing is copied but the 40-byte header.
 *
 * What it checks: sequence numbers without gaps (lost) or repeats
 * (duplicated), and each payload's length and checksum (corrupt).  The
 * one-way latency is the receive time less the send time the publisher
 * wrote, both on CLOCK_MONOTONIC: the same clock for every process of the
 * host.  A message whose header is unreadable counts as corrupt, and its
 * sequence number, not known, then shows as lost too.
 *
 *   example_sub [-a ADDRESS] [-r REGION] [-c CHANNEL] [-w SECONDS] [-t SECONDS]
 *
 * -w bounds the wait for the region (told by the daemon's region events);
 * -t bounds each wait for a message.  Prints one line of figures; exits 0
 * only when the stream ended and every message checked out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "stream.h"

struct sub_opts {
    struct stream_opts common; /* -t: the longest wait for a message */
    uint64_t wait_ns;          /* -w: the longest wait for the region to appear */
};

/* What came of one stream so far. */
struct tally {
    bool started;    /* a stream's first message came: stream is its id */
    bool ended;      /* its end-of-stream message came */
    uint64_t stream; /* the id of the stream being received */
    uint64_t next;   /* the sequence number expected next */
    uint64_t messages, bytes, lost, duplicated, corrupt;
    uint64_t skipped;     /* left over in the channel by an earlier run */
    uint64_t *latency_ns; /* one per message, for the percentiles */
    size_t nlatency, latency_cap;
};

/* Wait until the daemon tells that region exists: a second connection
 * watches its region events, whose stream starts with every region there
 * is and then tells each one created.  0, -ETIMEDOUT, or another error. */
static int region_wait(const struct sub_opts *o, uint64_t deadline)
{
    struct mmsrv_client *watch;
    if (stream_connect(&o->common, &watch) < 0)
        return -ECONNREFUSED;
    int rc = mmsrv_monitor_start(watch);
    while (rc == 0) {
        uint64_t now = stream_now_ns();
        int left_ms = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        struct mmsrv_event ev;
        rc = mmsrv_monitor_next(watch, &ev, left_ms);
        if (rc == 0 && ev.kind == MMSRV_EVENT_CREATED && strcmp(ev.region, o->common.region) == 0)
            break;
    }
    mmsrv_disconnect(watch);
    return rc;
}

/*
 * Attach the region, waiting for it to appear: the publisher may not have
 * created it yet.  No polling: the daemon's event stream says when it is
 * there (and if it goes again before the attach, the wait goes on).
 */
static int attach_wait(struct mmsrv_client *client, const struct sub_opts *o,
                       struct mmsrv_region **out)
{
    uint64_t deadline = stream_now_ns() + o->wait_ns;
    for (bool said = false;; said = true) {
        int rc = mmsrv_attach(client, o->common.region, 0, out);
        if (rc != -ENOENT) {
            return rc < 0 ? stream_fail(o->common.region, rc) : 0;
        }
        if (!said) {
            fprintf(stderr, "%s: waiting up to %.1f s for region \"%s\"\n",
                    program_invocation_short_name, (double)o->wait_ns / 1e9, o->common.region);
        }
        rc = region_wait(o, deadline);
        if (rc == -ETIMEDOUT) {
            fprintf(stderr,
                    "%s: region \"%s\" did not appear within %.1f s (is example_pub running, on "
                    "the same daemon?)\n",
                    program_invocation_short_name, o->common.region, (double)o->wait_ns / 1e9);
            return -1;
        }
        if (rc < 0) {
            return rc == -ECONNREFUSED ? -1 : stream_fail("waiting for the region", rc);
        }
    }
}

/*
 * Check one message in place.  The header is copied once, so that what is
 * checked is what is used (shared memory is untrusted: the sender could
 * still write to it); the payload is read where it lies, one buffer after
 * another.  0 with *h filled, or -EBADMSG.
 */
static int message_check(struct iob_pool_s *pool, struct iob_s *head, struct stream_hdr *h)
{
    const uint32_t hlen = (uint32_t)sizeof(*h);
    if (iob_len(pool, head) < hlen) {
        return -EBADMSG;
    }
    memcpy(h, iob_data(pool, head), hlen);
    if (h->magic != STREAM_MAGIC || iob_pktlen(pool, head) != hlen + (uint64_t)h->len) {
        return -EBADMSG;
    }
    uint64_t bytes = 0;
    uint32_t check = 1, skip = hlen, steps = 0;
    for (const struct iob_s *b = head; b != NULL; b = iob_next(pool, b)) {
        uint32_t len = iob_len(pool, b);
        /* A chain longer than the pool has buffers can only be a loop. */
        if (++steps > iob_pool_count(pool) || len < skip) {
            return -EBADMSG;
        }
        check = stream_adler32(check, iob_data(pool, b) + skip, len - skip);
        bytes += len - skip;
        skip = 0;
    }
    return bytes == h->len && check == h->check ? 0 : -EBADMSG;
}

static void latency_add(struct tally *t, uint64_t ns)
{
    if (t->nlatency == t->latency_cap) {
        size_t cap = t->latency_cap == 0 ? 1024 : t->latency_cap * 2;
        uint64_t *p = realloc(t->latency_ns, cap * sizeof(*p));
        if (p == NULL) {
            return; /* the percentiles will rest on fewer samples */
        }
        t->latency_ns = p;
        t->latency_cap = cap;
    }
    t->latency_ns[t->nlatency++] = ns;
}

/*
 * Count a message whose header could be read.  A stream starts at sequence
 * number 0: what comes before that is left over from an earlier run (a
 * publisher that filled the channel with nobody receiving), and a new 0
 * means that the stream in progress was abandoned by its publisher.
 */
static void tally_add(struct tally *t, const struct stream_hdr *h, bool intact, uint64_t recv_ns)
{
    if (!t->started || h->stream != t->stream) {
        if (h->seq != 0) {
            t->skipped++;
            return;
        }
        if (t->started) {
            fprintf(stderr,
                    "%s: a new stream began; the last one stopped after %" PRIu64 " messages\n",
                    program_invocation_short_name, t->messages);
        }
        uint64_t *keep = t->latency_ns;
        size_t cap = t->latency_cap;
        *t = (struct tally){.started = true, .stream = h->stream};
        t->latency_ns = keep;
        t->latency_cap = cap;
    }
    if ((h->flags & STREAM_EOS) != 0) {
        /* Its sequence number is the count sent: what did not come is lost. */
        t->lost += h->seq > t->next ? h->seq - t->next : 0;
        t->corrupt += intact ? 0 : 1;
        t->ended = true;
        return;
    }
    if (h->seq < t->next) {
        t->duplicated++;
        return;
    }
    t->lost += h->seq - t->next;
    t->next = h->seq + 1;
    if (!intact) {
        t->corrupt++;
        return;
    }
    t->messages++;
    t->bytes += h->len;
    latency_add(t, recv_ns > h->sent_ns ? recv_ns - h->sent_ns : 0);
}

/* Receive and check messages until the end of the stream.  0 when it
 * ended; -1 when a wait timed out or the channel failed. */
static int subscribe(struct iob_pool_s *pool, int channel, const struct sub_opts *o,
                     struct tally *t)
{
    while (!t->ended) {
        struct iob_s *head;
        int rc = iob_receive(pool, channel, &head, o->common.wait_ms);
        uint64_t recv_ns = stream_now_ns();
        if (rc == -ETIMEDOUT) {
            fprintf(stderr, "%s: no message for %.1f s: giving up\n", program_invocation_short_name,
                    (double)o->common.wait_ms / 1e3);
            return -1;
        }
        if (rc < 0) {
            return stream_fail("iob_receive", rc);
        }
        struct stream_hdr h = {0};
        rc = message_check(pool, head, &h);
        if (rc < 0 && h.magic != STREAM_MAGIC) {
            t->corrupt++; /* not even a header to tell which message it was */
        } else {
            tally_add(t, &h, rc == 0, recv_ns);
        }
        iob_free_chain(pool, head); /* the buffers go back to the publisher */
    }
    return 0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of sorted v[0..n), in microseconds. */
static double percentile_us(const uint64_t *v, size_t n, unsigned p)
{
    return n == 0 ? 0.0 : (double)v[(n - 1) * p / 100] / 1e3;
}

static void report(struct tally *t)
{
    qsort(t->latency_ns, t->nlatency, sizeof(uint64_t), compare_u64);
    printf("%s: %" PRIu64 " messages, %" PRIu64 " bytes, %" PRIu64 " lost, %" PRIu64
           " duplicated, %" PRIu64 " corrupt, latency p50 %.1f us p99 %.1f us%s\n",
           program_invocation_short_name, t->messages, t->bytes, t->lost, t->duplicated, t->corrupt,
           percentile_us(t->latency_ns, t->nlatency, 50),
           percentile_us(t->latency_ns, t->nlatency, 99), t->ended ? "" : " (no end of stream)");
    if (t->skipped > 0) {
        fprintf(stderr, "%s: skipped %" PRIu64 " messages left over from an earlier run\n",
                program_invocation_short_name, t->skipped);
    }
}

static int run(const struct sub_opts *o)
{
    struct mmsrv_client *client;
    struct mmsrv_region *region = NULL;
    struct tally t = {0};
    if (stream_connect(&o->common, &client) < 0) {
        return -1;
    }
    int status = attach_wait(client, o, &region);
    if (status == 0 && region->pool == NULL) {
        status = stream_fail("the region is not an IOB pool", -EINVAL);
    }
    int channel = -1;
    if (status == 0) {
        channel = stream_channel_open(region->pool, o->common.channel, IOB_CHANNEL_RECV);
        status = channel < 0 ? -1 : subscribe(region->pool, channel, o, &t);
    }
    if (channel >= 0) {
        report(&t);
        iob_channel_disconnect(region->pool, channel, IOB_CHANNEL_RECV);
    }
    mmsrv_disconnect(client);
    free(t.latency_ns);
    bool clean = t.ended && t.lost == 0 && t.duplicated == 0 && t.corrupt == 0;
    return status == 0 && clean ? 0 : -1;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: %s [-a ADDRESS] [-r REGION] [-c CHANNEL] [-w SECONDS] [-t SECONDS]\n" STREAM_USAGE
        "  -w  the longest wait for the region to appear (default 10)\n"
        "  -t  the longest wait for a message (default 10)\n",
        program_invocation_short_name);
}

int main(int argc, char **argv)
{
    struct sub_opts o = {.common = STREAM_OPTS_INIT, .wait_ns = (uint64_t)(STREAM_TIMEOUT_S * 1e9)};
    double secs;
    int c, rc = 0;
    while (rc >= 0 && (c = getopt(argc, argv, STREAM_OPTSTRING "w:")) != -1) {
        if (c == 'w') {
            rc = stream_parse_real("-w", optarg, 0, 3600, &secs);
            o.wait_ns = rc == 0 ? (uint64_t)(secs * 1e9) : 0;
        } else {
            rc = stream_option(c, optarg, &o.common) - 1; /* not ours: -1 */
        }
    }
    if (rc < 0 || optind != argc) {
        usage();
        return 2;
    }
    return run(&o) == 0 ? 0 : 1;
}
