/* SPDX-License-Identifier: MIT */
/*
 * run_row.h — a task run as the store read it (or is about to write it): the one form in
 * which runs cross the store interface (store/store.h), whatever the backend. The server
 * turns rows into the wire objects of docs/api.md (server/run_json.h); the store never
 * formats.
 *
 * Strings are either borrowed (the row points into a statement or a spec that outlives it)
 * or owned: run_row_own_strings() copies every string into one buffer, so a row can leave
 * the store with one allocation. Rows handed out by store.h are always owned.
 */
#ifndef ERRAND_STORE_RUN_ROW_H
#define ERRAND_STORE_RUN_ROW_H

#include <stdbool.h>
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
    int redeliveries; /* returns to the queue without an outcome (state.h) */
    int64_t created;
    int64_t scheduled_at;
    int64_t started;
    int64_t finished;
    const char *worker; /* NULL = none */
    int priority;
    const char *tags; /* JSON array text of strings */
    const char *idempotency_key;
    const char *cache_key;
    int retries;
    const char *retry_delays; /* JSON array text of numbers (seconds) */
    double retry_jitter_factor;
    double timeout_seconds; /* 0 = none */
    int persist_result;     /* -1 = unset */
    const char *result;     /* JSON text, NULL = not inlined */
    const char *result_ref;
    const char *retry_of;        /* the run this one retries (POST .../retry), NULL = none */
    const char *traceparent;     /* W3C trace context it was submitted with, NULL = none */
    const char *wait_for;        /* JSON array text of the upstream run ids, NULL = none */
    bool allow_upstream_failure; /* starts even when an upstream does not complete */
    const char *lease_token;     /* claimed rows only */
    int64_t lease_expires;       /* while a worker holds the run (every row read), else 0 */
    char *owned;                 /* buffer behind the strings when owned, else NULL */
};

/* Task-run ids are stored in lower case: an id given in upper case (valid on the wire) is
 * folded, and one too long to be an id becomes "" (matches nothing). */
void run_id_norm(const char *id, char out[37]);

/* Copies every string of r into one new buffer and points r at it. */
int run_row_own_strings(struct run_row *r, errand_error *err);
/* Frees an owned buffer and zeroes r. */
void run_row_clear(struct run_row *r);

/* Rows in an order the call that filled it states; every row owned. */
struct run_list {
    struct run_row *rows;
    size_t n;
};

/* Clears every row and frees the array; l is empty afterwards. */
void run_list_clear(struct run_list *l);

#endif
