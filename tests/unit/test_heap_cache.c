/*
 * test_heap_cache.c - the per-thread cache of the mm heap (heap_cache.c):
 * freed blocks come back to the same thread without the lock, stay out of
 * everybody else's reach until flushed, and always do come back: on flush,
 * diagnostics, thread exit, detach, a full heap, or mm_reclaim_owner after
 * the process that cached them died.  Misuse is still caught, and fork()
 * does not hand the parent's cached blocks to the child.
 *
 * Only built for variants that have the cache (host, large model, release).
 * A second mapping of the heap at another address gives a view that does
 * not flush the calling thread's cache, to see what is cached.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mm/mm.h"
#include "test_util.h"

#define HEAP_SIZE ((size_t)4 << 20)

struct ch {
    int fd;
    uint8_t *mem;  /* the mapping the tests allocate through */
    uint8_t *view; /* a second mapping, for looking without flushing */
    struct mm_heap_s *h, *hv;
    struct mm_mallinfo_s mi0;
};

static void ch_open(struct ch *t)
{
    t->fd = tu_shm_create(HEAP_SIZE);
    CU_ASSERT_FATAL(t->fd >= 0);
    t->mem = tu_shm_map(t->fd, HEAP_SIZE);
    t->view = tu_shm_map_elsewhere(t->fd, HEAP_SIZE, t->mem);
    CU_ASSERT_FATAL(t->mem != NULL && t->view != NULL);
    t->h = mm_initialize("cache", t->mem, HEAP_SIZE);
    t->hv = mm_attach(t->view, HEAP_SIZE);
    CU_ASSERT_FATAL(t->h != NULL && t->hv != NULL);
    t->mi0 = mm_mallinfo(t->hv);
    CU_ASSERT_EQUAL(t->mi0.ordblks, 1);
}

/* The 32-bit word at byte at from block p, as another process sees it:
 * through the second mapping. */
static uint32_t *ch_shared_word(struct ch *t, void *p, ptrdiff_t at)
{
    return (uint32_t *)(void *)(t->view + ((uint8_t *)p - t->mem) + at);
}

/* What the heap looks like without flushing this thread's cache of t->h. */
static struct mm_mallinfo_s ch_peek(struct ch *t)
{
    return mm_mallinfo(t->hv);
}

static void ch_close(struct ch *t)
{
    CU_ASSERT_EQUAL(mm_checkcorruption(t->h), 0);
    mm_detach(t->h);
    struct mm_mallinfo_s mi = mm_mallinfo(t->hv);
    CU_ASSERT_EQUAL(mi.ordblks, 1); /* detach gave every cached block back */
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    mm_detach(t->hv);
    tu_shm_unmap(t->mem, HEAP_SIZE);
    tu_shm_unmap(t->view, HEAP_SIZE);
    close(t->fd);
}

/* A freed block is kept by the thread and handed out again, unlocked. */
static void test_reuse_and_flush(void)
{
    struct ch t;
    ch_open(&t);
    void *p = mm_malloc(t.h, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    mm_free(t.h, p);
    /* Still allocated as far as the heap is concerned. */
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 1);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, p), 0); /* but not a live block */
    void *q = mm_malloc(t.h, 96);               /* same size class */
    CU_ASSERT_PTR_EQUAL(q, p);
    CU_ASSERT(mm_malloc_size(t.h, q) >= 96);
    mm_free(t.h, q);
    mm_cache_flush(t.h);
    struct mm_mallinfo_s mi = ch_peek(&t);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.ordblks, 1);
    /* Stats count the cached operations once folded in. */
    struct mm_heap_stats st = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(st.mallocs, 2);
    CU_ASSERT_EQUAL(st.frees, 2);
    ch_close(&t);
}

/* Diagnostics on the caller's own handle see through its cache. */
static void test_diagnostics_flush(void)
{
    struct ch t;
    ch_open(&t);
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = mm_malloc(t.h, 200);
    for (int i = 0; i < 10; i++)
        mm_free(t.h, p[i]);
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 10);
    struct mm_mallinfo_s mi = mm_mallinfo(t.h);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.ordblks, 1);
    CU_ASSERT_EQUAL(mi.fordblks, t.mi0.fordblks);
    ch_close(&t);
}

static unsigned g_misuse[3];
static void count_misuse(void *arg, struct mm_heap_s *h, enum mm_misuse what, const void *mem)
{
    (void)arg, (void)h, (void)mem;
    g_misuse[what]++;
}

/* Freeing a cached block again, or passing it to realloc, is misuse. */
static void test_double_free_of_cached(void)
{
    struct ch t;
    ch_open(&t);
    memset(g_misuse, 0, sizeof(g_misuse));
    mm_set_misuse_callback(count_misuse, NULL);
    void *p = mm_malloc(t.h, 64);
    mm_free(t.h, p);
    mm_free(t.h, p);
    CU_ASSERT_EQUAL(g_misuse[MM_MISUSE_DOUBLE_FREE], 1);
    CU_ASSERT_PTR_NULL(mm_realloc(t.h, p, 128));
    CU_ASSERT_EQUAL(g_misuse[MM_MISUSE_DOUBLE_FREE], 2);
    CU_ASSERT_EQUAL(mm_heap_stats(t.h).double_frees, 2);
    /* The block is still cached once, not twice: two mallocs, two blocks. */
    void *a = mm_malloc(t.h, 64), *b = mm_malloc(t.h, 64);
    CU_ASSERT_PTR_EQUAL(a, p);
    CU_ASSERT_PTR_NOT_EQUAL(b, p);
    mm_free(t.h, a);
    mm_free(t.h, b);
    /* A pointer into the middle of a block is not cached either. */
    void *c = mm_malloc(t.h, 256);
    mm_free(t.h, (uint8_t *)c + 64);
    CU_ASSERT_EQUAL(g_misuse[MM_MISUSE_FOREIGN_FREE], 1);
    CU_ASSERT_EQUAL(mm_malloc_size(t.h, c) >= 256, 1);
    mm_free(t.h, c);
    mm_set_misuse_callback(NULL, NULL);
    ch_close(&t);
}

/* At most the limit in bytes, and a limit of 0 turns the cache off. */
static void test_limit(void)
{
    struct ch t;
    ch_open(&t);
    mm_cache_limit(t.h, 1000);
    void *p[20];
    for (int i = 0; i < 20; i++)
        p[i] = mm_malloc(t.h, 100); /* chunks of 112 bytes */
    for (int i = 0; i < 20; i++)
        mm_free(t.h, p[i]);
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 1000 / 112);
    mm_cache_limit(t.h, 0); /* flushes */
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 0);
    void *q = mm_malloc(t.h, 100);
    mm_free(t.h, q);
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 0);
    ch_close(&t);
}

/* Blocks of 8 KiB and more never enter the cache. */
static void test_large_blocks_bypass(void)
{
    struct ch t;
    ch_open(&t);
    void *p = mm_malloc(t.h, 8192);
    mm_free(t.h, p);
    CU_ASSERT_EQUAL(ch_peek(&t).aordblks, 0);
    ch_close(&t);
}

/* A full heap takes back what this thread cached before it gives up. */
static void test_full_heap_flushes(void)
{
    struct ch t;
    ch_open(&t);
    enum { N = 8000 };
    static void *p[N];
    int n = 0;
    while (n < N && (p[n] = mm_malloc(t.h, 1000)) != NULL)
        n++;
    CU_ASSERT_FATAL(n > 100 && n < N);
    for (int i = 0; i < n; i++)
        mm_free(t.h, p[i]);
    CU_ASSERT(ch_peek(&t).aordblks > 0); /* some of them are cached */
    void *big = mm_malloc(t.h, HEAP_SIZE / 2);
    CU_ASSERT_PTR_NOT_NULL(big);
    mm_free(t.h, big);
    ch_close(&t);
}

/* ---- Threads ---------------------------------------------------------------- */

static void *thread_churn(void *arg)
{
    struct mm_heap_s *h = arg;
    void *p[50];
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 50; i++) {
            p[i] = mm_malloc(h, (size_t)(16 + 40 * i));
            if (p[i] == NULL)
                return (void *)1;
            memset(p[i], i, (size_t)(16 + 40 * i));
        }
        for (int i = 0; i < 50; i++) {
            const uint8_t *b = p[i];
            if (b[0] != i || b[15 + 40 * i] != i)
                return (void *)2;
            mm_free(h, p[i]);
        }
    }
    return NULL;
}

/* A thread's cache goes back to the heap when the thread exits. */
static void test_thread_exit_flushes(void)
{
    struct ch t;
    ch_open(&t);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thread_churn, t.h), 0);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        CU_ASSERT_PTR_NULL(rc);
    }
    struct mm_mallinfo_s mi = ch_peek(&t);
    CU_ASSERT_EQUAL(mi.aordblks, 0);
    CU_ASSERT_EQUAL(mi.ordblks, 1);
    struct mm_heap_stats st = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(st.mallocs, 3u * 100u * 50u);
    CU_ASSERT_EQUAL(st.frees, 3u * 100u * 50u);
    ch_close(&t);
}

/* ---- Processes ----------------------------------------------------------------- */

/* After fork() the child must not take the parent's cached blocks: both
 * would own them. */
static void test_fork_does_not_share_cache(void)
{
    struct ch t;
    ch_open(&t);
    void *p = mm_malloc(t.h, 300);
    mm_free(t.h, p); /* cached by this thread */
    int pfd[2];
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        void *q = mm_malloc(t.h, 300);
        int ok = q != NULL && q != p;
        if (q != NULL)
            memset(q, 0x5a, 300);
        mm_free(t.h, q);
        mm_detach(t.h); /* gives the child's cache back */
        (void)!write(pfd[1], &ok, sizeof(ok));
        _exit(ok ? 0 : 1);
    }
    close(pfd[1]);
    int ok = 0;
    CU_ASSERT_EQUAL(tu_read_full(pfd[0], &ok, sizeof(ok), 10000), (long)sizeof(ok));
    close(pfd[0]);
    CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 10000)));
    CU_ASSERT_EQUAL(ok, 1);
    void *r = mm_malloc(t.h, 300); /* the parent still has its block */
    CU_ASSERT_PTR_EQUAL(r, p);
    mm_free(t.h, r);
    ch_close(&t);
}

/* A process that dies with cached blocks: mm_reclaim_owner gives them back,
 * and nothing else. */
static void test_reclaim_dead_owner(void)
{
    struct ch t;
    ch_open(&t);
    void *mine = mm_malloc(t.h, 500); /* a live block of this process */
    int pfd[2];
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        void *q[40];
        int n = 0;
        for (int i = 0; i < 40; i++)
            if ((q[i] = mm_malloc(t.h, (size_t)(32 + 50 * i))) != NULL)
                n++;
        for (int i = 0; i < 40; i++)
            mm_free(t.h, q[i]);
        (void)!write(pfd[1], &n, sizeof(n));
        pause(); /* killed here, its cache full */
        _exit(0);
    }
    close(pfd[1]);
    int n = 0;
    CU_ASSERT_EQUAL(tu_read_full(pfd[0], &n, sizeof(n), 10000), (long)sizeof(n));
    close(pfd[0]);
    CU_ASSERT_EQUAL(n, 40);
    size_t cached = ch_peek(&t).aordblks - 1;
    CU_ASSERT(cached > 0);
    kill(pid, SIGKILL);
    CU_ASSERT(tu_wait_child(pid, 10000) != -1);
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, (uint32_t)pid), cached);
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, (uint32_t)pid), 0);
    struct mm_mallinfo_s mi = ch_peek(&t);
    CU_ASSERT_EQUAL(mi.aordblks, 1);
    CU_ASSERT(mm_malloc_size(t.h, mine) >= 500);
    mm_free(t.h, mine);
    ch_close(&t);
}

/* A request whose own class holds only a smaller block takes a block of
 * the next class, or a new one: never the block that is too small.
 * Chunks of 1504 and 1512 bytes share a class (1504..1535, with 32 classes
 * per power of two); 1544 is in the next one. */
static void test_pop_never_hands_out_a_smaller_block(void)
{
    struct ch t;
    ch_open(&t);
    void *small = mm_malloc(t.h, 1496); /* chunk 1504 */
    void *next = mm_malloc(t.h, 1536);  /* chunk 1544 */
    CU_ASSERT_FATAL(small != NULL && next != NULL);
    mm_free(t.h, small);
    void *q = mm_malloc(t.h, 1504); /* chunk 1512: the class's head is too small */
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_PTR_NOT_EQUAL(q, small);
    CU_ASSERT(mm_malloc_size(t.h, q) >= 1504);
    mm_free(t.h, next);
    void *r = mm_malloc(t.h, 1504); /* now from the next class */
    CU_ASSERT_PTR_EQUAL(r, next);
    void *s = mm_malloc(t.h, 1496); /* the head of its own class fits */
    CU_ASSERT_PTR_EQUAL(s, small);
    mm_free(t.h, q);
    mm_free(t.h, r);
    mm_free(t.h, s);
    ch_close(&t);
}

/* The bins are process-local, the blocks they name are not.  A cached
 * block whose header someone else changed, or whose link into the rest of
 * its bin was overwritten, is never handed out; the blocks behind it stay
 * marked with this process's owner id, so mm_reclaim_owner gets them back. */
static void test_overwritten_cached_blocks(void)
{
    struct ch t;
    ch_open(&t);
    uint32_t owner = mm_owner_id();

    /* A header whose cached bit was cleared: the bin is forgotten. */
    void *a = mm_malloc(t.h, 200), *b = mm_malloc(t.h, 200), *c = mm_malloc(t.h, 200);
    CU_ASSERT_FATAL(a != NULL && b != NULL && c != NULL);
    mm_free(t.h, a);
    mm_free(t.h, b);
    mm_free(t.h, c);                   /* the bin: c, b, a */
    *ch_shared_word(&t, c, -4) &= ~2u; /* the size word ends the header; 2: cached */
    void *x = mm_malloc(t.h, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT(x != a && x != b && x != c);
    mm_free(t.h, c); /* it reads as allocated now, so it is freed like one */
    mm_cache_flush(t.h);
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, owner), 2); /* a and b */

    /* A link overwritten with an offset past the heap's end: malloc takes
     * the head, then never follows the link. */
    void *p1 = mm_malloc(t.h, 200), *p2 = mm_malloc(t.h, 200);
    CU_ASSERT_FATAL(p1 != NULL && p2 != NULL);
    mm_free(t.h, p1);
    mm_free(t.h, p2);                                       /* the bin: p2, p1 */
    *ch_shared_word(&t, p2, 0) = (uint32_t)(8 * HEAP_SIZE); /* the link */
    void *y = mm_malloc(t.h, 200);
    CU_ASSERT_PTR_EQUAL(y, p2);
    void *z = mm_malloc(t.h, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    CU_ASSERT(z != p1 && mm_heapmember(t.h, z) && mm_malloc_size(t.h, z) >= 200);
    mm_cache_flush(t.h);                              /* stops at the bad link */
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, owner), 1); /* p1 */

    mm_free(t.h, x);
    mm_free(t.h, y);
    mm_free(t.h, z);
    ch_close(&t);
}

/* mm_set_owner_id changes what cached blocks are recorded under. */
static void test_owner_id(void)
{
    struct ch t;
    ch_open(&t);
    uint32_t pid = (uint32_t)getpid();
    CU_ASSERT_EQUAL(mm_owner_id(), pid);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        mm_set_owner_id(4242);
        int ok = mm_owner_id() == 4242;
        mm_free(t.h, mm_malloc(t.h, 40));
        _exit(ok ? 0 : 1); /* dies with one block cached under 4242 */
    }
    CU_ASSERT(tu_exited_ok(tu_wait_child(child, 10000)));
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, (uint32_t)child), 0);
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, 4242), 1);
    CU_ASSERT_EQUAL(mm_owner_id(), pid);
    ch_close(&t);
}

/* mm_memdump with MM_DUMP_CACHED names the owner of every block another
 * process left cached (mmsrvd finds dead owners so after a restart), and
 * never as allocated. */
struct cached_seen {
    unsigned cached, allocated;
    uint32_t owner;
};

static bool note_block(void *arg, const struct mm_block_info *b)
{
    struct cached_seen *s = arg;
    if (b->cached) {
        s->cached++;
        s->owner = b->owner;
        CU_ASSERT(!b->allocated && b->size >= 40 && b->mem != NULL);
    } else if (b->allocated) {
        s->allocated++;
    }
    return true;
}

static void test_dump_names_cache_owners(void)
{
    struct ch t;
    ch_open(&t);
    void *mine = mm_malloc(t.h, 100);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        mm_set_owner_id(777);
        mm_free(t.h, mm_malloc(t.h, 40));
        _exit(0); /* dies with one block cached under 777 */
    }
    CU_ASSERT(tu_exited_ok(tu_wait_child(child, 10000)));
    struct cached_seen seen = {0, 0, 0};
    struct mm_dump_filter cached = {.kinds = MM_DUMP_CACHED};
    CU_ASSERT_EQUAL(mm_memdump(t.h, &cached, note_block, &seen), 1);
    CU_ASSERT_EQUAL(seen.cached, 1);
    CU_ASSERT_EQUAL(seen.allocated, 0);
    CU_ASSERT_EQUAL(seen.owner, 777);
    struct mm_dump_filter by_other = {.kinds = MM_DUMP_CACHED, .owner = 778};
    CU_ASSERT_EQUAL(mm_memdump(t.h, &by_other, note_block, &seen), 0);
    /* the default dump shows what is in use: this process's block only */
    memset(&seen, 0, sizeof(seen));
    CU_ASSERT_EQUAL(mm_memdump(t.h, NULL, note_block, &seen), 1);
    CU_ASSERT_EQUAL(seen.allocated, 1);
    CU_ASSERT_EQUAL(seen.cached, 0);
    CU_ASSERT_EQUAL(mm_reclaim_owner(t.h, 777), 1);
    CU_ASSERT_EQUAL(mm_memdump(t.h, &cached, note_block, &seen), 0);
    mm_free(t.h, mine);
    ch_close(&t);
}

/* mm_reclaim_owner runs while live threads take cached blocks and write
 * into them.  A block just taken still looks cached to a walk that read its
 * header a moment before, while its first bytes (where a cached block keeps
 * its owner id) already hold the user's data: data that happens to be a dead
 * owner's id must not get a live block reclaimed.  Each taken block here is
 * written with exactly that id. */
#define RACE_DEAD_OWNER 0x5eed1234u

struct race {
    struct mm_heap_s *h;
    int stop;
    unsigned long rounds;
    int bad; /* no memory, or a block freed under its user */
};

static void *race_take_and_write(void *arg)
{
    struct race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        uint32_t *p = mm_malloc(r->h, 64);
        if (p == NULL) {
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED);
            break;
        }
        /* the word a cached block keeps its owner id in (atomic: the walk
         * reads it at the same time) */
        __atomic_store_n(&p[1], RACE_DEAD_OWNER, __ATOMIC_RELAXED);
        /* now and then (it takes the lock the walks hold) */
        if ((r->rounds & 1023u) == 0 && mm_malloc_size(r->h, p) < 64)
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED); /* reclaimed under us */
        mm_free(r->h, p);
        r->rounds++;
    }
    return NULL;
}

static void test_reclaim_races_with_takes(void)
{
    struct ch t;
    ch_open(&t);
    struct race r = {.h = t.h};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, race_take_and_write, &r), 0);
    /* mm_memdump reads the owner word the same way (mmsrvd finds the
     * owners of cached blocks so after a restart) */
    struct mm_dump_filter dead = {.kinds = MM_DUMP_CACHED, .owner = RACE_DEAD_OWNER};
    struct cached_seen seen = {0, 0, 0};
    size_t reclaimed = 0, dumped = 0;
    uint64_t end = tu_now_ms() + 2000;
    while (tu_now_ms() < end && reclaimed == 0 && dumped == 0 &&
           !__atomic_load_n(&r.bad, __ATOMIC_RELAXED))
        for (int i = 0; i < 1000; i++) {
            reclaimed += mm_reclaim_owner(t.h, RACE_DEAD_OWNER);
            dumped += mm_memdump(t.hv, &dead, note_block, &seen);
        }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    CU_ASSERT(r.rounds > 0);
    CU_ASSERT_EQUAL(reclaimed, 0);
    CU_ASSERT_EQUAL(dumped, 0);
    CU_ASSERT_EQUAL(r.bad, 0);
    struct mm_heap_stats st = mm_heap_stats(t.h);
    CU_ASSERT_EQUAL(st.double_frees, 0);
    printf("(%lu takes, %zu reclaimed, %zu dumped) ", r.rounds, reclaimed, dumped);
    ch_close(&t);
}

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_reuse_and_flush),
        TU_TEST(test_diagnostics_flush),
        TU_TEST(test_double_free_of_cached),
        TU_TEST(test_limit),
        TU_TEST(test_large_blocks_bypass),
        TU_TEST(test_full_heap_flushes),
        TU_TEST(test_thread_exit_flushes),
        TU_TEST(test_fork_does_not_share_cache),
        TU_TEST(test_reclaim_dead_owner),
        TU_TEST(test_pop_never_hands_out_a_smaller_block),
        TU_TEST(test_overwritten_cached_blocks),
        TU_TEST(test_owner_id),
        TU_TEST(test_dump_names_cache_owners),
        TU_TEST(test_reclaim_races_with_takes),
        TU_END,
    };
    // clang-format on
    return tu_main("heap_cache", tests);
}
