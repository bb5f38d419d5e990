/* SPDX-License-Identifier: MIT */
/*
 * run_spec.h — a new task run as the store inserts it: every field already checked
 * (server/submission.h reads one from the wire) and every time resolved, so a backend
 * stores it without further checks.
 */
#ifndef ERRAND_STORE_RUN_SPEC_H
#define ERRAND_STORE_RUN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"

#define RUN_SPEC_KEY_MAX 200
#define RUN_SPEC_TAGS_MAX 64
#define RUN_SPEC_DELAYS_MAX 100
#define RUN_SPEC_RETRIES_MAX 1000

struct run_spec {
    char *task;
    char *parameters;        /* compact JSON object text */
    char *idempotency_key;   /* NULL = none */
    int64_t scheduled_at_ms; /* already resolved from scheduled_at / delay_seconds / now */
    int priority;
    char *tags; /* compact JSON array text of strings */
    int retries;
    double retry_delays[RUN_SPEC_DELAYS_MAX];
    size_t n_retry_delays;
    double retry_jitter_factor;
    double timeout_seconds;          /* 0 = none */
    char *cache_key;                 /* NULL = none */
    double cache_expiration_seconds; /* 0 = never */
    int persist_result;              /* -1 unset, 0, 1 */
    char *retry_of;                  /* the run this one retries, NULL = none */
    char *traceparent; /* W3C traceparent (core/traceparent.h, checked), NULL = none */
    /* Dependencies (store/run_deps.h): the upstream runs as a JSON array text of references
       — run ids in lower case, or "runs[N]" for an earlier run of the same batch — NULL =
       none; the places in parameters that take an upstream's result, as JSON array text of
       [path, reference] pairs (a path is an array of keys and indexes), NULL = none; and
       whether the run starts even when an upstream does not complete. */
    char *wait_for;
    char *result_refs;
    bool allow_upstream_failure;
    /* The URL its end is reported to (store/webhook_row.h), checked (http or https, at most
       WEBHOOK_URL_MAX bytes); NULL = its task's webhook, if any. */
    char *webhook_url;
};

/* The spec's retry delays as JSON array text ("[]" when none); NULL when out of memory. */
char *run_spec_delays_json(const struct run_spec *spec);

/* A cache hit: a new run created COMPLETED/"Cached" with its source's result. */
struct run_cache_hit {
    const char *message; /* "cached result of run <id>" */
    const char *result;
    const char *result_ref;
};
/* The row of a run created from spec with id at now_ms (SCHEDULED, or COMPLETED/"Cached"
 * when hit is not NULL), as the store answers without reading it back; strings owned. */
struct run_row;
int run_spec_created_row(const struct run_spec *spec, const char *id, const char *delays_json,
                         int64_t now_ms, const struct run_cache_hit *hit, struct run_row *r,
                         errand_error *err);

/* Frees the strings of spec and resets it (persist_result -1). */
void run_spec_clear(struct run_spec *spec);
/* Clears n specs and frees the array. */
void run_spec_free_array(struct run_spec *specs, size_t n);

#endif
