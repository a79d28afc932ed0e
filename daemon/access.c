/*
 * access.c: who may do what with a region, as SysV shared memory decides.
 *
 * A region has an owner uid, a group and a mode; the peer's credentials
 * come from the socket (SO_PEERCRED at accept, SO_PEERGROUPS for its
 * supplementary groups, both taken by the kernel when the peer connected),
 * never from a message.  The first class that matches decides: the owner's
 * bits if the uid is the region's, else the group's if the peer is in the
 * region's group, else the others'.  Attaching needs the read bit (a
 * mapping is always readable); attaching writable needs both.  Root and the
 * daemon's own user administer every region.
 *
 * A read-only grant must not become writable in the client's hands: the
 * descriptor it gets is the memfd opened again O_RDONLY, which the kernel
 * refuses to map PROT_WRITE with MAP_SHARED (or to mprotect so).  The memfd
 * itself is mode 0600 and owned by the daemon's user (region.c), so a peer
 * of another user cannot open /proc/self/fd/N again read-write.
 */
#define _GNU_SOURCE
#include "mmsrvd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

bool access_is_admin(const struct peer *p)
{
    return p->uid == 0 || p->uid == geteuid();
}

/* Whether the peer had gid among its groups when it connected. */
bool access_in_group(const struct peer *p, gid_t gid)
{
    gid_t small[64];
    gid_t *groups = small;
    socklen_t len = sizeof(small);
    bool found = false;

    if (p->gid == gid)
        return true;
    if (getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
        if (errno != ERANGE)
            return false;
        groups = malloc(len);
        if (groups == NULL || getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
            free(groups);
            return false;
        }
    }
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        found = found || groups[i] == gid;
    if (groups != small)
        free(groups);
    return found;
}

unsigned access_granted(const struct peer *p, const struct region *r)
{
    uint32_t bits;

    if (access_is_admin(p))
        return ACCESS_READ | ACCESS_WRITE;
    if (p->uid == r->uid)
        bits = (r->mode >> 6) & 7u;
    else if (access_in_group(p, r->gid))
        bits = (r->mode >> 3) & 7u;
    else
        bits = r->mode & 7u;
    if ((bits & 4u) == 0)
        return 0; /* write alone cannot be mapped */
    return ACCESS_READ | ((bits & 2u) != 0 ? ACCESS_WRITE : 0u);
}

int access_readonly_fd(const struct region *r)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}
