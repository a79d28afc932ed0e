/*
 * tu_port_app.c - what an application supplies to the allocators' app port
 * (allocators/port/port_app.h), as a bare-metal firmware would: the lock is
 * a critical section (interrupts off, nesting counted), waiting is not
 * offered.  The depth is checked by tu_port_app_balanced(), so the tests
 * see that every lock taken was given back.
 */
#include "mm_port.h"
#if defined(__AVR__)
#include <avr/io.h>
#endif
#include "tu_port_app.h"

#include <string.h>

static volatile unsigned g_depth;
static volatile unsigned long g_locks;
static unsigned long g_saved; /* interrupt state before the outermost lock */

/* Interrupts off; returns whether they were on. */
static unsigned long irq_save(void)
{
    unsigned long was;
#if defined(__arm__)
    __asm__ __volatile__("mrs %0, primask\n\tcpsid i" : "=r"(was)::"memory");
    was = (was & 1u) == 0;
#elif defined(__riscv)
    /* MIE; the CSR instructions are the Zicsr extension to the assembler */
    __asm__ __volatile__(".option push\n\t.option arch, +zicsr\n\t"
                         "csrrci %0, mstatus, 8\n\t.option pop"
                         : "=r"(was)::"memory");
    was = (was & 8u) != 0;
#elif defined(__AVR__)
    was = (SREG & 0x80u) != 0;
    __asm__ __volatile__("cli" ::: "memory");
#else
#error "tu_port_app.c: no critical section for this target"
#endif
    return was;
}

static void irq_restore(unsigned long was)
{
    if (!was)
        return;
#if defined(__arm__)
    __asm__ __volatile__("cpsie i" ::: "memory");
#elif defined(__riscv)
    __asm__ __volatile__(".option push\n\t.option arch, +zicsr\n\t"
                         "csrsi mstatus, 8\n\t.option pop" ::
                             : "memory");
#elif defined(__AVR__)
    __asm__ __volatile__("sei" ::: "memory");
#endif
}

void mm_app_lock(mm_port_lock_t *lock)
{
    (void)lock;
    unsigned long was = irq_save();
    if (g_depth++ == 0)
        g_saved = was;
    g_locks++;
}

void mm_app_unlock(mm_port_lock_t *lock)
{
    (void)lock;
    if (g_depth > 0 && --g_depth == 0)
        irq_restore(g_saved);
}

int mm_app_wait(uint32_t *word, uint32_t expected, int32_t timeout_ms)
{
    (void)timeout_ms;
    return *word == expected ? -MM_EAGAIN : 0;
}

void mm_app_wake(uint32_t *word, uint32_t count)
{
    (void)word;
    (void)count;
}

bool tu_port_app_balanced(void)
{
    return g_depth == 0;
}

unsigned long tu_port_app_locks(void)
{
    return g_locks;
}

/* 64-bit atomics, which Cortex-M3/M4 and RV32 lack in hardware: the
 * compiler calls these, and the application supplies them (mm_port_sync.h),
 * here as a critical section like the lock. */
#if !defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_8)
uint64_t __atomic_load_8(const volatile void *p, int order);
void __atomic_store_8(volatile void *p, uint64_t v, int order);
bool __atomic_compare_exchange_8(volatile void *p, void *expected, uint64_t desired, bool weak,
                                 int success, int failure);

uint64_t __atomic_load_8(const volatile void *p, int order)
{
    (void)order;
    unsigned long was = irq_save();
    uint64_t v = *(const volatile uint64_t *)p;
    irq_restore(was);
    return v;
}

void __atomic_store_8(volatile void *p, uint64_t v, int order)
{
    (void)order;
    unsigned long was = irq_save();
    *(volatile uint64_t *)p = v;
    irq_restore(was);
}

bool __atomic_compare_exchange_8(volatile void *p, void *expected, uint64_t desired, bool weak,
                                 int success, int failure)
{
    (void)weak, (void)success, (void)failure;
    unsigned long was = irq_save();
    uint64_t cur = *(volatile uint64_t *)p, exp;
    memcpy(&exp, expected, sizeof(exp));
    bool ok = cur == exp;
    if (ok)
        *(volatile uint64_t *)p = desired;
    else
        memcpy(expected, &cur, sizeof(cur));
    irq_restore(was);
    return ok;
}
#endif
