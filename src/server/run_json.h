/* SPDX-License-Identifier: MIT */
/*
 * run_json.h — the wire forms of a task run (store/run_row.h): the task-run object and the
 * claim object of docs/api.md, and the helpers the server's other answers share (times,
 * nullable text, stored JSON text read back).
 */
#ifndef ERRAND_SERVER_RUN_JSON_H
#define ERRAND_SERVER_RUN_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "core/json_writer.h"
#include "store/run_row.h"

/* The task-run object and the claim object written as text into w: what the server answers
 * with. The stored JSON texts (parameters, tags, retry delays, result) are copied as they are,
 * so no tree is built per run. */
void run_json_write(struct jw *w, const struct run_row *r);
void run_json_write_claim(struct jw *w, const struct run_row *r);

/* The same objects as jansson trees: the reference the writer is tested against, and the form
 * tests and tools read fields from. */
/* The task-run object (new reference) into *out: 0, ERRAND_ENOMEM, or ERRAND_ESTORE when
 * stored JSON does not parse (a damaged database). */
int run_row_to_json(const struct run_row *r, json_t **out, errand_error *err);
/* The claim object: id, task, parameters, attempt, max_attempts, lease_token, lease_expires,
 * timeout_seconds, persist_result, cache_key. */
int run_row_claim_json(const struct run_row *r, json_t **out, errand_error *err);

/* Helpers shared by the server's other answers. */
json_t *run_json_time(int64_t unix_ms); /* RFC 3339 string, or null for 0 */
json_t *run_json_text_or_null(const char *s);
/* Parses stored JSON text (any type); NULL + err (ERRAND_ENOMEM or ERRAND_ESTORE) when it
 * does not parse. */
json_t *run_json_parse(const char *text, const char *what, const char *id, errand_error *err);

#endif
