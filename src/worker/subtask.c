/* SPDX-License-Identifier: MIT */
/*
 * subtask.c — errand_task_submit and errand_task_wait (see subtask.h).
 */
#include "worker/subtask.h"

#include "client/client.h"
#include "core/error.h"
#include "core/log.h"
#include "core/state.h"
#include "worker/isolated_task.h"
#include "worker/reporter.h"
#include "worker/task_ctx.h"

/* errand_task_wait with no timeout of its own still long-polls in slices (client_wait). */
#define SUBTASK_WAIT_FOREVER_S (100.0 * 365 * 24 * 3600)

bool subtask_lend(struct run_queue *q, const struct wrun *run)
{
    bool first_refusal = false;
    bool lent = run_queue_lend(q, &first_refusal);
    if (first_refusal)
        log_warn("max_waiting runs already wait for subtasks with their slots lent: this wait "
                 "keeps its slot (raise max_waiting / ERRAND_WORKER_MAX_WAITING if the worker "
                 "stalls); said once",
                 "run=%s max_waiting=%zu", run->id, q->max_waiting);
    return lent;
}

/* The ctx's client, made on first use with the worker's connection settings. */
static int ctx_client(errand_task_ctx *ctx, errand_error *err)
{
    if (ctx->client)
        return 0;
    if (!ctx->sub)
        return error_set(err, ERRAND_EINVAL, "ctx",
                         "this task context cannot submit: it was not made by a worker");
    errand_client_options opt = {.api_url = ctx->sub->api_url, .api_key = ctx->sub->api_key};
    return errand_client_new(&opt, &ctx->client, err);
}

int errand_task_submit(errand_task_ctx *ctx, const char *task, const char *params_json,
                       const errand_submit_options *opt, errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!ctx)
        return error_set(err, ERRAND_EINVAL, "ctx", "errand_task_submit needs the task's context");
    int rc = ctx_client(ctx, err);
    /* The thread's (or child's) current trace context is the task's span: the subtask
       joins the trace as its child. */
    return rc ? rc : errand_submit(ctx->client, task, params_json, opt, out, err);
}

/* The wait begins (lent) or ends: lends or takes back the slot, in this process or through
 * the worker. Returns whether a slot was lent here. */
static bool wait_begins(errand_task_ctx *ctx)
{
    if (ctx->sub->reporter)
        reporter_waiting(ctx->sub->reporter, ctx->run, true);
    if (ctx->sub->queue)
        return subtask_lend(ctx->sub->queue, ctx->run);
    if (ctx->sub->notify_fd >= 0)
        isolated_task_wait_record(ctx->sub->notify_fd, true);
    return false;
}

static void wait_ends(errand_task_ctx *ctx, bool lent)
{
    if (ctx->sub->reporter)
        reporter_waiting(ctx->sub->reporter, ctx->run, false);
    if (lent)
        run_queue_reclaim(ctx->sub->queue);
    else if (!ctx->sub->queue && ctx->sub->notify_fd >= 0)
        isolated_task_wait_record(ctx->sub->notify_fd, false);
}

int errand_task_wait(errand_task_ctx *ctx, const char *run_id, double timeout_seconds,
                     errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!ctx)
        return error_set(err, ERRAND_EINVAL, "ctx", "errand_task_wait needs the task's context");
    if (!run_id || !*run_id)
        return error_set(err, ERRAND_EINVAL, "id", "a task-run id is required");
    int rc = ctx_client(ctx, err);
    if (rc)
        return rc;
    int cancel_fd = ctx->cancel_fd >= 0 ? ctx->cancel_fd : wrun_wake_fd(ctx->run);
    if (cancel_fd < 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot make the wake-up fd of run %s",
                         ctx->run->id);
    if (errand_task_should_stop(ctx))
        return error_set(err, ERRAND_ECANCELLED, NULL,
                         "task run %s was asked to stop before it waited for run %s", ctx->run->id,
                         run_id);
    /* A run that is final already costs no lending. */
    errand_run *run = NULL;
    rc = errand_get(ctx->client, run_id, &run, err);
    if (rc)
        return rc;
    if (!state_is_final(errand_run_state(run))) {
        errand_run_free(run);
        run = NULL;
        double limit = timeout_seconds > 0 ? timeout_seconds : SUBTASK_WAIT_FOREVER_S;
        bool lent = wait_begins(ctx);
        rc = client_wait(ctx->client, run_id, limit, cancel_fd, &run, err);
        wait_ends(ctx, lent);
        if (rc == ERRAND_ECANCELLED)
            rc = error_set(err, ERRAND_ECANCELLED, NULL,
                           "task run %s was asked to stop while it waited for run %s", ctx->run->id,
                           run_id);
    }
    if (out)
        *out = run;
    else
        errand_run_free(run);
    return rc;
}
