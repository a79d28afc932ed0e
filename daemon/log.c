/*
 * log.c: one line per event on stderr, prefixed with its syslog priority
 * ("<6>attach region=frames pid=42"), which the journal reads as the line's
 * priority and a terminal shows as is.  Debug lines (<7>) only with -v.
 * Each line goes out in one write(2), so lines never interleave.
 */
#include "mmsrvd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static bool log_verbose;

void log_set_verbose(bool verbose)
{
    log_verbose = verbose;
}

bool log_debug_enabled(void)
{
    return log_verbose;
}

void log_msg(int prio, const char *fmt, ...)
{
    char line[1024];
    int saved = errno;

    if (prio >= LOG_P_DEBUG && !log_verbose)
        return;
    int n = snprintf(line, sizeof(line), "<%d>", prio);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* control characters from a peer or a file must not split the line */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}
