/*
 * test_access.c - who may attach what, checked by the daemon on the
 * credentials the socket carries (SO_PEERCRED), with a client process that
 * really runs as another user (fork, setgroups, setgid, setuid).
 *
 * Regions made by root for the test:
 *   "private"   mode 0600: the other user is refused, and no descriptor
 *               reaches it (its descriptor count, and no SCM_RIGHTS at all);
 *   "readable"  mode 0604: it gets a descriptor it cannot map writable (nor
 *               mprotect, nor reopen read-write through /proc, nor resize),
 *               and reads what root wrote;
 *   "shared"    mode 0606: it may write and allocate;
 *   "group"     mode 0660, group OTHER_GID: a client whose gid is OTHER_GID
 *               may write; the same user with another gid may not.
 * ListRegions shows it only what it may attach; it may not destroy what it
 * does not own.
 */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"
#include "test_util.h"

#define OTHER_UID  65534u /* nobody */
#define OTHER_GID  65533u
#define NOBODY_GID 65534u
#define HEAP_SIZE  (256u * 1024u)

static struct td_daemon g_d;

static int create(struct mmsrv_client *c, const char *name, uint32_t gid, uint32_t mode)
{
    struct mmsrv_region_spec spec = {
        .name = name, .kind = MMSRV_HEAP, .size = HEAP_SIZE, .uid = 0, .gid = gid, .mode = mode};
    struct mmsrv_region_info info;
    int rc = mmsrv_create(c, &spec, &info);
    if (rc == 0 && (info.mode != mode || info.uid != 0 || info.gid != gid))
        rc = -EPROTO;
    if (rc != 0)
        fprintf(stderr, "\n    create %s: %d %s\n", name, rc,
                mmsrv_error_name() != NULL ? mmsrv_error_name() : "");
    return rc;
}

static int become(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
    if (setgroups(ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
        return -1;
    /* A process that changed its user is not dumpable: /proc/self would
     * belong to root.  The tests look at its own descriptors there. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (getuid() != uid || geteuid() != uid || getgid() != gid || setuid(0) == 0)
        return -1;
    return 0;
}

static const char *err_name(void)
{
    return mmsrv_error_name() != NULL ? mmsrv_error_name() : "(none)";
}

/* Whether [base, base+size) shows in /proc/self/maps with these perms. */
static bool maps_perms(const void *base, const char *perms)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return false;
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && lo == (unsigned long)base) {
            found = strcmp(p, perms) == 0;
            if (!found)
                fprintf(stderr, "    mapping at %p is %s, want %s\n", base, p, perms);
            break;
        }
    }
    fclose(f);
    return found;
}

/* Everything that could make a read-only descriptor writable must fail. */
static void check_readonly_fd(int fd, size_t size)
{
    IT_CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    errno = 0;
    void *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    IT_CHECK(w == MAP_FAILED && errno == EACCES);
    if (w != MAP_FAILED)
        munmap(w, size);
    void *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    IT_CHECK(ro != MAP_FAILED);
    if (ro != MAP_FAILED) {
        errno = 0;
        IT_CHECK(mprotect(ro, size, PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
        IT_CHECK(maps_perms(ro, "r--s"));
        munmap(ro, size);
    }
    /* A private writable mapping writes nothing back: allowed, harmless. */
    IT_CHECK(ftruncate(fd, 0) != 0);
    IT_CHECK(fchmod(fd, 0666) != 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int again = open(path, O_RDWR | O_CLOEXEC);
    IT_CHECK(again < 0);
    if (again >= 0) {
        fprintf(stderr, "    the read-only descriptor reopens read-write through %s\n", path);
        close(again);
    }
    IT_CHECK(pwrite(fd, "x", 1, 0) != 1);
}

/* Raw Attach of name: the error it must get, and that no descriptor came. */
static void check_refused_raw(const char *name, const char *writable)
{
    int fd = td_connect(&g_d);
    IT_CHECK(fd >= 0);
    if (fd < 0)
        return;
    char call[256];
    snprintf(call, sizeof call,
             "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"%s\"%s%s}}", name,
             writable != NULL ? ",\"writable\":" : "", writable != NULL ? writable : "");
    int fds[TD_MAX_RECV_FDS];
    size_t nfds = 0;
    int before = it_count_own_fds();
    char *text = td_call_fds(fd, call, IT_CALL_MS, fds, TD_MAX_RECV_FDS, &nfds);
    json_t *reply = it_parse(text);
    free(text);
    IT_CHECK(it_is_error(reply, "io.mmsrvd.PermissionDenied", "name", name));
    IT_CHECK_EQ(nfds, 0);
    IT_CHECK_EQ(it_count_own_fds(), before);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    json_decref(reply);
    close(fd);
}

/* ---- The other user ----------------------------------------------------- */

static int other_user_child(void *arg, int rd, int wr)
{
    (void)arg;
    (void)rd;
    (void)wr;
    if (become(OTHER_UID, NOBODY_GID, NULL, 0) != 0) {
        perror("become nobody");
        return 2;
    }
    int fds0 = it_count_own_fds();
    struct mmsrv_client *c;
    int rc = mmsrv_connect(g_d.address, &c);
    IT_CHECK_EQ(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "    nobody cannot connect to %s: %d\n", g_d.address, rc);
        return 3;
    }
    int fds1 = it_count_own_fds();

    /* private: refused either way, nothing received */
    struct mmsrv_region *r = NULL;
    IT_CHECK_EQ(mmsrv_attach(c, "private", 0, &r), -EACCES);
    IT_CHECK(strcmp(err_name(), "io.mmsrvd.PermissionDenied") == 0);
    IT_CHECK(r == NULL);
    IT_CHECK_EQ(mmsrv_attach(c, "private", MMSRV_ATTACH_READONLY, &r), -EACCES);
    IT_CHECK(r == NULL);
    IT_CHECK_EQ(it_count_own_fds(), fds1);
    check_refused_raw("private", NULL);
    check_refused_raw("private", "false");
    check_refused_raw("private", "true");
    struct mmsrv_stats st;
    IT_CHECK_EQ(mmsrv_stats(c, "private", &st), -EACCES);

    /* readable: a read-only mapping whatever is asked */
    IT_CHECK_EQ(mmsrv_attach(c, "readable", MMSRV_ATTACH_READONLY, &r), 0);
    if (r != NULL) {
        IT_CHECK(!r->writable);
        IT_CHECK(r->heap == NULL);
        IT_CHECK(maps_perms(r->base, "r--s"));
        errno = 0;
        IT_CHECK(mprotect(r->base, r->size, PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
        /* root wrote a pattern at the end of the region */
        IT_CHECK_EQ(tu_pattern_check((uint8_t *)r->base + r->size - 4096, 4096, 604), 4096);
        IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    }
    struct mmsrv_region *rw = NULL;
    rc = mmsrv_attach(c, "readable", 0, &rw);
    /* Asking to write where only reading is allowed: refused, or granted
     * read-only; never writable. */
    IT_CHECK(rc == -EACCES || (rc == 0 && !rw->writable && rw->heap == NULL));
    if (rc == 0)
        IT_CHECK_EQ(mmsrv_detach(c, rw), 0);

    /* The descriptor itself, raw. */
    int sock = td_connect(&g_d);
    IT_CHECK(sock >= 0);
    int fds[TD_MAX_RECV_FDS];
    size_t nfds = 0;
    char *text = td_call_fds(
        sock, "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"readable\"}}",
        IT_CALL_MS, fds, TD_MAX_RECV_FDS, &nfds);
    json_t *reply = it_parse(text);
    free(text);
    IT_CHECK(it_is_result(reply));
    IT_CHECK_EQ(nfds, 1);
    IT_CHECK(json_is_false(it_param(reply, "writable")));
    IT_CHECK_EQ(it_int_at(reply, "parameters.fd", -1), 0);
    if (nfds >= 1)
        check_readonly_fd(fds[0], (size_t)it_int_at(reply, "parameters.region.size", 4096));
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    json_decref(reply);
    text = td_call_fds(sock,
                       "{\"method\":\"io.mmsrvd.Attach\",\"parameters\":{\"name\":\"readable\","
                       "\"writable\":true}}",
                       IT_CALL_MS, fds, TD_MAX_RECV_FDS, &nfds);
    reply = it_parse(text);
    free(text);
    if (it_error(reply) != NULL) {
        IT_CHECK(it_is_error(reply, "io.mmsrvd.PermissionDenied", "name", "readable"));
        IT_CHECK_EQ(nfds, 0);
    } else {
        IT_CHECK(json_is_false(it_param(reply, "writable")));
        IT_CHECK_EQ(nfds, 1);
        if (nfds >= 1)
            check_readonly_fd(fds[0], (size_t)it_int_at(reply, "parameters.region.size", 4096));
    }
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    json_decref(reply);
    close(sock);

    /* shared: writable, and the heap works */
    IT_CHECK_EQ(mmsrv_attach(c, "shared", 0, &r), 0);
    if (r != NULL) {
        IT_CHECK(r->writable && r->heap != NULL);
        void *p = r->heap != NULL ? mm_malloc(r->heap, 1000) : NULL;
        IT_CHECK(p != NULL);
        if (p != NULL) {
            memset(p, 0x5a, 1000);
            mm_free(r->heap, p);
        }
        IT_CHECK_EQ(mmsrv_detach(c, r), 0);
    }

    /* group: not this one's group */
    IT_CHECK_EQ(mmsrv_attach(c, "group", MMSRV_ATTACH_READONLY, &r), -EACCES);

    /* only what it may attach is listed */
    struct mmsrv_region_info *list = NULL;
    int n = mmsrv_list(c, &list);
    IT_CHECK_EQ(n, 2);
    bool saw_readable = false, saw_shared = false;
    for (int i = 0; i < n; i++) {
        saw_readable |= strcmp(list[i].name, "readable") == 0;
        saw_shared |= strcmp(list[i].name, "shared") == 0;
        IT_CHECK(strcmp(list[i].name, "private") != 0 && strcmp(list[i].name, "group") != 0);
    }
    IT_CHECK(saw_readable && saw_shared);
    free(list);

    /* not its regions: no destroying them, no making regions owned by
     * someone else */
    IT_CHECK_EQ(mmsrv_destroy(c, "readable"), -EACCES);
    IT_CHECK_EQ(mmsrv_destroy(c, "shared"), -EACCES);
    IT_CHECK_EQ(mmsrv_destroy(c, "private"), -EACCES);
    struct mmsrv_region_spec spec = {
        .name = "stolen", .kind = MMSRV_HEAP, .size = HEAP_SIZE, .uid = 0, .gid = -1, .mode = 0666};
    IT_CHECK_EQ(mmsrv_create(c, &spec, NULL), -EACCES);

    mmsrv_disconnect(c);
    IT_CHECK_EQ(it_count_own_fds(), fds0);
    return 0;
}

/* The same user in group OTHER_GID, as its primary group (arg NULL) or a
 * supplementary one: the group bits apply. */
static int group_member_child(void *arg, int rd, int wr)
{
    (void)rd;
    (void)wr;
    static const gid_t other = OTHER_GID;
    int rc = arg == NULL ? become(OTHER_UID, OTHER_GID, NULL, 0)
                         : become(OTHER_UID, NOBODY_GID, &other, 1);
    if (rc != 0)
        return 2;
    struct mmsrv_client *c;
    if (mmsrv_connect(g_d.address, &c) != 0)
        return 3;
    struct mmsrv_region *r = NULL;
    IT_CHECK_EQ(mmsrv_attach(c, "group", 0, &r), 0);
    if (r != NULL) {
        IT_CHECK(r->writable && r->heap != NULL);
        void *p = r->heap != NULL ? mm_malloc(r->heap, 64) : NULL;
        IT_CHECK(p != NULL);
        if (p != NULL)
            mm_free(r->heap, p);
    }
    IT_CHECK_EQ(mmsrv_attach(c, "private", MMSRV_ATTACH_READONLY, &r), -EACCES);
    mmsrv_disconnect(c);
    return 0;
}

static void test_other_user(void)
{
    IT_START(&g_d, NULL);
    struct stat sst;
    CU_ASSERT_EQUAL(stat(g_d.socket, &sst), 0);
    if ((sst.st_mode & 0006) != 0006)
        fprintf(stderr, "\n    the daemon's socket %s has mode %03o: others cannot connect\n",
                g_d.socket, (unsigned)(sst.st_mode & 0777));
    CU_ASSERT_EQUAL(sst.st_mode & 0006, 0006);

    struct mmsrv_client *c;
    CU_ASSERT_EQUAL_FATAL(mmsrv_connect(g_d.address, &c), 0);
    CU_ASSERT_EQUAL_FATAL(create(c, "private", 0, 0600), 0);
    CU_ASSERT_EQUAL_FATAL(create(c, "readable", 0, 0604), 0);
    CU_ASSERT_EQUAL_FATAL(create(c, "shared", 0, 0606), 0);
    CU_ASSERT_EQUAL_FATAL(create(c, "group", OTHER_GID, 0660), 0);
    struct mmsrv_region *rd;
    CU_ASSERT_EQUAL_FATAL(mmsrv_attach(c, "readable", 0, &rd), 0);
    CU_ASSERT_FATAL(rd->writable);
    tu_pattern_fill((uint8_t *)rd->base + rd->size - 4096, 4096, 604);

    int daemon_fds = it_settled_fds(g_d.pid);
    struct it_child other;
    CU_ASSERT_EQUAL_FATAL(it_spawn(&other, other_user_child, NULL), 0);
    CU_ASSERT(tu_exited_ok(it_finish(&other, 30000)));
    struct it_child member;
    CU_ASSERT_EQUAL_FATAL(it_spawn(&member, group_member_child, NULL), 0);
    CU_ASSERT(tu_exited_ok(it_finish(&member, 30000)));
    CU_ASSERT_EQUAL_FATAL(it_spawn(&member, group_member_child, &g_d), 0);
    CU_ASSERT(tu_exited_ok(it_finish(&member, 30000)));

    /* Nothing changed for root; nothing leaked in the daemon. */
    CU_ASSERT_EQUAL(tu_pattern_check((uint8_t *)rd->base + rd->size - 4096, 4096, 604), 4096);
    struct mmsrv_region_info *list = NULL;
    CU_ASSERT_EQUAL(mmsrv_list(c, &list), 4);
    free(list);
    int now = td_wait_fd_count(g_d.pid, daemon_fds, IT_WAIT_MS);
    CU_ASSERT(now >= 0 && now <= daemon_fds);
    mmsrv_disconnect(c);
    it_stop(&g_d);
}

int main(void)
{
    static const struct tu_test tests[] = {
        TU_TEST(test_other_user),
        TU_END,
    };
    if (geteuid() != 0) {
        printf("test_access needs root (it changes users)\n");
        return 77; /* meson's skip */
    }
    return tu_main("access", tests);
}
