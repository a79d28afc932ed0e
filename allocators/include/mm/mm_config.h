/*
 * mm_config.h - build-time configuration of the allocators.
 *
 * Every knob has a default here; a port or a build system overrides it with
 * -D or by defining it before this header is included.  The same sources are
 * built for a Linux host (shared memory between processes) and for
 * microcontrollers (one block of RAM, maybe no threads), so everything that
 * differs between those worlds is decided here or in the port layer.
 */
#ifndef MM_CONFIG_H
#define MM_CONFIG_H

#include <stdint.h>

/* The port layer (port/mm_port.h): Linux host, a lock the application
 * supplies, or a single thread.  Defined here so that the switches below can
 * depend on it. */
#define MM_PORT_HOST 1
#define MM_PORT_APP  2
#define MM_PORT_NONE 3

#ifndef MM_CONFIG_PORT
#if defined(__linux__)
#define MM_CONFIG_PORT MM_PORT_HOST
#else
#define MM_CONFIG_PORT MM_PORT_NONE
#endif
#endif

/* Several processes share the allocators' memory: heap handles per process
 * (mm_attach, mm_detach), repair of the free lists after a lock owner died
 * or after they were found corrupted, validation of every offset read from
 * the memory, owner ids and reclaim, and in IOB pools the lock-free free
 * list, per-buffer ownership, census and reclaim, and channel sleepers.
 * A microcontroller (ports app and none: one address space, no processes)
 * builds without all that: its heap handle is the heap itself, and a
 * corrupted free list marks the heap broken instead of being rebuilt. */
#ifndef MM_CONFIG_MULTIPROCESS
#if MM_CONFIG_PORT == MM_PORT_HOST
#define MM_CONFIG_MULTIPROCESS 1
#else
#define MM_CONFIG_MULTIPROCESS 0
#endif
#endif
#if MM_CONFIG_PORT == MM_PORT_HOST && !MM_CONFIG_MULTIPROCESS
/* untested, and the per-thread cache relies on handles being released */
#error "the host port is built with MM_CONFIG_MULTIPROCESS 1"
#endif

/* Memory model.  The small model keeps 16-bit sizes and offsets: heaps up to
 * 64 KiB, 4 bytes of overhead and 4-byte alignment per allocation.  The large
 * model keeps 32-bit ones: heaps up to 4 GiB, 8 bytes and 8-byte alignment.
 * As in NuttX, a target with 16-bit addresses gets the small model. */
#ifndef MM_CONFIG_SMALL
#if UINTPTR_MAX <= 0xffffu
#define MM_CONFIG_SMALL 1
#else
#define MM_CONFIG_SMALL 0
#endif
#endif

/* Size classes per power of two, as a log2 (TLSF's second level).  More
 * classes fit a request more closely; each costs a free-list head (4 bytes,
 * 2 in the small model) per power of two in every heap's header.  The host
 * keeps 32 (16 in the small model): its heaps are large and shared.
 * Microcontrollers, short of RAM, keep 8: a large-model heap's header takes
 * about 1 KiB instead of 3.4.  Changes the heap's layout (mm_attach
 * refuses a heap made with another value). */
#ifndef MM_CONFIG_SL_LOG2
#if MM_CONFIG_MULTIPROCESS
#define MM_CONFIG_SL_LOG2 (MM_CONFIG_SMALL ? 4 : 5)
#else
#define MM_CONFIG_SL_LOG2 3
#endif
#endif

/* Debug records per allocation (owner, sequence, file:line), free fill and
 * guard checks.  Changes the shared-memory layout: a debug heap and a release
 * heap refuse each other in mm_attach. */
#ifndef MM_CONFIG_DEBUG
#define MM_CONFIG_DEBUG 0
#endif

/* Test-only hook points inside critical sections (see mm_set_crash_hook). */
#ifndef MM_CONFIG_CRASH_HOOKS
#define MM_CONFIG_CRASH_HOOKS 0
#endif

/* How many regions one heap may have (mm_initialize's plus mm_addregion's). */
#ifndef MM_CONFIG_REGIONS
#define MM_CONFIG_REGIONS 4
#endif

/* How many heap handles one process may hold at once.  A handle is the
 * process-local view of a heap: its base address and the size of the
 * mapping, which shared memory cannot be trusted to tell. */
#ifndef MM_CONFIG_MAX_HEAPS
/* Microcontrollers (no Linux), 64-bit ones too, take their handles at
 * start-up; a Linux host, 32-bit ones too, may attach many regions. */
#if !defined(__linux__)
#define MM_CONFIG_MAX_HEAPS 4
#else
#define MM_CONFIG_MAX_HEAPS 1024
#endif
#endif

/* Byte written over freed memory in debug builds, and the guard pattern. */
#ifndef MM_CONFIG_FREE_FILL
#define MM_CONFIG_FREE_FILL 0x55u
#endif
#ifndef MM_CONFIG_GUARD_FILL
#define MM_CONFIG_GUARD_FILL 0xfdu
#endif

#endif /* MM_CONFIG_H */
