/*
 * itest.h - what the integration tests share on top of the daemon harness
 * (tests/lib/daemon_harness.h): raw Varlink calls read as JSON, a check that
 * the daemon still serves, forked client processes with pipes, and checks
 * that report from a child process (CUnit's asserts count only in the
 * process that runs the suite).
 */
#ifndef MMSRV_ITEST_H
#define MMSRV_ITEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon_harness.h"

/* Bounds of every wait, in milliseconds. */
#define IT_CALL_MS 5000
#define IT_WAIT_MS 10000

/* ---- Raw Varlink ----------------------------------------------------- */

/* Parse a message (NULL gives NULL). */
json_t *it_parse(const char *msg);

/*
 * Send call and read the reply as JSON; NULL on timeout or close.  The reply
 * text is printed on stderr when verbose is set ($MMSRV_TEST_VERBOSE).
 */
json_t *it_call(int fd, const char *call);

/* The reply's error name, or NULL for a result (or no reply). */
const char *it_error(const json_t *reply);
/* Member key of the reply's parameters (NULL if absent). */
json_t *it_param(const json_t *reply, const char *key);
/* A string member of the reply's parameters, or "" */
const char *it_param_str(const json_t *reply, const char *key);

/*
 * Whether reply is the error name, and (param_key not NULL) its parameter
 * param_key is the string param_value.  Prints what came instead.
 */
bool it_is_error(const json_t *reply, const char *name, const char *param_key,
                 const char *param_value);

/* Whether reply is a result (no error).  Prints what came instead. */
bool it_is_result(const json_t *reply);

/*
 * Whether the daemon still serves: a new connection gets answers to
 * GetInfo and ListRegions.
 */
bool it_served(const struct td_daemon *d);

/* The RegionStats reply for name over a raw connection, or NULL. */
json_t *it_region_stats(const struct td_daemon *d, const char *name);

/* An integer member at a JSON path of dot-separated keys ("pool.free"),
 * or def when missing. */
long long it_int_at(const json_t *obj, const char *path, long long def);

/* ---- Child processes ------------------------------------------------- */

struct it_child {
    pid_t pid;
    int to;   /* parent writes, child reads (the child's `from`) */
    int from; /* parent reads, child writes */
};

/* Fork a child that runs fn(arg, rd, wr) and exits with its return value.
 * rd and wr are the child's ends of two pipes; the parent's are in c. */
int it_spawn(struct it_child *c, int (*fn)(void *arg, int rd, int wr), void *arg);
/* Close the parent's pipe ends and wait at most timeout_ms; the wait
 * status or -1 (then the child was killed). */
int it_finish(struct it_child *c, int timeout_ms);

/* Fork a client that attaches region name of d (writable, over a raw
 * connection) and SIGKILL it while attached, as a crashing client dies.
 * Its pid once it is dead and reaped, or -1 (the test has then failed). */
pid_t it_kill_attached(const struct td_daemon *d, const char *name);

/* One 64-bit word over a pipe; 0 or -1 (timeout, closed). */
int it_put(int fd, uint64_t v);
int it_get(int fd, uint64_t *v, int timeout_ms);

/* A page of anonymous shared memory for children to report through. */
void *it_shared(size_t size);

/* Descriptors this process has open (counted with fcntl, which works
 * whatever /proc says after a change of user). */
int it_count_own_fds(void);

/* In a child: a failed check prints where and why and counts. */
extern int it_child_failures;
#define IT_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            it_child_failures++;                                                                   \
            fprintf(stderr, "[child %d] %s:%d: check failed: %s\n", (int)getpid(), __FILE__,       \
                    __LINE__, #cond);                                                              \
        }                                                                                          \
    } while (0)
#define IT_CHECK_EQ(a, b)                                                                          \
    do {                                                                                           \
        long long it_a_ = (long long)(a), it_b_ = (long long)(b);                                  \
        if (it_a_ != it_b_) {                                                                      \
            it_child_failures++;                                                                   \
            fprintf(stderr, "[child %d] %s:%d: %s == %s failed: %lld != %lld\n", (int)getpid(),    \
                    __FILE__, __LINE__, #a, #b, it_a_, it_b_);                                     \
        }                                                                                          \
    } while (0)

/* ---- The daemon ------------------------------------------------------ */

/* Start a daemon for one test (config NULL: it_default_config); on failure
 * the test fails and stops. */
int it_start(struct td_daemon *d, const char *config);
#define IT_START(d, config) CU_ASSERT_EQUAL_FATAL(it_start((d), (config)), 0)
/* The same, socket-activated (td_start_activated). */
int it_start_activated(struct td_daemon *d, const char *config);

/* Stop it: it must exit cleanly (status 0) on SIGTERM.  Prints its log if
 * any check failed since it_start.  Then td_cleanup. */
void it_stop(struct td_daemon *d);

/* The daemon's descriptor count once it has settled (the same for 200 ms,
 * waiting at most 3 s): the baseline of a leak check. */
int it_settled_fds(pid_t pid);

/* Whether the daemon's log has a line containing text; it_wait_log waits
 * at most timeout_ms for one. */
bool it_log_has(const struct td_daemon *d, const char *text);
bool it_wait_log(const struct td_daemon *d, const char *text, int timeout_ms);

/* The configuration most tests use: a 64 MiB segment. */
extern const char it_default_config[];

#endif /* MMSRV_ITEST_H */
