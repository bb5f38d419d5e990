/*
 * run_row.h — a task run as the store read it (or is about to write it), and its wire forms:
 * the task-run object and the claim object of docs/api.md. Backend-neutral: the SQLite store
 * fills a run_row from a statement, a future PostgreSQL store from a result set.
 *
 * Strings are either borrowed (the row points into a run_spec or a statement that outlives
 * it) or owned: run_row_own_strings() copies every string into one buffer, so a row can
 * leave the writer thread with one allocation. JSON is built by the caller's thread, after
 * the commit, to keep the writer's work to SQL alone.
 */
#ifndef ERRAND_SERVER_RUN_ROW_H
#define ERRAND_SERVER_RUN_ROW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"

struct run_row {
    const char *id;
    const char *task;
    const char *parameters; /* JSON object text */
    errand_state state;
    const char *state_name;
    const char *state_message;
    int64_t state_timestamp; /* Unix ms; 0 = absent, here and below */
    int attempt;
    int max_attempts;
    int64_t created;
    int64_t scheduled_at;
    int64_t started;
    int64_t finished;
    const char *worker; /* NULL = none */
    int priority;
    const char *tags; /* JSON array text */
    const char *idempotency_key;
    const char *cache_key;
    int retries;
    const char *retry_delays; /* JSON array text; NULL: use delays[0..n_delays) */
    const double *delays;
    size_t n_delays;
    double retry_jitter_factor;
    double timeout_seconds; /* 0 = none */
    int persist_result;     /* -1 = unset */
    const char *result;     /* JSON text, NULL = not inlined */
    const char *result_ref;
    const char *lease_token; /* claim objects only */
    int64_t lease_expires;
    char *owned; /* buffer behind the strings when owned, else NULL */
};

/* Copies every string of r into one new buffer and points r at it. */
int run_row_own_strings(struct run_row *r, errand_error *err);
/* Frees an owned buffer and zeroes r. */
void run_row_clear(struct run_row *r);

/* The task-run object (new reference) into *out: 0, ERRAND_ENOMEM, or ERRAND_ESTORE when
 * stored JSON does not parse (a damaged database). */
int run_row_to_json(const struct run_row *r, json_t **out, errand_error *err);
/* The claim object: id, task, parameters, attempt, max_attempts, lease_token, lease_expires,
 * timeout_seconds, persist_result, cache_key. */
int run_row_claim_json(const struct run_row *r, json_t **out, errand_error *err);

/* Helpers shared by the store's other wire objects. */
json_t *run_json_time(int64_t unix_ms); /* RFC 3339 string, or null for 0 */
json_t *run_json_number(double v);      /* integer when whole, else real */
json_t *run_json_text_or_null(const char *s);
/* Parses stored JSON text (any type); NULL + err (ERRAND_ENOMEM or ERRAND_ESTORE) when it
 * does not parse. */
json_t *run_json_parse(const char *text, const char *what, const char *id, errand_error *err);

#endif
