/* SPDX-License-Identifier: MIT */
/*
 * status.h — GET /tasks/{task_run_id}/status: the seed's get_task_result mapping of a run's
 * state to what a web client needs to know:
 *   SCHEDULED, PENDING, RUNNING, CANCELLING  -> {"status": "pending"}
 *   COMPLETED (Completed or Cached)          -> {"status": "completed", "result": <value>}
 *   FAILED, CRASHED, CANCELLED               -> {"status": "error", "message": "<why>"}
 * always with "task_run_id". The seed counts only failures as errors and would report a
 * cancelled run as pending for ever; here a cancelled run is an error too (it will never
 * complete). An id that is not a UUID answers 422 as FastAPI's UUID path parameter does; an
 * unknown id answers 404; an unreachable errand server 503.
 */
#ifndef SO_STATUS_H
#define SO_STATUS_H

#include <microhttpd.h>

#include "api_routes.h"

enum MHD_Result status_handle(const api_ctx *ctx, struct MHD_Connection *conn,
                              const char *task_run_id);

#endif
