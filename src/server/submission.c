/* SPDX-License-Identifier: MIT */
/*
 * submission.c — validation of task-run submissions (POST /api/task_runs and each element of
 * POST /api/task_runs/batch) against the field table of docs/api.md.
 *
 * Rules: the body is an object; fields not in the table are refused (unknown_field), so a
 * typo such as "retry" never silently means "no retries"; every field is type- and
 * range-checked; the only required field is task (missing_field). null means absent. The
 * first error wins and names the field ("runs[3].tags"; the message names the element,
 * "runs[3].tags[1]" — see field.h for the rule).
 * Times given in seconds are capped at SECONDS_MAX so that the store's millisecond arithmetic
 * (now + seconds * 1000, retry delays with jitter) can never overflow int64.
 */
#include "server/submission.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/traceparent.h"
#include "server/webhook_url.h"
#include "store/webhook_row.h"
#include "core/uuid.h"
#include "server/field.h"
#include "store/run_deps.h"
#include "store/run_row.h"

/* 100 years: longer than any sensible delay, timeout or cache lifetime, and small enough
 * that seconds * 1000 * (1 + RETRY_JITTER_MAX) fits comfortably in int64 milliseconds. */
#define SECONDS_MAX (100.0 * 365 * 24 * 3600)
/* Each retry delay is stretched by up to this factor (100 = up to 101 times the delay). */
#define RETRY_JITTER_MAX 100.0
/* A field path plus "[index]": names an array element in messages. */
#define LABEL_MAX (ERRAND_ERROR_FIELD_MAX + 24)

const char *const run_spec_fields[] = {
    "task",
    "parameters",
    "idempotency_key",
    "scheduled_at",
    "delay_seconds",
    "priority",
    "tags",
    "retries",
    "retry_delay_seconds",
    "retry_jitter_factor",
    "timeout_seconds",
    "cache_key",
    "cache_expiration_seconds",
    "persist_result",
    "traceparent",
    "wait_for",
    "allow_upstream_failure",
    "webhook_url",
    NULL,
};

static int set_text(char **dst, const char *src, errand_error *err)
{
    *dst = mem_strdup(src);
    return *dst ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static int parse_parameters(const json_t *obj, const char *prefix, struct run_spec *spec,
                            errand_error *err)
{
    const json_t *params = NULL;
    bool have = false;
    int rc = field_object(obj, prefix, "parameters", false, &params, &have, err);
    if (rc < 0)
        return rc;
    if (!have) {
        spec->parameters = mem_strdup("{}");
    } else {
        spec->parameters = json_compact(params);
    }
    return spec->parameters ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static int parse_tags(const json_t *obj, const char *prefix, struct run_spec *spec,
                      errand_error *err)
{
    const json_t *tags = NULL;
    bool have = false;
    int rc = field_array(obj, prefix, "tags", false, 0, RUN_SPEC_TAGS_MAX, &tags, &have, err);
    if (rc < 0)
        return rc;
    if (!have)
        return set_text(&spec->tags, "[]", err);
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, "tags");
    for (size_t i = 0; i < json_array_size(tags); i++) {
        const json_t *tag = json_array_get(tags, i);
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "%s[%zu]", path, i);
        if (!json_is_string(tag))
            return error_set(err, ERRAND_EINVAL, path, "field '%s' must be a string, got %s", label,
                             json_type_label(tag));
        size_t len = field_utf8_len(json_string_value(tag));
        if (len == 0 || len > RUN_SPEC_KEY_MAX)
            return error_set(err, ERRAND_EINVAL, path,
                             "field '%s' must be between 1 and %d characters, got %zu", label,
                             RUN_SPEC_KEY_MAX, len);
    }
    spec->tags = json_compact(tags);
    return spec->tags ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* retry_delay_seconds: one number, or an array of up to RUN_SPEC_DELAYS_MAX numbers. */
static int parse_retry_delays(const json_t *obj, const char *prefix, struct run_spec *spec,
                              errand_error *err)
{
    const char *name = "retry_delay_seconds";
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return 0;
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, name);
    if (json_is_number(v)) {
        int rc = field_check_number(json_number_value(v), path, path, 0, false, SECONDS_MAX, err);
        if (rc < 0)
            return rc;
        spec->retry_delays[0] = json_number_value(v);
        spec->n_retry_delays = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be a number or an array of numbers, got %s", path,
                         json_type_label(v));
    }
    const json_t *arr = NULL;
    int rc = field_array(obj, prefix, name, false, 0, RUN_SPEC_DELAYS_MAX, &arr, NULL, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *d = json_array_get(arr, i);
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "%s[%zu]", path, i);
        if (!json_is_number(d))
            return error_set(err, ERRAND_EINVAL, path, "field '%s' must be a number, got %s", label,
                             json_type_label(d));
        rc = field_check_number(json_number_value(d), path, label, 0, false, SECONDS_MAX, err);
        if (rc < 0)
            return rc;
        spec->retry_delays[i] = json_number_value(d);
    }
    spec->n_retry_delays = json_array_size(arr);
    return 0;
}

/* scheduled_at (RFC 3339) or delay_seconds (from now), not both; default now. */
static int parse_schedule(const json_t *obj, const char *prefix, int64_t now_ms,
                          struct run_spec *spec, errand_error *err)
{
    const char *at = NULL;
    double delay = 0;
    bool have_at = false, have_delay = false;
    int rc = json_get_string(obj, prefix, "scheduled_at", &at, &have_at, err);
    if (rc < 0)
        return rc;
    rc = field_number(obj, prefix, "delay_seconds", false, 0, false, SECONDS_MAX, &delay,
                      &have_delay, err);
    if (rc < 0)
        return rc;
    char path[ERRAND_ERROR_FIELD_MAX];
    if (have_at && have_delay) {
        field_path(path, prefix, "delay_seconds");
        return error_set(err, ERRAND_EINVAL, path,
                         "give either 'scheduled_at' or 'delay_seconds', not both");
    }
    spec->scheduled_at_ms = now_ms;
    if (have_delay)
        spec->scheduled_at_ms = now_ms + (int64_t)(delay * MS_PER_S + 0.5); /* delay >= 0 */
    if (have_at && !clock_parse_rfc3339(at, &spec->scheduled_at_ms)) {
        field_path(path, prefix, "scheduled_at");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be an RFC 3339 time such as "
                         "2026-11-29T10:25:19Z, got '%.64s'",
                         path, at);
    }
    return 0;
}

static int parse_keys(const json_t *obj, const char *prefix, struct run_spec *spec,
                      errand_error *err)
{
    const char *task = NULL, *key = NULL, *cache = NULL;
    bool have = false;
    int rc = field_string(obj, prefix, "task", true, WIRE_TASK_NAME_MAX, &task, NULL, err);
    if (rc < 0 || (rc = set_text(&spec->task, task, err)) < 0)
        return rc;
    rc = field_string(obj, prefix, "idempotency_key", false, RUN_SPEC_KEY_MAX, &key, &have, err);
    if (rc < 0 || (have && (rc = set_text(&spec->idempotency_key, key, err)) < 0))
        return rc;
    rc = field_string(obj, prefix, "cache_key", false, RUN_SPEC_KEY_MAX, &cache, &have, err);
    if (rc < 0 || (have && (rc = set_text(&spec->cache_key, cache, err)) < 0))
        return rc;
    return 0;
}

/* traceparent: a W3C Trace Context value (core/traceparent.h), stored as given. */
static int parse_traceparent(const json_t *obj, const char *prefix, struct run_spec *spec,
                             errand_error *err)
{
    const char *tp = NULL;
    bool have = false;
    int rc = field_string(obj, prefix, "traceparent", false, TRACEPARENT_LEN + 1, &tp, &have, err);
    if (rc < 0 || !have)
        return rc;
    if (!traceparent_valid(tp)) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, "traceparent");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be a W3C traceparent such as "
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (version 00, "
                         "lower-case hex, ids not all zeros), got '%.64s'",
                         path, tp);
    }
    return set_text(&spec->traceparent, tp, err);
}

/* webhook_url: where the run's end is reported (server/webhook_sender.h). */
static int parse_webhook(const json_t *obj, const char *prefix, struct run_spec *spec,
                         errand_error *err)
{
    const char *url = NULL;
    bool have = false;
    int rc = field_string(obj, prefix, "webhook_url", false, WEBHOOK_URL_MAX, &url, &have, err);
    if (rc < 0 || !have)
        return rc;
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, "webhook_url");
    if ((rc = webhook_url_check(url, path, err)) < 0)
        return rc;
    return set_text(&spec->webhook_url, url, err);
}

static int parse_policy(const json_t *obj, const char *prefix, struct run_spec *spec,
                        errand_error *err)
{
    long long priority = 0, retries = 0;
    bool persist = false, have = false;
    int rc = field_int(obj, prefix, "priority", false, INT_MIN, INT_MAX, &priority, NULL, err);
    if (rc < 0)
        return rc;
    spec->priority = (int)priority;
    rc = field_int(obj, prefix, "retries", false, 0, RUN_SPEC_RETRIES_MAX, &retries, NULL, err);
    if (rc < 0)
        return rc;
    spec->retries = (int)retries;
    rc = parse_retry_delays(obj, prefix, spec, err);
    if (rc < 0)
        return rc;
    rc = field_number(obj, prefix, "retry_jitter_factor", false, 0, false, RETRY_JITTER_MAX,
                      &spec->retry_jitter_factor, NULL, err);
    if (rc < 0)
        return rc;
    rc = field_number(obj, prefix, "timeout_seconds", false, 0, true, SECONDS_MAX,
                      &spec->timeout_seconds, NULL, err);
    if (rc < 0)
        return rc;
    rc = field_number(obj, prefix, "cache_expiration_seconds", false, 0, true, SECONDS_MAX,
                      &spec->cache_expiration_seconds, NULL, err);
    if (rc < 0)
        return rc;
    rc = json_get_bool(obj, prefix, "persist_result", &persist, &have, err);
    if (rc < 0)
        return rc;
    spec->persist_result = have ? (persist ? 1 : 0) : -1;
    return 0;
}

/* --- dependencies (store/run_deps.h) ----------------------------------------------- */

/* A not-in-a-batch index: batch references are refused. */
#define NOT_IN_BATCH SIZE_MAX

/* Checks one upstream reference (named label in messages): a run id, or "runs[N]" for an
 * earlier run of the batch; *out the stored spelling (an id in lower case). */
static int check_ref(const json_t *ref, const char *path, const char *label, size_t batch_index,
                     json_t **out, errand_error *err)
{
    const char *text = json_string_value(ref);
    if (!text)
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be a task-run id or \"runs[N]\", got %s", label,
                         json_type_label(ref));
    size_t n;
    if (run_deps_batch_ref(text, &n)) {
        if (batch_index == NOT_IN_BATCH)
            return error_set(err, ERRAND_EINVAL, path,
                             "field '%s' is '%s', a reference into a batch: only a run of "
                             "POST /api/task_runs/batch can name another run of its batch",
                             label, text);
        if (n >= batch_index)
            return error_set(err, ERRAND_EINVAL, path,
                             "field '%s' is '%s': a run can only wait for runs before it in its "
                             "batch (this is runs[%zu])",
                             label, text, batch_index);
        *out = json_string(text);
    } else if (uuid_is_valid(text)) {
        char id[37];
        run_id_norm(text, id);
        *out = json_string(id);
    } else {
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be a task-run id or \"runs[N]\", got '%.64s'", label,
                         text);
    }
    return *out ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* Adds ref (stolen) to the array of distinct upstream references. */
static int add_upstream(json_t *ups, json_t *ref, const char *path, errand_error *err)
{
    for (size_t i = 0; i < json_array_size(ups); i++)
        if (json_equal(json_array_get(ups, i), ref)) {
            json_decref(ref);
            return 0;
        }
    if (json_array_size(ups) >= WIRE_WAIT_FOR_MAX) {
        json_decref(ref);
        return error_set(err, ERRAND_EINVAL, path,
                         "a run can wait for at most %d upstream runs (wait_for and the "
                         "{\"$result\": ...} references in its parameters)",
                         WIRE_WAIT_FOR_MAX);
    }
    return json_array_append_new(ups, ref) == 0
               ? 0
               : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

struct ref_walk {
    const char *path; /* "parameters", as named in messages */
    size_t batch_index;
    json_t *ups;  /* distinct upstream references */
    json_t *refs; /* [path, reference] pairs */
    json_t *at;   /* the path walked so far */
};

/* Finds every {"$result": "<reference>"} in v. */
static int walk_refs(struct ref_walk *w, const json_t *v, errand_error *err)
{
    if (json_is_object(v)) {
        const json_t *ref = json_object_get(v, RUN_DEPS_RESULT_KEY);
        if (ref) {
            char *where = json_compact(w->at);
            char label[LABEL_MAX];
            snprintf(label, sizeof label, "%s at %s", w->path, where ? where : "?");
            mem_free(where);
            if (json_object_size(v) != 1)
                return error_set(err, ERRAND_EINVAL, w->path,
                                 "%s: a result reference is an object with the one key "
                                 "\"$result\", got other keys beside it",
                                 label);
            json_t *norm = NULL, *pair = NULL;
            int rc = check_ref(ref, w->path, label, w->batch_index, &norm, err);
            if (rc < 0)
                return rc;
            /* w->at changes as the walk goes on: the pair keeps a copy */
            if (!(pair = json_pack("[o,O]", json_deep_copy(w->at), norm)) ||
                json_array_append_new(w->refs, pair) < 0) {
                json_decref(norm);
                return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            }
            return add_upstream(w->ups, norm, w->path, err);
        }
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            if (json_array_append_new(w->at, json_string(key)) < 0)
                return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            int rc = walk_refs(w, child, err);
            json_array_remove(w->at, json_array_size(w->at) - 1);
            if (rc < 0)
                return rc;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (json_array_append_new(w->at, json_integer((json_int_t)i)) < 0)
                return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            int rc = walk_refs(w, json_array_get(v, i), err);
            json_array_remove(w->at, json_array_size(w->at) - 1);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* wait_for, allow_upstream_failure and the result references in the parameters. */
static int parse_deps(const json_t *obj, const char *prefix, size_t batch_index,
                      struct run_spec *spec, errand_error *err)
{
    int rc = json_get_bool(obj, prefix, "allow_upstream_failure", &spec->allow_upstream_failure,
                           NULL, err);
    const json_t *wait_for = NULL;
    if (rc < 0 || (rc = field_array(obj, prefix, "wait_for", false, 0, WIRE_WAIT_FOR_MAX, &wait_for,
                                    NULL, err)) < 0)
        return rc;
    char path[ERRAND_ERROR_FIELD_MAX], params_path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, "wait_for");
    field_path(params_path, prefix, "parameters");
    struct ref_walk w = {.path = params_path,
                         .batch_index = batch_index,
                         .ups = json_array(),
                         .refs = json_array(),
                         .at = json_array()};
    if (!w.ups || !w.refs || !w.at)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < json_array_size(wait_for); i++) {
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "%s[%zu]", path, i);
        json_t *norm = NULL;
        if ((rc = check_ref(json_array_get(wait_for, i), path, label, batch_index, &norm, err)) ==
            0)
            rc = add_upstream(w.ups, norm, path, err);
    }
    if (rc == 0) {
        const json_t *params = json_object_get(obj, "parameters");
        rc = params ? walk_refs(&w, params, err) : 0;
    }
    if (rc == 0 && json_array_size(w.ups) > 0 && !(spec->wait_for = json_compact(w.ups)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (rc == 0 && json_array_size(w.refs) > 0 && !(spec->result_refs = json_compact(w.refs)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_decref(w.ups);
    json_decref(w.refs);
    json_decref(w.at);
    return rc;
}

static int parse_one(const json_t *obj, const char *prefix, size_t batch_index, int64_t now_ms,
                     struct run_spec *spec, errand_error *err)
{
    memset(spec, 0, sizeof *spec);
    spec->persist_result = -1;
    int rc = field_require_object(obj, prefix, err);
    if (rc < 0)
        return rc;
    if ((rc = json_check_fields(obj, prefix, run_spec_fields, err)) < 0 ||
        (rc = parse_keys(obj, prefix, spec, err)) < 0 ||
        (rc = parse_parameters(obj, prefix, spec, err)) < 0 ||
        (rc = parse_schedule(obj, prefix, now_ms, spec, err)) < 0 ||
        (rc = parse_tags(obj, prefix, spec, err)) < 0 ||
        (rc = parse_policy(obj, prefix, spec, err)) < 0 ||
        (rc = parse_traceparent(obj, prefix, spec, err)) < 0 ||
        (rc = parse_webhook(obj, prefix, spec, err)) < 0 ||
        (rc = parse_deps(obj, prefix, batch_index, spec, err)) < 0) {
        run_spec_clear(spec);
        return rc;
    }
    return 0;
}

int run_spec_parse(const json_t *obj, const char *prefix, int64_t now_ms, struct run_spec *spec,
                   errand_error *err)
{
    return parse_one(obj, prefix, NOT_IN_BATCH, now_ms, spec, err);
}

const char *const run_spec_batch_fields[] = {"runs", NULL};

int run_spec_parse_batch(const json_t *body, int64_t now_ms, struct run_spec **specs, size_t *n,
                         errand_error *err)
{
    *specs = NULL;
    *n = 0;
    const json_t *runs = NULL;
    int rc = field_require_object(body, NULL, err);
    if (rc < 0 || (rc = json_check_fields(body, NULL, run_spec_batch_fields, err)) < 0 ||
        (rc = field_array(body, NULL, "runs", true, 1, WIRE_SUBMIT_BATCH_MAX, &runs, NULL, err)) <
            0)
        return rc;
    size_t count = json_array_size(runs);
    struct run_spec *out = mem_calloc(count, sizeof *out);
    if (!out)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory for %zu runs", count);
    for (size_t i = 0; i < count; i++) {
        char prefix[ERRAND_ERROR_FIELD_MAX];
        snprintf(prefix, sizeof prefix, "runs[%zu]", i);
        rc = parse_one(json_array_get(runs, i), prefix, i, now_ms, &out[i], err);
        if (rc < 0) {
            run_spec_free_array(out, i);
            return rc;
        }
    }
    *specs = out;
    *n = count;
    return 0;
}

int run_spec_trace_default(struct run_spec *specs, size_t n, const char *header, errand_error *err)
{
    if (!traceparent_valid(header)) /* W3C: an invalid traceparent header is ignored */
        return 0;
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (!specs[i].traceparent && (rc = set_text(&specs[i].traceparent, header, err)) < 0)
            return rc;
    }
    return 0;
}
