/*
 * heap_debug.c - debug records of MM_CONFIG_DEBUG builds.
 *
 * Each allocation carries, between its chunk header and the user's bytes,
 * who allocated it (the pid on the host), a heap-wide sequence number, the
 * size asked for and the caller's file and line; a guard pattern follows the
 * user's bytes.  Freeing checks the guard and fills the chunk with a
 * pattern, so that use after free shows.  The file name is copied (base
 * name, truncated), never pointed to: a pointer is meaningless to another
 * process.
 */
#include "heap_internal.h"

#if MM_CONFIG_DEBUG

static struct mm__debug_rec *mm__rec(const struct mm_heap_s *h, size_t off)
{
    return (struct mm__debug_rec *)(void *)(mm__base(h) + off + MM__HDR);
}

void mm__debug_on_alloc(struct mm_heap_s *h, size_t off, size_t reqsize, const char *file, int line)
{
    struct mm__debug_rec *rec = mm__rec(h, off);
    rec->owner = mm__owner();
    rec->seq = ++mm__hdr(h)->seq;
    rec->reqsize = (uint32_t)reqsize;
    rec->line = line;
    memset(rec->file, 0, sizeof(rec->file));
    if (file != NULL) {
        const char *base = file;
        for (const char *p = file; *p != '\0'; p++)
            if (*p == '/')
                base = p + 1;
        size_t n = strlen(base);
        memcpy(rec->file, base, n < sizeof(rec->file) - 1u ? n : sizeof(rec->file) - 1u);
    }
    memset(mm__base(h) + off + MM__USER_OFFSET + reqsize, MM_CONFIG_GUARD_FILL, MM__GUARD_SIZE);
}

/* The bytes of the chunk at off between its record and its guard, in *room;
 * false if it cannot hold a record and a guard at all.  No allocation's
 * chunk is that small, but any size may be scribbled: without this check
 * the subtraction wraps and the guard is looked for far past the chunk. */
static bool mm__room(const struct mm_heap_s *h, size_t off, size_t *room)
{
    size_t size = mm__size_of(mm__chunk(h, off));
    if (size < (size_t)MM__USER_OFFSET + MM__GUARD_SIZE)
        return false;
    *room = size - MM__USER_OFFSET - MM__GUARD_SIZE;
    return true;
}

size_t mm__usable_size(const struct mm_heap_s *h, size_t off)
{
    size_t room;
    if (!mm__room(h, off, &room))
        return 0;
    size_t req = mm__rec(h, off)->reqsize;
    return req <= room ? req : room;
}

bool mm__debug_guard_ok(const struct mm_heap_s *h, size_t off)
{
    size_t room;
    if (!mm__room(h, off, &room))
        return false;
    size_t req = mm__rec(h, off)->reqsize;
    if (req > room)
        return false;
    const uint8_t *g = mm__base(h) + off + MM__USER_OFFSET + req;
    for (unsigned i = 0; i < MM__GUARD_SIZE; i++)
        if (g[i] != MM_CONFIG_GUARD_FILL)
            return false;
    return true;
}

void mm__debug_reset(struct mm_heap_s *h, size_t off)
{
    size_t room;
    if (!mm__room(h, off, &room))
        return;
    struct mm__debug_rec *rec = mm__rec(h, off);
    memset(rec, 0, sizeof(*rec));
    rec->reqsize = (uint32_t)room;
    rec->file[0] = '?';
    memset(mm__base(h) + off + MM__USER_OFFSET + room, MM_CONFIG_GUARD_FILL, MM__GUARD_SIZE);
}

bool mm__debug_on_free(struct mm_heap_s *h, size_t off)
{
    bool ok = mm__debug_guard_ok(h, off);
    memset(mm__base(h) + off + MM__HDR, MM_CONFIG_FREE_FILL,
           (size_t)mm__size_of(mm__chunk(h, off)) - MM__HDR);
    return ok;
}

#endif /* MM_CONFIG_DEBUG */
