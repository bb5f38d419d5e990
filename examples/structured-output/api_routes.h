/* SPDX-License-Identifier: MIT */
/*
 * api_routes.h — the web API's request handler (an MHD_AccessHandlerCallback) and the
 * read-only context every request shares:
 *   GET  /                          the page (page.c)
 *   POST /tasks                     submit create_structured_output (submit.c)
 *   GET  /tasks/{task_run_id}/status  the seed's status mapping (status.c)
 *   GET  /health                    {"status": "ok"}, for container health checks
 * Requests run on libmicrohttpd's thread per connection; each makes its own errand_client
 * (liberrand clients are cheap and used by one thread at a time).
 */
#ifndef SO_API_ROUTES_H
#define SO_API_ROUTES_H

#include <microhttpd.h>
#include <stddef.h>

#include "errand/errand.h"
#include "task_def.h"

/* The largest POST body accepted; larger answers 413. */
#define API_MAX_BODY_BYTES (1024 * 1024)
/* How long one call to the errand server may take before the API answers 503. */
#define API_ERRAND_TIMEOUT_MS 10000

typedef struct api_ctx {
    so_task task;                     /* what POST /tasks submits (fn unused) */
    errand_client_options client_opt; /* for the per-request clients */
    const char *errand_url;           /* the errand server, for messages */
} api_ctx;

/* The MHD access handler; cls is the api_ctx. */
enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls);

/* The MHD request-completed callback: frees what api_handle kept for the request. */
void api_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe);

#endif
