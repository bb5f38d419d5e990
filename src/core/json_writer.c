/* SPDX-License-Identifier: MIT */
/*
 * json_writer.c — writing JSON text directly (see json_writer.h).
 */
#include "core/json_writer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"

#define JW_INITIAL_CAP 1024
#define NUMBER_TEXT_MAX 64
/* Whole numbers up to 2^53 are exact in a double, so they print as integers. */
#define EXACT_INT_MAX 9007199254740992.0
#define REAL_DIGITS_MIN 15
#define REAL_DIGITS_MAX 17

static bool reserve(struct jw *w, size_t more)
{
    if (w->failed)
        return false;
    if (w->len + more + 1 <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : JW_INITIAL_CAP;
    while (cap < w->len + more + 1)
        cap *= 2;
    char *grown = mem_realloc(w->buf, cap);
    if (!grown) {
        w->failed = true;
        return false;
    }
    w->buf = grown;
    w->cap = cap;
    return true;
}

void jw_raw(struct jw *w, const char *text, size_t len)
{
    if (!reserve(w, len))
        return;
    memcpy(w->buf + w->len, text, len);
    w->len += len;
    w->buf[w->len] = '\0';
}

void jw_lit(struct jw *w, const char *text)
{
    jw_raw(w, text, strlen(text));
}

void jw_string(struct jw *w, const char *s)
{
    if (!s) {
        jw_lit(w, "null");
        return;
    }
    static const char hex[] = "0123456789abcdef";
    jw_raw(w, "\"", 1);
    const char *run = s; /* the start of a stretch that needs no escape */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20)
            continue;
        jw_raw(w, run, (size_t)(p - run));
        if (c == '\0')
            break;
        char esc[7] = {'\\', (char)c, 0};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        jw_raw(w, esc, n);
        run = p + 1;
    }
    jw_raw(w, "\"", 1);
}

void jw_bool(struct jw *w, bool v)
{
    jw_lit(w, v ? "true" : "false");
}

void jw_int(struct jw *w, int64_t v)
{
    /* By hand rather than snprintf: several per run in every answer. */
    char text[NUMBER_TEXT_MAX];
    char *end = text + sizeof text, *p = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(end - p));
}

void jw_number(struct jw *w, double v)
{
    if (v >= -EXACT_INT_MAX && v <= EXACT_INT_MAX && v == (double)(int64_t)v) {
        jw_int(w, (int64_t)v);
        return;
    }
    /* Rare (jitter factors, fractional timeouts): let jansson spell the real, with the fewest
     * digits that read back, so the text is the one a jansson dump gives. */
    int digits = REAL_DIGITS_MIN;
    char probe[NUMBER_TEXT_MAX];
    for (; digits < REAL_DIGITS_MAX; digits++) {
        snprintf(probe, sizeof probe, "%.*g", digits, v);
        if (strtod(probe, NULL) == v)
            break;
    }
    json_t *real = json_real(v);
    char text[NUMBER_TEXT_MAX];
    size_t n =
        real ? json_dumpb(real, text, sizeof text, JSON_ENCODE_ANY | JSON_REAL_PRECISION(digits))
             : 0;
    json_decref(real);
    if (n == 0 || n > sizeof text) { /* out of memory, or not a finite number */
        w->failed = true;
        return;
    }
    jw_raw(w, text, n);
}

void jw_time(struct jw *w, int64_t unix_ms)
{
    if (unix_ms == 0) {
        jw_lit(w, "null");
        return;
    }
    char text[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(unix_ms, text);
    jw_raw(w, "\"", 1);
    jw_lit(w, text);
    jw_raw(w, "\"", 1);
}

void jw_key(struct jw *w, const char *name)
{
    jw_raw(w, "\"", 1);
    jw_lit(w, name);
    jw_raw(w, "\":", 2);
}

void jw_member(struct jw *w, const char *name)
{
    jw_raw(w, ",", 1);
    jw_key(w, name);
}

char *jw_finish(struct jw *w)
{
    if (w->failed || !reserve(w, 0)) {
        jw_discard(w);
        return NULL;
    }
    char *text = w->buf;
    *w = (struct jw){0};
    return text;
}

void jw_discard(struct jw *w)
{
    mem_free(w->buf);
    *w = (struct jw){0};
}
