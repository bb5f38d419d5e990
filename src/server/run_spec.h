/*
 * run_spec.h — a validated task-run submission: the JSON body of POST /api/task_runs (or one
 * element of a batch) checked field by field and turned into a struct the store can insert
 * without further checks. Every rejection names the field, as docs/api.md lists.
 */
#ifndef ERRAND_SERVER_RUN_SPEC_H
#define ERRAND_SERVER_RUN_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/wire_limits.h"
#include "errand/errand.h"

#define RUN_SPEC_KEY_MAX 200
#define RUN_SPEC_TAGS_MAX 64
#define RUN_SPEC_DELAYS_MAX 100
#define RUN_SPEC_RETRIES_MAX 1000

struct run_spec {
    char *task;
    char *parameters;      /* compact JSON object text */
    char *idempotency_key; /* NULL = none */
    int64_t scheduled_at_ms; /* already resolved from scheduled_at / delay_seconds / now */
    int priority;
    char *tags;            /* compact JSON array text of strings */
    int retries;
    double retry_delays[RUN_SPEC_DELAYS_MAX];
    size_t n_retry_delays;
    double retry_jitter_factor;
    double timeout_seconds;      /* 0 = none */
    char *cache_key;             /* NULL = none */
    double cache_expiration_seconds; /* 0 = never */
    int persist_result;          /* -1 unset, 0, 1 */
};

/* Parses one submission object. prefix names it in errors ("runs[3]" or NULL). now_ms
 * resolves delay_seconds. On failure spec holds nothing to free. */
int run_spec_parse(const json_t *obj, const char *prefix, int64_t now_ms, struct run_spec *spec,
                   errand_error *err);

/* Parses {"runs": [...]}: *specs is a mem_alloc'd array of *n specs. */
int run_spec_parse_batch(const json_t *body, int64_t now_ms, struct run_spec **specs, size_t *n,
                         errand_error *err);

void run_spec_clear(struct run_spec *spec);
void run_spec_free_array(struct run_spec *specs, size_t n);

#endif
