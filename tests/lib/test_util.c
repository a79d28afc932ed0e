/*
 * test_util.c - shared helpers of the CUnit tests (see test_util.h).
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_seed;
static int g_seed_set;

uint64_t tu_seed(void)
{
    if (!g_seed_set) {
        const char *env = getenv("MMSRV_TEST_SEED");
        if (env != NULL && *env != '\0') {
            g_seed = strtoull(env, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            g_seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                     ((uint64_t)getpid() << 32);
        }
        g_seed_set = 1;
    }
    return g_seed;
}

void *tu_mem_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void tu_mem_free(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}

int tu_shm_create(size_t size)
{
    int fd = memfd_create("mmsrv-test", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void *tu_shm_map(int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *tu_shm_map_elsewhere(int fd, size_t size, const void *avoid)
{
    /* Reserve a gap first so the second mapping cannot land next to or on
     * the first by chance. */
    void *gap = mmap(NULL, size + 65536, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *p = tu_shm_map(fd, size);
    if (gap != MAP_FAILED)
        munmap(gap, size + 65536);
    if (p == avoid) {
        tu_shm_unmap(p, size);
        return NULL;
    }
    return p;
}

void tu_shm_unmap(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}

uint64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (tu_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

long tu_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    size_t got = 0;
    while (got < n) {
        uint64_t now = tu_now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (long)got;
}

int tu_exited_ok(int status)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int tu_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)timeout_ms;
    int v;
    while (!(v = cond(arg)) && tu_now_ms() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return v;
}

int tu_main(const char *suite_name, const struct tu_test *tests)
{
    uint64_t seed = tu_seed();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (suite == NULL)
        return 2;
    for (const struct tu_test *t = tests; t->name != NULL; t++)
        if (CU_add_test(suite, t->name, t->fn) == NULL)
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (failed != 0)
        printf("\nseed: MMSRV_TEST_SEED=%llu\n", (unsigned long long)seed);
    if (ran == 0)
        return 1;
    return failed == 0 ? 0 : 1;
}
