/*
 * mm.h - the mm heap: NuttX's variable-size allocator, with a heap handle
 * first, made to live in shared memory.
 *
 * Design in one paragraph.  A heap is a header followed by chunks.  Each
 * chunk starts with two size fields (the previous chunk's size and its own),
 * 8 bytes in the large model and 4 in the small one; that is the whole
 * per-allocation overhead.  Free chunks are kept in segregated lists (TLSF:
 * two levels of size classes with a bitmap per level), so malloc and free
 * take bounded time whatever the number of free chunks.  Every link is an
 * offset from the heap's start, so a heap works through any mapping of its
 * memory.  The lock lives in the header; on the host it is a robust
 * process-shared mutex, and the next locker after a dead owner rebuilds the
 * free lists from the chunk chain.
 *
 * Handles.  A struct mm_heap_s * is a process-local handle: the base address
 * of this process's mapping and the size of that mapping.  Shared memory is
 * untrusted, so every offset read from it is checked against the handle's
 * size, never against a size stored in the heap.  Handles come from a small
 * process-wide table (MM_CONFIG_MAX_HEAPS); mm_detach or mm_uninitialize
 * returns one.
 *
 * Thread and process safety.  Every call on a heap may run concurrently with
 * any other call on the same heap, from threads of this process or from other
 * processes that attached it.  Calls that take the lock say so.
 *
 * Errors.  Allocation calls return NULL; mm_last_error() tells why.  A heap
 * whose chunk chain is found broken stops working (every allocation returns
 * NULL with MM_ERR_BROKEN) and mm_checkcorruption() reports it.
 */
#ifndef MM_MM_H
#define MM_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allocation alignment and per-allocation overhead of the configured model. */
#if MM_CONFIG_SMALL
#define MM_ALIGN        4u
#define MM_OVERHEAD     4u
#define MM_MAX_HEAPSIZE 0x10000ul
#else
#define MM_ALIGN        8u
#define MM_OVERHEAD     8u
#define MM_MAX_HEAPSIZE 0x100000000ull
#endif

/* A heap's memory starts on this boundary: its header holds 64-bit fields
 * and, on the host, a lock that need it. */
#define MM_START_ALIGN 8u

struct mm_heap_s; /* process-local handle, opaque */

/* NuttX's mallinfo, with size_t fields (NuttX's int fields overflow at 2 GiB). */
struct mm_mallinfo_s {
    size_t arena;    /* bytes managed by the heap: all regions, headers included */
    size_t ordblks;  /* number of free chunks */
    size_t aordblks; /* number of allocated chunks */
    size_t mxordblk; /* largest free chunk, in bytes (chunk size, header included) */
    size_t uordblks; /* bytes in allocated chunks, headers included */
    size_t fordblks; /* bytes in free chunks */
};

/* Counters kept in the heap's header, shared by every process using it. */
struct mm_heap_stats {
    uint32_t mallocs;       /* successful allocations (malloc, calloc, realloc moves, memalign) */
    uint32_t frees;         /* successful frees */
    uint32_t failures;      /* allocations that returned NULL */
    uint32_t double_frees;  /* frees of a chunk that was already free */
    uint32_t foreign_frees; /* frees of a pointer that is not an allocation of this heap */
    uint32_t guard_errors;  /* debug builds: a guard after a block was overwritten */
    uint32_t recoveries;    /* times a locker found the lock's owner dead and rebuilt the lists */
    uint32_t repairs;       /* free lists rebuilt after corruption was found in them */
    uint32_t records_reset; /* debug builds: half-written records reset by a recovery */
};

/* Why the last failed call through a handle failed, and why a heap is broken. */
enum mm_error {
    MM_OK = 0,
    MM_ERR_NOMEM,  /* no free chunk large enough */
    MM_ERR_INVAL,  /* bad argument: size overflow, alignment not a power of two, bad pointer */
    MM_ERR_BROKEN, /* the chunk chain is broken; the heap refuses work */
    MM_ERR_LOCK, /* the lock could not be taken (its memory was overwritten, or not recoverable) */
    MM_ERR_HANDLES, /* no free handle in this process (MM_CONFIG_MAX_HEAPS) */
    MM_ERR_NOTHEAP, /* the memory does not hold a heap of this build's layout and that size */
    MM_ERR_BUSY,    /* the lock stayed held longer than this process waits (mm_set_lock_wait) */
};

/* ---- Creating, attaching, releasing ---------------------------------- */

/*
 * Make a heap in [heapstart, heapstart + heapsize).  The heap's state is put
 * at heapstart; the rest becomes the first region.  heapstart must be aligned
 * to MM_START_ALIGN and heapsize within the model's
 * limit (MM_MAX_HEAPSIZE) and large enough for the header and one chunk.
 * name (may be NULL) is copied, up to 31 bytes.
 * Returns a handle, or NULL: bad arguments (MM_ERR_INVAL), or no handle left
 * (MM_ERR_HANDLES); mm_last_error(NULL) says which.
 * Not thread-safe against other calls on the same memory.
 */
struct mm_heap_s *mm_initialize(const char *name, void *heapstart, size_t heapsize);

/*
 * Open a heap that mm_initialize made, through this mapping of its memory,
 * maybe in another process and at another address.  heapsize is the size of
 * this mapping; it must cover every region of the heap.  The header (magic,
 * layout version, model, debug layout, region table) is validated.
 * Returns a handle, or NULL if the memory holds no valid heap of that size
 * (MM_ERR_NOTHEAP) or no handle is left (MM_ERR_HANDLES); mm_last_error(NULL)
 * says which.  Takes no lock.
 */
#if MM_CONFIG_MULTIPROCESS
struct mm_heap_s *mm_attach(void *heapstart, size_t heapsize);
#endif

/* Release a handle from mm_initialize or mm_attach; the heap lives on.
 * Without MM_CONFIG_MULTIPROCESS (microcontrollers) the handle is the heap
 * itself and there is no mm_attach: this does nothing. */
void mm_detach(struct mm_heap_s *heap);

/*
 * Destroy the heap: its header is invalidated so that later mm_attach calls
 * fail, and the handle is released.  Other processes' handles fail from then
 * on.  The caller ensures nobody is inside a call on the heap.
 */
void mm_uninitialize(struct mm_heap_s *heap);

/*
 * Add [start, start + size) as another region.  The region must lie above
 * the heap's start and within the model's reach from it (offsets are kept
 * from the heap's start), and, for a heap other processes use, inside the
 * memory they map.  At most MM_CONFIG_REGIONS regions in all.  Too small,
 * misplaced or surplus regions are ignored and mm_last_error() says why.
 * Takes the lock.
 */
void mm_addregion(struct mm_heap_s *heap, void *start, size_t size);

/* ---- Allocating ---------------------------------------------------- */

/*
 * Allocate size bytes aligned to MM_ALIGN.  size 0 gives a unique, freeable
 * minimum-size block.  NULL when no chunk is large enough (MM_ERR_NOMEM), the
 * size is beyond the model (MM_ERR_INVAL) or the heap is broken.
 * Bounded time: two bitmap searches, no list scan.  Takes the lock, unless
 * the calling thread's cache (below) has a block for it.
 */
void *mm_malloc(struct mm_heap_s *heap, size_t size);

/* mm_malloc of n * elem_size bytes, zeroed; NULL if the product overflows. */
void *mm_calloc(struct mm_heap_s *heap, size_t n, size_t elem_size);

/* mm_malloc, zeroed. */
void *mm_zalloc(struct mm_heap_s *heap, size_t size);

/*
 * Resize.  realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns
 * NULL.  Grows in place into a free next chunk, then into a free previous
 * chunk (moving the bytes with memmove, since they overlap), and only then
 * allocates, copies and frees.  Shrinks in place.  On failure returns NULL
 * and p is untouched.  Takes the lock.
 */
void *mm_realloc(struct mm_heap_s *heap, void *oldmem, size_t size);

/*
 * Allocate size bytes aligned to alignment, a power of two (else NULL with
 * MM_ERR_INVAL).  The gap before the aligned block goes back to the heap as
 * a free chunk, so the waste is at most one minimum chunk beside the gap.
 */
void *mm_memalign(struct mm_heap_s *heap, size_t alignment, size_t size);

/*
 * Free mem.  NULL does nothing.  A pointer that is not a live allocation of
 * this heap (foreign, interior, already freed) is not freed: it is counted
 * (double_frees or foreign_frees in mm_heap_stats), reported to the misuse
 * callback, and the heap stays consistent.  Bounded time.  Takes the lock,
 * unless the calling thread's cache (below) takes the block.
 */
void mm_free(struct mm_heap_s *heap, void *mem);

/* Bytes usable at mem (at least what was asked for); 0 for NULL or a
 * pointer that is not a live allocation. */
size_t mm_malloc_size(struct mm_heap_s *heap, void *mem);

/* Whether mem lies in one of the heap's regions. */
bool mm_heapmember(struct mm_heap_s *heap, void *mem);

/* ---- Debug variants (file and line recorded in MM_CONFIG_DEBUG builds) ---- */

void *mm_malloc_at(struct mm_heap_s *heap, size_t size, const char *file, int line);
void *mm_realloc_at(struct mm_heap_s *heap, void *oldmem, size_t size, const char *file, int line);
void *mm_memalign_at(struct mm_heap_s *heap, size_t alignment, size_t size, const char *file,
                     int line);

/* ---- Diagnostics ----------------------------------------------------- */

/* Walks every chunk under the lock.  All zero for a broken heap. */
struct mm_mallinfo_s mm_mallinfo(struct mm_heap_s *heap);

/* The shared counters, read without the lock (after the calling thread's
 * cached blocks went back, which takes it). */
struct mm_heap_stats mm_heap_stats(struct mm_heap_s *heap);

/*
 * Check everything: the chunk chain of every region, the size fields on both
 * sides of each chunk, no two free chunks side by side, every free chunk in
 * the list of its class and nothing else there, the bitmaps, and in debug
 * builds every guard.  Returns the number of problems found (0: consistent).
 * A broken heap counts at least 1.  Takes the lock; O(chunks).
 */
int mm_checkcorruption(struct mm_heap_s *heap);

/* Why the last failed call through this handle failed.  The handle is
 * process-local; threads sharing it see each other's failures.  With NULL:
 * why the calling thread's last mm_initialize or mm_attach returned NULL
 * (MM_OK after one that succeeded). */
enum mm_error mm_last_error(struct mm_heap_s *heap);

/* MM_OK, or MM_ERR_BROKEN if the heap refuses work. */
enum mm_error mm_heap_state(struct mm_heap_s *heap);

/* A short English phrase for an error code. */
const char *mm_strerror(enum mm_error err);

/* One chunk as mm_memdump shows it.  owner, seq, file and line are set in
 * MM_CONFIG_DEBUG builds for allocated chunks, else zero and ""; a cached
 * block's owner is set in every build. */
struct mm_block_info {
    void *mem;   /* the user pointer (allocated, cached) or the chunk's payload (free) */
    size_t size; /* usable bytes: the size asked for in debug builds */
    bool allocated;
    bool cached;    /* freed into a thread's cache (see below); allocated is false */
    uint32_t owner; /* pid of the allocating process on the host; for a cached
                     * block, the owner id it is cached under */
    uint32_t seq;   /* allocation sequence number within the heap */
    int line;
    char file[16]; /* base name of the source file, truncated */
};

#define MM_DUMP_ALLOCATED 0x1u
#define MM_DUMP_FREE      0x2u
/* Blocks freed into some thread's cache that it has not given back yet: the
 * calling thread's own are given back before the walk, so these are other
 * threads' and other processes' (mmsrvd reads their owner ids to reclaim
 * what dead processes left cached).  Never reported as allocated. */
#define MM_DUMP_CACHED 0x4u

/* Which chunks mm_memdump shows.  A NULL filter shows allocated chunks. */
struct mm_dump_filter {
    uint32_t kinds;   /* MM_DUMP_ALLOCATED, MM_DUMP_FREE, MM_DUMP_CACHED */
    uint32_t owner;   /* 0: any owner */
    uint32_t seq_min; /* inclusive; 0 and 0 mean any */
    uint32_t seq_max;
};

/* Called once per chunk that passes the filter, with the heap locked: it
 * must not call into the same heap.  Return false to stop the walk. */
typedef bool (*mm_dump_fn)(void *arg, const struct mm_block_info *block);

/* Walk the heap and report chunks.  Returns how many were reported. */
size_t mm_memdump(struct mm_heap_s *heap, const struct mm_dump_filter *filter, mm_dump_fn fn,
                  void *arg);

/* ---- The per-thread cache (host builds, large model, release) ---------- */

/*
 * mm_free keeps blocks below 8 KiB in a small cache of the calling thread
 * (at most 32 per size class and 1/32 of the heap, 4 MiB at most), and
 * mm_malloc takes from it first, so that most pairs need neither the lock
 * nor the free lists.  Cached blocks count as allocated to everyone else
 * (mm_mallinfo, other threads' mm_memdump) until they go back to the heap:
 * when the thread exits, calls mm_detach, mm_cache_flush or a diagnostic
 * (mm_mallinfo, mm_memdump, mm_checkcorruption, mm_heap_stats), or finds
 * the heap full.  Blocks cached by a process that died stay out of use
 * until mm_reclaim_owner is called with its owner id.  A process must call
 * mm_detach before it unmaps a heap; threads other than the caller must
 * have stopped using it (their caches are then left to mm_reclaim_owner).
 */

/* Give the calling thread's cached blocks of this heap back.  Takes the lock. */
void mm_cache_flush(struct mm_heap_s *heap);

/* How many bytes each thread may keep cached through this handle (the
 * default is 1/32 of the heap, 4 MiB at most); 0 turns the cache off for
 * it.  Process-local.  Flushes the calling thread's cache. */
void mm_cache_limit(struct mm_heap_s *heap, size_t bytes);

/* Give back every block cached under owner (see mm_set_owner_id) by any
 * thread of any process: for after that process died.  Returns how many
 * blocks came back, or (size_t)-1 when the heap refused (broken, or its
 * lock not to be had: mm_last_error says which; try again later for
 * MM_ERR_BUSY).  Takes the lock; O(chunks). */
size_t mm_reclaim_owner(struct mm_heap_s *heap, uint32_t owner);

/* The id this process records in cached blocks and debug records: the pid
 * on the host unless set (mmsrvd assigns each client one).  After fork()
 * the child reverts to its own pid. */
void mm_set_owner_id(uint32_t id);
uint32_t mm_owner_id(void);

#if MM_CONFIG_MULTIPROCESS
/* Wait at most ms milliseconds for any heap's or IOB pool's lock in this
 * process (0, the default: for ever).  A lock lives in memory every
 * attached process can write, and a process stopped (or scribbling) while
 * it holds one would hold up every other locker for good; a process that
 * must stay responsive whatever its peers do (mmsrvd) bounds the wait.  A
 * call that gives up fails as if the lock could not be taken: heap calls
 * with MM_ERR_BUSY, pool calls with -MM_ETIMEDOUT.  Repairs after a dead
 * holder are unaffected. */
void mm_set_lock_wait(uint32_t ms);
#endif

/* What misuse the heap saw. */
enum mm_misuse {
    MM_MISUSE_DOUBLE_FREE,
    MM_MISUSE_FOREIGN_FREE,
    MM_MISUSE_GUARD, /* debug builds: bytes written past the end of a block */
};

/* Process-wide callback for misuse (a pointer cannot live in shared memory,
 * so each process registers its own).  NULL to remove.  Called without the
 * heap lock. */
typedef void (*mm_misuse_fn)(void *arg, struct mm_heap_s *heap, enum mm_misuse what,
                             const void *mem);
void mm_set_misuse_callback(mm_misuse_fn fn, void *arg);

#if MM_CONFIG_CRASH_HOOKS
/* Test builds only: fn is called at numbered points inside the heap's
 * critical sections (lock held, structure mid-change), so that a test can
 * kill the process exactly there.  Points are 1..MM_CRASH_POINTS. */
#define MM_CRASH_POINTS 10
typedef void (*mm_crash_fn)(int point);
void mm_set_crash_hook(mm_crash_fn fn);
#endif

#ifdef __cplusplus
}
#endif

#endif /* MM_MM_H */
