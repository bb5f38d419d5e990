/* SPDX-License-Identifier: MIT */
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
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/run_json.h"
#include "server/worker_request.h"

#define WORKERS_LIMIT_DEFAULT 100
/* A cursor: the digits of a time, ':' and a worker name. */
#define WORKERS_CURSOR_MAX (24 + WIRE_WORKER_NAME_MAX)

static int lease_http_status(enum lease_status s)
{
    switch (s) {
    case LEASE_APPLIED:
        return HTTP_OK;
    case LEASE_STALE:
        return HTTP_CONFLICT;
    default:
        return HTTP_NOT_FOUND;
    }
}

/* True when any item was refused: the whole answer is then a 409. */
static bool any_refused(const struct lease_answer *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].status != LEASE_APPLIED)
            return true;
    return false;
}

/* The start of item i of an answer's array: {"id": ..., "status": ... (left open). */
static void write_item_start(struct jw *w, size_t i, const char *id, const struct lease_answer *a)
{
    jw_lit(w, i ? ",{" : "{");
    jw_key(w, "id");
    jw_string(w, id ? id : "");
    jw_member(w, "status");
    jw_int(w, lease_http_status(a->status));
}

/* {"leases": [{"id", "status", "cancel"} per lease, in order]}. */
static void write_heartbeat_answer(struct jw *w, const struct heartbeat_body *hb,
                                   const struct lease_answer *a)
{
    jw_lit(w, "{\"leases\":[");
    for (size_t i = 0; i < hb->n_leases; i++) {
        write_item_start(w, i, hb->leases[i].id, &a[i]);
        jw_member(w, "cancel");
        jw_bool(w, a[i].cancel);
        jw_lit(w, "}");
    }
    jw_lit(w, "]}");
}

/* {"reports": [{"id", "status", "state"[, "message"]} per report, in order]}. */
static void write_report_answer(struct jw *w, const struct report_body *rb,
                                const struct lease_answer *a)
{
    jw_lit(w, "{\"reports\":[");
    for (size_t i = 0; i < rb->n_reports; i++) {
        write_item_start(w, i, rb->reports[i].id, &a[i]);
        jw_member(w, "state");
        jw_string(w, a[i].status == LEASE_UNKNOWN ? NULL : state_type_name(a[i].state));
        if (a[i].reason) {
            jw_member(w, "message");
            jw_string(w, a[i].reason);
        }
        jw_lit(w, "}");
    }
    jw_lit(w, "]}");
}

static json_t *workers_json(const struct worker_list *l, int64_t now_ms, int64_t window_ms,
                            errand_error *err)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        const struct worker_record *w = &l->items[i];
        json_t *tasks = run_json_parse(w->tasks, "tasks", w->name, err);
        json_t *item =
            tasks ? json_pack("{s:s, s:o, s:o, s:I, s:b}", "name", w->name ? w->name : "", "tasks",
                              tasks, "last_seen", run_json_time(w->last_seen), "claimed",
                              (json_int_t)w->claimed, "active", w->last_seen >= now_ms - window_ms)
                  : NULL;
        if (!item || json_array_append_new(arr, item) < 0) {
            if (tasks && err)
                error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

int handle_heartbeat(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    struct jw answer = {0};
    struct heartbeat_body hb;
    bool any_stale = false;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_heartbeat(body, ctx->default_lease_seconds, &hb, err)) == 0) {
        struct lease_answer *answers = mem_calloc(hb.n_leases ? hb.n_leases : 1, sizeof *answers);
        if (!answers)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        else if ((rc = store_heartbeat(ctx->st, hb.worker, hb.leases, hb.n_leases, hb.lease_seconds,
                                       clock_now_ms(), answers, err)) == 0) {
            any_stale = any_refused(answers, hb.n_leases);
            write_heartbeat_answer(&answer, &hb, answers);
        }
        mem_free(answers);
        worker_heartbeat_clear(&hb);
    }
    json_decref(body);
    if (rc < 0) {
        jw_discard(&answer);
        return rc;
    }
    return reply_written(reply, any_stale ? HTTP_CONFLICT : HTTP_OK, &answer, err);
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

/* Checks each reported result reference and points it at the server's own copy of the name
 * (result_storage.h); refs[i] (mem_free each) holds the stored form. */
static int accept_result_refs(const struct handler_ctx *ctx, struct report_body *rb, char **refs,
                              errand_error *err)
{
    for (size_t i = 0; i < rb->n_reports; i++) {
        struct run_report *r = &rb->reports[i];
        if (!r->result_ref)
            continue;
        char field[ERRAND_ERROR_FIELD_MAX];
        snprintf(field, sizeof field, "reports[%zu].result_ref", i);
        int rc = result_storage_accept(ctx->results, r->id, r->result_ref, field, &refs[i], err);
        if (rc < 0)
            return rc;
        r->result_ref = refs[i];
    }
    return 0;
}

int handle_report(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    struct jw answer = {0};
    struct report_body rb;
    bool any_stale = false;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = worker_parse_report(body, now, &rb, err)) == 0) {
        struct lease_answer *answers = mem_calloc(rb.n_reports ? rb.n_reports : 1, sizeof *answers);
        char **refs = mem_calloc(rb.n_reports ? rb.n_reports : 1, sizeof *refs);
        if (!answers || !refs)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        else if ((rc = accept_result_refs(ctx, &rb, refs, err)) == 0)
            rc = store_report(ctx->st, rb.worker, rb.batch_id, rb.reports, rb.n_reports, rb.logs,
                              rb.n_logs, now, answers, err);
        if (rc == 0) {
            metrics_add(ctx->metrics, METRIC_REPORTS, rb.n_reports);
            wake_after_reports(ctx, &rb);
            any_stale = any_refused(answers, rb.n_reports);
            /* Applied and committed: a failure to word the answer (out of memory) makes
             * the worker retry, and its resent reports are answered as applied, not applied
             * twice. */
            write_report_answer(&answer, &rb, answers);
        }
        for (size_t i = 0; refs && i < rb.n_reports; i++)
            mem_free(refs[i]);
        mem_free(refs);
        mem_free(answers);
        worker_report_clear(&rb);
    }
    json_decref(body);
    if (rc < 0) {
        jw_discard(&answer);
        return rc;
    }
    return reply_written(reply, any_stale ? HTTP_CONFLICT : HTTP_OK, &answer, err);
}

/* The cursor of the page after worker w: "<last_seen ms>:<name>", opaque to clients. */
static json_t *workers_cursor(const struct worker_record *w)
{
    char *text = mem_printf("%lld:%s", (long long)w->last_seen, w->name ? w->name : "");
    json_t *v = text ? json_string(text) : NULL;
    mem_free(text);
    return v;
}

static int parse_workers_cursor(const char *text, struct worker_cursor *out, errand_error *err)
{
    char *end = NULL;
    long long seen = text[0] >= '0' && text[0] <= '9' ? strtoll(text, &end, 10) : -1;
    if (seen < 0 || !end || *end != ':' || !end[1])
        return error_set(err, ERR_INVALID_PARAMETER, "cursor",
                         "parameter 'cursor' must be a next_cursor of an earlier page");
    out->last_seen = seen;
    out->name = end + 1;
    return 0;
}

const struct query_param workers_params[] = {{"limit", false}, {"cursor", false}, {NULL, false}};

int handle_list_workers(const struct handler_ctx *ctx, const struct http_request *req,
                        struct http_reply *reply, errand_error *err)
{
    struct worker_list workers;
    struct worker_cursor cursor = {0, NULL};
    const char *cursor_text = NULL;
    long long limit = 0;
    bool more = false;
    int64_t window_ms = (int64_t)WORKER_ALIVE_LEASE_PERIODS * ctx->default_lease_seconds * MS_PER_S;
    int rc;
    if ((rc = query_check(req, workers_params, err)) < 0 ||
        (rc = query_int(req, "limit", 1, WIRE_LIST_LIMIT_MAX, WORKERS_LIMIT_DEFAULT, &limit, err)) <
            0 ||
        (rc = query_string(req, "cursor", WORKERS_CURSOR_MAX, &cursor_text, err)) < 0 ||
        (cursor_text && (rc = parse_workers_cursor(cursor_text, &cursor, err)) < 0))
        return rc;
    if ((rc = store_list_workers(ctx->st, cursor_text ? &cursor : NULL, (int)limit, &workers, &more,
                                 err)) < 0)
        return rc;
    json_t *arr = workers_json(&workers, clock_now_ms(), window_ms, err);
    json_t *next = !arr                ? NULL
                   : more && workers.n ? workers_cursor(&workers.items[workers.n - 1])
                                       : json_null();
    worker_list_clear(&workers);
    if (!arr || !next) {
        json_decref(arr);
        return err && err->code ? err->code : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    http_reply_json(reply, HTTP_OK, json_pack("{s:o, s:o}", "workers", arr, "next_cursor", next));
    return 0;
}
