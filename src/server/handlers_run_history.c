/*
 * handlers_run_history.c — what happened to a run: its state history and its logs, both
 * oldest first. Logs are paged by sequence number (after=N), so a reader can follow them.
 */
#include "core/error.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"

#define LOGS_LIMIT_DEFAULT 1000
#define LOG_SEQ_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

int handle_run_states(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    json_t *states = NULL;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_states(ctx->st, req->id, &states, err)) < 0)
        return rc;
    http_reply_json(reply, HTTP_OK, json_pack("{s:o}", "states", states));
    return 0;
}

int handle_run_logs(const struct handler_ctx *ctx, const struct http_request *req,
                    struct http_reply *reply, errand_error *err)
{
    static const struct query_param params[] = {{"after", false}, {"limit", false}, {NULL, false}};
    long long after = 0, limit = 0;
    int64_t next_after = 0;
    json_t *logs = NULL;
    int rc;
    if ((rc = query_check(req, params, err)) < 0 ||
        (rc = query_int(req, "after", 0, LOG_SEQ_MAX, 0, &after, err)) < 0 ||
        (rc = query_int(req, "limit", 1, WIRE_LOGS_LIMIT_MAX, LOGS_LIMIT_DEFAULT, &limit, err)) < 0)
        return rc;
    rc = store_get_logs(ctx->st, req->id, after, (int)limit, &logs, &next_after, err);
    if (rc < 0)
        return rc;
    http_reply_json(reply, HTTP_OK,
                    json_pack("{s:o, s:I}", "logs", logs, "next_after", (json_int_t)next_after));
    return 0;
}
