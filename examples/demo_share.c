/*
 * demo_share.c: two processes share memory through mmsrvd.
 *
 * The writer asks the daemon for two regions, a heap and an IOB pool with
 * two channels, and writes a small guest book into the heap: a linked list
 * whose links are offsets from the region's base, because each process maps
 * the region at its own address.  It then starts the reader (this program
 * again, in the other role), and tells it where the book is by sending the
 * book's offset through a channel, followed by a chain of buffers.  The
 * reader attaches both regions, reads the book, adds its own entry, checks
 * the buffers, and answers through the other channel.  The writer reads the
 * book again, frees every entry (the reader's too: one heap for both),
 * shows the daemon's view of both regions, and destroys them.
 *
 * After the two Attach calls the daemon plays no part: allocation, the list,
 * and the buffers travel in shared memory alone.
 *
 *   demo_share [-a ADDRESS]         the writer (it starts the reader)
 *   demo_share --reader HEAP POOL   the reader, as the writer starts it
 *
 * ADDRESS is the daemon's socket (unix:/path); without it $MMSRV_ADDRESS,
 * else the default.  Exits 0 when both sides saw what they should.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mm/iob.h"
#include "mm/mm.h"
#include "mmsrv/mmsrv.h"

/* Every wait of the demo is bounded by this. */
#define DEMO_WAIT_MS 10000

/* ---- What the two processes share ------------------------------------- */

/* One entry of the guest book, allocated in the heap region. */
struct demo_entry {
    uint64_t next;   /* offset of the next entry in the heap region; 0 ends the list */
    uint32_t author; /* pid of the process that wrote it */
    uint32_t len;    /* bytes of text, the NUL after them excluded */
    char text[];
};
_Static_assert(sizeof(struct demo_entry) == 16, "demo_entry layout");

/* The book: where the list starts and ends. */
struct demo_book {
    uint64_t head; /* offset of the first entry, 0 if none */
    uint64_t tail; /* offset of the last entry */
    uint32_t count;
    uint32_t reserved;
};
_Static_assert(sizeof(struct demo_book) == 24, "demo_book layout");

/* A message through a channel: what it is, and an offset in the heap. */
struct demo_msg {
    char tag[8]; /* "BOOK" writer to reader; "DONE" reader to writer */
    uint64_t offset;
};
_Static_assert(sizeof(struct demo_msg) == 16, "demo_msg layout");

#define CHANNEL_TO_READER "to-reader"
#define CHANNEL_TO_WRITER "to-writer"
#define FRAME_BYTES       1000u /* spans several buffers of the pool */

/* ---- Printing ---------------------------------------------------------- */

static const char *role = "writer";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    printf("%-6s %5d | ", role, (int)getpid());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Print what failed and why; returns -1 for the caller to pass on. */
static int failed(const char *what, int rc)
{
    const char *name = mmsrv_error_name();
    fprintf(stderr, "%s %d | FAILED: %s: %s%s%s\n", role, (int)getpid(), what, strerror(-rc),
            name != NULL && rc != 0 ? " - " : "", name != NULL && rc != 0 ? name : "");
    return -1;
}

/* ---- The book ---------------------------------------------------------- */

/* Append an entry with text, allocated in the heap region. */
static int book_add(const struct mmsrv_region *heap, struct demo_book *book, const char *text)
{
    size_t len = strlen(text);
    struct demo_entry *e = mm_malloc(heap->heap, sizeof(*e) + len + 1);
    if (e == NULL) {
        return failed("mm_malloc", -ENOMEM);
    }
    e->next = 0;
    e->author = (uint32_t)getpid();
    e->len = (uint32_t)len;
    memcpy(e->text, text, len + 1);
    uint64_t off = mmsrv_offset(heap, e);
    if (book->head == 0) {
        book->head = off;
    } else {
        struct demo_entry *tail = mmsrv_pointer(heap, book->tail, sizeof(*tail));
        if (tail == NULL) {
            return failed("the book's tail is outside the heap", -EFAULT);
        }
        tail->next = off;
    }
    book->tail = off;
    book->count++;
    return 0;
}

/*
 * Print every entry.  The other process could have written anything in
 * shared memory, so each offset is checked by mmsrv_pointer before use, and
 * the walk stops after the count the book claims (a cycle cannot trap it).
 */
static int book_print(const struct mmsrv_region *heap, const struct demo_book *book)
{
    uint64_t off = book->head;
    uint32_t count = book->count;
    for (uint32_t i = 0; i < count; i++) {
        const struct demo_entry *e = mmsrv_pointer(heap, off, sizeof(*e));
        uint32_t len = e != NULL ? e->len : 0;
        if (e == NULL || mmsrv_pointer(heap, off, sizeof(*e) + (size_t)len + 1) == NULL ||
            e->text[len] != '\0') {
            return failed("an entry lies outside the heap", -EFAULT);
        }
        say("  entry %" PRIu32 " at offset %#" PRIx64 " (here %p), by pid %" PRIu32 ": \"%s\"",
            i + 1, off, (const void *)e, e->author, e->text);
        off = e->next;
    }
    return off == 0 ? 0 : failed("the book has more entries than it counts", -EFAULT);
}

/* Free every entry and the book itself: whoever allocated them. */
static void book_free(const struct mmsrv_region *heap, struct demo_book *book)
{
    uint64_t off = book->head;
    for (uint32_t i = 0; i < book->count && off != 0; i++) {
        struct demo_entry *e = mmsrv_pointer(heap, off, sizeof(*e));
        if (e == NULL) {
            break;
        }
        off = e->next;
        mm_free(heap->heap, e);
    }
    mm_free(heap->heap, book);
}

/* ---- Channels ---------------------------------------------------------- */

/* Send msg through channel id as a one-buffer chain. */
static int send_msg(struct iob_pool_s *pool, int id, const char *tag, uint64_t offset)
{
    struct demo_msg msg;
    memset(&msg, 0, sizeof(msg));
    strncpy(msg.tag, tag, sizeof(msg.tag) - 1);
    msg.offset = offset;
    struct iob_s *iob = iob_timedalloc(pool, false, DEMO_WAIT_MS);
    if (iob == NULL) {
        return failed("iob_timedalloc", iob_pool_error(pool));
    }
    int rc = iob_copyin(pool, iob, (const uint8_t *)&msg, sizeof(msg), 0, false);
    if (rc >= 0) {
        rc = iob_send(pool, id, iob, DEMO_WAIT_MS);
    }
    if (rc < 0) {
        iob_free_chain(pool, iob);
        return failed("iob_send", rc);
    }
    return 0;
}

/* Receive a message with the expected tag; its offset in *offset. */
static int receive_msg(struct iob_pool_s *pool, int id, const char *tag, uint64_t *offset)
{
    struct iob_s *iob;
    struct demo_msg msg;
    int rc = iob_receive(pool, id, &iob, DEMO_WAIT_MS);
    if (rc < 0) {
        return failed("iob_receive", rc);
    }
    rc = iob_copyout(pool, (uint8_t *)&msg, iob, sizeof(msg), 0);
    iob_free_chain(pool, iob);
    if (rc != (int)sizeof(msg) || strncmp(msg.tag, tag, sizeof(msg.tag)) != 0) {
        return failed("an unexpected message", -EBADMSG);
    }
    *offset = msg.offset;
    return 0;
}

static uint8_t frame_byte(uint32_t i)
{
    return (uint8_t)(i * 7u + 3u);
}

/* Send FRAME_BYTES of a known pattern: a chain of several buffers, handed
 * over without copying. */
static int send_frame(struct iob_pool_s *pool, int id)
{
    uint8_t frame[FRAME_BYTES];
    for (uint32_t i = 0; i < FRAME_BYTES; i++) {
        frame[i] = frame_byte(i);
    }
    struct iob_s *iob = iob_timedalloc(pool, false, DEMO_WAIT_MS);
    if (iob == NULL) {
        return failed("iob_timedalloc", iob_pool_error(pool));
    }
    int rc = iob_copyin(pool, iob, frame, FRAME_BYTES, 0, false);
    if (rc >= 0) {
        rc = iob_send(pool, id, iob, DEMO_WAIT_MS);
    }
    if (rc < 0) {
        iob_free_chain(pool, iob);
        return failed("sending the frame", rc);
    }
    return 0;
}

static int receive_frame(struct iob_pool_s *pool, int id)
{
    struct iob_s *iob;
    uint8_t frame[FRAME_BYTES];
    int rc = iob_receive(pool, id, &iob, DEMO_WAIT_MS);
    if (rc < 0) {
        return failed("receiving the frame", rc);
    }
    uint32_t buffers = 0;
    for (const struct iob_s *b = iob; b != NULL; b = iob_next(pool, b)) {
        buffers++;
    }
    uint32_t len = iob_pktlen(pool, iob);
    rc = iob_copyout(pool, frame, iob, FRAME_BYTES, 0);
    iob_free_chain(pool, iob);
    if (len != FRAME_BYTES || rc != (int)FRAME_BYTES) {
        return failed("the frame has the wrong length", -EBADMSG);
    }
    for (uint32_t i = 0; i < FRAME_BYTES; i++) {
        if (frame[i] != frame_byte(i)) {
            return failed("the frame's bytes differ", -EBADMSG);
        }
    }
    say("received a chain of %" PRIu32 " buffers, %" PRIu32 " bytes, every byte as sent", buffers,
        len);
    return 0;
}

/* Look a channel up and connect to it in one role. */
static int channel_open(struct iob_pool_s *pool, const char *name, uint32_t role_flags)
{
    int id = iob_channel_lookup(pool, name);
    if (id < 0) {
        return failed(name, id);
    }
    int rc = iob_channel_connect(pool, id, role_flags);
    if (rc < 0) {
        return failed(name, rc);
    }
    return id;
}

/* ---- The reader ---------------------------------------------------------- */

static int reader(const char *heap_name, const char *pool_name)
{
    struct mmsrv_client *client = NULL;
    struct mmsrv_region *heap = NULL, *iobs = NULL;
    int status = -1;
    char text[128];
    uint64_t book_off;

    role = "reader";
    int rc = mmsrv_connect(NULL, &client);
    if (rc < 0) {
        return failed("mmsrv_connect", rc);
    }
    if ((rc = mmsrv_attach(client, heap_name, 0, &heap)) < 0) {
        failed(heap_name, rc);
        goto out;
    }
    if ((rc = mmsrv_attach(client, pool_name, 0, &iobs)) < 0) {
        failed(pool_name, rc);
        goto out;
    }
    say("attached \"%s\" at %p and \"%s\" at %p", heap_name, heap->base, pool_name, iobs->base);

    int to_reader = channel_open(iobs->pool, CHANNEL_TO_READER, IOB_CHANNEL_RECV);
    int to_writer = channel_open(iobs->pool, CHANNEL_TO_WRITER, IOB_CHANNEL_SEND);
    if (to_reader < 0 || to_writer < 0 ||
        receive_msg(iobs->pool, to_reader, "BOOK", &book_off) < 0) {
        goto out;
    }
    struct demo_book *book = mmsrv_pointer(heap, book_off, sizeof(*book));
    if (book == NULL) {
        failed("the book's offset is outside the heap", -EFAULT);
        goto out;
    }
    say("the book is at offset %#" PRIx64 ": here that is %p; it holds %" PRIu32 " entries:",
        book_off, (void *)book, book->count);
    if (book_print(heap, book) < 0) {
        goto out;
    }
    snprintf(text, sizeof(text), "and hello back from the reader, pid %d", (int)getpid());
    if (book_add(heap, book, text) < 0) {
        goto out;
    }
    say("added an entry of its own, allocated in the same heap");
    if (receive_frame(iobs->pool, to_reader) < 0 ||
        send_msg(iobs->pool, to_writer, "DONE", book_off) < 0) {
        goto out;
    }
    status = 0;

out:
    if (iobs != NULL) {
        mmsrv_detach(client, iobs);
    }
    if (heap != NULL) {
        mmsrv_detach(client, heap);
    }
    mmsrv_disconnect(client);
    return status;
}

/* ---- The writer ---------------------------------------------------------- */

/* Start this program again as the reader. */
static pid_t reader_start(const char *heap_name, const char *pool_name, const sigset_t *oldmask)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, oldmask, NULL);
        execl("/proc/self/exe", "demo_share", "--reader", heap_name, pool_name, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Wait for the reader to exit, at most DEMO_WAIT_MS (SIGCHLD is blocked, so
 * it waits for the signal rather than polling).  0 if it exited with 0. */
static int reader_wait(pid_t pid)
{
    sigset_t chld;
    struct timespec deadline, now;
    int status;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += DEMO_WAIT_MS / 1000;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec left = {deadline.tv_sec - now.tv_sec, deadline.tv_nsec - now.tv_nsec};
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (got < 0 || left.tv_sec < 0 ||
            (sigtimedwait(&chld, NULL, &left) < 0 && errno == EAGAIN)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
    }
}

static void show_stats(struct mmsrv_client *client, const char *heap_name, const char *pool_name)
{
    struct mmsrv_stats hs, ps;
    int rc = mmsrv_stats(client, heap_name, &hs);
    if (rc < 0) {
        failed("mmsrv_stats", rc);
        return;
    }
    rc = mmsrv_stats(client, pool_name, &ps);
    if (rc < 0) {
        failed("mmsrv_stats", rc);
        return;
    }
    say("the daemon's view: \"%s\" %" PRIu64 " KiB, %" PRIu64 " bytes in use, heap %s, %" PRIu32
        " attached",
        heap_name, hs.info.size / 1024, hs.uordblks, hs.heap_state, hs.nattached);
    say("                   \"%s\" %" PRIu32 " of %" PRIu32 " buffers free, %" PRIu32
        " channels, %" PRIu32 " attached",
        pool_name, ps.free, ps.count, ps.nchannels, ps.nattached);
}

static int writer(void)
{
    struct mmsrv_client *client = NULL;
    struct mmsrv_region *heap = NULL, *iobs = NULL;
    char heap_name[64], pool_name[64], text[128];
    bool created_heap = false, created_pool = false;
    pid_t child = -1;
    int status = -1;
    sigset_t chld, oldmask;

    int rc = mmsrv_connect(NULL, &client);
    if (rc < 0) {
        return failed("mmsrv_connect (is mmsrvd running? see -a)", rc);
    }
    /* Names of this run: two demos at once do not collide. */
    snprintf(heap_name, sizeof(heap_name), "demo-heap-%d", (int)getpid());
    snprintf(pool_name, sizeof(pool_name), "demo-iob-%d", (int)getpid());

    const struct mmsrv_region_spec heap_spec = {
        .name = heap_name,
        .kind = MMSRV_HEAP,
        .size = 1024 * 1024,
        .uid = -1,
        .gid = -1,
        .mode = -1,
    };
    const struct mmsrv_channel_spec channels[] = {
        {.name = CHANNEL_TO_READER, .depth = 8},
        {.name = CHANNEL_TO_WRITER, .depth = 8},
    };
    const struct mmsrv_region_spec pool_spec = {
        .name = pool_name,
        .kind = MMSRV_IOB,
        .bufsize = 256,
        .count = 64,
        .channels = channels,
        .nchannels = 2,
        .uid = -1,
        .gid = -1,
        .mode = -1,
    };
    if ((rc = mmsrv_create(client, &heap_spec, NULL)) < 0) {
        failed(heap_name, rc);
        goto out;
    }
    created_heap = true;
    if ((rc = mmsrv_create(client, &pool_spec, NULL)) < 0) {
        failed(pool_name, rc);
        goto out;
    }
    created_pool = true;
    say("created \"%s\" (a 1 MiB heap) and \"%s\" (64 buffers of 256 bytes, 2 channels)", heap_name,
        pool_name);
    if ((rc = mmsrv_attach(client, heap_name, 0, &heap)) < 0) {
        failed(heap_name, rc);
        goto out;
    }
    if ((rc = mmsrv_attach(client, pool_name, 0, &iobs)) < 0) {
        failed(pool_name, rc);
        goto out;
    }
    say("attached \"%s\" at %p and \"%s\" at %p", heap_name, heap->base, pool_name, iobs->base);

    struct demo_book *book = mm_zalloc(heap->heap, sizeof(*book));
    if (book == NULL) {
        failed("mm_zalloc", -ENOMEM);
        goto out;
    }
    snprintf(text, sizeof(text), "hello from the writer, pid %d", (int)getpid());
    if (book_add(heap, book, text) < 0 ||
        book_add(heap, book, "each process maps the heap at its own address") < 0 ||
        book_add(heap, book, "so the links between entries are offsets, not pointers") < 0) {
        goto out;
    }
    uint64_t book_off = mmsrv_offset(heap, book);
    say("wrote a book of %" PRIu32 " entries at offset %#" PRIx64 " (here %p)", book->count,
        book_off, (void *)book);

    int to_reader = channel_open(iobs->pool, CHANNEL_TO_READER, IOB_CHANNEL_SEND);
    int to_writer = channel_open(iobs->pool, CHANNEL_TO_WRITER, IOB_CHANNEL_RECV);
    if (to_reader < 0 || to_writer < 0 || send_msg(iobs->pool, to_reader, "BOOK", book_off) < 0 ||
        send_frame(iobs->pool, to_reader) < 0) {
        goto out;
    }
    say("sent the book's offset, then a %u-byte frame, through channel \"%s\"", FRAME_BYTES,
        CHANNEL_TO_READER);

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &oldmask);
    child = reader_start(heap_name, pool_name, &oldmask);
    if (child < 0) {
        failed("fork", -errno);
        goto out;
    }
    uint64_t answer;
    if (receive_msg(iobs->pool, to_writer, "DONE", &answer) < 0) {
        goto out;
    }
    if (answer != book_off) {
        failed("the reader answered with another offset", -EBADMSG);
        goto out;
    }
    say("the reader is done; the book now holds %" PRIu32 " entries:", book->count);
    if (book_print(heap, book) < 0) {
        goto out;
    }
    rc = reader_wait(child);
    child = -1;
    if (rc < 0) {
        failed("the reader did not exit cleanly", -ECHILD);
        goto out;
    }
    book_free(heap, book);
    mm_cache_flush(heap->heap); /* so that the daemon's figures show the frees */
    say("freed every entry, the reader's too");
    show_stats(client, heap_name, pool_name);
    status = 0;

out:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    if (iobs != NULL) {
        mmsrv_detach(client, iobs);
    }
    if (heap != NULL) {
        mmsrv_detach(client, heap);
    }
    if (created_pool && (rc = mmsrv_destroy(client, pool_name)) < 0) {
        status = failed("mmsrv_destroy", rc);
    }
    if (created_heap && (rc = mmsrv_destroy(client, heap_name)) < 0) {
        status = failed("mmsrv_destroy", rc);
    }
    mmsrv_disconnect(client);
    if (status == 0) {
        say("detached and destroyed both regions: done");
    }
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--reader") == 0) {
        return reader(argv[2], argv[3]) == 0 ? 0 : 1;
    }
    if (argc == 3 && strcmp(argv[1], "-a") == 0) {
        /* the reader inherits it */
        setenv("MMSRV_ADDRESS", argv[2], 1);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [-a unix:/path/to/socket]\n", argv[0]);
        return 2;
    }
    return writer() == 0 ? 0 : 1;
}
