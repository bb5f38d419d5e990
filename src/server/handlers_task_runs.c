/*
 * handlers_task_runs.c — the task-run resource: submit (one or a batch), read one, list,
 * cancel. A submission is validated completely (run_spec) before the store sees it; the
 * store answers only once the runs are committed, so a 2xx here means durably stored.
 * Submissions wake claim long-polls; a cancel may make a run final and wakes /wait.
 */
#include <stdbool.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/run_spec.h"

#define LIST_LIMIT_DEFAULT 50

int handle_submit(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL, *run = NULL;
    struct run_spec spec;
    bool created = false;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    rc = run_spec_parse(body, NULL, now, &spec, err);
    json_decref(body);
    if (rc < 0)
        return rc;
    rc = store_submit(ctx->st, &spec, 1, now, &run, &created, err);
    if (rc == 0 && created)
        notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, spec.task);
    run_spec_clear(&spec);
    if (rc < 0)
        return rc;
    http_reply_json(reply, created ? HTTP_CREATED : HTTP_OK, run);
    return 0;
}

int handle_submit_batch(const struct handler_ctx *ctx, const struct http_request *req,
                        struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL, **runs = NULL;
    struct run_spec *specs = NULL;
    bool *created = NULL;
    size_t n = 0;
    int64_t now = clock_now_ms();
    int rc = query_none(req, err);
    if (rc < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    rc = run_spec_parse_batch(body, now, &specs, &n, err);
    json_decref(body);
    if (rc < 0)
        return rc;
    runs = mem_calloc(n, sizeof *runs);
    created = mem_calloc(n, sizeof *created);
    json_t *list = json_array();
    if (!runs || !created || !list) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory for %zu runs", n);
        goto done;
    }
    if ((rc = store_submit(ctx->st, specs, n, now, runs, created, err)) < 0)
        goto done;
    /* Once per task: a batch is mostly one task, so only changes of task are signalled. */
    for (size_t i = 0; i < n; i++) {
        bool seen = i > 0 && strcmp(specs[i].task, specs[i - 1].task) == 0;
        if (created[i] && !seen)
            notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, specs[i].task);
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(list, runs[i]) < 0)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        runs[i] = NULL;
    }
    if (rc == 0) {
        http_reply_json(reply, HTTP_CREATED, json_pack("{s:O}", "runs", list));
    }
done:
    if (runs)
        for (size_t i = 0; i < n; i++)
            json_decref(runs[i]);
    json_decref(list);
    mem_free(runs);
    mem_free(created);
    run_spec_free_array(specs, n);
    return rc;
}

int handle_get_run(const struct handler_ctx *ctx, const struct http_request *req,
                   struct http_reply *reply, errand_error *err)
{
    json_t *run = NULL;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    http_reply_json(reply, HTTP_OK, run);
    return 0;
}

int handle_list_runs(const struct handler_ctx *ctx, const struct http_request *req,
                     struct http_reply *reply, errand_error *err)
{
    static const struct query_param params[] = {
        {"state", true},  {"task", false},   {"tag", false},
        {"limit", false}, {"cursor", false}, {NULL, false},
    };
    struct run_filter f = {0};
    long long limit = 0;
    json_t *runs = NULL;
    char next[UUID_STR_LEN] = "";
    int rc;
    if ((rc = query_check(req, params, err)) < 0 ||
        (rc = query_states(req, "state", &f.state_mask, err)) < 0 ||
        (rc = query_string(req, "task", WIRE_TASK_NAME_MAX, &f.task, err)) < 0 ||
        (rc = query_string(req, "tag", RUN_SPEC_KEY_MAX, &f.tag, err)) < 0 ||
        (rc = query_int(req, "limit", 1, WIRE_LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &limit, err)) <
            0 ||
        (rc = query_uuid(req, "cursor", &f.cursor, err)) < 0)
        return rc;
    f.limit = (int)limit;
    if ((rc = store_list_runs(ctx->st, &f, &runs, next, err)) < 0)
        return rc;
    http_reply_json(reply, HTTP_OK,
                    json_pack("{s:o, s:o}", "runs", runs, "next_cursor",
                              next[0] ? json_string(next) : json_null()));
    return 0;
}

int handle_cancel_run(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    json_t *run = NULL;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_cancel(ctx->st, req->id, clock_now_ms(), &run, err)) < 0)
        return rc;
    const char *id = json_string_value(json_object_get(run, "id"));
    if (id)
        notify_signal_key(ctx->notify, NOTIFY_RUN_FINAL, id);
    http_reply_json(reply, HTTP_OK, run);
    return 0;
}
