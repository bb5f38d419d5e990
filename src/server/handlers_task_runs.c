/* SPDX-License-Identifier: MIT */
/*
 * handlers_task_runs.c — the task-run resource: submit (one or a batch), read one, list,
 * cancel. A submission is validated completely (run_spec) before the store sees it; the
 * store answers only once the runs are committed, so a 2xx here means durably stored.
 * Submissions wake claim long-polls; a cancel may make a run final and wakes /wait.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/traceparent.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/run_json.h"
#include "server/submission.h"

#define LIST_LIMIT_DEFAULT 50
/* W3C Trace Context's request header: the submissions of a request that carry no traceparent
 * of their own take it. */
#define TRACEPARENT_HEADER "traceparent"

int reply_written(struct http_reply *reply, int status, struct jw *w, errand_error *err)
{
    char *text = jw_finish(w);
    if (!text)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory writing the answer");
    http_reply_text(reply, status, text, HTTP_CONTENT_JSON);
    return 0;
}

int reply_run(struct http_reply *reply, int status, const struct run_row *r, errand_error *err)
{
    struct jw w = {0};
    run_json_write(&w, r);
    return reply_written(reply, status, &w, err);
}

int handler_park(const struct handler_ctx *ctx, const struct http_request *req, notify_waiter *w,
                 int64_t now_ms, int64_t deadline_ms)
{
    int64_t recheck = now_ms + ctx->poll_recheck_ms;
    return http_park(req, ctx->notify, w, recheck < deadline_ms ? recheck : deadline_ms);
}

void write_run_array(struct jw *w, const char *key, const struct run_list *l, bool claims)
{
    jw_lit(w, "{");
    jw_key(w, key);
    jw_lit(w, "[");
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            jw_lit(w, ",");
        if (claims)
            run_json_write_claim(w, &l->rows[i]);
        else
            run_json_write(w, &l->rows[i]);
    }
    jw_lit(w, "]");
}

/* A debug line per run created (ERRAND_LOGGING_LEVEL=debug), with its trace id: the server's
 * side of following one web request into its runs. */
static void log_created(const struct run_row *r)
{
    if (log_get_level() > LOG_DEBUG)
        return;
    char trace[sizeof " trace_id=" + TRACE_ID_LEN];
    log_debug("task run submitted", "run=%s task=%s%s", r->id, r->task,
              traceparent_log_field(r->traceparent, trace));
}

/* A submission waiting for its commit: handle_submit runs on the event thread, so it hands
 * the run to the store and suspends the request instead of waiting (http_suspend). */
struct pending_submit {
    store *st;
    const struct http_request *req;
    struct run_spec spec;
    store_submission *sub;
    int rc; /* store_submit_begin's failure, answered when the request is resumed */
    errand_error err;
    atomic_bool committed; /* the store is done with sub */
};

static void pending_submit_free(void *state)
{
    struct pending_submit *p = state;
    if (p->sub && atomic_load(&p->committed)) { /* resumed, but never answered */
        struct run_row run;
        store_submit_end(p->st, p->sub, &run, NULL, NULL);
        run_row_clear(&run);
    }
    run_spec_clear(&p->spec);
    mem_free(p);
}

/* The store committed the run (or failed): on its writer thread. */
static void submit_committed(void *arg)
{
    struct pending_submit *p = arg;
    atomic_store(&p->committed, true);
    http_resume(p->req);
}

/* The first call: checks the run and hands it to the store. */
static int submit_begin(const struct handler_ctx *ctx, const struct http_request *req,
                        errand_error *err)
{
    json_t *body = NULL;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    struct pending_submit *p = mem_calloc(1, sizeof *p);
    if (!p) {
        json_decref(body);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    rc = run_spec_parse(body, NULL, now, &p->spec, err);
    json_decref(body);
    if (rc == 0 &&
        (rc = run_spec_trace_default(&p->spec, 1, http_header(req, TRACEPARENT_HEADER), err)) < 0)
        run_spec_clear(&p->spec);
    if (rc < 0) {
        mem_free(p);
        return rc;
    }
    p->st = ctx->st;
    p->req = req;
    atomic_init(&p->committed, false);
    req->longpoll->state = p;
    req->longpoll->free_state = pending_submit_free;
    rc = http_suspend(req); /* before the store can resume it */
    if (store_submit_begin(ctx->st, &p->spec, 1, now, submit_committed, p, &p->sub, &p->err) < 0) {
        p->rc = p->err.code < 0 ? p->err.code : ERRAND_ESTORE;
        http_resume(req); /* answered with the failure at once */
    }
    return rc;
}

int handle_submit(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    struct pending_submit *p = req->longpoll->state;
    if (!p)
        return submit_begin(ctx, req, err);
    if (p->rc < 0) {
        *err = p->err;
        return p->rc;
    }
    struct run_row run;
    bool created = false;
    store_submission *sub = p->sub;
    p->sub = NULL;
    int rc = store_submit_end(ctx->st, sub, &run, &created, err);
    if (rc < 0)
        return rc;
    if (created) {
        notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, p->spec.task);
        log_created(&run);
    }
    rc = reply_run(reply, created ? HTTP_CREATED : HTTP_OK, &run, err);
    run_row_clear(&run);
    return rc;
}

/* RFC 7240's preference for an answer that says no more than it must. */
#define PREFER_MINIMAL "return=minimal"

int handle_submit_batch(const struct handler_ctx *ctx, const struct http_request *req,
                        struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    struct run_list runs = {0};
    struct run_spec *specs = NULL;
    bool *created = NULL;
    size_t n = 0;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    rc = run_spec_parse_batch(body, now, &specs, &n, err);
    json_decref(body);
    if (rc < 0)
        return rc;
    if ((rc = run_spec_trace_default(specs, n, http_header(req, TRACEPARENT_HEADER), err)) < 0)
        goto done;
    runs.rows = mem_calloc(n, sizeof *runs.rows);
    created = mem_calloc(n, sizeof *created);
    if (!runs.rows || !created) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory for %zu runs", n);
        goto done;
    }
    if ((rc = store_submit(ctx->st, specs, n, now, runs.rows, created, err)) < 0)
        goto done;
    runs.n = n;
    /* Once per task: a batch is mostly one task, so only changes of task are signalled. */
    for (size_t i = 0; i < n; i++) {
        bool seen = i > 0 && strcmp(specs[i].task, specs[i - 1].task) == 0;
        if (created[i] && !seen)
            notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, specs[i].task);
        if (created[i])
            log_created(&runs.rows[i]);
    }
    struct jw w = {0};
    bool minimal = http_prefers(req, PREFER_MINIMAL);
    if (minimal) { /* the ids alone, in order */
        jw_lit(&w, "{\"runs\":[");
        for (size_t i = 0; i < n; i++) {
            jw_lit(&w, i ? ",{" : "{");
            jw_key(&w, "id");
            jw_string(&w, runs.rows[i].id);
            jw_lit(&w, "}");
        }
        jw_lit(&w, "]");
    } else {
        write_run_array(&w, "runs", &runs, false);
    }
    jw_lit(&w, "}");
    rc = reply_written(reply, HTTP_CREATED, &w, err);
    if (rc == 0 && minimal)
        reply->preference_applied = PREFER_MINIMAL;
done:
    run_list_clear(&runs);
    mem_free(created);
    run_spec_free_array(specs, n);
    return rc;
}

int handle_get_run(const struct handler_ctx *ctx, const struct http_request *req,
                   struct http_reply *reply, errand_error *err)
{
    struct run_row run;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    rc = reply_run(reply, HTTP_OK, &run, err);
    run_row_clear(&run);
    return rc;
}

const struct query_param list_runs_params[] = {
    {"state", true},   {"task", false},     {"tag", false},   {"limit", false},
    {"cursor", false}, {"since", false},    {"until", false}, {"idempotency_key", false},
    {"worker", false}, {"trace_id", false}, {NULL, false},
};

int handle_list_runs(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    struct run_filter f = {0};
    long long limit = 0;
    struct run_list runs = {0};
    char next[UUID_STR_LEN] = "", oldest[UUID_STR_LEN], newest[UUID_STR_LEN];
    int64_t since = 0, until = 0;
    int rc;
    if ((rc = query_check(req, list_runs_params, err)) < 0 ||
        (rc = query_states(req, "state", &f.state_mask, err)) < 0 ||
        (rc = query_string(req, "task", WIRE_TASK_NAME_MAX, &f.task, err)) < 0 ||
        (rc = query_string(req, "tag", RUN_SPEC_KEY_MAX, &f.tag, err)) < 0 ||
        (rc = query_string(req, "worker", WIRE_WORKER_NAME_MAX, &f.worker, err)) < 0 ||
        (rc = query_string(req, "idempotency_key", RUN_SPEC_KEY_MAX, &f.idempotency_key, err)) <
            0 ||
        (rc = query_int(req, "limit", 1, WIRE_LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &limit, err)) <
            0 ||
        (rc = query_uuid(req, "cursor", &f.cursor, err)) < 0 ||
        (rc = query_time(req, "since", &since, err)) < 0 ||
        (rc = query_time(req, "until", &until, err)) < 0 ||
        (rc = query_string(req, "trace_id", TRACE_ID_LEN, &f.trace_id, err)) < 0)
        return rc;
    if (f.trace_id && !trace_id_valid(f.trace_id))
        return error_set(err, ERR_INVALID_PARAMETER, "trace_id",
                         "parameter 'trace_id' must be a W3C trace id (32 lower-case hex "
                         "characters, not all zeros), got '%.64s'",
                         f.trace_id);
    if (f.idempotency_key && (!f.task || f.tag))
        return error_set(err, ERR_INVALID_PARAMETER, "idempotency_key",
                         "'idempotency_key' finds a run with 'task' (keys are per task), and "
                         "does not combine with 'tag'");
    f.limit = (int)limit;
    if (http_query(req, "since")) { /* ids are time-ordered: a time range is an id range */
        uuid_v7_floor(since, oldest);
        f.oldest = oldest;
    }
    if (http_query(req, "until")) {
        uuid_v7_floor(until + 1, newest);
        if (!f.cursor || strcmp(newest, f.cursor) < 0)
            f.cursor = newest;
    }
    if ((rc = store_list_runs(ctx->st, &f, &runs, next, err)) < 0)
        return rc;
    struct jw w = {0};
    write_run_array(&w, "runs", &runs, false);
    jw_lit(&w, ",");
    jw_key(&w, "next_cursor");
    jw_string(&w, next[0] ? next : NULL);
    jw_lit(&w, "}");
    run_list_clear(&runs);
    return reply_written(reply, HTTP_OK, &w, err);
}

int handle_cancel_run(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    struct run_row run;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_cancel(ctx->st, req->id, clock_now_ms(), &run, err)) < 0)
        return rc;
    notify_signal_key(ctx->notify, NOTIFY_RUN_FINAL, run.id);
    rc = reply_run(reply, HTTP_OK, &run, err);
    run_row_clear(&run);
    return rc;
}
