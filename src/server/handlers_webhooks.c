/* SPDX-License-Identifier: MIT */
/*
 * handlers_webhooks.c — webhooks (docs/api.md, "Webhooks"):
 *   GET  /api/webhooks   every task's webhook, and the deliveries not made yet (the soonest
 *                        due first, at most WEBHOOK_PENDING_SHOWN, with how many there are)
 *   POST /api/webhooks   {"task": T, "url": U}: T's runs are reported to U when they end;
 *                        {"task": T, "url": null} removes it
 * The calls themselves are the webhook sender's (server/webhook_sender.h).
 */
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/wire_limits.h"
#include "server/field.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/webhook_url.h"

/* The deliveries GET /api/webhooks lists at most. */
#define WEBHOOK_PENDING_SHOWN 100

const char *const webhook_fields[] = {"task", "url", NULL};

static void write_delivery(struct jw *w, const struct webhook_delivery *d)
{
    jw_lit(w, "{");
    jw_key(w, "id");
    jw_int(w, d->id);
    jw_member(w, "run_id");
    jw_string(w, d->run_id);
    jw_member(w, "url");
    jw_string(w, d->url);
    jw_member(w, "attempts");
    jw_int(w, d->attempt);
    jw_member(w, "next_at");
    jw_time(w, d->next_at);
    jw_member(w, "last_error");
    if (d->last_error)
        jw_string(w, d->last_error);
    else
        jw_lit(w, "null");
    jw_member(w, "created");
    jw_time(w, d->created);
    jw_lit(w, "}");
}

int handle_list_webhooks(const struct handler_ctx *ctx, const struct http_request *req,
                         struct http_reply *reply, errand_error *err)
{
    struct task_webhook_list hooks = {0};
    struct webhook_delivery_list pending = {0};
    int64_t total = 0;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_webhook_list(ctx->st, &hooks, err)) < 0)
        return rc;
    if ((rc = store_webhook_pending(ctx->st, WEBHOOK_PENDING_SHOWN, &pending, &total, err)) < 0) {
        task_webhook_list_clear(&hooks);
        return rc;
    }
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "webhooks");
    jw_lit(&w, "[");
    for (size_t i = 0; i < hooks.n; i++) {
        jw_lit(&w, i ? ",{" : "{");
        jw_key(&w, "task");
        jw_string(&w, hooks.items[i].task);
        jw_member(&w, "url");
        jw_string(&w, hooks.items[i].url);
        jw_member(&w, "created");
        jw_time(&w, hooks.items[i].created);
        jw_member(&w, "updated");
        jw_time(&w, hooks.items[i].updated);
        jw_lit(&w, "}");
    }
    jw_lit(&w, "]");
    jw_member(&w, "pending");
    jw_int(&w, total);
    jw_member(&w, "deliveries");
    jw_lit(&w, "[");
    for (size_t i = 0; i < pending.n; i++) {
        if (i)
            jw_lit(&w, ",");
        write_delivery(&w, &pending.items[i]);
    }
    jw_lit(&w, "]}");
    task_webhook_list_clear(&hooks);
    webhook_delivery_list_clear(&pending);
    return reply_written(reply, HTTP_OK, &w, err);
}

int handle_set_webhook(const struct handler_ctx *ctx, const struct http_request *req,
                       struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    const char *task = NULL, *url = NULL;
    bool have_url = false;
    const json_t *url_value = NULL;
    if ((rc = field_require_object(body, NULL, err)) == 0 &&
        (rc = json_check_fields(body, NULL, webhook_fields, err)) == 0 &&
        (rc = field_string(body, NULL, "task", true, WIRE_TASK_NAME_MAX, &task, NULL, err)) == 0) {
        url_value = json_object_get(body, "url");
        if (!url_value)
            rc = error_set(err, ERR_MISSING_FIELD, "url",
                           "give 'url' (where the task's runs are reported when they end), or "
                           "null to remove the task's webhook");
        else if (!json_is_null(url_value) &&
                 (rc = field_string(body, NULL, "url", true, WEBHOOK_URL_MAX, &url, &have_url,
                                    err)) == 0)
            rc = webhook_url_check(url, "url", err);
    }
    if (rc == 0)
        rc = store_webhook_set(ctx->st, task, have_url ? url : NULL, clock_now_ms(), err);
    if (rc == 0) {
        json_t *answer =
            json_pack("{s:s,s:o}", "task", task, "url", have_url ? json_string(url) : json_null());
        http_reply_json(reply, HTTP_OK, answer);
    }
    json_decref(body);
    return rc;
}
