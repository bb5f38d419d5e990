/* SPDX-License-Identifier: MIT */
/*
 * handlers_ui.c — the dashboard's files (ui_assets.h): GET / answers index.html, GET /ui/NAME
 * the file NAME. They hold no data (the pages fetch it, with the session's rights), so they
 * are served without a key: the login is one of them. Every answer carries the server's
 * Content-Security-Policy (http.c): the pages run only these files.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/ui_assets.h"

#define UI_PREFIX "/ui/"
#define UI_INDEX "index.html"

int handle_ui(const struct handler_ctx *ctx, const struct http_request *req,
              struct http_reply *reply, errand_error *err)
{
    (void)ctx;
    const char *name = strncmp(req->path, UI_PREFIX, strlen(UI_PREFIX)) == 0
                           ? req->path + strlen(UI_PREFIX)
                           : UI_INDEX;
    for (const struct ui_asset *a = ui_assets; a->name; a++) {
        if (strcmp(a->name, name) != 0)
            continue;
        char *copy = mem_alloc(a->size + 1);
        if (!copy)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        memcpy(copy, a->data, a->size);
        copy[a->size] = '\0';
        http_reply_text(reply, HTTP_OK, copy, a->content_type);
        reply->text_len = a->size;
        return 0;
    }
    return error_set(err, ERRAND_ENOTFOUND, NULL, "no dashboard file %s", req->path);
}
