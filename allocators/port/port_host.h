/*
 * port_host.h - lock type of the Linux host port (see mm_port.h).
 *
 * The lock is a pthread mutex set process-shared and robust, so that the
 * kernel marks it when a process dies holding it and the next locker learns
 * so.  It lives inside the shared memory it protects.
 */
#ifndef MM_PORT_HOST_H
#define MM_PORT_HOST_H

#include <pthread.h>

typedef pthread_mutex_t mm_port_lock_t;

#endif /* MM_PORT_HOST_H */
