/* SPDX-License-Identifier: MIT */
/*
 * log.c — the logger: one logfmt line per event on stderr,
 *   ts=2026-11-29T10:25:19.123Z level=info msg="listening" host=127.0.0.1 port=4200
 * Each line is formatted into a stack buffer of LOG_LINE_MAX bytes and written with a single
 * write(2), so lines from different threads never interleave (stderr writes of up to
 * PIPE_BUF bytes are atomic on pipes; longer lines are cut and end in "..."). The level
 * filter is an atomic, so it can be changed while threads log.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"

#define LOG_LINE_MAX 4096
#define LOG_TRUNCATED "..."

static atomic_int log_level = LOG_INFO;

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

int log_level_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcasecmp(s, "debug") == 0)
        return LOG_DEBUG;
    if (strcasecmp(s, "info") == 0)
        return LOG_INFO;
    if (strcasecmp(s, "warning") == 0 || strcasecmp(s, "warn") == 0)
        return LOG_WARNING;
    if (strcasecmp(s, "error") == 0)
        return LOG_ERROR;
    return -1;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG:
        return "debug";
    case LOG_INFO:
        return "info";
    case LOG_WARNING:
        return "warning";
    case LOG_ERROR:
        return "error";
    }
    return "info";
}

/* Appends msg as a quoted logfmt value; returns the new length (capped at cap). */
static size_t append_quoted(char *buf, size_t len, size_t cap, const char *msg)
{
    if (len < cap)
        buf[len++] = '"';
    for (const char *p = msg ? msg : ""; *p && len < cap; p++) {
        char c = *p;
        const char *esc = NULL;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        if (esc) {
            size_t n = strlen(esc);
            if (len + n > cap)
                return cap;
            memcpy(buf + len, esc, n);
            len += n;
        } else {
            buf[len++] = c;
        }
    }
    if (len < cap)
        buf[len++] = '"';
    return len;
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < atomic_load(&log_level))
        return;

    char line[LOG_LINE_MAX];
    /* Room for the truncation marker and the newline is kept aside in every step. */
    const size_t cap = sizeof line - sizeof LOG_TRUNCATED - 1;
    char ts[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(clock_now_ms(), ts);

    bool truncated = false;
    int n = snprintf(line, cap, "ts=%s level=%s msg=", ts, level_name(level));
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len >= cap) {
        len = cap - 1; /* snprintf put its NUL at cap - 1 */
        truncated = true;
    }
    len = append_quoted(line, len, cap, msg);
    if (len >= cap)
        truncated = true;

    if (!truncated && fields_fmt && fields_fmt[0] && len + 1 < cap) {
        line[len++] = ' ';
        size_t start = len;
        va_list ap;
        va_start(ap, fields_fmt);
        n = vsnprintf(line + len, cap - len, fields_fmt, ap);
        va_end(ap);
        if (n <= 0) {
            len = start - 1; /* nothing written: drop the space */
        } else if ((size_t)n >= cap - len) {
            len = cap - 1;
            truncated = true;
        } else {
            len += (size_t)n;
        }
        /* Fields must not break the one-event-per-line rule. */
        for (size_t i = start; i < len; i++)
            if (line[i] == '\n' || line[i] == '\r')
                line[i] = ' ';
    }
    if (truncated) {
        if (len > cap)
            len = cap;
        memcpy(line + len, LOG_TRUNCATED, sizeof LOG_TRUNCATED - 1);
        len += sizeof LOG_TRUNCATED - 1;
    }
    line[len++] = '\n';

    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failure to log */
}
