/*
 * heap_handle.c - making, opening and releasing heaps, adding regions, and
 * the small diagnostics that need no walk (stats, errors, callbacks).
 *
 * A handle is process-local: the base address of this process's mapping and
 * how many bytes of it may be read.  mm_attach copies what it needs out of
 * the (untrusted) header after validating it, so that a scribbled header can
 * make operations fail but never make them read outside the mapping.
 */
#include "heap_cache.h"

static mm_misuse_fn g_misuse_fn;
static void *g_misuse_arg;

/* Why the calling thread's last mm_initialize or mm_attach returned NULL
 * (mm_last_error(NULL)): there is no handle to keep it in. */
#if MM_CONFIG_PORT == MM_PORT_HOST
static MM_PORT_THREAD_LOCAL enum mm_error g_open_error;
#else
static enum mm_error g_open_error;
#endif

static struct mm_heap_s *mm__open_failed(enum mm_error why)
{
    g_open_error = why;
    return NULL;
}

#if MM_CONFIG_MULTIPROCESS
static struct mm_heap_s g_handles[MM_CONFIG_MAX_HEAPS];

/* Bytes one thread may keep cached for a heap of this size: enough for the
 * cache to matter, little enough not to starve other users. */
static size_t mm__cache_cap_for(size_t heapsize)
{
#if MM_CONFIG_CACHE
    size_t cap = heapsize / 32u;
    return cap > ((size_t)4u << 20) ? ((size_t)4u << 20) : cap;
#else
    (void)heapsize;
    return 0;
#endif
}

static struct mm_heap_s *mm__handle_claim(uint8_t *base, size_t limit)
{
#if MM_CONFIG_PORT == MM_PORT_HOST
    mm_port_install_hooks(); /* owner ids and caches must see fork() */
#endif
    for (unsigned i = 0; i < MM_CONFIG_MAX_HEAPS; i++) {
        struct mm_heap_s *h = &g_handles[i];
        if (mm_port_load32(&h->in_use) == 0 && mm_port_claim(&h->in_use)) {
            h->base = base;
            h->limit = limit;
            h->gen++;
            h->cache_cap = mm__cache_cap_for(limit);
            mm__set_error(h, MM_OK);
            return h;
        }
    }
    return NULL;
}

static void mm__handle_release(struct mm_heap_s *h)
{
    h->gen++;
    h->cache_cap = 0;
    mm__handle_set_r0(h, 0, 0);
    h->base = NULL;
    h->limit = 0;
    mm_port_release(&h->in_use);
}
#else
/* The handle is in the heap's header (heap_internal.h). */
static void mm__handle_release(struct mm_heap_s *h)
{
    h->in_use = 0;
}
#endif

static size_t mm__align_up(size_t x)
{
    return (x + MM__ALIGN - 1u) & ~(size_t)(MM__ALIGN - 1u);
}

/* Whether n bytes are within the model's reach.  A function of a 64-bit
 * argument: where size_t cannot exceed the limit (32-bit targets, large
 * model; AVR, small model) a comparison written inline is always false and
 * -Wtype-limits says so. */
static bool mm__within_model(uint64_t n)
{
    return n <= (uint64_t)MM_MAX_HEAPSIZE;
}

/* Make [s, s + size) (an address range) the next region of h: one free
 * chunk and an end sentinel.  mm_initialize's first region and
 * mm_addregion's alike; under the lock, or before anyone else sees the heap.
 * false if the range is misplaced, too small or one region too many.
 *
 * No offset here wraps a size_t, so no 64-bit arithmetic on 32-bit
 * targets: s + size does not (checked first), and rounding s - b up cannot,
 * since the base b is at least MM_START_ALIGN. */
static bool mm__region_add(struct mm_heap_s *h, uintptr_t s, size_t size)
{
    struct mm__header *hd = mm__hdr(h);
    uint32_t nregions = hd->nregions; /* read once: shared memory may change */
    uintptr_t b = (uintptr_t)mm__base(h);
    if (nregions >= MM_CONFIG_REGIONS || s < b + sizeof(struct mm__header) ||
        size > (uintptr_t)-1 - s)
        return false;
    size_t first = mm__align_up((size_t)(s - b));
    size_t end = (size_t)((s + size - b) & ~(uintptr_t)(MM__ALIGN - 1u));
    if (!mm__within_model(end) || first > end || end - first < MM__MINCHUNK + MM__HDR)
        return false;
    end -= MM__HDR;
    for (unsigned i = 0; i < nregions; i++) {
        size_t rs = hd->region[i].start, re = (size_t)hd->region[i].end + MM__HDR;
        if (first < re && end + MM__HDR > rs)
            return false; /* overlaps region i */
    }
    if (end + MM__HDR > h->limit)
        h->limit = (size_t)(end + MM__HDR);
    if (end + MM__HDR > hd->span)
        hd->span = end + MM__HDR;
    mmsize_t csize = (mmsize_t)(end - first);
    struct mm__chunk *c = mm__chunk(h, first);
    mm__set_word(&c->prev_size, 0);
    mm__set_word(&c->size, csize);
    struct mm__chunk *sentinel = mm__chunk(h, end);
    mm__set_word(&sentinel->prev_size, csize);
    mm__set_word(&sentinel->size, MM__ALLOC_BIT);
    hd->region[nregions].start = (mmsize_t)first;
    hd->region[nregions].end = (mmsize_t)end;
    mm__list_insert(h, first, csize);
    hd->nregions = nregions + 1u;
    return true;
}

struct mm_heap_s *mm_initialize(const char *name, void *heapstart, size_t heapsize)
{
    if (heapstart == NULL || ((uintptr_t)heapstart & (MM_START_ALIGN - 1u)) != 0 ||
        !mm__within_model(heapsize) ||
        (heapsize & ~(size_t)(MM__ALIGN - 1u)) <
            mm__align_up(sizeof(struct mm__header)) + MM__MINCHUNK + MM__HDR)
        return mm__open_failed(MM_ERR_INVAL);

#if MM_CONFIG_MULTIPROCESS
    struct mm_heap_s *h = mm__handle_claim(heapstart, heapsize);
    if (h == NULL)
        return mm__open_failed(MM_ERR_HANDLES);
    struct mm__header *hd = mm__hdr(h);
    memset(hd, 0, sizeof(*hd));
#else
    struct mm__header *hd = heapstart;
    memset(hd, 0, sizeof(*hd));
    struct mm_heap_s *h = &hd->handle;
    h->base = heapstart;
    h->limit = heapsize;
    h->in_use = 1;
#endif
    if (mm_port_lock_init(&hd->lock) != 0) {
        mm__handle_release(h);
        return mm__open_failed(MM_ERR_LOCK);
    }
    hd->version = MM__VERSION;
    hd->size_bytes = (uint8_t)sizeof(mmsize_t);
    hd->debug = MM_CONFIG_DEBUG;
    hd->header_size = (uint32_t)sizeof(struct mm__header);
    hd->state = MM__STATE_OK;
    hd->span = heapsize;
    if (name != NULL) {
        size_t n = strlen(name);
        memcpy(hd->name, name, n < sizeof(hd->name) - 1u ? n : sizeof(hd->name) - 1u);
    }
    /* Cannot fail: the size was checked above. */
    (void)mm__region_add(h, (uintptr_t)heapstart + sizeof(*hd), heapsize - sizeof(*hd));
    mm__handle_set_r0(h, hd->region[0].start, hd->region[0].end);
    /* The magic goes in last: until then mm_attach refuses the memory. */
    mm_port_store32(&hd->magic, MM__MAGIC);
    g_open_error = MM_OK;
    return h;
}

#if MM_CONFIG_MULTIPROCESS
struct mm_heap_s *mm_attach(void *heapstart, size_t heapsize)
{
    if (heapstart == NULL || ((uintptr_t)heapstart & (MM_START_ALIGN - 1u)) != 0)
        return mm__open_failed(MM_ERR_INVAL);
    if (heapsize < sizeof(struct mm__header))
        return mm__open_failed(MM_ERR_NOTHEAP);
    const struct mm__header *hd = heapstart;
    /* Read each shared field once: a writer could change it between a check
     * and a use. */
    uint64_t span = hd->span;
    uint32_t nregions = hd->nregions;
    if (mm_port_load32(&hd->magic) != MM__MAGIC || hd->version != MM__VERSION ||
        hd->size_bytes != sizeof(mmsize_t) || hd->debug != MM_CONFIG_DEBUG ||
        hd->header_size != sizeof(struct mm__header) || nregions == 0 ||
        nregions > MM_CONFIG_REGIONS || span > heapsize || span > (uint64_t)MM_MAX_HEAPSIZE ||
        span < sizeof(struct mm__header) + MM__MINCHUNK + MM__HDR) /* else "limit - n" wraps */
        return mm__open_failed(MM_ERR_NOTHEAP);

    /* Trust the recorded span only as far as the mapping reaches. */
    struct mm_heap_s *h = mm__handle_claim(heapstart, (size_t)span);
    if (h == NULL)
        return mm__open_failed(MM_ERR_HANDLES);
    for (unsigned i = 0; i < nregions; i++) {
        size_t s, e;
        if (!mm__region_bounds(h, i, &s, &e) || e - s < MM__MINCHUNK) {
            mm__handle_release(h);
            return mm__open_failed(MM_ERR_NOTHEAP);
        }
        if (i == 0)
            mm__handle_set_r0(h, s, e);
    }
    g_open_error = MM_OK;
    return h;
}

void mm_detach(struct mm_heap_s *h)
{
    if (h != NULL && h->in_use != 0) {
        mm__cache_flush_mine(h);
        mm__handle_release(h);
    }
}
#else
/* The handle is the heap: nothing to release. */
void mm_detach(struct mm_heap_s *h)
{
    (void)h;
}
#endif

void mm_uninitialize(struct mm_heap_s *h)
{
    if (h == NULL || h->in_use == 0)
        return;
    mm__cache_drop_mine(h);
    struct mm__header *hd = mm__hdr(h);
    mm_port_store32(&hd->magic, 0u);
    hd->state = MM__STATE_BROKEN;
    mm_port_lock_destroy(&hd->lock);
    mm__handle_release(h);
}

void mm_addregion(struct mm_heap_s *h, void *start, size_t size)
{
    if (h == NULL || start == NULL)
        return;
    if (mm__enter(h) != 0)
        return;
    mm__set_error(h, mm__region_add(h, (uintptr_t)start, size) ? MM_OK : MM_ERR_INVAL);
    mm__leave(h);
}

/* ---- Small diagnostics ---------------------------------------------------- */

struct mm_heap_stats mm_heap_stats(struct mm_heap_s *h)
{
    if (h != NULL && h->in_use != 0) {
        mm__cache_flush_mine(h); /* fold this thread's cached operations in */
        return mm__hdr(h)->stats;
    }
    struct mm_heap_stats none;
    memset(&none, 0, sizeof(none));
    return none;
}

enum mm_error mm_last_error(struct mm_heap_s *h)
{
    return h != NULL ? mm__error(h) : g_open_error;
}

enum mm_error mm_heap_state(struct mm_heap_s *h)
{
    if (h == NULL || h->in_use == 0)
        return MM_ERR_INVAL;
    return mm__hdr(h)->state == MM__STATE_OK ? MM_OK : MM_ERR_BROKEN;
}

/* Microcontrollers get the phrases in fewer bytes of flash. */
#if MM_CONFIG_MULTIPROCESS
#define MM__PHRASE(long_, short_) long_
#else
#define MM__PHRASE(long_, short_) short_
#endif

/* The phrases of mm_strerror, in the order of enum mm_error, one string
 * (a table of pointers would cost flash as well). */
/* clang-format off */
static const char mm__phrases[] =
    "success\0"
    MM__PHRASE("no free chunk large enough", "no memory") "\0"
    "invalid argument\0"
    MM__PHRASE("heap chunk chain broken; heap refuses work", "heap broken") "\0"
    MM__PHRASE("heap lock unusable", "lock unusable") "\0"
    MM__PHRASE("no free heap handle in this process", "no handle") "\0"
    MM__PHRASE("memory holds no heap of this layout and size", "not a heap") "\0"
    MM__PHRASE("heap lock held too long by another process", "lock busy") "\0"
    MM__PHRASE("unknown error", "unknown");
/* clang-format on */

const char *mm_strerror(enum mm_error err)
{
    unsigned n = (unsigned)err <= MM_ERR_BUSY ? (unsigned)err : MM_ERR_BUSY + 1u;
    const char *p = mm__phrases;
    while (n-- > 0)
        p += strlen(p) + 1u;
    return p;
}

/* ---- Owner ids ---------------------------------------------------------- */

static uint32_t g_owner_id; /* set by mm_set_owner_id; 0: the port's (pid) */
#if MM_CONFIG_MULTIPROCESS
static uint32_t g_port_owner;
#if MM_CONFIG_PORT == MM_PORT_HOST
static uint32_t g_owner_fork_gen, g_port_owner_fork_gen;
#define MM__FORK_GEN() mm_port_fork_generation()
#else
static const uint32_t g_owner_fork_gen = 0, g_port_owner_fork_gen = 0;
#define MM__FORK_GEN() 0u
#endif

void mm_set_owner_id(uint32_t id)
{
    g_owner_id = id;
#if MM_CONFIG_CACHE
    mm__owner_gen++;
#endif
#if MM_CONFIG_PORT == MM_PORT_HOST
    g_owner_fork_gen = MM__FORK_GEN();
#endif
}

uint32_t mm__owner(void)
{
    /* An id set before fork() belongs to the parent. */
    if (g_owner_id != 0 && g_owner_fork_gen == MM__FORK_GEN())
        return g_owner_id;
    if (g_port_owner == 0 || g_port_owner_fork_gen != MM__FORK_GEN()) {
        g_port_owner = mm_port_owner_id();
#if MM_CONFIG_PORT == MM_PORT_HOST
        g_port_owner_fork_gen = MM__FORK_GEN();
#endif
    }
    return g_port_owner;
}
#else
/* One program: no fork, no cache to tell. */
void mm_set_owner_id(uint32_t id)
{
    g_owner_id = id;
}

uint32_t mm__owner(void)
{
    return g_owner_id != 0 ? g_owner_id : mm_port_owner_id();
}
#endif

uint32_t mm_owner_id(void)
{
    return mm__owner();
}

void mm_set_misuse_callback(mm_misuse_fn fn, void *arg)
{
    g_misuse_arg = arg;
    g_misuse_fn = fn;
}

void mm__report_misuse(struct mm_heap_s *h, enum mm_misuse what, const void *mem)
{
    mm_misuse_fn fn = g_misuse_fn;
    if (fn != NULL)
        fn(g_misuse_arg, h, what, mem);
}

#if MM_CONFIG_CRASH_HOOKS
static mm_crash_fn g_crash_fn;

void mm_set_crash_hook(mm_crash_fn fn)
{
    g_crash_fn = fn;
}

void mm__crash_point(int point)
{
    if (g_crash_fn != NULL)
        g_crash_fn(point);
}
#endif
