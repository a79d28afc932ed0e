/*
 * port_host_liveness.h - whether a lock's holder still lives (host port):
 * the calling process's pid namespace, and a look at a thread of this or
 * another namespace.  Used by port_host_lock.c only.
 */
#ifndef MM_PORT_HOST_LIVENESS_H
#define MM_PORT_HOST_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>

/* The calling process's pid namespace as a tag (the low 32 bits of its
 * nsfs inode; 1 without /proc).  Never 0.  mm_port_pidns_forget after
 * fork(): the child may be in a new namespace. */
uint32_t mm_port_pidns(void);
void mm_port_pidns_forget(void);

/* Whether the thread tid of the pid namespace ns is gone: no such task, or
 * one that is dead and waits to be reaped.  false when this process cannot
 * tell (then the holder is taken to live). */
bool mm_port_thread_dead(uint32_t tid, uint32_t ns);

#endif /* MM_PORT_HOST_LIVENESS_H */
