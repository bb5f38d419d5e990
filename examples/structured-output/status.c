/* SPDX-License-Identifier: MIT */
/*
 * status.c — the status mapping (see status.h). The id is normalised to errand's canonical
 * form (lowercase, with dashes) first, so "0193...4B21" and the 32-digit form find the run.
 */
#include "status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applog.h"
#include "http_reply.h"
#include "upstream.h"

#define UUID_TEXT_LEN 36
#define UUID_HEX_DIGITS 32
#define REASON_MAX 160
#define MSG_MAX 256
#define COULD_NOT_RETRIEVE_RESULT "<Could not retrieve result>"
#define FAILED_WITHOUT_MESSAGE "Task failed without specific error message."
#define CANCELLED_WITHOUT_MESSAGE "Task run was cancelled."

/* Dashes go after these many hex digits: 8-4-4-4-12. */
static bool dash_after(int digits)
{
    return digits == 8 || digits == 12 || digits == 16 || digits == 20;
}

/* Reads a UUID (with or without dashes, any case) into out (36 chars + NUL); -1 with the
 * reason otherwise, phrased like pydantic's uuid_parsing errors. */
static int normalize_uuid(const char *in, char out[UUID_TEXT_LEN + 1], char *reason)
{
    size_t len = strlen(in);
    bool dashed = len == UUID_TEXT_LEN;
    if (!dashed && len != UUID_HEX_DIGITS) {
        snprintf(reason, REASON_MAX,
                 "invalid length: expected length 32 for simple format, found %zu", len);
        return -1;
    }
    int digits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (c != '-') {
                snprintf(reason, REASON_MAX,
                         "invalid group separator: expected `-`, found `%c` "
                         "at %zu",
                         c, i + 1);
                return -1;
            }
            continue;
        }
        if ((unsigned char)c >= 0x80) { /* keep the reason valid UTF-8 */
            snprintf(reason, REASON_MAX, "invalid character: found a non-ASCII byte at %zu", i + 1);
            return -1;
        }
        if (!isxdigit((unsigned char)c)) {
            snprintf(reason, REASON_MAX,
                     "invalid character: expected an optional prefix of `urn:uuid:` followed "
                     "by [0-9a-fA-F-], found `%c` at %zu",
                     c, i + 1);
            return -1;
        }
        out[o++] = (char)tolower((unsigned char)c);
        if (dash_after(++digits))
            out[o++] = '-';
    }
    out[o] = '\0';
    return 0;
}

static enum MHD_Result reply_bad_id(struct MHD_Connection *conn, const char *id, const char *reason)
{
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "Input should be a valid UUID, %s", reason);
    json_t *input = json_string(id); /* NULL when the path is not valid UTF-8 */
    json_t *detail = json_array();
    json_array_append_new(detail,
                          json_pack("{s:s, s:[s, s], s:s, s:o, s:{s:s}}", "type", "uuid_parsing",
                                    "loc", "path", "task_run_id", "msg", msg, "input",
                                    input ? input : json_null(), "ctx", "error", reason));
    return reply_json(conn, HTTP_STATUS_UNPROCESSABLE, json_pack("{s:o}", "detail", detail));
}

/* The result of a completed run as a JSON value (new reference), or the seed's placeholder. */
static json_t *completed_result(errand_client *c, const errand_run *run)
{
    char *text = NULL;
    errand_error err = {0};
    int rc = errand_result(c, run, &text, &err);
    json_t *value = rc == ERRAND_OK ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    errand_free(text);
    if (!value) {
        applog_warn("could not retrieve the result of a completed task run",
                    "task_run_id=%s code=\"%s\" error=\"%s\"", errand_run_id(run),
                    errand_strerror(rc), err.message);
        return json_string(COULD_NOT_RETRIEVE_RESULT);
    }
    return value;
}

enum MHD_Result status_handle(const api_ctx *ctx, struct MHD_Connection *conn,
                              const char *task_run_id)
{
    char id[UUID_TEXT_LEN + 1], reason[REASON_MAX];
    if (normalize_uuid(task_run_id, id, reason) != 0)
        return reply_bad_id(conn, task_run_id, reason);

    enum MHD_Result ret = MHD_NO;
    errand_client *c = upstream_client(ctx, conn, &ret);
    if (!c)
        return ret;
    errand_run *run = NULL;
    errand_error err = {0};
    int rc = errand_get(c, id, &run, &err);
    if (rc == ERRAND_ENOTFOUND) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "Task run %s not found", id);
        ret = reply_detail(conn, MHD_HTTP_NOT_FOUND, msg);
        goto done;
    }
    if (rc != ERRAND_OK) {
        ret = reply_errand_failure(ctx, conn, "check the task run", rc, &err);
        goto done;
    }

    json_t *body = json_pack("{s:s}", "task_run_id", id);
    const char *message = errand_run_message(run);
    switch (errand_run_state(run)) {
    case ERRAND_STATE_COMPLETED:
        json_object_set_new(body, "status", json_string("completed"));
        json_object_set_new(body, "result", completed_result(c, run));
        break;
    case ERRAND_STATE_FAILED:
    case ERRAND_STATE_CRASHED:
        json_object_set_new(body, "status", json_string("error"));
        json_object_set_new(body, "message",
                            json_string(message && *message ? message : FAILED_WITHOUT_MESSAGE));
        break;
    case ERRAND_STATE_CANCELLED:
        json_object_set_new(body, "status", json_string("error"));
        json_object_set_new(body, "message",
                            json_string(message && *message ? message : CANCELLED_WITHOUT_MESSAGE));
        break;
    case ERRAND_STATE_SCHEDULED:
    case ERRAND_STATE_PENDING:
    case ERRAND_STATE_RUNNING:
    case ERRAND_STATE_CANCELLING:
    default:
        json_object_set_new(body, "status", json_string("pending"));
        break;
    }
    ret = reply_json(conn, MHD_HTTP_OK, body);
done:
    errand_run_free(run);
    errand_client_free(c);
    return ret;
}
