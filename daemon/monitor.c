/*
 * monitor.c: the stream of region events behind io.mmsrvd.Monitor.
 *
 * A connection that calls Monitor with "more" first gets one "created"
 * event per live region (so that a watcher starts from the whole picture,
 * and a test knows its watcher is in place once it sees a region it made
 * beforehand), then every event as it happens, each a reply with
 * "continues": true.  An event is encoded once and queued on each monitor;
 * a monitor whose queue passes its limit is closed rather than allowed to
 * grow the daemon.
 */
#include "mmsrvd.h"

#include <stdlib.h>
#include <string.h>

static size_t monitor_limit = 1024 * 1024;
static size_t monitors;

static const char *const event_names[] = {
    [MONITOR_CREATED] = "created",     [MONITOR_DESTROYED] = "destroyed",
    [MONITOR_ATTACHED] = "attached",   [MONITOR_DETACHED] = "detached",
    [MONITOR_RECLAIMED] = "reclaimed",
};

void monitor_set_limit(size_t bytes)
{
    monitor_limit = bytes;
}

static char *monitor_encode(enum monitor_event ev, const char *region, pid_t pid, size_t *len)
{
    json_t *event = json_pack("{s:s, s:s}", "kind", event_names[ev], "region", region);
    if (event != NULL && pid > 0)
        json_object_set_new(event, "pid", json_integer(pid));
    if (event == NULL)
        return NULL;
    return proto_encode_reply(json_pack("{s:o}", "event", event), true, len);
}

void monitor_start(struct conn *c)
{
    if (!c->monitor) {
        c->monitor = true;
        monitors++;
    }
    log_debug("monitor pid=%d", (int)c->peer.pid);
    for (struct region *r = region_first(); r != NULL; r = r->next) {
        if (r->destroying || (access_granted(&c->peer, r) & ACCESS_READ) == 0)
            continue;
        size_t len;
        char *msg = monitor_encode(MONITOR_CREATED, r->name, 0, &len);
        if (msg == NULL || conn_send_raw(c, msg, len, monitor_limit) != 0)
            return;
    }
}

void monitor_stopped(struct conn *c)
{
    if (c->monitor) {
        c->monitor = false;
        monitors--;
    }
}

void monitor_emit(enum monitor_event ev, const struct region *r, pid_t pid)
{
    if (monitors == 0)
        return;
    size_t len;
    char *msg = monitor_encode(ev, r->name, pid, &len);
    if (msg == NULL)
        return;
    struct conn *next;
    for (struct conn *c = server_first_conn(); c != NULL; c = next) {
        next = c->next;
        if (!c->monitor || c->closing || (access_granted(&c->peer, r) & ACCESS_READ) == 0)
            continue;
        char *copy = malloc(len);
        if (copy == NULL)
            break;
        memcpy(copy, msg, len);
        conn_send_raw(c, copy, len, monitor_limit);
    }
    free(msg);
}
