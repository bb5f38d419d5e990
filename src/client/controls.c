/* SPDX-License-Identifier: MIT */
/*
 * controls.c — what a client sets on the server for the runs to come: a task's webhook
 * (POST /api/webhooks), concurrency and rate limits (POST /api/limits) and schedules
 * (POST /api/schedules, …/delete, …/pause, …/resume). The server checks every value and
 * names the field it refuses; these only build the bodies.
 */
#include <jansson.h>

#include "client/client.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

/* POSTs body (stolen; NULL = out of memory) to path; *answer_out (optional) gets the answer
 * as JSON text. */
static int post(errand_client *c, const char *path, json_t *body, char **answer_out,
                errand_error *err)
{
    if (answer_out)
        *answer_out = NULL;
    if (!body)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_t *answer = NULL;
    int rc = client_call(c, "POST", path, body, 0, answer_out ? &answer : NULL, err);
    json_decref(body);
    if (rc == 0 && answer_out) {
        *answer_out = json_dumps(answer, JSON_COMPACT);
        if (!*answer_out)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    json_decref(answer);
    return rc;
}

static bool valid(errand_client *c, const char *name, const char *field, errand_error *err)
{
    error_clear(err);
    if (c && name)
        return true;
    error_set(err, ERRAND_EINVAL, c ? field : NULL, "a client and '%s' are required", field);
    return false;
}

int errand_webhook_set(errand_client *c, const char *task, const char *url, errand_error *err)
{
    if (!valid(c, task, "task", err))
        return err->code;
    return post(c, "/webhooks",
                json_pack("{s:s, s:o}", "task", task, "url", url ? json_string(url) : json_null()),
                NULL, err);
}

int errand_limit_set(errand_client *c, errand_limit_kind kind, const char *name, int max_running,
                     errand_error *err)
{
    if (!valid(c, name, kind == ERRAND_LIMIT_TASK ? "task" : "tag", err))
        return err->code;
    return post(c, "/limits",
                json_pack("{s:s, s:i}", kind == ERRAND_LIMIT_TASK ? "task" : "tag", name,
                          "max_running", max_running),
                NULL, err);
}

int errand_rate_limit_set(errand_client *c, const char *task, int max_starts, double per_seconds,
                          errand_error *err)
{
    if (!valid(c, task, "task", err))
        return err->code;
    return post(c, "/limits",
                json_pack("{s:s, s:i, s:f}", "task", task, "max_starts", max_starts, "per_seconds",
                          per_seconds > 0 ? per_seconds : 1.0),
                NULL, err);
}

int errand_schedule_set(errand_client *c, const char *schedule_json, char **answer_json,
                        errand_error *err)
{
    if (answer_json)
        *answer_json = NULL;
    if (!valid(c, schedule_json, "schedule", err))
        return err->code;
    json_error_t jerr;
    json_t *body = json_loads(schedule_json, 0, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        return error_set(err, ERRAND_EINVAL, "schedule",
                         "the schedule must be a JSON object (docs/api.md, Schedules)");
    }
    return post(c, "/schedules", body, answer_json, err);
}

int errand_schedule_delete(errand_client *c, const char *name, errand_error *err)
{
    if (!valid(c, name, "name", err))
        return err->code;
    return post(c, "/schedules/delete", json_pack("{s:s}", "name", name), NULL, err);
}

int errand_schedule_pause(errand_client *c, const char *name, bool paused, errand_error *err)
{
    if (!valid(c, name, "name", err))
        return err->code;
    return post(c, paused ? "/schedules/pause" : "/schedules/resume",
                json_pack("{s:s}", "name", name), NULL, err);
}
