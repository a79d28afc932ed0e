/*
 * daemon_harness.h - a real mmsrvd for integration tests.
 *
 * td_start() runs the daemon binary the build names ($MMSRVD) in a fresh
 * temporary directory with its own socket and configuration, and returns
 * once the daemon told its stand-in systemd it is ready (READY=1 on the
 * notify socket), so no test sleeps and hopes.  The stand-in also keeps what
 * the daemon puts in the descriptor store (FDSTORE=1 with FDNAME=...), and
 * td_restart() hands those descriptors to the next daemon exactly as systemd
 * does: as LISTEN_FDS with LISTEN_FDNAMES, numbered from 3.
 *
 * The helpers for raw Varlink (td_connect, td_call, td_recv) speak bytes, so
 * that tests can send what no well-behaved client would.
 */
#ifndef MMSRV_DAEMON_HARNESS_H
#define MMSRV_DAEMON_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TD_MAX_STORED 64

struct td_stored_fd {
    char name[256];
    int fd;
};

struct td_daemon {
    pid_t pid;
    char dir[32];            /* temporary directory, removed by td_cleanup */
    char socket[100];        /* the daemon's Varlink socket */
    char address[112];       /* "unix:" + socket, for libmmsrv */
    char config[96];         /* the configuration file */
    char log[96];            /* the daemon's stderr */
    int notify_fd;           /* the stand-in for systemd's notify socket */
    const char *const *args; /* extra arguments, kept for td_restart */
    char status[256];        /* the last STATUS= it sent */
    struct td_stored_fd stored[TD_MAX_STORED];
    size_t nstored;
    /* A thread reads the notify socket all the time, as systemd does;
     * lock guards what it writes (stored, status, ready). */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int wake[2];
    bool thread_running;
    bool ready;
};

/*
 * Start mmsrvd with config_json as its configuration file (NULL: a small
 * default segment) and extra_args (NULL-terminated, may be NULL) after
 * --config and --varlink.  Waits at most 10 s for READY=1.  0 on success;
 * -1 with the daemon's log printed on failure.
 */
int td_start(struct td_daemon *d, const char *config_json, const char *const *extra_args);

/*
 * td_start with socket activation: the harness binds and listens on the
 * socket itself and passes it with the stored descriptors (LISTEN_FDS, name
 * TD_SOCKET_NAME), as systemd does for mmsrvd.socket, and keeps it across
 * td_restart: clients that connect while the daemon is down wait in its
 * backlog for the next one.
 */
#define TD_SOCKET_NAME "mmsrvd.socket"
int td_start_activated(struct td_daemon *d, const char *config_json, const char *const *extra_args);

/* SIGTERM, then wait at most 10 s.  The daemon's wait status, or -1 on
 * timeout (it is then killed).  Stored descriptors are kept. */
int td_stop(struct td_daemon *d);

/* Stop and start again with the same directory, socket and configuration,
 * handing over the stored descriptors as systemd does.  0 or -1. */
int td_restart(struct td_daemon *d);

/* Start again after the daemon died (pid 0 or reaped): same directory,
 * socket and configuration, the stored descriptors handed over.  0 or -1. */
int td_respawn(struct td_daemon *d);

/* Stop if running, close stored descriptors, remove the directory. */
void td_cleanup(struct td_daemon *d);

/* Read what the daemon sent to its notify socket so far (stores and removes
 * descriptors, records STATUS=).  Returns how many messages were read. */
int td_drain_notify(struct td_daemon *d);

/* Print the daemon's log to stderr (for a failing test). */
void td_print_log(const struct td_daemon *d);

/* How many descriptors the process has open, or -1. */
int td_count_fds(pid_t pid);
/* Its resident memory in KiB, or -1. */
long td_rss_kib(pid_t pid);
/* A "kB" field of its /proc/PID/status (VmRSS, RssAnon...), or -1. */
long td_status_kib(pid_t pid, const char *field);

/* A raw connection to the daemon's socket, or -1. */
int td_connect(const struct td_daemon *d);

/* Send n bytes; 0 or -1. */
int td_send(int fd, const void *buf, size_t n);

/*
 * Receive one NUL-terminated message, waiting at most timeout_ms.  Returns a
 * malloc()ed string (free it) or NULL on timeout, error or a closed
 * connection (*closed tells which, if not NULL).
 */
char *td_recv(int fd, int timeout_ms, bool *closed);

/*
 * td_recv, keeping the descriptors that came with the message (SCM_RIGHTS):
 * up to max_fds of them in fds (close them), their number in *nfds; more, or
 * any other control data, are closed and reported on stderr.  td_recv closes
 * whatever descriptors arrive.  On NULL, *nfds may still be non-zero.
 */
#define TD_MAX_RECV_FDS 16
char *td_recv_fds(int fd, int timeout_ms, int *fds, size_t max_fds, size_t *nfds, bool *closed);

/* Send call (a JSON text; the NUL is added) and return the reply as td_recv
 * does. */
char *td_call(int fd, const char *call, int timeout_ms);
/* The same, keeping the descriptors of the reply as td_recv_fds does. */
char *td_call_fds(int fd, const char *call, int timeout_ms, int *fds, size_t max_fds, size_t *nfds);

/* Send n bytes with nfds (at most TD_MAX_RECV_FDS) descriptors attached to
 * the first byte as SCM_RIGHTS; 0 or -1. */
int td_send_fds(int fd, const void *buf, size_t n, const int *fds, size_t nfds);

/* Wait at most timeout_ms until pid has at most `most` descriptors open;
 * returns the last count (-1: no such process). */
int td_wait_fd_count(pid_t pid, int most, int timeout_ms);

/* Whether the peer closed fd, waiting at most timeout_ms for it. */
bool td_wait_closed(int fd, int timeout_ms);

#endif /* MMSRV_DAEMON_HARNESS_H */
