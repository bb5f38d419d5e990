/* SPDX-License-Identifier: MIT */
/*
 * handlers_run_retry.c — POST /api/task_runs/{id}/retry: runs a FAILED, CRASHED or
 * CANCELLED run again, as a new run of the same task with the same parameters and options
 * (priority, tags, retries and their delays, timeout, result persistence), due now, whose
 * `retry_of` names the original. The original is left as it is: its history stays what
 * happened. The new run has no idempotency key (each call is a new run) and no cache key
 * (a retry is meant to execute, not to be answered from the cache). A run that is not over,
 * or that COMPLETED, is refused with 409: the first is still being worked on, the second
 * is submitted again if it must run again.
 */
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "server/handlers.h"
#include "server/query.h"

/* The retry delays of a run (its stored JSON array of seconds) into spec. */
static int copy_delays(const char *text, struct run_spec *spec, errand_error *err)
{
    json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
    if (text && !arr)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < json_array_size(arr) && i < RUN_SPEC_DELAYS_MAX; i++)
        spec->retry_delays[spec->n_retry_delays++] = json_number_value(json_array_get(arr, i));
    json_decref(arr);
    return 0;
}

/* The new run: r's task, parameters and options, due at now_ms. */
static int spec_from_run(const struct run_row *r, int64_t now_ms, struct run_spec *spec,
                         errand_error *err)
{
    memset(spec, 0, sizeof *spec);
    spec->task = mem_strdup(r->task);
    spec->parameters = mem_strdup(r->parameters ? r->parameters : "{}");
    spec->tags = mem_strdup(r->tags ? r->tags : "[]");
    spec->retry_of = mem_strdup(r->id);
    spec->traceparent = r->traceparent ? mem_strdup(r->traceparent) : NULL; /* same trace */
    spec->scheduled_at_ms = now_ms;
    spec->priority = r->priority;
    spec->retries = r->retries;
    spec->retry_jitter_factor = r->retry_jitter_factor;
    spec->timeout_seconds = r->timeout_seconds;
    spec->persist_result = r->persist_result;
    if (!spec->task || !spec->parameters || !spec->tags || !spec->retry_of ||
        (r->traceparent && !spec->traceparent))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return copy_delays(r->retry_delays, spec, err);
}

int run_retry(const struct handler_ctx *ctx, const struct run_row *original, struct run_row *out,
              errand_error *err)
{
    errand_state state = original->state;
    if (state != ERRAND_STATE_FAILED && state != ERRAND_STATE_CRASHED &&
        state != ERRAND_STATE_CANCELLED)
        return error_set(err, ERRAND_ECONFLICT, NULL,
                         "task run %s is %s: only FAILED, CRASHED and CANCELLED runs are retried%s",
                         original->id, state_type_name(state),
                         state == ERRAND_STATE_COMPLETED ? " (submit it again to run it again)"
                                                         : " (it is not over yet)");
    int64_t now = clock_now_ms();
    struct run_spec spec;
    int rc = spec_from_run(original, now, &spec, err);
    if (rc == 0 && (rc = store_submit(ctx->st, &spec, 1, now, out, NULL, err)) == 0)
        notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, spec.task);
    run_spec_clear(&spec);
    return rc;
}

int handle_retry_run(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    struct run_row original, run;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_run(ctx->st, req->id, &original, err)) < 0)
        return rc;
    rc = run_retry(ctx, &original, &run, err);
    run_row_clear(&original);
    if (rc == 0) {
        rc = reply_run(reply, HTTP_CREATED, &run, err);
        run_row_clear(&run);
    }
    return rc;
}
