/* SPDX-License-Identifier: MIT */
/*
 * wire_limits.h — the limits of the HTTP API (docs/api.md) that both sides of the wire must
 * agree on: the server refuses what exceeds them with a 400 naming the field, and the worker
 * runtime, the client library and the CLI never send more. One definition each, so the two
 * sides cannot drift apart (a worker batching more reports than the server accepts would see
 * its whole batch refused).
 */
#ifndef ERRAND_CORE_WIRE_LIMITS_H
#define ERRAND_CORE_WIRE_LIMITS_H

/* Names. */
#define WIRE_TASK_NAME_MAX 200   /* characters of a task name */
#define WIRE_WORKER_NAME_MAX 200 /* characters of a worker name */

/* Submission. */
#define WIRE_SUBMIT_BATCH_MAX 10000 /* runs in one POST /api/task_runs/batch */
#define WIRE_WAIT_FOR_MAX                                                                          \
    100 /* upstream runs one run waits for (wait_for and the                                       \
           {"$result": ...} references in its parameters) */

/* Listings. */
#define WIRE_LIST_LIMIT_MAX 1000 /* ?limit= of GET /api/task_runs and /api/workers */
#define WIRE_LOGS_LIMIT_MAX 1000 /* ?limit= of GET /api/task_runs/{id}/logs */

/* Worker protocol. */
#define WIRE_WORKER_TASKS_MAX 1000     /* task names in one claim */
#define WIRE_CLAIM_LIMIT_MAX 1000      /* runs asked for in one claim */
#define WIRE_HEARTBEAT_LEASES_MAX 1000 /* leases in one heartbeat */
#define WIRE_REPORTS_MAX 1000          /* state reports in one POST /api/workers/report */
#define WIRE_REPORT_LOGS_MAX 10000     /* log lines in one POST /api/workers/report */
#define WIRE_RESULT_REF_MAX 2048       /* characters of a result reference */
#define WIRE_BATCH_ID_MAX 64           /* characters of a report request's batch_id */
#define WIRE_REQUEST_ID_MAX 64         /* characters of a claim request's request_id */
#define WIRE_MESSAGE_MAX 65536         /* characters of a failure message or a log line */
#define WIRE_JSON_DEPTH_MAX 64         /* arrays and objects nested in one request body */
/* A report's result sits three levels down in its body ({"reports": [{"result": ...}]}). */
#define WIRE_RESULT_DEPTH_MAX (WIRE_JSON_DEPTH_MAX - 3)
#define WIRE_LEASE_SECONDS_MIN 1
#define WIRE_LEASE_SECONDS_MAX 3600

#endif
