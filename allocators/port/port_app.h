/*
 * port_app.h - port whose lock the application supplies (see mm_port.h).
 *
 * A microcontroller application defines these functions: a critical section
 * (interrupts off) or an RTOS mutex, keyed by the lock word if it wants one
 * mutex per heap.  mm_app_wait/mm_app_wake may simply return -MM_EAGAIN and
 * do nothing when the application never waits for buffers.
 */
#ifndef MM_PORT_APP_H
#define MM_PORT_APP_H

#include <stdint.h>

typedef struct {
    uint32_t word; /* free for the application's use */
} mm_port_lock_t;

void mm_app_lock(mm_port_lock_t *lock);
void mm_app_unlock(mm_port_lock_t *lock);
int mm_app_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms);
void mm_app_wake(uint32_t *word, uint32_t count);

/* Claim and release slot flags.  Handles are taken at start-up on a
 * microcontroller; callers that create heaps from several threads at once
 * serialize those calls themselves. */
static inline _Bool mm_port_claim(uint32_t *flag)
{
    if (*flag != 0)
        return 0;
    *flag = 1;
    return 1;
}
static inline void mm_port_release(uint32_t *flag)
{
    *flag = 0;
}

#endif /* MM_PORT_APP_H */
