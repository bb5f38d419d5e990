/* SPDX-License-Identifier: MIT */
/*
 * webhooks.c — errand_webhook_set: a task's webhook (POST /api/webhooks).
 */
#include <jansson.h>

#include "client/client.h"
#include "core/error.h"

int errand_webhook_set(errand_client *c, const char *task, const char *url, errand_error *err)
{
    error_clear(err);
    if (!c || !task)
        return error_set(err, ERRAND_EINVAL, !c ? NULL : "task", "client and task are required");
    json_t *body =
        json_pack("{s:s, s:o}", "task", task, "url", url ? json_string(url) : json_null());
    if (!body)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = client_call(c, "POST", "/webhooks", body, 0, NULL, err);
    json_decref(body);
    return rc;
}
