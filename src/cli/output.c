/* SPDX-License-Identifier: MIT */
/*
 * output.c — tables, JSON and error messages of the CLI (output.h). Tables are collected
 * first and printed at the end, because a column is only as wide as its widest cell.
 */
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_GAP 2 /* spaces between columns */
#define TABLE_INITIAL_ROWS 16
#define TABLE_EMPTY_CELL "-"
#define OUT_NAME_MAX 64
/* Digits of numbers in tables and "key: value" lines: 0.2 rather than 0.20000000000000001.
 * --json output keeps full precision. */
#define DISPLAY_REAL_DIGITS 15
#define OUT_TIME_DATE_LEN 10    /* "2026-11-29" */
#define OUT_TIME_SECONDS_LEN 19 /* "2026-11-29T10:25:19" */

struct table {
    size_t n_columns;
    char **cells; /* row-major, header row first */
    size_t n_rows, cap_rows;
};

static bool table_push(struct table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : TABLE_INITIAL_ROWS;
        char **grown = realloc(t->cells, cap * t->n_columns * sizeof *grown);
        if (!grown)
            return false;
        t->cells = grown;
        t->cap_rows = cap;
    }
    char **row = &t->cells[t->n_rows * t->n_columns];
    for (size_t c = 0; c < t->n_columns; c++) {
        row[c] = strdup(cells[c] && cells[c][0] ? cells[c] : TABLE_EMPTY_CELL);
        if (!row[c]) {
            while (c-- > 0)
                free(row[c]);
            return false;
        }
    }
    t->n_rows++;
    return true;
}

struct table *table_new(size_t n_columns, const char *const *headers)
{
    struct table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n_columns = n_columns;
    if (!table_push(t, headers)) {
        table_free(t);
        return NULL;
    }
    return t;
}

bool table_add_row(struct table *t, const char *const *cells)
{
    return table_push(t, cells);
}

void table_print(const struct table *t)
{
    size_t *width = calloc(t->n_columns, sizeof *width);
    if (!width)
        return;
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_columns; c++) {
            size_t len = strlen(t->cells[r * t->n_columns + c]);
            if (len > width[c])
                width[c] = len;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_columns; c++) {
            const char *cell = t->cells[r * t->n_columns + c];
            if (c + 1 == t->n_columns)
                printf("%s\n", cell);
            else
                printf("%-*s%*s", (int)width[c], cell, TABLE_GAP, "");
        }
    }
    free(width);
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void out_json(const json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}

void out_json_text(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text ? text : "null", JSON_DECODE_ANY, &jerr);
    if (!v) {
        printf("%s\n", text);
        return;
    }
    out_json(v);
    json_decref(v);
}

char *out_json_compact(const json_t *v)
{
    if (!v)
        return strdup("null");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                         JSON_REAL_PRECISION(DISPLAY_REAL_DIGITS);
    size_t n = json_dumpb(v, NULL, 0, flags);
    char *buf = malloc(n + 1);
    if (!buf)
        return NULL;
    json_dumpb(v, buf, n, flags);
    buf[n] = '\0';
    return buf;
}

const char *out_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

const char *out_time(const char *rfc3339, char *buf, size_t size)
{
    if (!rfc3339 || !rfc3339[0]) {
        snprintf(buf, size, "%s", TABLE_EMPTY_CELL);
        return buf;
    }
    snprintf(buf, size, "%s", rfc3339);
    /* Server times are always "YYYY-MM-DDTHH:MM:SS.mmmZ"; anything else is shown as is. */
    if (strlen(buf) > OUT_TIME_SECONDS_LEN && buf[OUT_TIME_DATE_LEN] == 'T') {
        buf[OUT_TIME_DATE_LEN] = ' ';
        buf[OUT_TIME_SECONDS_LEN] = '\0';
    }
    return buf;
}

int out_error(const struct cli_command *cmd, const errand_error *err)
{
    char name[OUT_NAME_MAX];
    args_command_name(cmd, name, sizeof name);
    const char *msg = err->message[0] ? err->message : errand_strerror(err->code);
    if (err->http_status && !strstr(msg, "HTTP"))
        fprintf(stderr, "%s: %s (HTTP %d)\n", name, msg, err->http_status);
    else
        fprintf(stderr, "%s: %s\n", name, msg);
    if (err->code == ERRAND_EUNAVAILABLE && err->http_status == 0)
        fprintf(stderr, "hint: is the server running? Start one with 'errand server start', or "
                        "point --api-url (ERRAND_API_URL) at it.\n");
    else if (err->code == ERRAND_EAUTH)
        fprintf(stderr, "hint: pass the server's API key with --api-key (ERRAND_API_KEY).\n");
    return err->code == ERRAND_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
}
