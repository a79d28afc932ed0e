/*
 * mm_port_sync.h - what lock-free code needs from the platform: atomic
 * loads, stores, compare-and-swap and add on words in shared memory, a pause
 * for spin loops, a monotonic clock for timeouts, and a cheap owner id.
 * Included by mm_port.h; the IOB pool is its user.
 *
 * Orders: loads acquire, stores release, read-modify-write operations and the
 * _sc store are sequentially consistent (a waiter and a waker each write one
 * word and then read the other's; only sequential consistency makes one of
 * them see the other).
 *
 * The host and app ports use the compiler's __atomic builtins.  On targets
 * without native 64-bit atomics (Cortex-M3/M4, AVR) the 64-bit ones become
 * calls to __atomic_*_8, which the application links (libatomic, or its own
 * version with interrupts off).  The none port has one thread: plain
 * accesses.
 */
#ifndef MM_PORT_SYNC_H
#define MM_PORT_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#if MM_CONFIG_PORT == MM_PORT_NONE

static inline uint32_t mm_port_load32(const uint32_t *p)
{
    return *(const volatile uint32_t *)p;
}
static inline uint64_t mm_port_load64(const uint64_t *p)
{
    return *(const volatile uint64_t *)p;
}
static inline void mm_port_store32(uint32_t *p, uint32_t v)
{
    *(volatile uint32_t *)p = v;
}
static inline void mm_port_store64(uint64_t *p, uint64_t v)
{
    *(volatile uint64_t *)p = v;
}
static inline void mm_port_store32_sc(uint32_t *p, uint32_t v)
{
    *(volatile uint32_t *)p = v;
}
static inline uint32_t mm_port_load32_sc(const uint32_t *p)
{
    return *(const volatile uint32_t *)p;
}
static inline uint64_t mm_port_load64_sc(const uint64_t *p)
{
    return *(const volatile uint64_t *)p;
}
static inline bool mm_port_cas32(uint32_t *p, uint32_t *expected, uint32_t desired)
{
    if (*p != *expected) {
        *expected = *p;
        return false;
    }
    *p = desired;
    return true;
}
static inline bool mm_port_cas64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    if (*p != *expected) {
        *expected = *p;
        return false;
    }
    *p = desired;
    return true;
}
static inline uint32_t mm_port_fetch_add32(uint32_t *p, uint32_t v)
{
    uint32_t old = *p;
    *p = old + v;
    return old;
}
static inline void mm_port_fence(void)
{
}
static inline void mm_port_relax(void)
{
}

#else /* host, app */

static inline uint32_t mm_port_load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline uint64_t mm_port_load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void mm_port_store32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void mm_port_store64(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void mm_port_store32_sc(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t mm_port_load32_sc(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static inline uint64_t mm_port_load64_sc(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
/* On failure *expected receives the current value. */
static inline bool mm_port_cas32(uint32_t *p, uint32_t *expected, uint32_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
static inline bool mm_port_cas64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
static inline uint32_t mm_port_fetch_add32(uint32_t *p, uint32_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline void mm_port_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
/* One step of a spin loop: tells the core we are waiting. */
static inline void mm_port_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif

/* Milliseconds on a monotonic clock; 0 where the port has none (then timed
 * waits are approximate: each sleep waits for the whole timeout). */
uint64_t mm_port_now_ms(void);

/* The caller's owner id, as mm_port_owner_id(), but cheap: the host caches
 * the pid and refreshes it in a child after fork().  Never 0 (ports without
 * processes answer 1). */
uint32_t mm_port_self(void);

#endif /* MM_PORT_SYNC_H */
