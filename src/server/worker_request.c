/* SPDX-License-Identifier: MIT */
/*
 * worker_request.c — parsing of claim, heartbeat and report bodies (see worker_request.h).
 * Cross-field rule: result and result_ref only make sense with state COMPLETED, so they are
 * refused elsewhere (a worker sending a result with FAILED has a bug that would otherwise
 * lose the result silently).
 */
#include "server/worker_request.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "server/field.h"

/* Longest keyword field (a state or log level name) read before it is looked up. */
#define KEYWORD_MAX 32

static const struct {
    const char *name;
    errand_log_level level;
} log_levels[] = {
    {"debug", ERRAND_LOG_DEBUG},
    {"info", ERRAND_LOG_INFO},
    {"warning", ERRAND_LOG_WARNING},
    {"error", ERRAND_LOG_ERROR},
};

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static void item_prefix(char out[ERRAND_ERROR_FIELD_MAX], const char *array, size_t i)
{
    snprintf(out, ERRAND_ERROR_FIELD_MAX, "%s[%zu]", array, i);
}

/* A required task-run id. */
static int parse_id(const json_t *obj, const char *prefix, const char **out, errand_error *err)
{
    int rc = field_string(obj, prefix, "id", true, UUID_STR_LEN, out, NULL, err);
    if (rc < 0)
        return rc;
    if (!uuid_is_valid(*out)) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, "id");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be a task-run UUID, got '%.40s'", path, *out);
    }
    return 0;
}

/* An optional string of 0..max characters (messages may be empty). */
static int parse_text(const json_t *obj, const char *prefix, const char *name, size_t max,
                      const char **out, errand_error *err)
{
    bool have = false;
    int rc = json_get_string(obj, prefix, name, out, &have, err);
    if (rc < 0 || !have)
        return rc;
    if (field_utf8_len(*out) > max) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, name);
        return error_set(err, ERRAND_EINVAL, path, "field '%s' must be at most %zu characters",
                         path, max);
    }
    return 0;
}

static int parse_lease_seconds(const json_t *body, int fallback, int *out, errand_error *err)
{
    long long v = fallback;
    int rc = field_int(body, NULL, "lease_seconds", false, WIRE_LEASE_SECONDS_MIN,
                       WIRE_LEASE_SECONDS_MAX, &v, NULL, err);
    *out = (int)v;
    return rc;
}

/* --- the fields of each body (worker_request.h) ---------------------------------------- */

const char *const worker_claim_fields[] = {"worker",        "tasks",      "limit", "wait_seconds",
                                           "lease_seconds", "request_id", NULL};
const char *const worker_heartbeat_fields[] = {"worker", "leases", "lease_seconds", NULL};
const char *const worker_lease_fields[] = {"id", "lease_token", "waiting", NULL};
const char *const worker_report_fields[] = {"worker", "batch_id", "reports", "logs", NULL};
const char *const worker_report_item_fields[] = {"id",         "lease_token", "state",     "result",
                                                 "result_ref", "message",     "retryable", NULL};
const char *const worker_log_fields[] = {"id", "timestamp", "level", "message", NULL};

/* --- claim ---------------------------------------------------------------------------- */

int worker_parse_claim(const json_t *body, int default_lease_seconds, struct claim_body *out,
                       errand_error *err)
{
    memset(out, 0, sizeof *out);
    const json_t *tasks = NULL;
    long long limit = CLAIM_LIMIT_DEFAULT;
    out->wait_seconds = CLAIM_WAIT_DEFAULT_S;
    int rc;
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, worker_claim_fields, err)) < 0 ||
        (rc = field_string(body, NULL, "worker", true, WIRE_WORKER_NAME_MAX, &out->req.worker, NULL,
                           err)) < 0 ||
        (rc = field_array(body, NULL, "tasks", true, 1, WIRE_WORKER_TASKS_MAX, &tasks, NULL, err)) <
            0 ||
        (rc = field_int(body, NULL, "limit", false, 1, WIRE_CLAIM_LIMIT_MAX, &limit, NULL, err)) <
            0 ||
        (rc = field_number(body, NULL, "wait_seconds", false, 0, false, CLAIM_WAIT_MAX_S,
                           &out->wait_seconds, NULL, err)) < 0 ||
        (rc = parse_lease_seconds(body, default_lease_seconds, &out->req.lease_seconds, err)) < 0 ||
        (rc = field_string(body, NULL, "request_id", false, WIRE_REQUEST_ID_MAX,
                           &out->req.request_id, NULL, err)) < 0)
        return rc;
    out->req.limit = (int)limit;
    size_t n = json_array_size(tasks);
    out->tasks = mem_calloc(n, sizeof *out->tasks);
    if (!out->tasks)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tasks, i);
        char label[ERRAND_ERROR_FIELD_MAX];
        snprintf(label, sizeof label, "tasks[%zu]", i);
        size_t len = json_is_string(t) ? field_utf8_len(json_string_value(t)) : 0;
        if (!json_is_string(t) || len == 0 || len > WIRE_TASK_NAME_MAX) {
            rc = json_is_string(t)
                     ? error_set(err, ERRAND_EINVAL, "tasks",
                                 "field '%s' must be between 1 and %d characters, got %zu", label,
                                 WIRE_TASK_NAME_MAX, len)
                     : error_set(err, ERRAND_EINVAL, "tasks", "field '%s' must be a string, got %s",
                                 label, json_type_label(t));
            worker_claim_clear(out);
            return rc;
        }
        out->tasks[i] = json_string_value(t);
    }
    out->req.tasks = out->tasks;
    out->req.n_tasks = n;
    return 0;
}

void worker_claim_clear(struct claim_body *b)
{
    mem_free(b->tasks);
    memset(b, 0, sizeof *b);
}

/* --- heartbeat ------------------------------------------------------------------------ */

static int parse_lease_ref(const json_t *item, const char *prefix, struct lease_ref *out,
                           errand_error *err)
{
    int rc;
    if ((rc = field_require_object(item, prefix, err)) < 0 ||
        (rc = json_check_fields(item, prefix, worker_lease_fields, err)) < 0 ||
        (rc = parse_id(item, prefix, &out->id, err)) < 0 ||
        (rc = field_string(item, prefix, "lease_token", true, LEASE_TOKEN_MAX, &out->lease_token,
                           NULL, err)) < 0)
        return rc;
    bool waiting = false, have = false;
    if ((rc = json_get_bool(item, prefix, "waiting", &waiting, &have, err)) < 0)
        return rc;
    out->waiting = have ? (waiting ? 1 : 0) : -1;
    return 0;
}

int worker_parse_heartbeat(const json_t *body, int default_lease_seconds,
                           struct heartbeat_body *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    const json_t *leases = NULL;
    int rc;
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, worker_heartbeat_fields, err)) < 0 ||
        (rc = field_string(body, NULL, "worker", true, WIRE_WORKER_NAME_MAX, &out->worker, NULL,
                           err)) < 0 ||
        (rc = field_array(body, NULL, "leases", true, 0, WIRE_HEARTBEAT_LEASES_MAX, &leases, NULL,
                          err)) < 0 ||
        (rc = parse_lease_seconds(body, default_lease_seconds, &out->lease_seconds, err)) < 0)
        return rc;
    size_t n = json_array_size(leases);
    out->leases = mem_calloc(n ? n : 1, sizeof *out->leases);
    if (!out->leases)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        char prefix[ERRAND_ERROR_FIELD_MAX];
        item_prefix(prefix, "leases", i);
        rc = parse_lease_ref(json_array_get(leases, i), prefix, &out->leases[i], err);
        if (rc < 0) {
            worker_heartbeat_clear(out);
            return rc;
        }
    }
    out->n_leases = n;
    return 0;
}

void worker_heartbeat_clear(struct heartbeat_body *b)
{
    mem_free(b->leases);
    memset(b, 0, sizeof *b);
}

/* --- report --------------------------------------------------------------------------- */

static int parse_report_state(const json_t *item, const char *prefix, errand_state *out,
                              errand_error *err)
{
    const char *text = NULL;
    int rc = field_string(item, prefix, "state", true, KEYWORD_MAX, &text, NULL, err);
    if (rc < 0)
        return rc;
    errand_state s;
    if (!state_parse(text, &s) ||
        (s != ERRAND_STATE_RUNNING && s != ERRAND_STATE_COMPLETED && s != ERRAND_STATE_FAILED &&
         s != ERRAND_STATE_CANCELLED && s != ERRAND_STATE_SCHEDULED)) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, "state");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be RUNNING, COMPLETED, FAILED, CANCELLED or "
                         "SCHEDULED, got '%.32s'",
                         path, text);
    }
    *out = s;
    return 0;
}

static int parse_report(const json_t *item, const char *prefix, struct run_report *out,
                        errand_error *err)
{
    memset(out, 0, sizeof *out);
    out->retryable = true;
    bool have_ref = false;
    int rc;
    if ((rc = field_require_object(item, prefix, err)) < 0 ||
        (rc = json_check_fields(item, prefix, worker_report_item_fields, err)) < 0 ||
        (rc = parse_id(item, prefix, &out->id, err)) < 0 ||
        (rc = field_string(item, prefix, "lease_token", true, LEASE_TOKEN_MAX, &out->lease_token,
                           NULL, err)) < 0 ||
        (rc = parse_report_state(item, prefix, &out->state, err)) < 0 ||
        (rc = field_string(item, prefix, "result_ref", false, WIRE_RESULT_REF_MAX, &out->result_ref,
                           &have_ref, err)) < 0 ||
        (rc = parse_text(item, prefix, "message", WIRE_MESSAGE_MAX, &out->message, err)) < 0 ||
        (rc = json_get_bool(item, prefix, "retryable", &out->retryable, NULL, err)) < 0)
        return rc;
    /* A present "result": null is the task's null result, not an absent one. */
    const json_t *result = json_object_get(item, "result");
    if ((result || have_ref) && out->state != ERRAND_STATE_COMPLETED) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, result ? "result" : "result_ref");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' is only allowed with state COMPLETED", path);
    }
    if (result && !(out->result = json_compact(result)))
        return oom(err);
    return 0;
}

static int parse_log(const json_t *item, const char *prefix, int64_t now_ms, struct log_entry *out,
                     errand_error *err)
{
    const char *ts = NULL, *level = NULL;
    bool have_ts = false;
    char path[ERRAND_ERROR_FIELD_MAX];
    int rc;
    if ((rc = field_require_object(item, prefix, err)) < 0 ||
        (rc = json_check_fields(item, prefix, worker_log_fields, err)) < 0 ||
        (rc = parse_id(item, prefix, &out->id, err)) < 0 ||
        (rc = json_get_string(item, prefix, "timestamp", &ts, &have_ts, err)) < 0 ||
        (rc = field_string(item, prefix, "level", true, KEYWORD_MAX, &level, NULL, err)) < 0)
        return rc;
    out->timestamp_ms = now_ms;
    if (have_ts && !clock_parse_rfc3339(ts, &out->timestamp_ms)) {
        field_path(path, prefix, "timestamp");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be an RFC 3339 time, got '%.64s'", path, ts);
    }
    out->level = -1;
    for (size_t i = 0; i < sizeof log_levels / sizeof log_levels[0]; i++)
        if (strcmp(level, log_levels[i].name) == 0)
            out->level = log_levels[i].level;
    if (out->level < 0) {
        field_path(path, prefix, "level");
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be debug, info, warning or error, got '%.32s'", path,
                         level);
    }
    out->message = NULL;
    if ((rc = parse_text(item, prefix, "message", WIRE_MESSAGE_MAX, &out->message, err)) < 0)
        return rc;
    if (!out->message) {
        field_path(path, prefix, "message");
        return error_set(err, ERR_MISSING_FIELD, path, "field '%s' is required", path);
    }
    return 0;
}

int worker_parse_report(const json_t *body, int64_t now_ms, struct report_body *out,
                        errand_error *err)
{
    memset(out, 0, sizeof *out);
    const json_t *reports = NULL, *logs = NULL;
    int rc;
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, worker_report_fields, err)) < 0 ||
        (rc = field_string(body, NULL, "worker", true, WIRE_WORKER_NAME_MAX, &out->worker, NULL,
                           err)) < 0 ||
        (rc = field_string(body, NULL, "batch_id", false, WIRE_BATCH_ID_MAX, &out->batch_id, NULL,
                           err)) < 0 ||
        (rc = field_array(body, NULL, "reports", false, 0, WIRE_REPORTS_MAX, &reports, NULL, err)) <
            0 ||
        (rc = field_array(body, NULL, "logs", false, 0, WIRE_REPORT_LOGS_MAX, &logs, NULL, err)) <
            0)
        return rc;
    size_t n_reports = json_array_size(reports), n_logs = json_array_size(logs);
    out->reports = mem_calloc(n_reports ? n_reports : 1, sizeof *out->reports);
    out->logs = mem_calloc(n_logs ? n_logs : 1, sizeof *out->logs);
    if (!out->reports || !out->logs) {
        worker_report_clear(out);
        return oom(err);
    }
    out->n_reports = n_reports; /* from here on, clear frees the results parsed so far */
    char prefix[ERRAND_ERROR_FIELD_MAX];
    for (size_t i = 0; i < n_reports; i++) {
        item_prefix(prefix, "reports", i);
        if ((rc = parse_report(json_array_get(reports, i), prefix, &out->reports[i], err)) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n_logs; i++) {
        item_prefix(prefix, "logs", i);
        if ((rc = parse_log(json_array_get(logs, i), prefix, now_ms, &out->logs[i], err)) < 0)
            goto fail;
    }
    out->n_logs = n_logs;
    return 0;
fail:
    worker_report_clear(out);
    return rc;
}

void worker_report_clear(struct report_body *b)
{
    for (size_t i = 0; b->reports && i < b->n_reports; i++)
        mem_free((char *)b->reports[i].result);
    mem_free(b->reports);
    mem_free(b->logs);
    memset(b, 0, sizeof *b);
}
