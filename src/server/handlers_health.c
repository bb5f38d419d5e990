/* SPDX-License-Identifier: MIT */
/*
 * handlers_health.c — GET /api/health: a cheap liveness answer with the version, the store
 * kind and the wire version; GET /api/health/ready: readiness, whether the store takes
 * writes (readiness.h). They are the endpoints served without the API key, so load
 * balancers and `errand` itself can probe a server without credentials.
 */
#include "core/clock.h"
#include "core/error.h"
#include "server/handlers.h"
#include "server/query.h"

#ifndef ERRAND_VERSION
#define ERRAND_VERSION "0.0.0" /* set by the build (CMake) */
#endif

#define WIRE_API_VERSION 1

int handle_health(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    int rc = query_none(req, err);
    if (rc < 0)
        return rc;
    http_reply_json(reply, HTTP_OK,
                    json_pack("{s:s, s:s, s:s, s:i}", "status", "ok", "version", ERRAND_VERSION,
                              "store", store_kind(ctx->st), "api_version", WIRE_API_VERSION));
    return 0;
}

int handle_ready(const struct handler_ctx *ctx, const struct http_request *req,
                 struct http_reply *reply, errand_error *err)
{
    int rc = query_none(req, err);
    if (rc < 0)
        return rc;
    rc = ctx->readiness ? readiness_check(ctx->readiness, ctx->st, clock_mono_ms(), err)
                        : store_ready(ctx->st, err);
    if (rc == ERR_NO_SPACE) /* 507 says what happened */
        return rc;
    if (rc < 0)
        return error_set(err, ERRAND_EUNAVAILABLE, NULL, "not ready: %s", err->message);
    http_reply_json(reply, HTTP_OK,
                    json_pack("{s:s, s:s}", "status", "ready", "store", store_kind(ctx->st)));
    return 0;
}
