/* SPDX-License-Identifier: MIT */
/*
 * api_routes.c — request dispatch (see api_routes.h). libmicrohttpd calls the handler once
 * when the headers are in (we pick the route and, for POST /tasks, start the form), once per
 * piece of body (fed to the form), and once more at the end (we answer). Bodies of other
 * routes are read and dropped.
 */
#include "api_routes.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "http_reply.h"
#include "page.h"
#include "status.h"
#include "submit.h"

#define TASKS_PREFIX "/tasks/"
#define STATUS_SUFFIX "/status"

typedef enum route {
    ROUTE_NOT_FOUND,
    ROUTE_PAGE,
    ROUTE_HEALTH,
    ROUTE_SUBMIT,
    ROUTE_STATUS,
} route;

typedef struct api_request {
    route route;
    form *form; /* ROUTE_SUBMIT only */
} api_request;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static route match(const char *url)
{
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return ROUTE_PAGE;
    if (strcmp(url, "/health") == 0)
        return ROUTE_HEALTH;
    if (strcmp(url, "/tasks") == 0)
        return ROUTE_SUBMIT;
    size_t prefix = strlen(TASKS_PREFIX), suffix = strlen(STATUS_SUFFIX);
    if (strncmp(url, TASKS_PREFIX, prefix) == 0 && ends_with(url, STATUS_SUFFIX) &&
        strlen(url) > prefix + suffix) {
        /* one path segment between the two */
        const char *id = url + prefix;
        size_t id_len = strlen(id) - suffix;
        if (memchr(id, '/', id_len) == NULL)
            return ROUTE_STATUS;
    }
    return ROUTE_NOT_FOUND;
}

static bool is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result dispatch(const api_ctx *ctx, struct MHD_Connection *conn, const char *url,
                                const char *method, api_request *req)
{
    switch (req->route) {
    case ROUTE_PAGE:
        return is_get(method) ? page_handle(conn) : reply_method_not_allowed(conn, "GET, HEAD");
    case ROUTE_HEALTH:
        return is_get(method) ? reply_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"))
                              : reply_method_not_allowed(conn, "GET, HEAD");
    case ROUTE_SUBMIT:
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return reply_method_not_allowed(conn, "POST");
        return submit_handle(ctx, conn, req->form);
    case ROUTE_STATUS: {
        if (!is_get(method))
            return reply_method_not_allowed(conn, "GET, HEAD");
        size_t prefix = strlen(TASKS_PREFIX);
        size_t id_len = strlen(url) - prefix - strlen(STATUS_SUFFIX);
        char *id = strndup(url + prefix, id_len);
        if (!id)
            return MHD_NO;
        enum MHD_Result ret = status_handle(ctx, conn, id);
        free(id);
        return ret;
    }
    case ROUTE_NOT_FOUND:
        break;
    }
    return reply_detail(conn, MHD_HTTP_NOT_FOUND, "Not Found");
}

enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls)
{
    const api_ctx *ctx = cls;
    api_request *req = *con_cls;
    if (!req) { /* headers only so far */
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->route = match(url);
        if (req->route == ROUTE_SUBMIT && strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
            req->form = form_new(conn, API_MAX_BODY_BYTES);
            if (!req->form) {
                free(req);
                return MHD_NO;
            }
        }
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (req->form)
            form_feed(req->form, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->form)
        form_finish(req->form);
    return dispatch(ctx, conn, url, method, req);
}

void api_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    api_request *req = *con_cls;
    if (!req)
        return;
    form_free(req->form);
    free(req);
    *con_cls = NULL;
}
