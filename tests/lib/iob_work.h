/*
 * iob_work.h - what the IOB tests share: pools in shared memory, chains
 * filled from and checked against plain byte arrays, a CRC, and the census
 * checks that say a pool balances.
 *
 * Failures are returned, never asserted, so a forked child can report them
 * through its exit status.
 */
#ifndef MMSRV_IOB_WORK_H
#define MMSRV_IOB_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/iob.h"
#include "test_util.h"

/* A pool in a memfd mapping (MAP_SHARED, so forked children share it). */
struct iw_pool {
    int fd;
    uint8_t *mem;
    size_t size;
    struct iob_pool_s *h;
};

/* Make a pool of count buffers of bufsize bytes; false on failure. */
bool iw_pool_make(struct iw_pool *p, uint32_t bufsize, uint32_t count, uint32_t throttle);
void iw_pool_destroy(struct iw_pool *p);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start).  Uses
 * the SSE 4.2 instruction where the CPU has it. */
uint32_t iw_crc32c(uint32_t crc, const void *p, size_t n);

/* Fill n bytes with random data. */
void iw_fill_random(struct tu_rng *r, uint8_t *p, size_t n);

/* A new chain holding len bytes of data (copyin, throttled as asked); NULL
 * if the pool runs out (the partial chain is freed). */
struct iob_s *iw_chain_from(struct iob_pool_s *h, const uint8_t *data, size_t len, bool block);

/* Whether the chain holds exactly these len bytes: packet length, the sum
 * of the buffer lengths, and a copyout. */
bool iw_chain_is(struct iob_pool_s *h, const struct iob_s *iob, const uint8_t *data, size_t len);

/* Number of buffers in a chain. */
uint32_t iw_chain_buffers(struct iob_pool_s *h, const struct iob_s *iob);

/* Run iob_pool_check; true if there are no problems and free + owned +
 * queued == count.  *c receives the census; msg (if not NULL, 256 bytes)
 * says what is wrong. */
bool iw_census_ok(struct iob_pool_s *h, struct iob_census_s *c, char *msg);

/* Everything free: census ok, free == count, queue entries all free. */
bool iw_all_free(struct iob_pool_s *h, char *msg);

#endif /* MMSRV_IOB_WORK_H */

/* ---- Self-checking messages ----------------------------------------------- */

/* A message is a chain of len bytes (len >= IW_MSG_MIN): a header {magic,
 * seq, len, crc of the rest} and random bytes.  A receiver checks it
 * without knowing anything but the sequence number it expects (or not:
 * seq may be NULL). */
#define IW_MSG_MIN 16u

/* Build a message of len bytes, writing straight into the buffers (zero
 * copy) when direct, else through iob_copyin.  NULL when the pool runs out
 * (and block is false). */
struct iob_s *iw_msg_make(struct iob_pool_s *h, struct tu_rng *r, uint32_t seq, uint32_t len,
                          bool direct, bool block);

/* 0 if the chain is a sound message (and *seq receives its number), else a
 * negative number saying what is wrong. */
int iw_msg_check(struct iob_pool_s *h, const struct iob_s *iob, uint32_t *seq);

/* ---- A random workload with a model ------------------------------------ */

#define IW_CHAINS 8

struct iw_chain {
    struct iob_s *iob; /* NULL: slot unused */
    uint64_t key;      /* the chain holds pattern(key)[off, off + len) */
    uint32_t off, len;
    bool queued; /* in the private queue (iob is its head) */
};

/* One process's (or thread's) random chain operations on a pool: allocate,
 * copy in, trim, pack, contig, concatenate, clone, queue, free, and (when
 * channels are given) send and receive messages.  Every chain's bytes are
 * checked against the model before it is freed. */
struct iw_churn {
    struct iob_pool_s *h;
    struct tu_rng rng;
    struct iw_chain c[IW_CHAINS];
    struct iob_queue_s q;
    int qorder[IW_CHAINS]; /* slots in the queue, oldest first */
    int nq;
    uint8_t *scratch; /* 2 * maxlen */
    uint32_t maxlen;
    uint64_t next_key;
    int chan_tx, chan_rx; /* channel ids, -1 if none */
    uint32_t tx_seq;
    uint64_t ops, sent, received;
    bool block; /* allocations may wait */
};

bool iw_churn_init(struct iw_churn *w, struct iob_pool_s *h, uint64_t seed, uint32_t maxlen);
/* One random operation; 0, or a negative number when data went wrong. */
int iw_churn_step(struct iw_churn *w);
/* Free everything it holds; 0 or negative (data went wrong). */
int iw_churn_release(struct iw_churn *w);
