/*
 * handlers_claim.c — POST /api/workers/claim, the long-poll claim.
 *
 * It listens on NOTIFY_RUNS_DUE for its tasks (a submission of one of them signals it; a
 * hand-back, a retry, a lease expiry or delayed runs coming due signal every claim), tries
 * store_claim, and when nothing is due and wait_seconds > 0 waits for a signal and tries
 * again, until it gets runs or wait_seconds pass; then it answers {"runs": [...]} (possibly
 * empty). It also re-tries every ERRAND_POLL_RECHECK_MS without a signal, because another
 * server sharing the store sends no signal here.
 *
 * Before each retry it checks that the worker is still connected: a claim moves runs to
 * PENDING and counts an attempt, so claiming for a worker that has hung up would leave the
 * runs stranded until their lease expires (and could crash a run with no retries left).
 */
#include <stdbool.h>

#include "core/clock.h"
#include "core/error.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/worker_request.h"

int handle_claim(const struct handler_ctx *ctx, const struct http_request *req,
                 struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    struct run_list runs = {0};
    struct claim_body claim;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_claim(body, ctx->default_lease_seconds, &claim, err)) < 0) {
        json_decref(body);
        return rc;
    }
    notify_waiter *w =
        notify_listen(ctx->notify, NOTIFY_RUNS_DUE, claim.req.tasks, claim.req.n_tasks);
    if (!w) {
        worker_claim_clear(&claim);
        json_decref(body);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int64_t deadline = clock_mono_ms() + (int64_t)(claim.wait_seconds * MS_PER_S);
    for (;;) {
        if ((rc = store_claim(ctx->st, &claim.req, clock_now_ms(), &runs, err)) < 0)
            break;
        int64_t now = clock_mono_ms();
        if (runs.n > 0 || now >= deadline || notify_is_shutdown(ctx->notify))
            break;
        int64_t until =
            now + ctx->poll_recheck_ms < deadline ? now + ctx->poll_recheck_ms : deadline;
        notify_waiter_wait(ctx->notify, w, until);
        if (http_client_gone(req))
            break; /* nobody to answer; the (empty) reply is never read */
    }
    notify_unlisten(ctx->notify, w);
    if (rc == 0) {
        metrics_add(ctx->metrics, METRIC_CLAIMS, runs.n);
        /* Claimed runs whose answer cannot be built are not lost: their lease runs out and
         * the sweeper hands them out again. */
        struct jw out = {0};
        write_run_array(&out, "runs", &runs, true);
        jw_lit(&out, ",");
        jw_key(&out, "lease_seconds");
        jw_int(&out, claim.req.lease_seconds);
        jw_lit(&out, "}");
        rc = reply_written(reply, HTTP_OK, &out, err);
    }
    run_list_clear(&runs);
    worker_claim_clear(&claim);
    json_decref(body);
    return rc;
}
