/*
 * handlers_claim.c — POST /api/workers/claim, the long-poll claim.
 *
 * It tries store_claim at once; when nothing is due and wait_seconds > 0 it waits on
 * NOTIFY_RUNS_DUE (submissions, hand-backs, retries, lease expiries signal it) and tries
 * again, until it gets runs or wait_seconds pass; then it answers {"runs": [...]} (possibly
 * empty). It also re-tries every CLAIM_RECHECK_MS without a signal, because a delayed or
 * AwaitingRetry run becomes due by time alone, and another server sharing the store sends
 * no signal here.
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

#define CLAIM_RECHECK_MS 200
#define MS_PER_S 1000.0

int handle_claim(const struct handler_ctx *ctx, const struct http_request *req,
                 struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL, *runs = NULL;
    struct claim_body claim;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_claim(body, ctx->default_lease_seconds, &claim, err)) < 0) {
        json_decref(body);
        return rc;
    }
    int64_t deadline = clock_mono_ms() + (int64_t)(claim.wait_seconds * MS_PER_S);
    for (;;) {
        uint64_t gen = notify_generation(ctx->notify, NOTIFY_RUNS_DUE);
        if ((rc = store_claim(ctx->st, &claim.req, clock_now_ms(), &runs, err)) < 0)
            break;
        int64_t now = clock_mono_ms();
        if (json_array_size(runs) > 0 || now >= deadline || notify_is_shutdown(ctx->notify))
            break;
        json_decref(runs);
        runs = NULL;
        int64_t until = now + CLAIM_RECHECK_MS < deadline ? now + CLAIM_RECHECK_MS : deadline;
        notify_wait(ctx->notify, NOTIFY_RUNS_DUE, gen, until);
        if (http_client_gone(req)) {
            /* Nobody to answer; the reply is never read. */
            runs = json_array();
            break;
        }
    }
    if (rc == 0) {
        metrics_add(ctx->metrics, METRIC_CLAIMS, json_array_size(runs));
        http_reply_json(
            reply, HTTP_OK,
            json_pack("{s:o, s:i}", "runs", runs, "lease_seconds", claim.req.lease_seconds));
    }
    worker_claim_clear(&claim);
    json_decref(body);
    return rc;
}
