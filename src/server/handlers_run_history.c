/* SPDX-License-Identifier: MIT */
/*
 * handlers_run_history.c — what happened to a run: its state history and its logs, both
 * oldest first. Logs are paged by sequence number (after=N), so a reader can follow them.
 */
#include "core/error.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/run_json.h"

#define LOGS_LIMIT_DEFAULT 1000
#define LOG_SEQ_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

static const char *log_level_text(errand_log_level level)
{
    if (level < ERRAND_LOG_INFO)
        return "debug";
    if (level < ERRAND_LOG_WARNING)
        return "info";
    if (level < ERRAND_LOG_ERROR)
        return "warning";
    return "error";
}

static json_t *states_json(const struct state_history *h)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < h->n; i++) {
        const struct state_record *r = &h->items[i];
        json_t *item = json_pack("{s:s, s:s?, s:o, s:s}", "type", state_type_name(r->type), "name",
                                 r->name, "timestamp", run_json_time(r->timestamp), "message",
                                 r->message ? r->message : "");
        if (!item || json_array_append_new(arr, item) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static json_t *logs_json(const struct log_page *p)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < p->n; i++) {
        const struct log_record *r = &p->items[i];
        json_t *item = json_pack("{s:I, s:o, s:s, s:s}", "seq", (json_int_t)r->seq, "timestamp",
                                 run_json_time(r->timestamp), "level", log_level_text(r->level),
                                 "message", r->message ? r->message : "");
        if (!item || json_array_append_new(arr, item) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

int handle_run_states(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    struct state_history h;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_states(ctx->st, req->id, &h, err)) < 0)
        return rc;
    json_t *states = states_json(&h);
    state_history_clear(&h);
    if (!states)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    http_reply_json(reply, HTTP_OK, json_pack("{s:o}", "states", states));
    return 0;
}

const struct query_param logs_params[] = {{"after", false}, {"limit", false}, {NULL, false}};

int handle_run_logs(const struct handler_ctx *ctx, const struct http_request *req,
                    struct http_reply *reply, errand_error *err)
{
    long long after = 0, limit = 0;
    struct log_page page;
    int rc;
    if ((rc = query_check(req, logs_params, err)) < 0 ||
        (rc = query_int(req, "after", 0, LOG_SEQ_MAX, 0, &after, err)) < 0 ||
        (rc = query_int(req, "limit", 1, WIRE_LOGS_LIMIT_MAX, LOGS_LIMIT_DEFAULT, &limit, err)) < 0)
        return rc;
    if ((rc = store_get_logs(ctx->st, req->id, after, (int)limit, &page, err)) < 0)
        return rc;
    json_t *logs = logs_json(&page);
    json_int_t next_after = (json_int_t)page.next_after;
    log_page_clear(&page);
    if (!logs)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    http_reply_json(reply, HTTP_OK,
                    json_pack("{s:o, s:I}", "logs", logs, "next_after", next_after));
    return 0;
}
