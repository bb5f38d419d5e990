/* SPDX-License-Identifier: MIT */
/*
 * upstream.h — how a failed call to the errand server becomes the API's answer. The server
 * being down or slow is 503 (the client may try again; nothing was submitted), a refused API
 * key or an unexpected answer is 502, and both say which server and what went wrong.
 */
#ifndef SO_UPSTREAM_H
#define SO_UPSTREAM_H

#include <microhttpd.h>

#include "api_routes.h"

/* Logs and answers the failure of `action` ("submit the task", ...) with errand code rc. */
enum MHD_Result reply_errand_failure(const api_ctx *ctx, struct MHD_Connection *conn,
                                     const char *action, int rc, const errand_error *err);

/* A client for this request, or an answer saying why there is none (returns NULL, *ret set). */
errand_client *upstream_client(const api_ctx *ctx, struct MHD_Connection *conn,
                               enum MHD_Result *ret);

#endif
