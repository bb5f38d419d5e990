/* SPDX-License-Identifier: MIT */
/*
 * log.c — the logger: one line per event on stderr, logfmt by default,
 *   ts=2026-11-29T10:25:19.123Z level=info msg="listening" host=127.0.0.1 port=4200
 * or JSON (ERRAND_LOGGING_FORMAT=json; log_json.c),
 *   {"ts":"2026-11-29T10:25:19.123Z","level":"info","msg":"listening","host":"127.0.0.1","port":4200}
 * Each line is formatted into a stack buffer of LOG_LINE_MAX bytes and written with a single
 * write(2), so lines from different threads never interleave (stderr writes of up to
 * PIPE_BUF bytes are atomic on pipes; longer lines are cut: a logfmt line ends in "...", a
 * JSON one leaves out the members that do not fit and says "truncated": true). The level and
 * the format are atomics, so they can be changed while threads log. Until a program sets
 * them (the errand commands do, from their settings), they come from ERRAND_LOGGING_LEVEL
 * and ERRAND_LOGGING_FORMAT, read once: a program built on liberrand logs as the errand
 * commands do.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log_json.h"

#define LOG_LINE_MAX 4096
#define LOG_TRUNCATED "..."
#define LOG_UNSET (-1) /* not set by the program: read from the environment at first use */

static atomic_int log_level = LOG_UNSET;
static atomic_int log_format = LOG_UNSET;

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

void log_set_format(enum log_format format)
{
    atomic_store(&log_format, (int)format);
}

/* The value of v, or when unset the environment's (fallback if it is unset or bad). Two
 * threads may both read the environment the first time; they store the same value. */
static int current(atomic_int *v, const char *env, int (*parse)(const char *), int fallback)
{
    int x = atomic_load(v);
    if (x != LOG_UNSET)
        return x;
    const char *text = getenv(env);
    x = text ? parse(text) : -1;
    if (x < 0)
        x = fallback;
    int expected = LOG_UNSET;
    atomic_compare_exchange_strong(v, &expected, x);
    return atomic_load(v);
}

enum log_level log_get_level(void)
{
    return (enum log_level)current(&log_level, "ERRAND_LOGGING_LEVEL", log_level_parse, LOG_INFO);
}

enum log_format log_get_format(void)
{
    return (enum log_format)current(&log_format, "ERRAND_LOGGING_FORMAT", log_format_parse,
                                    LOG_FORMAT_LOGFMT);
}

int log_format_parse(const char *s)
{
    if (s && strcasecmp(s, "logfmt") == 0)
        return LOG_FORMAT_LOGFMT;
    if (s && strcasecmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
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

/* Formats the fields (logfmt, from the caller) into out; true when they had to be cut. Line
 * breaks become spaces: one event, one line. */
static bool format_fields(char *out, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, size, fmt, ap);
    if (n < 0) {
        out[0] = '\0';
        return false;
    }
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return (size_t)n >= size;
}

/* The logfmt line: ts=... level=... msg="..." fields, cut with "..." when too long. */
static size_t logfmt_line(char *line, size_t size, const char *ts, enum log_level level,
                          const char *msg, const char *fields, bool fields_truncated)
{
    /* Room for the truncation marker and the newline is kept aside in every step. */
    const size_t cap = size - sizeof LOG_TRUNCATED - 1;
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
    if (!truncated && fields[0] && len + 1 < cap) {
        line[len++] = ' ';
        size_t n_fields = strlen(fields);
        if (n_fields > cap - len) {
            n_fields = cap - len;
            truncated = true;
        }
        memcpy(line + len, fields, n_fields);
        len += n_fields;
    }
    if (truncated || fields_truncated) {
        if (len > cap)
            len = cap;
        memcpy(line + len, LOG_TRUNCATED, sizeof LOG_TRUNCATED - 1);
        len += sizeof LOG_TRUNCATED - 1;
    }
    line[len++] = '\n';
    return len;
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < (int)log_get_level())
        return;

    char ts[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(clock_now_ms(), ts);
    char fields[LOG_LINE_MAX] = "";
    bool fields_truncated = false;
    if (fields_fmt && fields_fmt[0]) {
        va_list ap;
        va_start(ap, fields_fmt);
        fields_truncated = format_fields(fields, sizeof fields, fields_fmt, ap);
        va_end(ap);
    }

    char line[LOG_LINE_MAX];
    size_t len =
        log_get_format() == LOG_FORMAT_JSON
            ? log_json_line(line, sizeof line, ts, level_name(level), msg, fields, fields_truncated)
            : logfmt_line(line, sizeof line, ts, level, msg, fields, fields_truncated);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failure to log */
}
