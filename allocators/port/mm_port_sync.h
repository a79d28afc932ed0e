/*
 * mm_port_sync.h - what lock-free code needs from the platform: atomic
 * loads, stores, compare-and-swap and add on words in shared memory, a pause
 * for spin loops, a monotonic clock for timeouts, and a cheap owner id.
 * Included by mm_port.h; the IOB pool is its user.
 *
 * Orders: loads acquire, stores release, read-modify-write operations
 * (including the 16-byte compare-and-swap, cmpxchg16b on x86-64) and the _sc
 * loads and stores are sequentially consistent (a waiter and a waker each write one
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
#include <string.h>

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
static inline uint32_t mm_port_fetch_or32(uint32_t *p, uint32_t v)
{
    uint32_t old = *p;
    *p = old | v;
    return old;
}
static inline uint32_t mm_port_fetch_and32(uint32_t *p, uint32_t v)
{
    uint32_t old = *p;
    *p = old & v;
    return old;
}
static inline bool mm_port_cas128(uint64_t *p, uint64_t *expected, uint64_t d0, uint64_t d1)
{
    if (p[0] != expected[0] || p[1] != expected[1]) {
        expected[0] = p[0];
        expected[1] = p[1];
        return false;
    }
    p[0] = d0;
    p[1] = d1;
    return true;
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
static inline uint32_t mm_port_fetch_or32(uint32_t *p, uint32_t v)
{
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t mm_port_fetch_and32(uint32_t *p, uint32_t v)
{
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
}
#if MM_CONFIG_PORT == MM_PORT_HOST && defined(__x86_64__)
/* ThreadSanitizer sees no ordering through inline assembly: under it the
 * compare-and-swap below tells it what the instruction does (release of
 * what came before, acquire of what the other threads released).  Its own
 * 16-byte atomics would not do: they take a lock inside one process, and
 * the free lists are shared between processes. */
#if defined(__SANITIZE_THREAD__)
#define MM__PORT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MM__PORT_TSAN 1
#endif
#endif
#ifdef MM__PORT_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif

/* Compare-and-swap of two adjacent 64-bit words (p 16-byte aligned):
 * {p[0], p[1]} == {expected[0], expected[1]} becomes {d0, d1}.  On failure
 * expected receives the current pair. */
static inline bool mm_port_cas128(uint64_t *p, uint64_t *expected, uint64_t d0, uint64_t d1)
{
    bool ok;
    uint64_t lo = expected[0], hi = expected[1];
#ifdef MM__PORT_TSAN
    __tsan_release(p);
#endif
    __asm__ __volatile__("lock cmpxchg16b %[m]"
                         : "=@ccz"(ok), [m] "+m"(*(volatile struct { uint64_t a, b; } *)(void *)p),
                           "+a"(lo), "+d"(hi)
                         : "b"(d0), "c"(d1)
                         : "memory");
#ifdef MM__PORT_TSAN
    __tsan_acquire(p);
#endif
    expected[0] = lo;
    expected[1] = hi;
    return ok;
}
#elif MM_CONFIG_PORT == MM_PORT_HOST && defined(__SIZEOF_INT128__)
/* Other 64-bit hosts: the compiler's 16-byte atomics (inline on aarch64
 * with LSE, else libatomic). */
static inline bool mm_port_cas128(uint64_t *p, uint64_t *expected, uint64_t d0, uint64_t d1)
{
    unsigned __int128 e, d;
    memcpy(&e, expected, sizeof(e));
    uint64_t dd[2] = {d0, d1};
    memcpy(&d, dd, sizeof(d));
    bool ok = __atomic_compare_exchange_n((unsigned __int128 *)(void *)p, &e, d, false,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    memcpy(expected, &e, sizeof(e));
    return ok;
}
#elif MM_CONFIG_PORT == MM_PORT_HOST
#error "the host port needs a 16-byte compare-and-swap"
#else
/* The app port: under the application's lock (port_app.c). */
bool mm_port_cas128(uint64_t *p, uint64_t *expected, uint64_t d0, uint64_t d1);
#endif
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
 * the pid (mm_port__self, 0 until first asked and in a child after fork())
 * and refreshes it in mm_port_self_slow.  Never 0 (ports without processes
 * answer 1). */
extern uint32_t mm_port__self;
uint32_t mm_port_self_slow(void);
static inline uint32_t mm_port_self(void)
{
#if MM_CONFIG_PORT == MM_PORT_NONE
    return 1u;
#else
    uint32_t id = __atomic_load_n(&mm_port__self, __ATOMIC_RELAXED);
    return __builtin_expect(id != 0, 1) ? id : mm_port_self_slow();
#endif
}

#endif /* MM_PORT_SYNC_H */
