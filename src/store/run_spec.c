/* SPDX-License-Identifier: MIT */
/*
 * run_spec.c — new-run specs (run_spec.h): what every backend derives from one before storing
 * it, and freeing them.
 */
#include "store/run_spec.h"

#include <jansson.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "store/run_row.h"

char *run_spec_delays_json(const struct run_spec *spec)
{
    if (spec->n_retry_delays == 0)
        return mem_strdup("[]");
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < spec->n_retry_delays; i++) {
        if (json_array_append_new(arr, json_number_exact(spec->retry_delays[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr ? json_compact(arr) : NULL;
    json_decref(arr);
    return text;
}

int run_spec_created_row(const struct run_spec *spec, const char *id, const char *delays_json,
                         int64_t now_ms, const struct run_cache_hit *hit, struct run_row *r,
                         errand_error *err)
{
    memset(r, 0, sizeof *r);
    r->id = id;
    r->task = spec->task;
    r->parameters = spec->parameters;
    r->state = hit ? ERRAND_STATE_COMPLETED : ERRAND_STATE_SCHEDULED;
    r->state_name = hit ? STATE_NAME_CACHED : STATE_NAME_SCHEDULED;
    r->state_message = hit ? hit->message : "";
    r->state_timestamp = now_ms;
    r->max_attempts = spec->retries + 1;
    r->created = now_ms;
    r->scheduled_at = spec->scheduled_at_ms;
    r->finished = hit ? now_ms : 0;
    r->priority = spec->priority;
    r->tags = spec->tags ? spec->tags : "[]";
    r->idempotency_key = spec->idempotency_key;
    r->cache_key = spec->cache_key;
    r->retries = spec->retries;
    r->retry_delays = delays_json;
    r->retry_jitter_factor = spec->retry_jitter_factor;
    r->timeout_seconds = spec->timeout_seconds;
    r->persist_result = spec->persist_result;
    r->result = hit ? hit->result : NULL;
    r->result_ref = hit ? hit->result_ref : NULL;
    r->retry_of = spec->retry_of;
    r->traceparent = spec->traceparent;
    int rc = run_row_own_strings(r, err);
    if (rc < 0)
        memset(r, 0, sizeof *r);
    return rc;
}

void run_spec_clear(struct run_spec *spec)
{
    if (!spec)
        return;
    mem_free(spec->task);
    mem_free(spec->parameters);
    mem_free(spec->idempotency_key);
    mem_free(spec->tags);
    mem_free(spec->cache_key);
    mem_free(spec->retry_of);
    mem_free(spec->traceparent);
    mem_free(spec->wait_for);
    mem_free(spec->result_refs);
    mem_free(spec->webhook_url);
    memset(spec, 0, sizeof *spec);
    spec->persist_result = -1;
}

void run_spec_free_array(struct run_spec *specs, size_t n)
{
    if (!specs)
        return;
    for (size_t i = 0; i < n; i++)
        run_spec_clear(&specs[i]);
    mem_free(specs);
}
