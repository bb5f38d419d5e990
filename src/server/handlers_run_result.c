/* SPDX-License-Identifier: MIT */
/*
 * handlers_run_result.c — GET /api/task_runs/{id}/result: the one way clients read a run's
 * result, inline or persisted (result_storage.h). A persisted result is sent straight from
 * its file, never read into memory; a COMPLETED run without either has the result null.
 */
#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/result_storage.h"

#define NULL_RESULT "null"

int handle_run_result(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    struct run_row run;
    int rc = query_none(req, err);
    if (rc < 0 || (rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    if (run.state != ERRAND_STATE_COMPLETED) {
        rc = error_set(err, ERRAND_ECONFLICT, NULL, "task run %s has no result: it is %s%s%s",
                       run.id, state_type_name(run.state),
                       run.state_message && run.state_message[0] ? ": " : "",
                       run.state_message ? run.state_message : "");
    } else if (run.result) {
        char *text = mem_strdup(run.result);
        rc = text ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        if (text)
            http_reply_text(reply, HTTP_OK, text, NULL);
    } else if (run.result_ref && run.result_ref[0]) {
        int fd = -1;
        off_t size = 0;
        if ((rc = result_storage_open(ctx->results, run.result_ref, &fd, &size, err)) == 0)
            http_reply_file(reply, HTTP_OK, fd, (uint64_t)size, NULL);
        else if (rc == ERRAND_ENOTFOUND)
            rc = error_set(err, ERRAND_ENOTFOUND, NULL, "the result of task run %s: %s", run.id,
                           err->message);
    } else {
        char *text = mem_strdup(NULL_RESULT);
        rc = text ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        if (text)
            http_reply_text(reply, HTTP_OK, text, NULL);
    }
    run_row_clear(&run);
    return rc;
}
