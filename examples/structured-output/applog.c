/* SPDX-License-Identifier: MIT */
/*
 * applog.c — logfmt lines on stderr (see applog.h). Messages are quoted and escaped so a
 * message holding spaces, quotes or newlines stays one parseable line.
 */
#include "applog.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define APPLOG_LINE_MAX 4096
#define APPLOG_TS_MAX 32
#define NS_PER_MS 1000000L

static atomic_int min_level = APPLOG_INFO;

void applog_set_level(enum applog_level level)
{
    atomic_store(&min_level, (int)level);
}

static const char *level_name(enum applog_level level)
{
    switch (level) {
    case APPLOG_DEBUG:
        return "debug";
    case APPLOG_INFO:
        return "info";
    case APPLOG_WARNING:
        return "warning";
    case APPLOG_ERROR:
        return "error";
    }
    return "info";
}

/* RFC 3339 UTC with milliseconds, as errand writes its timestamps. */
static void format_now(char out[APPLOG_TS_MAX])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, APPLOG_TS_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, APPLOG_TS_MAX - n, ".%03ldZ", ts.tv_nsec / NS_PER_MS);
}

/* The escape of c inside a quoted logfmt value, or NULL when c stands for itself. */
static const char *escape_of(char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

/* Appends text quoted and escaped; stops quietly at the end of the buffer. */
static size_t append_quoted(char *buf, size_t len, size_t cap, const char *text)
{
    if (len < cap)
        buf[len++] = '"';
    for (const char *p = text ? text : ""; *p && len + 2 < cap; p++) {
        const char *esc = escape_of(*p);
        if (esc) {
            buf[len++] = esc[0];
            buf[len++] = esc[1];
        } else {
            buf[len++] = *p;
        }
    }
    if (len < cap)
        buf[len++] = '"';
    return len;
}

void applog_write(enum applog_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char line[APPLOG_LINE_MAX];
    const size_t cap = sizeof line - 1; /* room for the newline */
    char ts[APPLOG_TS_MAX];
    format_now(ts);

    int n = snprintf(line, cap, "ts=%s level=%s msg=", ts, level_name(level));
    size_t len = n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
    len = append_quoted(line, len, cap, msg);
    if (fields_fmt && fields_fmt[0] && len + 1 < cap) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fields_fmt);
        n = vsnprintf(line + len, cap - len, fields_fmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n < cap - len ? (size_t)n : cap - len - 1;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}
