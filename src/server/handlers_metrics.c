/* SPDX-License-Identifier: MIT */
/*
 * handlers_metrics.c — GET /metrics: Prometheus text exposition (see metrics.h).
 */
#include "server/handlers.h"
#include "server/query.h"

int handle_metrics(const struct handler_ctx *ctx, const struct http_request *req,
                   struct http_reply *reply, errand_error *err)
{
    char *text = NULL;
    int rc = query_none(req, err);
    if (rc < 0 ||
        (rc = metrics_render(ctx->metrics, ctx->st, notify_parked(ctx->notify), &text, err)) < 0)
        return rc;
    http_reply_text(reply, HTTP_OK, text, HTTP_CONTENT_PROMETHEUS);
    return 0;
}
