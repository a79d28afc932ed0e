/*
 * stream.h: what example_pub and example_sub agree on.
 *
 * The publisher streams messages through a channel of an IOB region that
 * mmsrvd serves; the subscriber, a separate program, receives them.  Each
 * message is one chain of buffers: a struct stream_hdr at the start of the
 * first buffer, then the payload, spread over as many buffers as it takes.
 * The chain itself travels, not a copy of it: the subscriber reads the
 * payload where the publisher wrote it.
 *
 * A stream is the messages of one run of the publisher: sequence numbers
 * 0, 1, 2 ... and then one end-of-stream message whose sequence number is
 * the count of messages sent.  The stream id tells runs apart, so that a
 * subscriber can skip what an earlier run left in the channel.
 */
#ifndef MMSRV_EXAMPLES_STREAM_H
#define MMSRV_EXAMPLES_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Defaults of both programs: the region, its channel, and its geometry
 * when the publisher creates it (the buffer count grows with -s so that a
 * full channel and a message on each side fit at once). */
#define STREAM_REGION  "frames"
#define STREAM_CHANNEL "video"
#define STREAM_BUFSIZE 4096u
#define STREAM_BUFFERS 256u
#define STREAM_DEPTH   8u

/* Every wait of both programs is bounded: this many seconds by default. */
#define STREAM_TIMEOUT_S 10.0

#define STREAM_MAGIC 0x4d4d5346u /* "MMSF" */
#define STREAM_EOS   0x1u        /* flags: the end of the stream; no payload */

/* The header at the start of every message, in the first buffer. */
struct stream_hdr {
    uint32_t magic;
    uint32_t flags;
    uint64_t stream;  /* the publisher run's id */
    uint64_t seq;     /* 0, 1, 2 ...; the end-of-stream message: the count sent */
    uint64_t sent_ns; /* CLOCK_MONOTONIC when the chain was sent */
    uint32_t len;     /* payload bytes after the header */
    uint32_t check;   /* Adler-32 of the payload */
};
_Static_assert(sizeof(struct stream_hdr) == 40, "stream_hdr layout");
_Static_assert(offsetof(struct stream_hdr, sent_ns) == 24, "stream_hdr layout");

/* The options both programs take: -a ADDRESS -r REGION -c CHANNEL
 * -t SECONDS, with their getopt letters and their lines of the usage. */
struct stream_opts {
    const char *address; /* NULL: $MMSRV_ADDRESS, else libmmsrv's default */
    const char *region;
    const char *channel;
    int32_t wait_ms; /* -t: the longest wait for the other program */
};
#define STREAM_OPTS_INIT                                                                           \
    {                                                                                              \
        NULL, STREAM_REGION, STREAM_CHANNEL, (int32_t)(STREAM_TIMEOUT_S * 1000)                    \
    }
#define STREAM_OPTSTRING "a:r:c:t:"
#define STREAM_USAGE                                                                               \
    "  -a  the daemon's socket, unix:/path (default $MMSRV_ADDRESS, else the system's)\n"          \
    "  -r  the IOB region (default " STREAM_REGION ")\n"                                           \
    "  -c  its channel (default " STREAM_CHANNEL ")\n"

/* Take option opt (a getopt letter) with its argument if it is one of
 * those.  1 when taken, 0 when it is not one of them, -1 (after printing
 * why) when its argument is bad. */
int stream_option(int opt, const char *arg, struct stream_opts *o);

/* Connect to the daemon that o names; 0, or -1 after printing why. */
struct mmsrv_client;
int stream_connect(const struct stream_opts *o, struct mmsrv_client **out);

/* Look the channel up and connect to it as role (IOB_CHANNEL_SEND or
 * IOB_CHANNEL_RECV): its id, or -1 after printing why. */
struct iob_pool_s;
int stream_channel_open(struct iob_pool_s *pool, const char *name, uint32_t role);

/* The monotonic clock in nanoseconds: one clock for every process of the
 * host, so the subscriber can subtract the publisher's timestamps. */
uint64_t stream_now_ns(void);

/* Adler-32 (RFC 1950) of n more bytes at p, continuing from adler (1 to
 * start).  Position-dependent, so it sees bytes swapped as well as bytes
 * changed. */
uint32_t stream_adler32(uint32_t adler, const uint8_t *p, size_t n);

/* Print "PROGRAM: what: reason - VarlinkError" on stderr; rc is a negative
 * errno.  Returns -1 for the caller to pass on. */
int stream_fail(const char *what, int rc);

/* Parse an option's number: min..max, with an optional K, M or G suffix
 * (times 1024) for stream_parse_size.  0, or -1 after printing why. */
int stream_parse_size(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out);
int stream_parse_real(const char *opt, const char *arg, double min, double max, double *out);

#endif /* MMSRV_EXAMPLES_STREAM_H */
