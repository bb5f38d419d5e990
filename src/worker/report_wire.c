/* SPDX-License-Identifier: MIT */
/*
 * report_wire.c — report items and the JSON of /workers/report and /workers/heartbeat (see
 * report_wire.h).
 */
#include "worker/report_wire.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"

/* Bytes a report or log entry adds to a body besides its variable text (keys, id, token,
 * timestamp, punctuation). An estimate for batch sizing, on the generous side. */
#define ITEM_OVERHEAD_BYTES 160
#define TRUNCATION_MARK "..."
#define REPORT_REASON_MAX 256

/* A copy of text cut to at most max bytes (not splitting a UTF-8 sequence), marked when cut. */
static char *bounded_copy(const char *text, size_t max)
{
    size_t n = strlen(text);
    if (n <= max)
        return mem_strndup(text, n);
    size_t keep = max - strlen(TRUNCATION_MARK);
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80)
        keep--; /* back off to the start of a UTF-8 sequence */
    char *out = mem_alloc(keep + strlen(TRUNCATION_MARK) + 1);
    if (!out)
        return NULL;
    memcpy(out, text, keep);
    memcpy(out + keep, TRUNCATION_MARK, strlen(TRUNCATION_MARK) + 1);
    return out;
}

/* Why the server would refuse this outcome (core/wire_limits.h), or NULL when it is fine;
 * written into buf. */
static const char *unreportable(const json_t *result, const char *result_ref, char *buf,
                                size_t size)
{
    if (result && !json_depth_within(result, WIRE_RESULT_DEPTH_MAX)) {
        snprintf(buf, size,
                 "the task's result cannot be reported: it nests arrays and objects deeper than "
                 "%d levels",
                 WIRE_RESULT_DEPTH_MAX);
        return buf;
    }
    if (result_ref && strlen(result_ref) > WIRE_RESULT_REF_MAX) {
        snprintf(buf, size,
                 "the task's result cannot be reported: its reference is longer than %d "
                 "characters",
                 WIRE_RESULT_REF_MAX);
        return buf;
    }
    return NULL;
}

struct report_item *report_item_state(struct wrun *run, errand_state state, const char *message,
                                      bool retryable, json_t *result, const char *result_ref)
{
    char why[REPORT_REASON_MAX];
    if (state == ERRAND_STATE_COMPLETED && unreportable(result, result_ref, why, sizeof why)) {
        /* Reported as a failure that says why, rather than refused by the server with the
         * rest of its batch. Not retryable: the task would produce the same result again. */
        log_warn("a result the server would refuse is reported as a failure", "run=%s error=\"%s\"",
                 run->id, why);
        json_decref(result);
        result = NULL;
        result_ref = NULL;
        state = ERRAND_STATE_FAILED;
        message = why;
        retryable = false;
    }
    struct report_item *it = mem_calloc(1, sizeof *it);
    if (!it) {
        json_decref(result);
        return NULL;
    }
    it->kind = ITEM_REPORT;
    it->run = wrun_ref(run);
    it->state = state;
    it->retryable = retryable;
    it->result = result;
    it->weight = ITEM_OVERHEAD_BYTES;
    if (message) {
        it->message = bounded_copy(message, REPORT_MESSAGE_MAX);
        if (!it->message)
            goto nomem;
        it->weight += strlen(it->message);
    }
    if (result_ref) {
        it->result_ref = mem_strdup(result_ref);
        if (!it->result_ref)
            goto nomem;
        it->weight += strlen(result_ref);
    }
    if (result)
        it->weight +=
            json_dumpb(result, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY | json_real_flags(result));
    return it;
nomem:
    report_item_free(it);
    return NULL;
}

struct report_item *report_item_hold(struct wrun *run)
{
    struct report_item *it = mem_calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->kind = ITEM_HOLD;
    it->run = wrun_ref(run);
    return it;
}

struct report_item *report_item_log(const char *run_id, int64_t timestamp_ms, int level,
                                    const char *text)
{
    struct report_item *it = mem_calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->kind = ITEM_LOG;
    it->timestamp_ms = timestamp_ms;
    it->level = level;
    it->run_id = mem_strdup(run_id);
    it->text = bounded_copy(text, REPORT_LOG_MESSAGE_MAX);
    if (!it->run_id || !it->text) {
        report_item_free(it);
        return NULL;
    }
    it->weight = ITEM_OVERHEAD_BYTES + strlen(it->text);
    return it;
}

void report_item_free(struct report_item *it)
{
    if (!it)
        return;
    if (it->run)
        wrun_unref(it->run);
    mem_free(it->message);
    json_decref(it->result);
    mem_free(it->result_ref);
    mem_free(it->run_id);
    mem_free(it->text);
    mem_free(it);
}

void report_items_free(struct report_item *chain)
{
    while (chain) {
        struct report_item *next = chain->next;
        report_item_free(chain);
        chain = next;
    }
}

bool report_state_is_final(errand_state s)
{
    return s != ERRAND_STATE_RUNNING;
}

const char *report_level_name(int level)
{
    if (level >= ERRAND_LOG_ERROR)
        return "error";
    if (level >= ERRAND_LOG_WARNING)
        return "warning";
    if (level >= ERRAND_LOG_INFO)
        return "info";
    return "debug";
}

/* A JSON string of text; jansson refuses invalid UTF-8 (a program's stderr may hold any
 * bytes), so such text is shipped with its non-ASCII bytes replaced by '?'. */
static json_t *json_text(const char *text)
{
    json_t *v = json_string(text);
    if (v)
        return v;
    char *fixed = mem_strdup(text);
    if (!fixed)
        return NULL;
    for (char *p = fixed; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(fixed);
    mem_free(fixed);
    return v;
}

static json_t *report_json(const struct report_item *it)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "id", json_string(it->run->id));
    bad |= json_object_set_new(o, "lease_token", json_string(it->run->lease_token));
    bad |= json_object_set_new(o, "state", json_string(state_type_name(it->state)));
    if (it->message)
        bad |= json_object_set_new(o, "message", json_text(it->message));
    if (it->state == ERRAND_STATE_FAILED)
        bad |= json_object_set_new(o, "retryable", json_boolean(it->retryable));
    if (it->result)
        bad |= json_object_set(o, "result", it->result);
    if (it->result_ref)
        bad |= json_object_set_new(o, "result_ref", json_string(it->result_ref));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *log_json(const struct report_item *it)
{
    char ts[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(it->timestamp_ms, ts);
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "id", json_string(it->run_id));
    bad |= json_object_set_new(o, "timestamp", json_string(ts));
    bad |= json_object_set_new(o, "level", json_string(report_level_name(it->level)));
    bad |= json_object_set_new(o, "message", json_text(it->text));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *report_body(const char *worker, const char *batch_id, const struct report_item *chain)
{
    json_t *body = json_object();
    json_t *reports = json_array();
    json_t *logs = json_array();
    char *text = NULL;
    if (!body || !reports || !logs)
        goto out;
    if (json_object_set_new(body, "worker", json_string(worker)) ||
        (batch_id && json_object_set_new(body, "batch_id", json_string(batch_id))) ||
        json_object_set(body, "reports", reports) || json_object_set(body, "logs", logs))
        goto out;
    for (const struct report_item *it = chain; it; it = it->next) {
        if (it->dead || it->kind == ITEM_HOLD)
            continue;
        json_t *o = it->kind == ITEM_REPORT ? report_json(it) : log_json(it);
        if (!o || json_array_append_new(it->kind == ITEM_REPORT ? reports : logs, o))
            goto out;
    }
    text = json_compact(body);
out:
    json_decref(reports);
    json_decref(logs);
    json_decref(body);
    return text;
}

void report_read_answer(struct report_item *chain, const char *body)
{
    json_t *root = body ? json_loads(body, 0, NULL) : NULL;
    json_t *arr = json_object_get(root, "reports");
    size_t i = 0, n = json_is_array(arr) ? json_array_size(arr) : 0;
    for (struct report_item *it = chain; it && i < n; it = it->next) {
        if (it->dead || it->kind != ITEM_REPORT)
            continue;
        json_t *a = json_array_get(arr, i++);
        const char *id = json_string_value(json_object_get(a, "id"));
        json_t *status = json_object_get(a, "status");
        if (id && strcmp(id, it->run->id) != 0)
            break; /* out of step: leave the rest unanswered rather than guess */
        if (json_is_integer(status))
            it->answer = (int)json_integer_value(status);
    }
    json_decref(root);
}

char *heartbeat_body(const char *worker, struct wrun *const *runs, size_t n, int lease_seconds)
{
    json_t *body = json_object();
    json_t *leases = json_array();
    char *text = NULL;
    if (!body || !leases)
        goto out;
    if (json_object_set_new(body, "worker", json_string(worker)) ||
        json_object_set(body, "leases", leases))
        goto out;
    if (lease_seconds > 0 &&
        json_object_set_new(body, "lease_seconds", json_integer(lease_seconds)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        if (!o || json_array_append_new(leases, o) ||
            json_object_set_new(o, "id", json_string(runs[i]->id)) ||
            json_object_set_new(o, "lease_token", json_string(runs[i]->lease_token)))
            goto out;
        int waiting = atomic_load(&runs[i]->waiting);
        if (waiting != WRUN_NEVER_WAITED &&
            json_object_set_new(o, "waiting", json_boolean(waiting == WRUN_WAITING)))
            goto out;
    }
    text = json_compact(body);
out:
    json_decref(leases);
    json_decref(body);
    return text;
}

void heartbeat_read_answer(const char *body, struct wrun *const *runs, size_t n, int *status,
                           bool *cancel)
{
    for (size_t i = 0; i < n; i++) {
        status[i] = 0;
        cancel[i] = false;
    }
    json_t *root = body ? json_loads(body, 0, NULL) : NULL;
    json_t *arr = json_object_get(root, "leases");
    size_t m = json_is_array(arr) ? json_array_size(arr) : 0;
    for (size_t j = 0; j < m; j++) {
        json_t *a = json_array_get(arr, j);
        const char *id = json_string_value(json_object_get(a, "id"));
        if (!id)
            continue;
        /* The answer follows the request's order; fall back to a search if it does not. */
        size_t i = j;
        if (i >= n || strcmp(runs[i]->id, id) != 0)
            for (i = 0; i < n && strcmp(runs[i]->id, id) != 0; i++)
                ;
        if (i == n)
            continue;
        json_t *st = json_object_get(a, "status");
        status[i] = json_is_integer(st) ? (int)json_integer_value(st) : 0;
        cancel[i] = json_is_true(json_object_get(a, "cancel"));
    }
    json_decref(root);
}
