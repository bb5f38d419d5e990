/* SPDX-License-Identifier: MIT */
/*
 * upstream.c — errand client failures as HTTP answers (see upstream.h).
 */
#include "upstream.h"

#include <stdio.h>

#include "applog.h"
#include "http_reply.h"

#define DETAIL_MAX 1024

enum MHD_Result reply_errand_failure(const api_ctx *ctx, struct MHD_Connection *conn,
                                     const char *action, int rc, const errand_error *err)
{
    const char *why = err && err->message[0] ? err->message : errand_strerror(rc);
    unsigned int status;
    char detail[DETAIL_MAX];
    switch (rc) {
    case ERRAND_EUNAVAILABLE:
    case ERRAND_EIO:
    case ERRAND_ETIMEDOUT:
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(detail, sizeof detail,
                 "could not %s: the errand server at %s is unavailable (%s); try again later",
                 action, ctx->errand_url, why);
        break;
    case ERRAND_EAUTH:
        status = MHD_HTTP_BAD_GATEWAY;
        snprintf(detail, sizeof detail,
                 "could not %s: the errand server at %s refused the API key (%s); check "
                 "ERRAND_API_KEY",
                 action, ctx->errand_url, why);
        break;
    default:
        status = MHD_HTTP_BAD_GATEWAY;
        snprintf(detail, sizeof detail, "could not %s: the errand server at %s answered: %s",
                 action, ctx->errand_url, why);
        break;
    }
    applog_warn("errand server call failed", "action=\"%s\" code=\"%s\" status=%u error=\"%s\"",
                action, errand_strerror(rc), status, why);
    return reply_detail(conn, status, detail);
}

errand_client *upstream_client(const api_ctx *ctx, struct MHD_Connection *conn,
                               enum MHD_Result *ret)
{
    errand_client *c = NULL;
    errand_error err = {0};
    int rc = errand_client_new(&ctx->client_opt, &c, &err);
    if (rc != ERRAND_OK) {
        *ret = reply_errand_failure(ctx, conn, "connect to the errand server", rc, &err);
        return NULL;
    }
    return c;
}
