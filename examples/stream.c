/*
 * stream.c: the helpers example_pub and example_sub share (stream.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/iob.h"
#include "mmsrv/mmsrv.h"
#include "stream.h"

int stream_option(int opt, const char *arg, struct stream_opts *o)
{
    double secs;
    switch (opt) {
    case 'a':
        o->address = arg;
        return 1;
    case 'r':
        o->region = arg;
        return 1;
    case 'c':
        o->channel = arg;
        return 1;
    case 't':
        if (stream_parse_real("-t", arg, 0.001, 3600, &secs) < 0) {
            return -1;
        }
        o->wait_ms = (int32_t)(secs * 1000);
        return 1;
    default:
        return 0;
    }
}

int stream_connect(const struct stream_opts *o, struct mmsrv_client **out)
{
    int rc = mmsrv_connect(o->address, out);
    return rc < 0 ? stream_fail("mmsrv_connect (is mmsrvd running? see -a)", rc) : 0;
}

int stream_channel_open(struct iob_pool_s *pool, const char *name, uint32_t role)
{
    int id = iob_channel_lookup(pool, name);
    int rc = id < 0 ? id : iob_channel_connect(pool, id, role);
    if (rc == -EBUSY) {
        /* Channels here have one sender and one receiver. */
        return stream_fail(role == IOB_CHANNEL_SEND
                               ? "another publisher sends on the channel"
                               : "another subscriber receives from the channel",
                           rc);
    }
    return rc < 0 ? stream_fail(name, rc) : id;
}

uint64_t stream_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t stream_adler32(uint32_t adler, const uint8_t *p, size_t n)
{
    /* 5552 bytes is the most that the sums take before they could overflow
     * 32 bits, so the modulo runs once per block rather than per byte. */
    enum { BASE = 65521, NMAX = 5552 };
    uint32_t a = adler & 0xffffu, b = adler >> 16;
    while (n > 0) {
        size_t k = n < NMAX ? n : NMAX;
        n -= k;
        while (k-- > 0) {
            a += *p++;
            b += a;
        }
        a %= BASE;
        b %= BASE;
    }
    return (b << 16) | a;
}

int stream_fail(const char *what, int rc)
{
    const char *name = mmsrv_error_name();
    fprintf(stderr, "%s: %s: %s%s%s\n", program_invocation_short_name, what, strerror(-rc),
            name != NULL ? " - " : "", name != NULL ? name : "");
    return -1;
}

int stream_parse_size(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'K':
        shift = 10;
        end++;
        break;
    case 'M':
        shift = 20;
        end++;
        break;
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v > (max >> shift) ||
        (v << shift) < min) {
        fprintf(stderr,
                "%s: %s wants a whole number from %llu to %llu (K, M, G: times 1024), not %s\n",
                program_invocation_short_name, opt, (unsigned long long)min,
                (unsigned long long)max, arg);
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

int stream_parse_real(const char *opt, const char *arg, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "%s: %s wants a number from %g to %g, not %s\n",
                program_invocation_short_name, opt, min, max, arg);
        return -1;
    }
    *out = v;
    return 0;
}
