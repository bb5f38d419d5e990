/* SPDX-License-Identifier: MIT */
/*
 * submit.h — POST /tasks: the seed's submit_task. Validates the form, submits one run of
 * create_structured_output with errand_delay (so the run carries the task's retries,
 * timeout, cache key and persistence), logs "Submitted task run: <id>" and answers
 * 202 {"task_run_id": "<id>"}. A 2xx from errand means the run is durably stored; any
 * failure answers before anything is acknowledged.
 */
#ifndef SO_SUBMIT_H
#define SO_SUBMIT_H

#include <microhttpd.h>

#include "api_routes.h"
#include "form.h"

enum MHD_Result submit_handle(const api_ctx *ctx, struct MHD_Connection *conn, const form *f);

#endif
