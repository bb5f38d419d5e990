/*
 * handlers_workers.c — the rest of the worker protocol: heartbeat (extend leases, learn of
 * cancellations), report (outcomes and logs), and the worker list.
 *
 * Heartbeat and report are batches whose items succeed or fail one by one (a stale lease
 * refuses only its own item). The HTTP status sums them up: 200 when every item applied,
 * 409 when any was refused; the body lists each item's status either way.
 * A report can make runs due again (FAILED -> AwaitingRetry, SCHEDULED hand-back) or final,
 * so it wakes both kinds of long-poll.
 */
#include <stdbool.h>

#include "core/clock.h"
#include "core/error.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/worker_request.h"

#define ACTIVE_LEASE_PERIODS 3 /* a worker is active when seen within three lease periods */

int handle_heartbeat(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL, *results = NULL;
    struct heartbeat_body hb;
    bool any_stale = false;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_heartbeat(body, ctx->default_lease_seconds, &hb, err)) == 0) {
        rc = store_heartbeat(ctx->st, hb.worker, hb.leases, hb.n_leases, hb.lease_seconds,
                             clock_now_ms(), &results, &any_stale, err);
        worker_heartbeat_clear(&hb);
    }
    json_decref(body);
    if (rc < 0)
        return rc;
    http_reply_json(reply, any_stale ? HTTP_CONFLICT : HTTP_OK,
                    json_pack("{s:o}", "leases", results));
    return 0;
}

/* Which long-polls a set of applied reports may concern: the waits on each run that may
 * have ended, and (a failure may be retried at once, a hand-back is due now; the report
 * does not name their tasks) every claim. */
static void wake_after_reports(const struct handler_ctx *ctx, const struct report_body *rb)
{
    bool due = false;
    for (size_t i = 0; i < rb->n_reports; i++) {
        errand_state s = rb->reports[i].state;
        due |= s == ERRAND_STATE_FAILED || s == ERRAND_STATE_SCHEDULED;
        if (s == ERRAND_STATE_COMPLETED || s == ERRAND_STATE_FAILED || s == ERRAND_STATE_CANCELLED)
            notify_signal_key(ctx->notify, NOTIFY_RUN_FINAL, rb->reports[i].id);
    }
    if (due)
        notify_signal(ctx->notify, NOTIFY_RUNS_DUE);
}

int handle_report(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL, *results = NULL;
    struct report_body rb;
    bool any_stale = false;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_report(body, now, &rb, err)) == 0) {
        rc = store_report(ctx->st, rb.worker, rb.reports, rb.n_reports, rb.logs, rb.n_logs, now,
                          &results, &any_stale, err);
        if (rc == 0) {
            metrics_add(ctx->metrics, METRIC_REPORTS, rb.n_reports);
            wake_after_reports(ctx, &rb);
        }
        worker_report_clear(&rb);
    }
    json_decref(body);
    if (rc < 0)
        return rc;
    http_reply_json(reply, any_stale ? HTTP_CONFLICT : HTTP_OK,
                    json_pack("{s:o}", "reports", results));
    return 0;
}

int handle_list_workers(const struct handler_ctx *ctx, const struct http_request *req,
                        struct http_reply *reply, errand_error *err)
{
    json_t *out = NULL;
    int64_t window_ms = (int64_t)ACTIVE_LEASE_PERIODS * ctx->default_lease_seconds * MS_PER_S;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_list_workers(ctx->st, clock_now_ms(), window_ms, &out, err)) < 0)
        return rc;
    http_reply_json(reply, HTTP_OK, out);
    return 0;
}
