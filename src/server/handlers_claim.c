/* SPDX-License-Identifier: MIT */
/*
 * handlers_claim.c — POST /api/workers/claim, the long-poll claim.
 *
 * It listens on NOTIFY_RUNS_DUE for its tasks (a submission of one of them signals it; a
 * hand-back, a retry, a lease expiry or delayed runs coming due signal every claim), tries
 * store_claim, and when nothing is due and wait_seconds > 0 parks (http_park: no thread is
 * held) until a signal, then tries again, until it gets runs or wait_seconds pass; then it
 * answers {"runs": [...]} (possibly empty). It also re-tries every ERRAND_POLL_RECHECK_MS
 * without a signal, because another server sharing the store sends no signal here.
 *
 * Before each retry it checks that the worker is still connected: a claim moves runs to
 * PENDING and counts an attempt, so claiming for a worker that has hung up would leave the
 * runs stranded until their lease expires (and could crash a run with no retries left).
 */
#include <stdbool.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/traceparent.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/worker_request.h"

/* What a claim keeps between the calls of its handler. */
struct claim_poll {
    notify *notify;
    notify_waiter *w;
    json_t *body; /* the claim's strings point into it */
    struct claim_body claim;
    int64_t deadline_ms;
    bool waited;     /* parked at least once: the worker may have gone since */
    int64_t work_ns; /* the handler's time in its earlier calls (not parked) */
};

static void claim_poll_free(void *state)
{
    struct claim_poll *p = state;
    notify_unlisten(p->notify, p->w);
    worker_claim_clear(&p->claim);
    json_decref(p->body);
    mem_free(p);
}

/* The first call: parses the claim and starts listening for its tasks. */
static int claim_begin(const struct handler_ctx *ctx, const struct http_request *req,
                       errand_error *err)
{
    json_t *body = NULL;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    struct claim_poll *p = mem_calloc(1, sizeof *p);
    if (!p) {
        json_decref(body);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    p->notify = ctx->notify;
    p->body = body;
    if ((rc = worker_parse_claim(body, ctx->default_lease_seconds, &p->claim, err)) < 0) {
        json_decref(body);
        mem_free(p);
        return rc;
    }
    p->w = notify_listen(ctx->notify, NOTIFY_RUNS_DUE, p->claim.req.tasks, p->claim.req.n_tasks);
    /* Kept even when listening failed, so the request's end frees it. */
    req->longpoll->state = p;
    req->longpoll->free_state = claim_poll_free;
    if (!p->w)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    p->deadline_ms = clock_mono_ms() + (int64_t)(p->claim.wait_seconds * MS_PER_S);
    return 0;
}

int handle_claim(const struct handler_ctx *ctx, const struct http_request *req,
                 struct http_reply *reply, errand_error *err)
{
    int rc;
    int64_t began_ns = clock_mono_ns();
    if (!req->longpoll->state && (rc = claim_begin(ctx, req, err)) < 0)
        return rc;
    struct claim_poll *p = req->longpoll->state;
    struct run_list runs = {0};
    int64_t claimed_ms = 0;
    for (;;) {
        if (p->waited && http_client_gone(req))
            break; /* nobody to answer; the (empty) reply is never read */
        int64_t held_until = 0;
        p->claim.req.held_until_ms = &held_until;
        rc = store_claim(ctx->st, &p->claim.req, claimed_ms = clock_now_ms(), &runs, err);
        p->claim.req.held_until_ms = NULL;
        if (rc < 0)
            return rc;
        int64_t now = clock_mono_ms();
        if (runs.n > 0 || now >= p->deadline_ms || notify_is_shutdown(ctx->notify))
            break;
        p->waited = true;
        /* A rate limit lets its next run go at held_until: look again then. */
        int64_t until = p->deadline_ms;
        if (held_until > 0 && now + (held_until - claimed_ms) < until)
            until = now + (held_until - claimed_ms);
        if ((rc = handler_park(ctx, req, p->w, now, until)) == HTTP_PARKED) {
            p->work_ns += clock_mono_ns() - began_ns;
            return rc;
        }
    }
    metrics_add(ctx->metrics, METRIC_CLAIMS, runs.n);
    for (size_t i = 0; i < runs.n && log_get_level() <= LOG_DEBUG; i++) {
        char trace[sizeof " trace_id=" + TRACE_ID_LEN];
        log_debug("task run claimed", "run=%s task=%s worker=%s attempt=%d%s", runs.rows[i].id,
                  runs.rows[i].task, p->claim.req.worker, runs.rows[i].attempt,
                  traceparent_log_field(runs.rows[i].traceparent, trace));
    }
    /* Queue wait: from when each run became due (its scheduled time, or the end of its retry
     * delay) to this claim; a run handed out again to a repeated claim is not counted twice
     * (the store leaves its scheduled_at 0). */
    for (size_t i = 0; i < runs.n; i++)
        if (runs.rows[i].scheduled_at > 0)
            metrics_observe_wait(ctx->metrics, runs.rows[i].task,
                                 claimed_ms > runs.rows[i].scheduled_at
                                     ? claimed_ms - runs.rows[i].scheduled_at
                                     : 0);
    /* Claimed runs whose answer cannot be built are not lost: their lease runs out and the
     * sweeper hands them out again. */
    struct jw out = {0};
    write_run_array(&out, "runs", &runs, true);
    jw_lit(&out, ",");
    jw_key(&out, "lease_seconds");
    jw_int(&out, p->claim.req.lease_seconds);
    jw_lit(&out, "}");
    rc = reply_written(reply, HTTP_OK, &out, err);
    run_list_clear(&runs);
    metrics_observe_claim(ctx->metrics, p->work_ns + clock_mono_ns() - began_ns);
    return rc;
}
