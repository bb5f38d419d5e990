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
#include "core/json_writer.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"

/* Bytes a report or log entry adds to a body besides its variable text (keys, id, token,
 * timestamp, punctuation). An estimate for batch sizing, on the generous side. */
#define ITEM_OVERHEAD_BYTES 160
#define TRUNCATION_MARK "..."
#define REPORT_REASON_MAX 256
/* The status of a report answer whose every item applied (and of each such item). */
#define HTTP_OK 200

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

/* A string of text that may not be valid UTF-8 (a task's message or output): what
 * json_text makes of it. */
static void write_text(struct jw *w, const char *text)
{
    json_t *v = json_text(text);
    if (v)
        jw_string(w, json_string_value(v));
    else
        w->failed = true;
    json_decref(v);
}

static void write_report(struct jw *w, const struct report_item *it)
{
    jw_lit(w, "{");
    jw_key(w, "id");
    jw_string(w, it->run->id);
    jw_member(w, "lease_token");
    jw_string(w, it->run->lease_token);
    jw_member(w, "state");
    jw_string(w, state_type_name(it->state));
    if (it->message) {
        jw_member(w, "message");
        write_text(w, it->message);
    }
    if (it->state == ERRAND_STATE_FAILED) {
        jw_member(w, "retryable");
        jw_bool(w, it->retryable);
    }
    if (it->result) {
        jw_member(w, "result");
        if (json_is_null(it->result)) {
            jw_lit(w, "null");
        } else {
            char *text = json_compact(it->result);
            if (text)
                jw_lit(w, text);
            else
                w->failed = true;
            mem_free(text);
        }
    }
    if (it->result_ref) {
        jw_member(w, "result_ref");
        jw_string(w, it->result_ref);
    }
    jw_lit(w, "}");
}

static void write_log(struct jw *w, const struct report_item *it)
{
    char ts[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(it->timestamp_ms, ts);
    jw_lit(w, "{");
    jw_key(w, "id");
    jw_string(w, it->run_id);
    jw_member(w, "timestamp");
    jw_string(w, ts);
    jw_member(w, "level");
    jw_string(w, report_level_name(it->level));
    jw_member(w, "message");
    write_text(w, it->text);
    jw_lit(w, "}");
}

/* The items of one kind, as the elements of an array. */
static void write_items(struct jw *w, const struct report_item *chain, enum report_kind kind)
{
    bool first = true;
    for (const struct report_item *it = chain; it; it = it->next) {
        if (it->dead || it->kind != kind)
            continue;
        if (!first)
            jw_lit(w, ",");
        first = false;
        if (kind == ITEM_REPORT)
            write_report(w, it);
        else
            write_log(w, it);
    }
}

char *report_body(const char *worker, const char *batch_id, const struct report_item *chain)
{
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "worker");
    jw_string(&w, worker);
    if (batch_id) {
        jw_member(&w, "batch_id");
        jw_string(&w, batch_id);
    }
    jw_member(&w, "reports");
    jw_lit(&w, "[");
    write_items(&w, chain, ITEM_REPORT);
    jw_lit(&w, "]");
    jw_member(&w, "logs");
    jw_lit(&w, "[");
    write_items(&w, chain, ITEM_LOG);
    jw_lit(&w, "]}");
    return jw_finish(&w);
}

void report_read_answer(struct report_item *chain, long http_status, const char *body)
{
    if (http_status == HTTP_OK) {
        for (struct report_item *it = chain; it; it = it->next)
            if (!it->dead && it->kind == ITEM_REPORT)
                it->answer = HTTP_OK;
        return;
    }
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
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "worker");
    jw_string(&w, worker);
    jw_member(&w, "leases");
    jw_lit(&w, "[");
    for (size_t i = 0; i < n; i++) {
        jw_lit(&w, i ? ",{" : "{");
        jw_key(&w, "id");
        jw_string(&w, runs[i]->id);
        jw_member(&w, "lease_token");
        jw_string(&w, runs[i]->lease_token);
        int waiting = atomic_load(&runs[i]->waiting);
        if (waiting != WRUN_NEVER_WAITED) {
            jw_member(&w, "waiting");
            jw_bool(&w, waiting == WRUN_WAITING);
        }
        jw_lit(&w, "}");
    }
    jw_lit(&w, "]");
    if (lease_seconds > 0) {
        jw_member(&w, "lease_seconds");
        jw_int(&w, lease_seconds);
    }
    jw_lit(&w, "}");
    return jw_finish(&w);
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
