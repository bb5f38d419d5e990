/* SPDX-License-Identifier: MIT */
/*
 * handlers_limits.c — concurrency limits (docs/api.md, "Concurrency limits"):
 *   GET  /api/limits   every limit, its slots held and the runs holding them
 *   POST /api/limits   {"task": T | "tag": G, "max_running": N}: sets the limit (0 removes it);
 *                      {"task": T, "max_starts": N, "per_seconds": S}: a task's rate limit
 * The store enforces them at claim time (store.h); setting one wakes the waiting claims, since
 * a raised or removed limit may free slots.
 */
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/wire_limits.h"
#include "server/field.h"
#include "server/handlers.h"
#include "server/query.h"

const char *const limit_fields[] = {"task",       "tag",         "max_running",
                                    "max_starts", "per_seconds", NULL};

static const char *kind_key(enum limit_kind kind)
{
    return kind == LIMIT_TASK ? "task" : "tag";
}

static void write_limit(struct jw *w, const struct limit_record *r)
{
    jw_lit(w, "{");
    jw_key(w, kind_key(r->kind));
    jw_string(w, r->name);
    jw_member(w, "max_running");
    if (r->max_running > 0)
        jw_int(w, r->max_running);
    else
        jw_lit(w, "null");
    jw_member(w, "rate");
    if (r->rate_max > 0) {
        jw_lit(w, "{");
        jw_key(w, "max_starts");
        jw_int(w, r->rate_max);
        jw_member(w, "per_seconds");
        jw_number(w, (double)r->rate_period_ms / MS_PER_S);
        jw_lit(w, "}");
    } else {
        jw_lit(w, "null");
    }
    jw_member(w, "held");
    jw_int(w, r->held);
    jw_member(w, "holders");
    jw_lit(w, "[");
    for (size_t i = 0; i < r->n_holders; i++) {
        const struct limit_holder *h = &r->holders[i];
        jw_lit(w, i ? ",{" : "{");
        jw_key(w, "run_id");
        jw_string(w, h->run_id);
        jw_member(w, "task");
        jw_string(w, h->task);
        jw_member(w, "worker");
        jw_string(w, h->worker);
        jw_member(w, "since");
        jw_time(w, h->since);
        jw_lit(w, "}");
    }
    jw_lit(w, "]}");
}

int handle_list_limits(const struct handler_ctx *ctx, const struct http_request *req,
                       struct http_reply *reply, errand_error *err)
{
    struct limit_list limits = {0};
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_list_limits(ctx->st, &limits, err)) < 0)
        return rc;
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "limits");
    jw_lit(&w, "[");
    for (size_t i = 0; i < limits.n; i++) {
        if (i)
            jw_lit(&w, ",");
        write_limit(&w, &limits.items[i]);
    }
    jw_lit(&w, "]}");
    limit_list_clear(&limits);
    return reply_written(reply, HTTP_OK, &w, err);
}

/* The limit's kind and name from a body with "task" or "tag" (one of them). */
static int limit_target(const json_t *body, enum limit_kind *kind, const char **name,
                        errand_error *err)
{
    const char *task = NULL, *tag = NULL;
    bool have_task = false, have_tag = false;
    int rc = field_string(body, NULL, "task", false, WIRE_TASK_NAME_MAX, &task, &have_task, err);
    if (rc < 0 ||
        (rc = field_string(body, NULL, "tag", false, RUN_SPEC_KEY_MAX, &tag, &have_tag, err)) < 0)
        return rc;
    if (have_task == have_tag)
        return error_set(err, have_task ? ERRAND_EINVAL : ERR_MISSING_FIELD, "tag",
                         "give 'task' (a task's limit) or 'tag' (a tag's limit), one of them");
    *kind = have_task ? LIMIT_TASK : LIMIT_TAG;
    *name = have_task ? task : tag;
    if (!**name)
        return error_set(err, ERRAND_EINVAL, kind_key(*kind), "'%s' must not be empty",
                         kind_key(*kind));
    return 0;
}

/* max_starts per per_seconds (default 1 s), for a task only. */
static int set_rate(const struct handler_ctx *ctx, const json_t *body, enum limit_kind kind,
                    const char *name, long long max, errand_error *err)
{
    double per = 1;
    int rc = field_number(body, NULL, "per_seconds", false, 0.001, false,
                          (double)STORE_RATE_PERIOD_MAX_MS / MS_PER_S, &per, NULL, err);
    if (rc < 0)
        return rc;
    if (kind != LIMIT_TASK)
        return error_set(err, ERRAND_EINVAL, "max_starts",
                         "a rate limit ('max_starts') is a task's: give 'task', not 'tag'");
    return store_set_rate(ctx->st, name, (int)max, (int64_t)(per * MS_PER_S + 0.5), err);
}

int handle_set_limit(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    enum limit_kind kind = LIMIT_TAG;
    const char *name = NULL;
    long long max = 0, starts = 0;
    bool have_max = false, have_starts = false;
    if ((rc = field_require_object(body, NULL, err)) == 0 &&
        (rc = json_check_fields(body, NULL, limit_fields, err)) == 0 &&
        (rc = limit_target(body, &kind, &name, err)) == 0 &&
        (rc = field_int(body, NULL, "max_running", false, 0, STORE_LIMIT_MAX_RUNNING, &max,
                        &have_max, err)) == 0 &&
        (rc = field_int(body, NULL, "max_starts", false, 0, STORE_RATE_MAX, &starts, &have_starts,
                        err)) == 0 &&
        !have_max && !have_starts)
        rc = error_set(err, ERR_MISSING_FIELD, "max_running",
                       "give 'max_running' (runs at once) or 'max_starts' (runs started per "
                       "'per_seconds'), or both; 0 removes that limit");
    if (rc == 0 && json_object_get(body, "per_seconds") && !have_starts)
        rc = error_set(err, ERRAND_EINVAL, "per_seconds", "'per_seconds' goes with 'max_starts'");
    if (rc == 0 && have_starts)
        rc = set_rate(ctx, body, kind, name, starts, err);
    if (rc == 0 && have_max)
        rc = store_set_limit(ctx->st, kind, name, (int)max, err);
    if (rc == 0) {
        notify_signal(ctx->notify, NOTIFY_RUNS_DUE); /* slots may be free now */
        json_t *answer = json_pack("{s:s}", kind_key(kind), name);
        if (answer && have_max)
            json_object_set_new(answer, "max_running", json_integer(max));
        if (answer && have_starts)
            json_object_set_new(answer, "max_starts", json_integer(starts));
        http_reply_json(reply, HTTP_OK, answer);
    }
    json_decref(body);
    return rc;
}
