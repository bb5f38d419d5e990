/* SPDX-License-Identifier: MIT */
/*
 * handlers_openapi.c — GET /api/openapi.json: the API's OpenAPI document (openapi_document.h),
 * public like the health probes, so that client generators and linters can read the contract
 * of any server without a key. The document describes no data of the server.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "server/handlers.h"
#include "server/openapi_document.h"
#include "server/query.h"

int handle_openapi(const struct handler_ctx *ctx, const struct http_request *req,
                   struct http_reply *reply, errand_error *err)
{
    (void)ctx;
    int rc = query_none(req, err);
    if (rc < 0)
        return rc;
    const struct ui_asset *doc = &openapi_assets[0];
    if (!doc->name) /* the build embeds it; an empty table is a broken build */
        return error_set(err, ERRAND_ESERVER, NULL,
                         "this server was built without its OpenAPI "
                         "document (docs/openapi.json)");
    char *copy = mem_alloc(doc->size + 1);
    if (!copy)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    memcpy(copy, doc->data, doc->size);
    copy[doc->size] = '\0';
    http_reply_text(reply, HTTP_OK, copy, doc->content_type);
    reply->text_len = doc->size;
    return 0;
}
