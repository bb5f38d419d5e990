/* SPDX-License-Identifier: MIT */
/*
 * handlers_metrics.c — GET /metrics: Prometheus text exposition (see metrics.h).
 */
#include "core/clock.h"
#include "server/handlers.h"
#include "server/query.h"

int handle_metrics(const struct handler_ctx *ctx, const struct http_request *req,
                   struct http_reply *reply, errand_error *err)
{
    char *text = NULL;
    struct metrics_scrape scrape = {
        .parked_long_polls = notify_parked(ctx->notify),
        .now_ms = clock_now_ms(),
        .worker_alive_ms =
            (int64_t)WORKER_ALIVE_LEASE_PERIODS * ctx->default_lease_seconds * MS_PER_S,
    };
    int rc = query_none(req, err);
    if (rc < 0 || (rc = metrics_render(ctx->metrics, ctx->st, &scrape, &text, err)) < 0)
        return rc;
    http_reply_text(reply, HTTP_OK, text, HTTP_CONTENT_PROMETHEUS);
    return 0;
}
