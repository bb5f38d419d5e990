/* SPDX-License-Identifier: MIT */
/*
 * handlers_bulk.c — the controls people reach for during an incident:
 *   GET  /api/failures?task=&limit=  FAILED and CRASHED runs grouped by task and the shape
 *                                    of their message (store_list_failures), latest first;
 *   POST /api/task_runs/bulk         cancel, retry or delete the runs a filter selects
 *                                    (task, tag, worker, states, failure fingerprint), a page at a
 *                                    time: the answer's next_cursor continues where it stopped,
 *                                    so one request's work is bounded however many runs match.
 * A bulk action needs at least one filter: "delete everything" is not one request away.
 */
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fingerprint.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"

#define FAILURES_DEFAULT 100
#define BULK_DEFAULT 100

const struct query_param failures_params[] = {{"task", false}, {"limit", false}, {NULL, false}};
const char *const bulk_fields[] = {"action",      "task",   "tag",   "worker", "state",
                                   "fingerprint", "cursor", "limit", NULL};

int handle_failures(const struct handler_ctx *ctx, const struct http_request *req,
                    struct http_reply *reply, errand_error *err)
{
    const char *task = NULL;
    long long limit = 0;
    int rc;
    if ((rc = query_check(req, failures_params, err)) < 0 ||
        (rc = query_string(req, "task", WIRE_TASK_NAME_MAX, &task, err)) < 0 ||
        (rc = query_int(req, "limit", 1, WIRE_LIST_LIMIT_MAX, FAILURES_DEFAULT, &limit, err)) < 0)
        return rc;
    struct failure_group_list l;
    if ((rc = store_list_failures(ctx->st, task, (int)limit, &l, err)) < 0)
        return rc;
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "groups");
    jw_lit(&w, "[");
    for (size_t i = 0; i < l.n; i++) {
        const struct failure_group *g = &l.items[i];
        jw_lit(&w, i ? ",{" : "{");
        jw_key(&w, "task");
        jw_string(&w, g->task);
        jw_member(&w, "fingerprint");
        jw_string(&w, g->fingerprint);
        jw_member(&w, "message");
        jw_string(&w, g->message);
        jw_member(&w, "count");
        jw_int(&w, g->count);
        jw_member(&w, "last_at");
        jw_time(&w, g->last_at);
        jw_member(&w, "last_run");
        jw_string(&w, g->last_id);
        jw_lit(&w, "}");
    }
    jw_lit(&w, "]}");
    failure_group_list_clear(&l);
    return reply_written(reply, HTTP_OK, &w, err);
}

enum bulk_action { BULK_CANCEL, BULK_RETRY, BULK_DELETE };

struct bulk_request {
    enum bulk_action action;
    struct run_filter filter;
    const char *fingerprint; /* NULL = any */
};

static int parse_states(json_t *v, unsigned *mask, errand_error *err)
{
    json_t *one = json_is_string(v) ? v : NULL;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!one && !json_is_array(v))
        return error_set(err, ERRAND_EINVAL, "state",
                         "'state' must be a state type or an array of them");
    for (size_t i = 0; i < n; i++) {
        json_t *s = one ? one : json_array_get(v, i);
        errand_state st;
        if (!json_is_string(s) || !state_parse(json_string_value(s), &st))
            return error_set(err, ERRAND_EINVAL, "state",
                             "'state' holds '%.40s', not one of SCHEDULED, PENDING, RUNNING, "
                             "COMPLETED, FAILED, CRASHED, CANCELLING, CANCELLED",
                             json_is_string(s) ? json_string_value(s) : json_type_label(s));
        *mask |= 1u << st;
    }
    return 0;
}

/* The body's optional string field name of at most max characters, into *out. */
static int opt_string(json_t *body, const char *name, size_t max, const char **out,
                      errand_error *err)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max * 4)
        return error_set(err, ERRAND_EINVAL, name, "'%s' must be a string of 1-%zu characters",
                         name, max);
    *out = json_string_value(v);
    return 0;
}

static int parse_bulk(json_t *body, struct bulk_request *b, errand_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; bulk_fields[i] && !ok; i++)
            ok = strcmp(bulk_fields[i], key) == 0;
        if (!ok)
            return error_set(err, ERR_UNKNOWN_FIELD, key, "unknown field '%.64s'", key);
    }
    const char *action = json_string_value(json_object_get(body, "action"));
    if (!json_object_get(body, "action"))
        return error_set(err, ERR_MISSING_FIELD, "action",
                         "'action' is required: cancel, retry or delete");
    if (action && strcmp(action, "cancel") == 0)
        b->action = BULK_CANCEL;
    else if (action && strcmp(action, "retry") == 0)
        b->action = BULK_RETRY;
    else if (action && strcmp(action, "delete") == 0)
        b->action = BULK_DELETE;
    else
        return error_set(err, ERRAND_EINVAL, "action", "'action' must be cancel, retry or delete");
    int rc;
    if ((rc = opt_string(body, "task", WIRE_TASK_NAME_MAX, &b->filter.task, err)) < 0 ||
        (rc = opt_string(body, "tag", RUN_SPEC_KEY_MAX, &b->filter.tag, err)) < 0 ||
        (rc = opt_string(body, "worker", WIRE_WORKER_NAME_MAX, &b->filter.worker, err)) < 0 ||
        (rc = opt_string(body, "fingerprint", FINGERPRINT_MAX - 1, &b->fingerprint, err)) < 0 ||
        (rc = opt_string(body, "cursor", UUID_STR_LEN - 1, &b->filter.cursor, err)) < 0)
        return rc;
    if (b->filter.cursor && !uuid_is_valid(b->filter.cursor))
        return error_set(err, ERRAND_EINVAL, "cursor",
                         "'cursor' must be the next_cursor of an earlier answer (a run id)");
    json_t *states = json_object_get(body, "state");
    if (states && (rc = parse_states(states, &b->filter.state_mask, err)) < 0)
        return rc;
    json_t *limit = json_object_get(body, "limit");
    b->filter.limit = BULK_DEFAULT;
    if (limit) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
            json_integer_value(limit) > WIRE_LIST_LIMIT_MAX)
            return error_set(err, ERRAND_EINVAL, "limit", "'limit' must be an integer 1-%d",
                             WIRE_LIST_LIMIT_MAX);
        b->filter.limit = (int)json_integer_value(limit);
    }
    if (!b->filter.task && !b->filter.tag && !b->filter.worker && !b->filter.state_mask &&
        !b->fingerprint)
        return error_set(err, ERR_MISSING_FIELD, NULL,
                         "a bulk action needs a filter: task, tag, worker, state or fingerprint");
    if (b->fingerprint && !b->filter.state_mask) /* only failed runs have one */
        b->filter.state_mask = 1u << ERRAND_STATE_FAILED | 1u << ERRAND_STATE_CRASHED;
    return 0;
}

/* Whether r belongs to the failure group of fingerprint fp. */
static bool in_group(const struct run_row *r, const char *fp)
{
    if (r->state != ERRAND_STATE_FAILED && r->state != ERRAND_STATE_CRASHED)
        return false;
    char mine[FINGERPRINT_MAX];
    failure_fingerprint(r->state_message, mine);
    return strcmp(mine, fp) == 0;
}

/* Applies the action to the selected rows; ids[] receives the runs acted on (for a retry,
 * the new runs). */
static int act(const struct handler_ctx *ctx, const struct bulk_request *b, struct run_list *rows,
               bool *selected, struct jw *ids, int *done, errand_error *err)
{
    const char **del = b->action == BULK_DELETE ? mem_calloc(rows->n + 1, sizeof *del) : NULL;
    size_t n_del = 0;
    if (b->action == BULK_DELETE && !del)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < rows->n; i++) {
        if (!selected[i])
            continue;
        const struct run_row *r = &rows->rows[i];
        errand_error one;
        error_clear(&one);
        struct run_row out;
        int r_rc = 0;
        if (b->action == BULK_CANCEL) {
            if (state_is_final(r->state) || r->state == ERRAND_STATE_CANCELLING)
                continue;
            if ((r_rc = store_cancel(ctx->st, r->id, clock_now_ms(), &out, &one)) == 0) {
                notify_signal_key(ctx->notify, NOTIFY_RUN_FINAL, r->id);
                jw_lit(ids, *done ? "," : "");
                jw_string(ids, r->id);
                run_row_clear(&out);
            }
        } else if (b->action == BULK_RETRY) {
            if (r->state != ERRAND_STATE_FAILED && r->state != ERRAND_STATE_CRASHED &&
                r->state != ERRAND_STATE_CANCELLED)
                continue;
            if ((r_rc = run_retry(ctx, r, &out, &one)) == 0) {
                jw_lit(ids, *done ? "," : "");
                jw_string(ids, out.id);
                run_row_clear(&out);
            }
        } else {
            if (state_is_final(r->state))
                del[n_del++] = r->id;
            continue;
        }
        if (r_rc == 0)
            (*done)++;
        else if (r_rc != ERRAND_ECONFLICT) /* changed meanwhile: skipped; else a real failure */
            rc = error_set(err, r_rc, NULL, "%s", one.message);
    }
    if (rc == 0 && n_del > 0) {
        struct ref_list freed = {0};
        int deleted = 0;
        if ((rc = store_delete_runs(ctx->st, del, n_del, &deleted, &freed, err)) == 0) {
            result_storage_delete_files(ctx->results, freed.refs, freed.n);
            ref_list_clear(&freed);
            for (size_t i = 0; i < n_del; i++) {
                jw_lit(ids, i ? "," : "");
                jw_string(ids, del[i]);
            }
            *done = deleted;
        }
    }
    mem_free(del);
    return rc;
}

int handle_bulk(const struct handler_ctx *ctx, const struct http_request *req,
                struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    struct bulk_request b = {0};
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    if ((rc = parse_bulk(body, &b, err)) < 0) {
        json_decref(body);
        return rc;
    }
    struct run_list rows = {0};
    char next[UUID_STR_LEN] = "";
    if ((rc = store_list_runs(ctx->st, &b.filter, &rows, next, err)) < 0) {
        json_decref(body);
        return rc;
    }
    bool *selected = mem_calloc(rows.n + 1, sizeof *selected);
    struct jw ids = {0};
    int matched = 0, done = 0;
    if (!selected) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    } else {
        for (size_t i = 0; i < rows.n; i++)
            if ((selected[i] = !b.fingerprint || in_group(&rows.rows[i], b.fingerprint)))
                matched++;
        rc = act(ctx, &b, &rows, selected, &ids, &done, err);
    }
    if (rc == 0) {
        static const char *const names[] = {"cancel", "retry", "delete"};
        struct jw w = {0};
        jw_lit(&w, "{");
        jw_key(&w, "action");
        jw_string(&w, names[b.action]);
        jw_member(&w, "matched");
        jw_int(&w, matched);
        jw_member(&w, "done");
        jw_int(&w, done);
        jw_member(&w, "skipped");
        jw_int(&w, matched - done);
        jw_member(&w, "runs");
        jw_lit(&w, "[");
        if (ids.len)
            jw_raw(&w, ids.buf, ids.len);
        jw_lit(&w, "]");
        jw_member(&w, "next_cursor");
        jw_string(&w, next[0] ? next : NULL);
        jw_lit(&w, "}");
        rc = reply_written(reply, HTTP_OK, &w, err);
    }
    jw_discard(&ids);
    mem_free(selected);
    run_list_clear(&rows);
    json_decref(body);
    return rc;
}
