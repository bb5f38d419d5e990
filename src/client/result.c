/* SPDX-License-Identifier: MIT */
/*
 * result.c — errand_result(): the result of a COMPLETED run, from its inline "result" or,
 * when the result was persisted, from the server (GET /api/task_runs/{id}/result). A client
 * never opens a file a run names: the server serves persisted results from its own result
 * storage only (docs/api.md), so a forged reference cannot make a client read its files.
 */
#include <string.h>

#include "client/client.h"
#include "client/run.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

#define RESULT_SUFFIX "/result"

/* Fetches the persisted result of run_id from the server, as compact JSON text. */
static int fetch_result(errand_client *c, const char *run_id, char **result_json, errand_error *err)
{
    char *path = client_run_path(run_id, RESULT_SUFFIX);
    if (!path)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    struct http_response resp;
    int rc = http_perform(c->conn, "GET", path, NULL, 0, -1, &resp, err);
    mem_free(path);
    if (rc)
        return rc;
    if (resp.status < 200 || resp.status >= 300) {
        rc = http_status_error(resp.status, resp.body, err);
        http_response_clear(&resp);
        return rc;
    }
    json_error_t jerr;
    json_t *v = json_loadb(resp.body, resp.len, JSON_DECODE_ANY, &jerr);
    http_response_clear(&resp);
    if (!v)
        return error_set(err, ERRAND_ESERVER, "result",
                         "the persisted result of task run %s is not valid JSON: %s", run_id,
                         jerr.text);
    *result_json = json_compact(v);
    json_decref(v);
    return *result_json ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

int errand_result(errand_client *c, const errand_run *r, char **result_json, errand_error *err)
{
    if (result_json)
        *result_json = NULL;
    error_clear(err);
    if (!c || !r || !result_json)
        return error_set(err, ERRAND_EINVAL,
                         !c   ? "client"
                         : !r ? "run"
                              : "result_json",
                         "errand_result needs a client, a run and an out pointer");
    switch (r->state) {
    case ERRAND_STATE_COMPLETED:
        break;
    case ERRAND_STATE_FAILED:
    case ERRAND_STATE_CRASHED:
        return error_set(err, ERRAND_EFAILED, NULL, "%s",
                         r->message[0] ? r->message : "the task run failed");
    case ERRAND_STATE_CANCELLED:
        return error_set(err, ERRAND_ECANCELLED, NULL, "task run %s was cancelled", r->id);
    default:
        return error_set(err, ERRAND_ECONFLICT, NULL, "task run %s has no result yet: it is %s",
                         r->id, r->state_name);
    }
    json_t *inline_result = json_object_get(r->root, "result");
    const char *ref = json_string_value(json_object_get(r->root, "result_ref"));
    bool persisted = ref && *ref;
    if (inline_result && !(json_is_null(inline_result) && persisted)) {
        *result_json = json_compact(inline_result);
        return *result_json ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    if (persisted)
        return fetch_result(c, r->id, result_json, err);
    *result_json = mem_strdup("null");
    return *result_json ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}
