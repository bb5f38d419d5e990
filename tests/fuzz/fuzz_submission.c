/* SPDX-License-Identifier: MIT */
/*
 * fuzz_submission.c — libFuzzer harness for the submission path of the server: the bytes of
 * a POST /api/task_runs or /api/task_runs/batch body go through json_parse_text (as
 * http_request_json does), then run_spec_parse and run_spec_parse_batch.
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks the contracts the store
 * relies on when a spec is accepted (task present and within its length, parameters and
 * tags stored as compact JSON that reads back equal to what was sent, retry delays within
 * their bounds), and that one object gives the same verdict alone and as runs[0] of a batch,
 * with the batch error naming the field "runs[0].<field>" (server/field.h, naming rule).
 * Each input is then parsed once more with allocations failing (fuzz_common.h).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "fuzz_common.h"
#include "server/field.h"
#include "server/submission.h"

#define BATCH_PREFIX "runs[0]."
/* run_spec.c caps every duration at 100 years. */
#define SECONDS_MAX (100.0 * 365 * 24 * 3600)
#define JITTER_MAX 100.0

/* text must be compact JSON that reads back equal to want (an object or array). */
static void check_json_text(const char *text, const json_t *want, const char *what)
{
    FUZZ_CHECK(text != NULL, "%s is NULL on success", what);
    json_error_t jerr;
    json_t *back = json_loads(text, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(back != NULL, "%s does not read back: %s (%s)", what, jerr.text, text);
    FUZZ_CHECK(json_equal(back, want), "%s reads back different: %s", what, text);
    json_decref(back);
}

static void check_spec(const struct run_spec *spec, const json_t *obj)
{
    FUZZ_CHECK(spec->task != NULL, "accepted spec without task");
    size_t task_len = field_utf8_len(spec->task);
    FUZZ_CHECK(task_len >= 1 && task_len <= WIRE_TASK_NAME_MAX, "task of %zu characters", task_len);

    const json_t *params = json_object_get(obj, "parameters");
    if (params && !json_is_null(params)) {
        check_json_text(spec->parameters, params, "parameters");
    } else {
        FUZZ_CHECK(spec->parameters && strcmp(spec->parameters, "{}") == 0,
                   "absent parameters stored as %s", spec->parameters ? spec->parameters : "NULL");
    }
    const json_t *tags = json_object_get(obj, "tags");
    if (tags && !json_is_null(tags)) {
        check_json_text(spec->tags, tags, "tags");
        FUZZ_CHECK(json_array_size(tags) <= RUN_SPEC_TAGS_MAX, "%zu tags accepted",
                   json_array_size(tags));
    } else {
        FUZZ_CHECK(spec->tags && strcmp(spec->tags, "[]") == 0, "absent tags stored as %s",
                   spec->tags ? spec->tags : "NULL");
    }

    FUZZ_CHECK(spec->retries >= 0 && spec->retries <= RUN_SPEC_RETRIES_MAX, "retries %d",
               spec->retries);
    FUZZ_CHECK(spec->n_retry_delays <= RUN_SPEC_DELAYS_MAX, "%zu retry delays",
               spec->n_retry_delays);
    for (size_t i = 0; i < spec->n_retry_delays; i++)
        FUZZ_CHECK(isfinite(spec->retry_delays[i]) && spec->retry_delays[i] >= 0 &&
                       spec->retry_delays[i] <= SECONDS_MAX,
                   "retry delay %g", spec->retry_delays[i]);
    FUZZ_CHECK(spec->retry_jitter_factor >= 0 && spec->retry_jitter_factor <= JITTER_MAX,
               "jitter %g", spec->retry_jitter_factor);
    FUZZ_CHECK(spec->timeout_seconds >= 0 && spec->timeout_seconds <= SECONDS_MAX, "timeout %g",
               spec->timeout_seconds);
    FUZZ_CHECK(spec->cache_expiration_seconds >= 0 &&
                   spec->cache_expiration_seconds <= SECONDS_MAX,
               "cache expiration %g", spec->cache_expiration_seconds);
    FUZZ_CHECK(spec->persist_result >= -1 && spec->persist_result <= 1, "persist_result %d",
               spec->persist_result);
    if (spec->idempotency_key)
        FUZZ_CHECK(field_utf8_len(spec->idempotency_key) <= RUN_SPEC_KEY_MAX,
                   "idempotency_key too long");
    if (spec->cache_key)
        FUZZ_CHECK(field_utf8_len(spec->cache_key) <= RUN_SPEC_KEY_MAX, "cache_key too long");
}

/* run_spec_parse on obj; returns its code and leaves the error in *err. */
static int parse_single(const json_t *obj, errand_error *err, int check)
{
    struct run_spec spec;
    error_clear(err);
    int rc = run_spec_parse(obj, NULL, FUZZ_NOW_MS, &spec, err);
    if (rc == 0) {
        if (check)
            check_spec(&spec, obj);
        run_spec_clear(&spec);
    } else {
        fuzz_check_error(rc, err, "run_spec_parse");
    }
    return rc;
}

static int parse_batch(const json_t *body, errand_error *err, int check)
{
    struct run_spec *specs = NULL;
    size_t n = 0;
    error_clear(err);
    int rc = run_spec_parse_batch(body, FUZZ_NOW_MS, &specs, &n, err);
    if (rc == 0) {
        const json_t *runs = json_object_get(body, "runs");
        FUZZ_CHECK(specs != NULL && n >= 1 && n == json_array_size(runs),
                   "batch accepted %zu specs of %zu runs", n, json_array_size(runs));
        for (size_t i = 0; check && i < n; i++)
            check_spec(&specs[i], json_array_get(runs, i));
        run_spec_free_array(specs, n);
    } else {
        FUZZ_CHECK(specs == NULL && n == 0, "failed batch left %zu specs", n);
        fuzz_check_error(rc, err, "run_spec_parse_batch");
    }
    return rc;
}

/* {"runs": runs}, or NULL when out of memory. */
static json_t *wrap_runs(json_t *runs)
{
    json_t *body = json_object();
    if (body && json_object_set(body, "runs", runs) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* An object alone and as the only element of a batch: same verdict, field prefixed. */
static void check_single_vs_batch(json_t *obj)
{
    errand_error single_err, batch_err;
    int single_rc = parse_single(obj, &single_err, 1);

    json_t *runs = json_array();
    FUZZ_CHECK(runs && json_array_append(runs, obj) == 0, "out of memory building the batch");
    json_t *body = wrap_runs(runs);
    json_decref(runs);
    FUZZ_CHECK(body != NULL, "out of memory building the batch");
    int batch_rc = parse_batch(body, &batch_err, 1);
    json_decref(body);

    FUZZ_CHECK(single_rc == batch_rc, "alone: %d (%s), as runs[0]: %d (%s)", single_rc,
               single_err.message, batch_rc, batch_err.message);
    if (single_rc < 0 && single_err.field[0] != '\0' &&
        strlen(BATCH_PREFIX) + strlen(single_err.field) < ERRAND_ERROR_FIELD_MAX) {
        char want[ERRAND_ERROR_FIELD_MAX];
        snprintf(want, sizeof want, "%s%s", BATCH_PREFIX, single_err.field);
        FUZZ_CHECK(strcmp(want, batch_err.field) == 0,
                   "alone the error names '%s', as runs[0] it names '%s' (want '%s')",
                   single_err.field, batch_err.field, want);
    }
}

/* The same calls with the N-th allocation failing: any code is fine, a leak or crash not. */
static void parse_with_failing_allocations(json_t *v, long budget)
{
    errand_error err;
    mem_fail_after(budget);
    if (json_is_object(v)) {
        parse_single(v, &err, 0);
    }
    parse_batch(v, &err, 0);
    mem_fail_after(-1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = fuzz_parse_body(data, size);
    if (!v)
        return 0;
    errand_error err;
    error_clear(&err);

    if (json_is_object(v)) {
        check_single_vs_batch(v);
        /* The body as the batch endpoint gets it (a {"runs": [...]} object). */
        parse_batch(v, &err, 1);
    } else if (json_is_array(v)) {
        /* A bare array: fuzz the batch elements without the fuzzer having to find the
           wrapper. */
        json_t *body = wrap_runs(v);
        FUZZ_CHECK(body != NULL, "out of memory building the batch");
        parse_batch(body, &err, 1);
        parse_with_failing_allocations(body, fuzz_oom_budget(data, size));
        json_decref(body);
    } else {
        /* Not an object: both parsers must refuse it. */
        FUZZ_CHECK(parse_single(v, &err, 1) < 0, "run_spec_parse accepted a %s",
                   json_type_label(v));
        FUZZ_CHECK(parse_batch(v, &err, 1) < 0, "run_spec_parse_batch accepted a %s",
                   json_type_label(v));
    }
    if (json_is_object(v))
        parse_with_failing_allocations(v, fuzz_oom_budget(data, size));
    json_decref(v);
    return 0;
}
