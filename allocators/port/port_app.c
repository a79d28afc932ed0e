/*
 * port_app.c - the application-supplied port: forwards to the mm_app_*
 * functions that the firmware defines (see port_app.h).
 */
#include "mm_port.h"

int mm_port_lock_init(mm_port_lock_t *lock)
{
    lock->word = 0;
    return 0;
}

int mm_port_lock(mm_port_lock_t *lock)
{
    mm_app_lock(lock);
    return MM_PORT_LOCKED;
}

void mm_port_lock_mark_consistent(mm_port_lock_t *lock)
{
    (void)lock;
}

void mm_port_unlock(mm_port_lock_t *lock)
{
    mm_app_unlock(lock);
}

void mm_port_lock_destroy(mm_port_lock_t *lock)
{
    (void)lock;
}

uint32_t mm_port_owner_id(void)
{
    return 0;
}

int mm_port_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms)
{
    return mm_app_wait(word, expected, timeout_ms);
}

void mm_port_wake(uint32_t *word, uint32_t count)
{
    mm_app_wake(word, count);
}

/* No clock: a timed wait waits once, for the whole timeout. */
uint64_t mm_port_now_ms(void)
{
    return 0;
}

/* One program, one owner. */
uint32_t mm_port__self = 1;

uint32_t mm_port_self_slow(void)
{
    return 1;
}

/* 16-byte compare-and-swap for the IOB free lists: under one lock of the
 * application's (a critical section on a microcontroller). */
static mm_port_lock_t g_cas_lock;

bool mm_port_cas128(uint64_t *p, uint64_t *expected, uint64_t d0, uint64_t d1)
{
    mm_app_lock(&g_cas_lock);
    bool ok = p[0] == expected[0] && p[1] == expected[1];
    if (ok) {
        p[0] = d0;
        p[1] = d1;
    } else {
        expected[0] = p[0];
        expected[1] = p[1];
    }
    mm_app_unlock(&g_cas_lock);
    return ok;
}
