/* SPDX-License-Identifier: MIT */
/*
 * submit.c — POST /tasks (see submit.h).
 */
#include "submit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "applog.h"
#include "http_reply.h"
#include "task_request.h"
#include "upstream.h"

#define DETAIL_MAX 256
#define TRACEPARENT_HEADER "traceparent"

enum MHD_Result submit_handle(const api_ctx *ctx, struct MHD_Connection *conn, const form *f)
{
    if (form_too_big(f)) {
        char detail[DETAIL_MAX];
        snprintf(detail, sizeof detail, "Request body too large: the limit is %d bytes",
                 API_MAX_BODY_BYTES);
        return reply_detail(conn, MHD_HTTP_CONTENT_TOO_LARGE, detail);
    }
    if (form_failed(f))
        return reply_detail(conn, MHD_HTTP_BAD_REQUEST, "There was an error parsing the body");

    json_t *params, *detail;
    if (task_request_read(f, &params, &detail) != 0)
        return reply_json(conn, HTTP_STATUS_UNPROCESSABLE, json_pack("{s:o}", "detail", detail));

    enum MHD_Result ret = MHD_NO;
    char *params_text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(params);
    if (!params_text)
        return reply_detail(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    errand_client *client = upstream_client(ctx, conn, &ret);
    if (!client) {
        free(params_text);
        return ret;
    }
    errand_run *run = NULL;
    errand_error err = {0};
    /* W3C trace context: the traceparent of the incoming request becomes this thread's current
       trace context, which liberrand sends with the submission, so the request's trace goes on
       into the background run (and the runs that run submits). An invalid header is ignored,
       as W3C says. Cleared afterwards: libmicrohttpd reuses the thread for other requests. */
    const char *traceparent =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, TRACEPARENT_HEADER);
    errand_trace_set(NULL);
    bool traced = traceparent && errand_trace_set(traceparent) == ERRAND_OK;
    int rc = errand_delay(client, &ctx->task.def, params_text, &run, &err);
    errand_trace_set(NULL);
    if (rc != ERRAND_OK) {
        ret = reply_errand_failure(ctx, conn, "submit the task", rc, &err);
    } else {
        const char *id = errand_run_id(run);
        char msg[DETAIL_MAX];
        snprintf(msg, sizeof msg, "Submitted task run: %s", id);
        /* trace_id: the 32 characters after "00-" of a valid traceparent. */
        applog_info(msg, "task_run_id=%s task=%s state=%s%s%.32s", id, SO_TASK_NAME,
                    errand_run_state_name(run), traced ? " trace_id=" : "",
                    traced ? traceparent + 3 : "");
        ret = reply_json(conn, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "task_run_id", id));
    }
    errand_run_free(run);
    errand_client_free(client);
    free(params_text);
    return ret;
}
