/* SPDX-License-Identifier: MIT */
/*
 * output.h — how the CLI writes what it has to say: aligned tables or JSON on stdout for
 * people and scripts (every listing and show command has --json), and errors on stderr with
 * the exit status that goes with them.
 */
#ifndef ERRAND_CLI_OUTPUT_H
#define ERRAND_CLI_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "args.h"
#include "errand/errand.h"

/* A table built row by row and printed with every column as wide as its widest cell
 * (the last column is not padded). Cells are copied. */
struct table;

struct table *table_new(size_t n_columns, const char *const *headers);
/* Adds a row of n_columns cells; NULL cells print as "-". Returns false when out of memory. */
bool table_add_row(struct table *t, const char *const *cells);
void table_print(const struct table *t);
void table_free(struct table *t);

/* Pretty JSON (two-space indent, key order kept) and a newline on stdout. */
void out_json(const json_t *v);
/* The same for JSON text; text that does not parse is printed as it is. */
void out_json_text(const char *text);

/* A compact one-line rendering of v for a table cell or a "key: value" line; malloc'd. */
char *out_json_compact(const json_t *v);

/* "an array", "a string", ... for messages about a value of the wrong kind. */
const char *out_json_kind(const json_t *v);

/* "2026-11-29T10:25:19.123Z" -> "2026-11-29 10:25:19" into buf; "-" for NULL or "". */
const char *out_time(const char *rfc3339, char *buf, size_t size);

/* Prints the error on stderr as "errand <cmd>: message", with a hint when the server could
 * not be reached or refused the key. Returns the exit status: CLI_EXIT_USAGE for a bad value
 * (ERRAND_EINVAL, including values the server rejected with 400), else CLI_EXIT_FAILURE. */
int out_error(const struct cli_command *cmd, const errand_error *err);

#endif
