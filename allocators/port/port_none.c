/*
 * port_none.c - the single-threaded port: nothing to lock, nobody to wait for.
 */
#include "mm_port.h"

int mm_port_lock_init(mm_port_lock_t *lock)
{
    lock->unused = 0;
    return 0;
}

int mm_port_lock(mm_port_lock_t *lock)
{
    (void)lock;
    return MM_PORT_LOCKED;
}

void mm_port_lock_mark_consistent(mm_port_lock_t *lock)
{
    (void)lock;
}

void mm_port_unlock(mm_port_lock_t *lock)
{
    (void)lock;
}

void mm_port_lock_destroy(mm_port_lock_t *lock)
{
    (void)lock;
}

uint32_t mm_port_owner_id(void)
{
    return 0;
}

/* With one thread, nobody else can change the word while we sleep. */
int mm_port_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms)
{
    (void)timeout_ms;
    return *word == expected ? -MM_EAGAIN : 0;
}

void mm_port_wake(uint32_t *word, uint32_t count)
{
    (void)word;
    (void)count;
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
