/* SPDX-License-Identifier: MIT */
/*
 * json_writer.h — JSON text written straight into a growing buffer, for the documents
 * written once per run or more: the server's answers that carry runs or items, and the
 * worker's report bodies. No tree of jansson values is built and re-encoded, and JSON kept
 * as text (the store's parameters, tags, results) is copied as it is. The output reads back
 * as the same values jansson would have written (tests/unit/test_run_json.c checks it).
 * Strings are written as given: the caller hands in valid UTF-8.
 *
 * Errors stick: once an allocation fails every call does nothing and jw_finish returns NULL.
 */
#ifndef ERRAND_CORE_JSON_WRITER_H
#define ERRAND_CORE_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jw {
    char *buf;
    size_t len, cap;
    bool failed;
};

/* Appends text as it is (a fragment of JSON syntax, or stored JSON text). */
void jw_raw(struct jw *w, const char *text, size_t len);
void jw_lit(struct jw *w, const char *text); /* jw_raw of a C string */
/* A JSON string: quotes, and escapes for '"', '\\' and control characters; NULL is null. */
void jw_string(struct jw *w, const char *s);
void jw_int(struct jw *w, int64_t v);
void jw_bool(struct jw *w, bool v);
/* An integer when v is whole and exact in a double, else the shortest real that reads back
 * as v (15-17 digits), written as jansson writes reals. */
void jw_number(struct jw *w, double v);
/* An RFC 3339 time string, or null for 0. */
void jw_time(struct jw *w, int64_t unix_ms);
/* "name": — a key and its colon (name is plain ASCII, no escaping needed). */
void jw_key(struct jw *w, const char *name);
/* ,"name": — the key of an object's next member. */
void jw_member(struct jw *w, const char *name);

/* The text, NUL-terminated, to free with mem_free; NULL when out of memory. */
char *jw_finish(struct jw *w);
/* Frees what was written (after a failure elsewhere). */
void jw_discard(struct jw *w);

#endif
