/* SPDX-License-Identifier: MIT */
/*
 * log_json.c — turns a log event into one line of JSON (log_json.h). Written without a JSON
 * library on purpose: the logger runs on every thread, often, and must not allocate.
 *
 * The fields arrive as errand's logfmt: space-separated key=value, a value in double quotes
 * when it holds spaces, quotes or backslashes, with \" \\ \n \r \t escapes inside. Each
 * becomes a member appended to the object; a member that does not fit is dropped whole (and
 * everything after it), so what is written always parses.
 */
#include "core/log_json.h"

#include <stdio.h>
#include <string.h>

/* Kept free at the end of the buffer for what closes the object. */
#define TRUNCATED_TAIL ",\"truncated\":true}\n"
#define CLOSING_TAIL "}\n"
#define HEX_ESCAPE_LEN 6 /* \u00XX */

/* A growing line: buf[0, len) written, at most cap bytes may be used. */
struct line {
    char *buf;
    size_t len;
    size_t cap;
};

static bool put_raw(struct line *l, const char *s, size_t n)
{
    if (l->len + n > l->cap)
        return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* Appends s[0, n) as a JSON string, quotes included. With cut, a string that does not fit is
 * cut short (and still closed); without, it is not written at all. False when cut short or
 * not written. */
static bool put_string(struct line *l, const char *s, size_t n, bool cut)
{
    size_t start = l->len;
    if (!put_raw(l, "\"", 1))
        return false;
    bool whole = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[HEX_ESCAPE_LEN + 1];
        size_t k;
        switch (c) {
        case '"':
            k = 2, memcpy(esc, "\\\"", 2);
            break;
        case '\\':
            k = 2, memcpy(esc, "\\\\", 2);
            break;
        case '\n':
            k = 2, memcpy(esc, "\\n", 2);
            break;
        case '\r':
            k = 2, memcpy(esc, "\\r", 2);
            break;
        case '\t':
            k = 2, memcpy(esc, "\\t", 2);
            break;
        default:
            if (c < 0x20)
                k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
            else
                k = 1, esc[0] = (char)c;
        }
        /* One byte stays for the closing quote. */
        if (l->len + k + 1 > l->cap) {
            whole = false;
            break;
        }
        memcpy(l->buf + l->len, esc, k);
        l->len += k;
    }
    if (!whole && !cut) {
        l->len = start;
        return false;
    }
    l->buf[l->len++] = '"';
    return whole;
}

/* A bare logfmt value that JSON reads as it is: a number in JSON's grammar, true or false. */
static bool is_json_literal(const char *v, size_t n)
{
    if ((n == 4 && memcmp(v, "true", 4) == 0) || (n == 5 && memcmp(v, "false", 5) == 0))
        return true;
    size_t i = 0;
    if (i < n && v[i] == '-')
        i++;
    if (i >= n || v[i] < '0' || v[i] > '9')
        return false;
    if (v[i] == '0')
        i++;
    else
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
    if (i < n && v[i] == '.') {
        size_t digits = ++i;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        if (i == digits)
            return false;
    }
    if (i < n && (v[i] == 'e' || v[i] == 'E')) {
        i++;
        if (i < n && (v[i] == '+' || v[i] == '-'))
            i++;
        size_t digits = i;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        if (i == digits)
            return false;
    }
    return i == n;
}

/* A key naming an id (trace_id, ...): its value is a string even when it reads as a number
 * (a trace id of hex digits may be all decimal digits, or look like 12e34). */
static bool is_id_key(const char *key, size_t n)
{
    return n >= 3 && memcmp(key + n - 3, "_id", 3) == 0;
}

/* Unescapes a quoted logfmt value starting after its opening quote into out (of size cap);
 * *end is set past the closing quote (or the end of the text). Returns the length. */
static size_t read_quoted(const char *p, const char **end, char *out, size_t cap)
{
    size_t n = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\' && *p) {
            char e = *p++;
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        }
        if (n < cap)
            out[n++] = c;
    }
    *end = *p == '"' ? p + 1 : p;
    return n;
}

/* Appends ,"key":value for each logfmt field; false when one did not fit (the rest are left
 * out). */
static bool put_fields(struct line *l, const char *p)
{
    /* An unescaped value is never longer than the fields' text, itself under a line. */
    char value[4096];
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != ' ' && *p != '=')
            p++;
        size_t key_len = (size_t)(p - key);
        size_t mark = l->len;
        bool ok = put_raw(l, ",", 1) && put_string(l, key, key_len, false) && put_raw(l, ":", 1);
        if (*p != '=') { /* a bare key: a flag */
            ok = ok && put_raw(l, "true", 4);
        } else if (*++p == '"') {
            size_t n = read_quoted(p + 1, &p, value, sizeof value);
            ok = ok && put_string(l, value, n, false);
        } else {
            const char *v = p;
            while (*p && *p != ' ')
                p++;
            size_t n = (size_t)(p - v);
            bool literal = n > 0 && !is_id_key(key, key_len) && is_json_literal(v, n);
            ok = ok && (literal ? put_raw(l, v, n) : put_string(l, v, n, false));
        }
        if (!ok) {
            l->len = mark;
            return false;
        }
    }
    return true;
}

size_t log_json_line(char *buf, size_t cap, const char *ts, const char *level, const char *msg,
                     const char *logfmt_fields, bool fields_truncated)
{
    struct line l = {.buf = buf, .len = 0, .cap = cap - (sizeof TRUNCATED_TAIL - 1)};
    bool whole = put_raw(&l, "{\"ts\":", 6) && put_string(&l, ts, strlen(ts), false) &&
                 put_raw(&l, ",\"level\":", 9) && put_string(&l, level, strlen(level), false) &&
                 put_raw(&l, ",\"msg\":", 7);
    if (whole)
        whole = put_string(&l, msg ? msg : "", msg ? strlen(msg) : 0, true);
    if (whole && logfmt_fields)
        whole = put_fields(&l, logfmt_fields);
    const char *tail = whole && !fields_truncated ? CLOSING_TAIL : TRUNCATED_TAIL;
    size_t n = strlen(tail);
    memcpy(buf + l.len, tail, n);
    return l.len + n;
}
