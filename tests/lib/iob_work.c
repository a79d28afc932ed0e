/*
 * iob_work.c - shared helpers of the IOB tests (see iob_work.h).
 */
#define _GNU_SOURCE
#include "iob_work.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef TU_TARGET
#include <unistd.h>
#endif

bool iw_pool_make(struct iw_pool *p, uint32_t bufsize, uint32_t count, uint32_t throttle)
{
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    size_t need = iob_pool_size((size_t)bufsize, count);
    if (need == 0)
        return false;
#ifdef TU_TARGET
    /* Microcontrollers (tests/target): one program, plain memory. */
    p->size = need;
    p->mem = tu_mem_alloc(p->size);
    if (p->mem == NULL)
        return false;
#else
    p->size = (need + 4095u) & ~(size_t)4095u;
    p->fd = tu_shm_create(p->size);
    if (p->fd < 0)
        return false;
    p->mem = tu_shm_map(p->fd, p->size);
    if (p->mem == NULL) {
        close(p->fd);
        p->fd = -1;
        return false;
    }
#endif
    p->h = iob_pool_initialize(p->mem, p->size, (size_t)bufsize, count, throttle);
    return p->h != NULL;
}

void iw_pool_destroy(struct iw_pool *p)
{
    if (p->h != NULL)
        iob_pool_detach(p->h);
#ifdef TU_TARGET
    tu_mem_free(p->mem, p->size);
#else
    tu_shm_unmap(p->mem, p->size);
    if (p->fd >= 0)
        close(p->fd);
#endif
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

/* ---- CRC-32C ---------------------------------------------------------------- */

static uint32_t g_crc_table[8][256];
static int g_crc_ready;

static void iw_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        g_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_crc_table[t][i] =
                (g_crc_table[t - 1][i] >> 8) ^ g_crc_table[0][g_crc_table[t - 1][i] & 0xffu];
    g_crc_ready = 1;
}

static uint32_t iw_crc_soft(uint32_t crc, const uint8_t *b, size_t n)
{
    if (!g_crc_ready)
        iw_crc_init();
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        w ^= crc;
        crc = g_crc_table[7][w & 0xffu] ^ g_crc_table[6][(w >> 8) & 0xffu] ^
              g_crc_table[5][(w >> 16) & 0xffu] ^ g_crc_table[4][(w >> 24) & 0xffu] ^
              g_crc_table[3][(w >> 32) & 0xffu] ^ g_crc_table[2][(w >> 40) & 0xffu] ^
              g_crc_table[1][(w >> 48) & 0xffu] ^ g_crc_table[0][w >> 56];
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = (crc >> 8) ^ g_crc_table[0][(crc ^ *b++) & 0xffu];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t iw_crc_hw(uint32_t crc, const uint8_t *b,
                                                            size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = __builtin_ia32_crc32di(c, w);
        b += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n-- > 0)
        c32 = __builtin_ia32_crc32qi(c32, *b++);
    return c32;
}
#endif

uint32_t iw_crc32c(uint32_t crc, const void *p, size_t n)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~iw_crc_hw(crc, p, n);
#endif
    return ~iw_crc_soft(crc, p, n);
}

void iw_fill_random(struct tu_rng *r, uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = tu_rng_next(r);
        memcpy(p + i, &w, 8);
    }
    if (i < n) {
        uint64_t w = tu_rng_next(r);
        memcpy(p + i, &w, n - i);
    }
}

/* ---- Chains ----------------------------------------------------------------- */

struct iob_s *iw_chain_from(struct iob_pool_s *h, const uint8_t *data, size_t len, bool block)
{
    struct iob_s *iob = block ? iob_alloc(h, false) : iob_tryalloc(h, false);
    if (iob == NULL)
        return NULL;
    if (len == 0)
        return iob;
    int r = block ? iob_copyin(h, iob, data, (uint32_t)len, 0, false)
                  : iob_trycopyin(h, iob, data, (uint32_t)len, 0, false);
    if (r != (int)len) {
        iob_free_chain(h, iob);
        return NULL;
    }
    return iob;
}

bool iw_chain_is(struct iob_pool_s *h, const struct iob_s *iob, const uint8_t *data, size_t len)
{
    if (iob == NULL || iob_pktlen(h, iob) != len)
        return false;
    size_t sum = 0;
    uint32_t n = 0;
    for (const struct iob_s *b = iob; b != NULL; b = iob_next(h, b)) {
        sum += (size_t)iob_len(h, b);
        if (++n > iob_pool_count(h))
            return false;
    }
    if (sum != len)
        return false;
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL)
        return false;
    int r = iob_copyout(h, buf, iob, (uint32_t)len + 1u, 0);
    bool ok = r == (int)len && memcmp(buf, data, len) == 0;
    free(buf);
    return ok;
}

uint32_t iw_chain_buffers(struct iob_pool_s *h, const struct iob_s *iob)
{
    uint32_t n = 0;
    for (const struct iob_s *b = iob; b != NULL && n <= iob_pool_count(h); b = iob_next(h, b))
        n++;
    return n;
}

/* ---- Census ------------------------------------------------------------------ */

bool iw_census_ok(struct iob_pool_s *h, struct iob_census_s *c, char *msg)
{
    struct iob_census_s cs;
    int problems = iob_pool_check(h, &cs);
    if (c != NULL)
        *c = cs;
    bool ok = problems == 0 && cs.free + cs.owned + cs.queued == cs.count;
    if (!ok && msg != NULL)
        snprintf(msg, 256,
                 "check=%d count=%" PRIu32 " free=%" PRIu32 " freeing=%" PRIu32 " owned=%" PRIu32
                 " queued=%" PRIu32 " orphans=%" PRIu32 " dups=%" PRIu32 " qfree=%" PRIu32
                 " qowned=%" PRIu32 " problems=%" PRIu32,
                 problems, cs.count, cs.free, cs.freeing, cs.owned, cs.queued, cs.orphans,
                 cs.duplicates, cs.qentries_free, cs.qentries_owned, cs.problems);
    return ok;
}

bool iw_all_free(struct iob_pool_s *h, char *msg)
{
    struct iob_census_s cs;
    char local[256];
    char *m = msg != NULL ? msg : local;
    if (!iw_census_ok(h, &cs, m))
        return false;
    if (cs.free != cs.count || cs.qentries_free != cs.count) {
        snprintf(m, 256,
                 "not all free: count=%" PRIu32 " free=%" PRIu32 " owned=%" PRIu32
                 " queued=%" PRIu32 " qfree=%" PRIu32 " qowned=%" PRIu32,
                 cs.count, cs.free, cs.owned, cs.queued, cs.qentries_free, cs.qentries_owned);
        return false;
    }
    return true;
}

/* ---- Self-checking messages ----------------------------------------------- */

#define IW_MAGIC 0x4d534731u /* "MSG1" */

struct iw_hdr {
    uint32_t magic, seq, len, crc;
};

struct iob_s *iw_msg_make(struct iob_pool_s *h, struct tu_rng *r, uint32_t seq, uint32_t len,
                          bool direct, bool block)
{
    if (len < IW_MSG_MIN)
        return NULL;
    struct iob_s *head = block ? iob_alloc(h, false) : iob_tryalloc(h, false);
    if (head == NULL)
        return NULL;
    struct iw_hdr hd = {IW_MAGIC, seq, len, 0};
    if (direct) {
        if (iob_update_pktlen(h, head, len, false) != (int)len) {
            iob_free_chain(h, head);
            return NULL;
        }
        /* Random bytes after the header, straight into the buffers. */
        uint32_t crc = 0, skip = sizeof(hd);
        for (struct iob_s *b = head; b != NULL; b = iob_next(h, b)) {
            uint8_t *p = iob_data(h, b);
            uint32_t n = iob_len(h, b), k = skip < n ? skip : n;
            skip -= k;
            iw_fill_random(r, p + k, (size_t)(n - k));
            crc = iw_crc32c(crc, p + k, (size_t)(n - k));
        }
        hd.crc = crc;
        memcpy(iob_data(h, head), &hd, sizeof(hd)); /* bufsize >= 16: contiguous */
    } else {
        uint8_t tmp[4096]; /* on the stack: threads build messages at once */
        uint32_t done = sizeof(hd);
        uint32_t crc = 0;
        if (iob_copyin(h, head, (const uint8_t *)&hd, sizeof(hd), 0, false) != (int)sizeof(hd))
            goto fail;
        while (done < len) {
            uint32_t n = len - done < sizeof(tmp) ? len - done : (uint32_t)sizeof(tmp);
            iw_fill_random(r, tmp, (size_t)n);
            crc = iw_crc32c(crc, tmp, (size_t)n);
            int rc = block ? iob_copyin(h, head, tmp, n, done, false)
                           : iob_trycopyin(h, head, tmp, n, done, false);
            if (rc != (int)n)
                goto fail;
            done += n;
        }
        hd.crc = crc;
        if (iob_copyin(h, head, (const uint8_t *)&hd, sizeof(hd), 0, false) != (int)sizeof(hd))
            goto fail;
    }
    return head;
fail:
    iob_free_chain(h, head);
    return NULL;
}

int iw_msg_check(struct iob_pool_s *h, const struct iob_s *iob, uint32_t *seq)
{
    struct iw_hdr hd;
    if (iob == NULL)
        return -1;
    if (iob_copyout(h, (uint8_t *)&hd, iob, sizeof(hd), 0) != (int)sizeof(hd))
        return -2;
    if (hd.magic != IW_MAGIC)
        return -3;
    if (iob_pktlen(h, iob) != hd.len)
        return -4;
    uint32_t crc = 0, skip = sizeof(hd), total = 0, nbuf = 0;
    for (const struct iob_s *b = iob; b != NULL; b = iob_next(h, b)) {
        const uint8_t *p = iob_data(h, b);
        uint32_t n = iob_len(h, b), k = skip < n ? skip : n;
        skip -= k;
        crc = iw_crc32c(crc, p + k, (size_t)(n - k));
        total += n;
        if (++nbuf > iob_pool_count(h))
            return -5;
    }
    if (total != hd.len)
        return -6;
    if (crc != hd.crc)
        return -7;
    if (seq != NULL)
        *seq = hd.seq;
    return 0;
}

/* ---- A random workload with a model ------------------------------------ */

/* pattern(key)[off, off + len) into the scratch buffer. */
static const uint8_t *iw_slice(struct iw_churn *w, uint64_t key, uint32_t off, uint32_t len)
{
    tu_pattern_fill(w->scratch, (size_t)off + (size_t)len, key);
    return w->scratch + off;
}

static int iw_check_chain(struct iw_churn *w, const struct iw_chain *c)
{
    if (c->off + c->len > w->maxlen)
        return -10;
    uint8_t *out = w->scratch + w->maxlen;
    if (iob_pktlen(w->h, c->iob) != c->len)
        return -11;
    if (iob_copyout(w->h, out, c->iob, c->len, 0) != (int)c->len)
        return -12;
    tu_pattern_fill(w->scratch, (size_t)c->off + (size_t)c->len, c->key);
    return memcmp(out, w->scratch + c->off, (size_t)c->len) == 0 ? 0 : -13;
}

bool iw_churn_init(struct iw_churn *w, struct iob_pool_s *h, uint64_t seed, uint32_t maxlen)
{
    memset(w, 0, sizeof(*w));
    w->h = h;
    tu_rng_init(&w->rng, seed);
    w->maxlen = maxlen;
    w->scratch = malloc(2u * (size_t)maxlen + 64u);
    w->next_key = seed * 0x9e3779b97f4a7c15ull + 1u;
    w->chan_tx = -1;
    w->chan_rx = -1;
    return w->scratch != NULL;
}

static int iw_free_slot(struct iw_churn *w, struct iw_chain *c)
{
    int r = iw_check_chain(w, c);
    iob_free_chain(w->h, c->iob);
    memset(c, 0, sizeof(*c));
    return r;
}

int iw_churn_step(struct iw_churn *w)
{
    struct iob_pool_s *h = w->h;
    struct iw_chain *c = &w->c[tu_rng_range(&w->rng, 0, IW_CHAINS - 1)];
    unsigned op = (unsigned)tu_rng_range(&w->rng, 0, 11);
    int r = 0;
    w->ops++;
    if (c->queued)
        op = 9; /* only the queue may hand it back */
    if (c->iob == NULL && op < 9) {
        bool thr = tu_rng_range(&w->rng, 0, 3) == 0;
        c->iob = w->block && tu_rng_range(&w->rng, 0, 1) ? iob_timedalloc(h, thr, 5)
                                                         : iob_tryalloc(h, thr);
        if (c->iob == NULL)
            return 0;
        c->key = w->next_key++;
        c->off = 0;
        c->len = 0;
        op = 0;
    }
    switch (op) {
    case 0:
    case 1: { /* append */
        uint32_t n = (uint32_t)tu_rng_range(&w->rng, 1, w->maxlen / 4);
        if (c->off + c->len + n > w->maxlen) /* the pattern slice must fit the scratch */
            break;
        const uint8_t *src = iw_slice(w, c->key, c->off + c->len, n);
        int rc = iob_trycopyin(h, c->iob, src, n, c->len, tu_rng_range(&w->rng, 0, 1) != 0);
        if (rc == (int)n)
            c->len += n;
        else if (rc == -MM_ENOMEM)
            c->len = iob_pktlen(h, c->iob); /* a prefix went in */
        else
            return -20;
        break;
    }
    case 2: { /* trimhead */
        uint32_t t = (uint32_t)tu_rng_range(&w->rng, 0, c->len);
        c->iob = iob_trimhead(h, c->iob, t);
        if (c->iob == NULL)
            return -21;
        c->off += t;
        c->len -= t;
        break;
    }
    case 3: { /* trimtail */
        uint32_t t = (uint32_t)tu_rng_range(&w->rng, 0, c->len);
        c->iob = iob_trimtail(h, c->iob, t);
        c->len -= t;
        if (c->iob == NULL) {
            if (c->len != 0 || t == 0)
                return -22;
            memset(c, 0, sizeof(*c));
            return 0;
        }
        break;
    }
    case 4:
        c->iob = iob_pack(h, c->iob);
        if (c->iob == NULL) {
            if (c->len != 0)
                return -23;
            memset(c, 0, sizeof(*c));
            return 0;
        }
        break;
    case 5: {
        uint32_t n = (uint32_t)tu_rng_range(&w->rng, 0, iob_pool_bufsize(h));
        int rc = iob_contig(h, c->iob, n);
        if (rc != 0 && !(rc == -MM_ENOSPC && n > c->len))
            return -24;
        break;
    }
    case 6: { /* clone into a new key: the clone holds the same bytes */
        struct iw_chain *d = &w->c[tu_rng_range(&w->rng, 0, IW_CHAINS - 1)];
        if (d == c || d->iob != NULL)
            break;
        d->iob = iob_tryalloc(h, false);
        if (d->iob == NULL)
            break;
        int rc = iob_clone(h, c->iob, d->iob, false, false);
        if (rc != 0) {
            iob_free_chain(h, d->iob);
            memset(d, 0, sizeof(*d));
            if (rc != -MM_ENOMEM)
                return -25;
            break;
        }
        d->key = c->key;
        d->off = c->off;
        d->len = c->len;
        break;
    }
    case 7: /* check */
        r = iw_check_chain(w, c);
        break;
    case 8: { /* queue it */
        if (iob_tryadd_queue(h, c->iob, &w->q) != 0)
            return -26;
        c->queued = true;
        w->qorder[w->nq++] = (int)(c - w->c);
        break;
    }
    case 9: { /* unqueue the oldest, or free */
        if (w->nq > 0 && (c->queued || tu_rng_range(&w->rng, 0, 1))) {
            struct iw_chain *o = &w->c[w->qorder[0]];
            struct iob_s *got = iob_remove_queue(h, &w->q);
            if (got != o->iob)
                return -27;
            memmove(w->qorder, w->qorder + 1, (size_t)(w->nq - 1) * sizeof(w->qorder[0]));
            w->nq--;
            o->queued = false;
        } else if (c->iob != NULL && !c->queued) {
            r = iw_free_slot(w, c);
        }
        break;
    }
    case 10: { /* send a message */
        if (w->chan_tx < 0)
            break;
        uint32_t len = (uint32_t)tu_rng_range(&w->rng, IW_MSG_MIN, w->maxlen);
        struct iob_s *m =
            iw_msg_make(h, &w->rng, w->tx_seq, len, tu_rng_range(&w->rng, 0, 1) != 0, false);
        if (m == NULL)
            break;
        if (iob_send(h, w->chan_tx, m, 0) == 0) {
            w->tx_seq++;
            w->sent++;
        } else {
            iob_free_chain(h, m);
        }
        break;
    }
    default: { /* receive a message */
        struct iob_s *m;
        if (w->chan_rx < 0 || iob_receive(h, w->chan_rx, &m, 0) != 0)
            break;
        r = iw_msg_check(h, m, NULL);
        if (r < 0)
            r -= 100;
        iob_free_chain(h, m);
        w->received++;
        break;
    }
    }
    return r;
}

int iw_churn_release(struct iw_churn *w)
{
    int r = 0;
    while (w->nq > 0) {
        struct iw_chain *o = &w->c[w->qorder[0]];
        if (iob_remove_queue(w->h, &w->q) != o->iob && r == 0)
            r = -30;
        memmove(w->qorder, w->qorder + 1, (size_t)(w->nq - 1) * sizeof(w->qorder[0]));
        w->nq--;
        o->queued = false;
    }
    for (int i = 0; i < IW_CHAINS; i++) {
        if (w->c[i].iob != NULL) {
            int rc = iw_free_slot(w, &w->c[i]);
            if (rc < 0 && r == 0)
                r = rc;
        }
    }
    free(w->scratch);
    w->scratch = NULL;
    return r;
}
