/*
 * test_port_lock.c - the host port's lock (allocators/port/port_host.h):
 * mutual exclusion between threads and between processes, taking the lock
 * over from a holder that died (killed and reaped, killed and not yet
 * reaped, a thread that exited, one of another pid namespace), never from
 * one that lives, and what scribbled lock words do.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mm/mm.h"
#include "mm_port.h"
#include "test_util.h"

#define ROUNDS 20000

/* A lock and what it guards, in memory shared with forked children. */
struct guarded {
    mm_port_lock_t lock;
    uint64_t count;
};

static struct guarded *shared_new(void)
{
    int fd = tu_shm_create(4096);
    CU_ASSERT_FATAL(fd >= 0);
    struct guarded *g = tu_shm_map(fd, 4096);
    close(fd);
    CU_ASSERT_FATAL(g != NULL);
    CU_ASSERT_EQUAL(mm_port_lock_init(&g->lock), 0);
    return g;
}

static void shared_free(struct guarded *g)
{
    mm_port_lock_destroy(&g->lock);
    tu_shm_unmap(g, 4096);
}

/* Lock, and count how the lock came. */
static void add_rounds(struct guarded *g, unsigned rounds)
{
    for (unsigned i = 0; i < rounds; i++) {
        if (mm_port_lock(&g->lock) < 0)
            return;
        uint64_t v = g->count; /* a read and a write apart: lost updates show */
        g->count = v + 1;
        mm_port_unlock(&g->lock);
    }
}

static void *thread_add(void *arg)
{
    add_rounds(arg, ROUNDS);
    return NULL;
}

static void test_threads_exclude_each_other(void)
{
    struct guarded *g = shared_new();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thread_add, g), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(g->count, 4u * ROUNDS);
    CU_ASSERT_EQUAL(g->lock.word, 0);
    shared_free(g);
}

static void test_processes_exclude_each_other(void)
{
    struct guarded *g = shared_new();
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        add_rounds(g, ROUNDS);
        _exit(0);
    }
    add_rounds(g, ROUNDS);
    CU_ASSERT(tu_exited_ok(tu_wait_child(pid, 30000)));
    CU_ASSERT_EQUAL(g->count, 2u * ROUNDS);
    shared_free(g);
}

/* In a forked child: take the lock, write the result to fd, and wait to be
 * killed. */
static _Noreturn void hold_until_killed(struct guarded *g, int fd)
{
    int r = mm_port_lock(&g->lock);
    (void)!write(fd, &r, sizeof r);
    for (;;)
        pause();
}

/* A child that takes the lock, says so, and waits to be killed. */
static pid_t holder_child(struct guarded *g)
{
    int pfd[2];
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        hold_until_killed(g, pfd[1]);
    }
    close(pfd[1]);
    int r = -1;
    CU_ASSERT_EQUAL(tu_read_full(pfd[0], &r, sizeof r, 10000), (long)sizeof r);
    close(pfd[0]);
    CU_ASSERT_EQUAL(r, MM_PORT_LOCKED);
    return pid;
}

/* Lock with a bound; the result, and how long it took in *ms. */
static int lock_within(struct guarded *g, uint32_t wait_ms, uint64_t *ms)
{
    mm_set_lock_wait(wait_ms);
    uint64_t t0 = tu_now_ms();
    int r = mm_port_lock(&g->lock);
    *ms = tu_now_ms() - t0;
    mm_set_lock_wait(0);
    return r;
}

static void test_dead_holder_is_taken_over(void)
{
    struct guarded *g = shared_new();
    pid_t pid = holder_child(g);
    kill(pid, SIGKILL);
    CU_ASSERT(tu_wait_child(pid, 10000) != -1);
    uint64_t ms;
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    CU_ASSERT(ms < 1000);
    mm_port_unlock(&g->lock);
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED);
    mm_port_unlock(&g->lock);
    shared_free(g);
}

/* Killed but not yet reaped: a zombie holds nothing. */
static void test_zombie_holder_is_taken_over(void)
{
    struct guarded *g = shared_new();
    pid_t pid = holder_child(g);
    kill(pid, SIGKILL);
    siginfo_t si;
    CU_ASSERT_EQUAL_FATAL(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    uint64_t ms;
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    CU_ASSERT(ms < 1000);
    mm_port_unlock(&g->lock);
    CU_ASSERT(tu_wait_child(pid, 10000) != -1);
    shared_free(g);
}

static void *thread_lock_and_exit(void *arg)
{
    struct guarded *g = arg;
    return (void *)(intptr_t)mm_port_lock(&g->lock);
}

static void test_exited_thread_is_taken_over(void)
{
    struct guarded *g = shared_new();
    pthread_t th;
    void *r;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, thread_lock_and_exit, g), 0);
    pthread_join(th, &r);
    CU_ASSERT_EQUAL((intptr_t)r, MM_PORT_LOCKED);
    uint64_t ms;
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    mm_port_unlock(&g->lock);
    shared_free(g);
}

/* A live holder keeps the lock however long it holds it. */
static void test_live_holder_is_waited_for(void)
{
    struct guarded *g = shared_new();
    pid_t pid = holder_child(g);
    uint64_t ms;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(lock_within(g, 100, &ms), -MM_ETIMEDOUT);
        CU_ASSERT(ms >= 100 && ms < 2000);
    }
    kill(pid, SIGKILL);
    CU_ASSERT(tu_wait_child(pid, 10000) != -1);
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    mm_port_unlock(&g->lock);
    shared_free(g);
}

/* Scribbled words: a thread id that no task has is a dead holder, and so
 * is one of a pid namespace that has no task (judged from the initial
 * namespace, where the tests run as mmsrvd does); a waiters bit alone is a
 * free lock. */
static void test_scribbled_words(void)
{
    struct guarded *g = shared_new();
    uint64_t ms;
    CU_ASSERT_EQUAL_FATAL(mm_port_lock(&g->lock), MM_PORT_LOCKED);
    uint64_t mine = g->lock.word;
    mm_port_unlock(&g->lock);
    uint64_t ns = mine >> 32;
    CU_ASSERT(ns != 0);

    /* pid_max is at most 2^22: no task has this id */
    g->lock.word = (ns << 32) | 0x3ffffff0u;
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    mm_port_unlock(&g->lock);

    g->lock.word = ((ns ^ 0x5a5a5a5au) << 32) | 0x3ffffff0u;
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    mm_port_unlock(&g->lock);

    g->lock.word = MM_PORT_LOCK_WAITERS;
    CU_ASSERT_EQUAL(lock_within(g, 50, &ms), MM_PORT_LOCKED);
    mm_port_unlock(&g->lock);
    CU_ASSERT_EQUAL(g->lock.word, 0);
    shared_free(g);
}

/* A holder in another pid namespace (a client in a container), seen from
 * the initial namespace (where mmsrvd runs): waited for while it lives,
 * taken over once it died.  Needs root, for the new namespace. */
static void test_holder_in_another_namespace(void)
{
    struct guarded *g = shared_new();
    int pfd[2];
    CU_ASSERT_FATAL(pipe(pfd) == 0);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        /* the child stays where it is; its children go to a new namespace.
         * It passes on the holder's pid and then the holder's result, in
         * that order (two writers on one pipe would race). */
        close(pfd[0]);
        int hfd[2];
        if (unshare(CLONE_NEWPID) != 0 || pipe(hfd) != 0)
            _exit(2);
        pid_t holder = fork();
        if (holder == 0)
            hold_until_killed(g, hfd[1]); /* as pid 1 of the new namespace */
        int r = -1;
        if (holder < 0 || tu_read_full(hfd[0], &r, sizeof r, 10000) != (long)sizeof r)
            _exit(3);
        (void)!write(pfd[1], &holder, sizeof holder);
        (void)!write(pfd[1], &r, sizeof r);
        int st;
        waitpid(holder, &st, 0);
        _exit(0);
    }
    close(pfd[1]);
    pid_t holder = -1;
    int r = -1;
    bool started = tu_read_full(pfd[0], &holder, sizeof holder, 10000) == (long)sizeof holder &&
                   tu_read_full(pfd[0], &r, sizeof r, 10000) == (long)sizeof r;
    close(pfd[0]);
    if (!started)
        fprintf(stderr, "\n    no holder in a new pid namespace (not root?)\n");
    CU_ASSERT_FATAL(started && holder > 0);
    CU_ASSERT_EQUAL(r, MM_PORT_LOCKED);
    uint64_t word = __atomic_load_n(&g->lock.word, __ATOMIC_RELAXED);
    CU_ASSERT_EQUAL(word & 0x3fffffffu, 1); /* its id in its own namespace */

    uint64_t ms;
    CU_ASSERT_EQUAL(lock_within(g, 300, &ms), -MM_ETIMEDOUT); /* it lives */
    kill(holder, SIGKILL);
    CU_ASSERT(tu_exited_ok(tu_wait_child(child, 10000)));
    CU_ASSERT_EQUAL(lock_within(g, 5000, &ms), MM_PORT_LOCKED_OWNER_DIED);
    CU_ASSERT(ms < 1000);
    CU_ASSERT_NOT_EQUAL(g->lock.word >> 32, word >> 32); /* ours now */
    mm_port_unlock(&g->lock);
    shared_free(g);
}

int main(void)
{
    // clang-format off
    static const struct tu_test tests[] = {
        TU_TEST(test_threads_exclude_each_other),
        TU_TEST(test_processes_exclude_each_other),
        TU_TEST(test_dead_holder_is_taken_over),
        TU_TEST(test_zombie_holder_is_taken_over),
        TU_TEST(test_exited_thread_is_taken_over),
        TU_TEST(test_live_holder_is_waited_for),
        TU_TEST(test_scribbled_words),
        TU_TEST(test_holder_in_another_namespace),
        TU_END,
    };
    // clang-format on
    return tu_main("port_lock", tests);
}
