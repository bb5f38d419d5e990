/* SPDX-License-Identifier: MIT */
/*
 * run_json.c — task-run rows (store/run_row.h) to wire JSON (docs/api.md, "Task-run object" and the
 * claim answer). Numbers that are whole print as integers ("retry_delay_seconds": [1, 10]), times
 * as RFC 3339 UTC with milliseconds, absent values as null.
 */
#include "server/run_json.h"

#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"

json_t *run_json_time(int64_t unix_ms)
{
    if (unix_ms == 0)
        return json_null();
    char text[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(unix_ms, text);
    return json_string(text);
}

json_t *run_json_text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *run_json_parse(const char *text, const char *what, const char *id, errand_error *err)
{
    if (!text) {
        error_set(err, ERRAND_ESTORE, NULL, "store: run %s has no %s", id ? id : "?", what);
        return NULL;
    }
    /* The common empty values skip the parser. */
    if (strcmp(text, "{}") == 0)
        return json_object();
    if (strcmp(text, "[]") == 0)
        return json_array();
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        else
            error_set(err, ERRAND_ESTORE, NULL, "store: the stored %s of run %s is not JSON: %s",
                      what, id ? id : "?", jerr.text);
    }
    return v;
}

static json_t *persist_json(int persist)
{
    return persist < 0 ? json_null() : json_boolean(persist);
}

static json_t *timeout_json(double seconds)
{
    return seconds > 0 ? json_number_exact(seconds) : json_null();
}

/* Sets key to value (stolen); a NULL value (failed allocation) marks *ok false. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (!value || json_object_set_new_nocheck(obj, key, value) < 0)
        *ok = false;
}

static json_t *state_json(const struct run_row *r)
{
    json_t *s = json_object();
    if (!s)
        return NULL;
    bool ok = true;
    put(s, "type", json_string(state_type_name(r->state)), &ok);
    put(s, "name", json_string(r->state_name ? r->state_name : state_default_name(r->state)), &ok);
    put(s, "timestamp", run_json_time(r->state_timestamp), &ok);
    put(s, "message", json_string(r->state_message ? r->state_message : ""), &ok);
    if (!ok) {
        json_decref(s);
        return NULL;
    }
    return s;
}

static json_t *run_object(const struct run_row *r, errand_error *err)
{
    json_t *params = run_json_parse(r->parameters, "parameters", r->id, err);
    json_t *tags = params ? run_json_parse(r->tags, "tags", r->id, err) : NULL;
    json_t *delays = tags ? run_json_parse(r->retry_delays, "retry_delays", r->id, err) : NULL;
    json_t *wait_for =
        delays ? run_json_parse(r->wait_for ? r->wait_for : "[]", "wait_for", r->id, err) : NULL;
    json_t *result = NULL;
    bool want_result = r->state == ERRAND_STATE_COMPLETED && r->result;
    if (wait_for && want_result)
        result = run_json_parse(r->result, "result", r->id, err);
    json_t *obj = NULL;
    if (!wait_for || (want_result && !result))
        goto fail;
    obj = json_object();
    if (!obj) {
        error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    bool ok = true;
    put(obj, "id", json_string(r->id), &ok);
    put(obj, "task", json_string(r->task), &ok);
    put(obj, "parameters", params, &ok);
    params = NULL;
    put(obj, "state", state_json(r), &ok);
    put(obj, "attempt", json_integer(r->attempt), &ok);
    put(obj, "max_attempts", json_integer(r->max_attempts), &ok);
    put(obj, "redeliveries", json_integer(r->redeliveries), &ok);
    put(obj, "created", run_json_time(r->created), &ok);
    put(obj, "scheduled_at", run_json_time(r->scheduled_at), &ok);
    put(obj, "started", run_json_time(r->started), &ok);
    put(obj, "finished", run_json_time(r->finished), &ok);
    put(obj, "worker", run_json_text_or_null(r->worker), &ok);
    put(obj, "priority", json_integer(r->priority), &ok);
    put(obj, "tags", tags, &ok);
    tags = NULL;
    put(obj, "idempotency_key", run_json_text_or_null(r->idempotency_key), &ok);
    put(obj, "cache_key", run_json_text_or_null(r->cache_key), &ok);
    put(obj, "retries", json_integer(r->retries), &ok);
    put(obj, "retry_delay_seconds", delays, &ok);
    delays = NULL;
    put(obj, "retry_jitter_factor", json_number_exact(r->retry_jitter_factor), &ok);
    put(obj, "timeout_seconds", timeout_json(r->timeout_seconds), &ok);
    put(obj, "persist_result", persist_json(r->persist_result), &ok);
    if (result) {
        put(obj, "result", result, &ok);
        result = NULL;
    }
    if (r->result_ref)
        put(obj, "result_ref", json_string(r->result_ref), &ok);
    put(obj, "retry_of", run_json_text_or_null(r->retry_of), &ok);
    put(obj, "traceparent", run_json_text_or_null(r->traceparent), &ok);
    if (r->wait_for) { /* only a run submitted with upstream runs says so */
        put(obj, "wait_for", wait_for, &ok);
        put(obj, "allow_upstream_failure", json_boolean(r->allow_upstream_failure), &ok);
    } else {
        json_decref(wait_for);
    }
    wait_for = NULL;
    put(obj, "lease_expires", run_json_time(r->lease_expires), &ok);
    if (!ok) {
        error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    return obj;
fail:
    json_decref(obj);
    json_decref(params);
    json_decref(tags);
    json_decref(delays);
    json_decref(wait_for);
    json_decref(result);
    return NULL;
}

static json_t *claim_object(const struct run_row *r, errand_error *err)
{
    json_t *params = run_json_parse(r->parameters, "parameters", r->id, err);
    if (!params)
        return NULL;
    json_t *obj = json_object();
    if (!obj) {
        json_decref(params);
        error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    bool ok = true;
    put(obj, "id", json_string(r->id), &ok);
    put(obj, "task", json_string(r->task), &ok);
    put(obj, "parameters", params, &ok);
    put(obj, "attempt", json_integer(r->attempt), &ok);
    put(obj, "max_attempts", json_integer(r->max_attempts), &ok);
    put(obj, "lease_token", run_json_text_or_null(r->lease_token), &ok);
    put(obj, "lease_expires", run_json_time(r->lease_expires), &ok);
    put(obj, "timeout_seconds", timeout_json(r->timeout_seconds), &ok);
    put(obj, "persist_result", persist_json(r->persist_result), &ok);
    put(obj, "cache_key", run_json_text_or_null(r->cache_key), &ok);
    put(obj, "traceparent", run_json_text_or_null(r->traceparent), &ok);
    if (!ok) {
        json_decref(obj);
        error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    return obj;
}

/* Builds with a local error so the code is known even when the caller passed err = NULL. */
static int build(json_t *(*fn)(const struct run_row *, errand_error *), const struct run_row *r,
                 json_t **out, errand_error *err)
{
    errand_error local;
    error_clear(&local);
    *out = fn(r, &local);
    if (*out)
        return 0;
    if (local.code == ERRAND_OK)
        error_set(&local, ERRAND_ENOMEM, NULL, "out of memory");
    if (err)
        *err = local;
    return local.code;
}

int run_row_to_json(const struct run_row *r, json_t **out, errand_error *err)
{
    return build(run_object, r, out, err);
}

int run_row_claim_json(const struct run_row *r, json_t **out, errand_error *err)
{
    return build(claim_object, r, out, err);
}

/* --- written as text ------------------------------------------------------------------- */

/* Stored JSON text as it is; `fallback` when the column is empty. */
static void stored(struct jw *w, const char *text, const char *fallback)
{
    jw_lit(w, text ? text : fallback);
}

static void write_timeout(struct jw *w, double seconds)
{
    if (seconds > 0)
        jw_number(w, seconds);
    else
        jw_lit(w, "null");
}

static void write_persist(struct jw *w, int persist)
{
    jw_lit(w, persist < 0 ? "null" : persist ? "true" : "false");
}

/* {"id": ..., "task": ..., "parameters": ... — the start both objects share, left open. */
static void write_head(struct jw *w, const struct run_row *r)
{
    jw_lit(w, "{");
    jw_key(w, "id");
    jw_string(w, r->id);
    jw_member(w, "task");
    jw_string(w, r->task);
    jw_member(w, "parameters");
    stored(w, r->parameters, "null");
}

void run_json_write(struct jw *w, const struct run_row *r)
{
    write_head(w, r);
    jw_member(w, "state");
    jw_lit(w, "{");
    jw_key(w, "type");
    jw_string(w, state_type_name(r->state));
    jw_member(w, "name");
    jw_string(w, r->state_name ? r->state_name : state_default_name(r->state));
    jw_member(w, "timestamp");
    jw_time(w, r->state_timestamp);
    jw_member(w, "message");
    jw_string(w, r->state_message ? r->state_message : "");
    jw_lit(w, "}");
    jw_member(w, "attempt");
    jw_int(w, r->attempt);
    jw_member(w, "max_attempts");
    jw_int(w, r->max_attempts);
    jw_member(w, "redeliveries");
    jw_int(w, r->redeliveries);
    jw_member(w, "created");
    jw_time(w, r->created);
    jw_member(w, "scheduled_at");
    jw_time(w, r->scheduled_at);
    jw_member(w, "started");
    jw_time(w, r->started);
    jw_member(w, "finished");
    jw_time(w, r->finished);
    jw_member(w, "worker");
    jw_string(w, r->worker);
    jw_member(w, "priority");
    jw_int(w, r->priority);
    jw_member(w, "tags");
    stored(w, r->tags, "[]");
    jw_member(w, "idempotency_key");
    jw_string(w, r->idempotency_key);
    jw_member(w, "cache_key");
    jw_string(w, r->cache_key);
    jw_member(w, "retries");
    jw_int(w, r->retries);
    jw_member(w, "retry_delay_seconds");
    stored(w, r->retry_delays, "[]");
    jw_member(w, "retry_jitter_factor");
    jw_number(w, r->retry_jitter_factor);
    jw_member(w, "timeout_seconds");
    write_timeout(w, r->timeout_seconds);
    jw_member(w, "persist_result");
    write_persist(w, r->persist_result);
    if (r->state == ERRAND_STATE_COMPLETED && r->result) {
        jw_member(w, "result");
        jw_lit(w, r->result);
    }
    if (r->result_ref) {
        jw_member(w, "result_ref");
        jw_string(w, r->result_ref);
    }
    jw_member(w, "retry_of");
    jw_string(w, r->retry_of);
    jw_member(w, "traceparent");
    jw_string(w, r->traceparent);
    if (r->wait_for) { /* only a run submitted with upstream runs says so */
        jw_member(w, "wait_for");
        stored(w, r->wait_for, "[]");
        jw_member(w, "allow_upstream_failure");
        jw_bool(w, r->allow_upstream_failure);
    }
    jw_member(w, "lease_expires");
    jw_time(w, r->lease_expires);
    jw_lit(w, "}");
}

void run_json_write_claim(struct jw *w, const struct run_row *r)
{
    write_head(w, r);
    jw_member(w, "attempt");
    jw_int(w, r->attempt);
    jw_member(w, "max_attempts");
    jw_int(w, r->max_attempts);
    jw_member(w, "lease_token");
    jw_string(w, r->lease_token);
    jw_member(w, "lease_expires");
    jw_time(w, r->lease_expires);
    jw_member(w, "timeout_seconds");
    write_timeout(w, r->timeout_seconds);
    jw_member(w, "persist_result");
    write_persist(w, r->persist_result);
    jw_member(w, "cache_key");
    jw_string(w, r->cache_key);
    jw_member(w, "traceparent");
    jw_string(w, r->traceparent);
    jw_lit(w, "}");
}
