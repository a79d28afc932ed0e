/*
 * framing.c: cut a byte stream into Varlink's NUL-terminated messages.
 *
 * The buffer holds [0, start) already returned, [start, start + scan) known
 * to hold no NUL, and [start + scan, len) not yet looked at, so each byte is
 * searched for a NUL once however the stream is split.  Returned messages
 * stay in place until the next proto_reader_space(), which moves the
 * unfinished tail to the front.  A message under way is refused as soon as
 * max + 1 bytes of it are held without a NUL: waiting for more would only
 * let a peer make us hold more.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation; the buffer doubles from there up to max + 1. */
#define READER_INITIAL 4096u

int proto_reader_init(struct proto_reader *r, size_t max_message)
{
    memset(r, 0, sizeof(*r));
    r->max = max_message != 0 ? max_message : PROTO_MAX_MESSAGE;
    if (r->max == SIZE_MAX)
        return -EINVAL;
    r->cap = r->max + 1 < READER_INITIAL ? r->max + 1 : READER_INITIAL;
    r->buf = malloc(r->cap);
    if (r->buf == NULL) {
        r->cap = 0;
        return -ENOMEM;
    }
    return 0;
}

void proto_reader_release(struct proto_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

/* Look for a NUL in the bytes not yet searched; remember how far we got. */
static const char *reader_find_nul(struct proto_reader *r)
{
    size_t from = r->start + r->scan;
    const char *nul = from < r->len ? memchr(r->buf + from, '\0', r->len - from) : NULL;
    if (nul == NULL)
        r->scan = r->len - r->start;
    else
        r->scan = (size_t)(nul - (r->buf + r->start));
    return nul;
}

int proto_reader_space(struct proto_reader *r, char **dst, size_t *room)
{
    if (r->start > 0) {
        size_t held = r->len - r->start;
        if (held > 0)
            memmove(r->buf, r->buf + r->start, held);
        r->len = held;
        r->start = 0;
    }
    if (r->len == r->cap) {
        /* Full.  Without a complete message in it, the message under way
         * may grow to max + 1 bytes (one past the limit, so that next()
         * can tell "too long" from "exactly at max").  With complete
         * messages still held (the owner read again before taking them),
         * grow freely: those bytes are bounded by what the owner reads. */
        const char *nul = reader_find_nul(r);
        size_t limit = r->max + 1;
        size_t ncap;
        if (nul == NULL && r->len >= limit)
            return -EMSGSIZE;
        ncap = r->cap <= SIZE_MAX / 2 ? r->cap * 2 : SIZE_MAX;
        if (nul == NULL && ncap > limit)
            ncap = limit;
        char *nbuf = realloc(r->buf, ncap);
        if (nbuf == NULL)
            return -ENOMEM;
        r->buf = nbuf;
        r->cap = ncap;
    }
    *dst = r->buf + r->len;
    *room = r->cap - r->len;
    return 0;
}

void proto_reader_commit(struct proto_reader *r, size_t n)
{
    r->len += n;
}

int proto_reader_next(struct proto_reader *r, const char **msg, size_t *len)
{
    const char *nul = reader_find_nul(r);
    if (nul == NULL)
        return r->scan > r->max ? -EMSGSIZE : 0;
    if (r->scan > r->max)
        return -EMSGSIZE;
    *msg = r->buf + r->start;
    *len = r->scan;
    r->start += r->scan + 1;
    r->scan = 0;
    return 1;
}

size_t proto_reader_held(const struct proto_reader *r)
{
    return r->len - r->start;
}

bool proto_reader_partial(const struct proto_reader *r)
{
    size_t from = r->start + r->scan;
    if (r->len == r->start)
        return false;
    /* Held bytes make an unfinished message only if none of them ends one
     * (the owner may not have taken every complete message yet). */
    return from == r->len || memchr(r->buf + from, '\0', r->len - from) == NULL;
}
