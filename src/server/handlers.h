/* SPDX-License-Identifier: MIT */
/*
 * handlers.h — the request handlers, one per endpoint of docs/api.md, and the context they
 * share. A handler either fills the reply and returns 0, or returns a negative code with err
 * filled, and http.c renders the error body ({"error": {"code", "message", "field"}}).
 * Handlers are grouped by resource in handlers_*.c.
 *
 * The context is read-only once the server runs; everything in it is thread-safe.
 */
#ifndef ERRAND_SERVER_HANDLERS_H
#define ERRAND_SERVER_HANDLERS_H

#include "errand/errand.h"
#include "server/event_feed.h"
#include "server/http.h"
#include "core/json_writer.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/query.h"
#include "server/readiness.h"
#include "server/result_storage.h"
#include "server/scheduler.h"
#include "store/store.h"

struct handler_ctx {
    store *st;
    notify *notify;
    event_feed *events; /* the change feed, for GET /api/events */
    metrics *metrics;
    readiness *readiness;          /* NULL: GET /api/health/ready probes the store at every call */
    const result_storage *results; /* NULL: no result storage (references are refused) */
    int default_lease_seconds;     /* ERRAND_LEASE_SECONDS */
    int poll_recheck_ms;           /* ERRAND_POLL_RECHECK_MS */
    scheduler *scheduler;          /* woken when a schedule changes; NULL: none runs here */
    int64_t scheduler_clock_offset_ms; /* ERRAND_SCHEDULER_CLOCK_OFFSET_SECONDS: next ticks
                                          are computed on the scheduler's clock */
};

/* The statuses handlers answer with themselves; failures get theirs from the error code
 * (error_http_status). A heartbeat or report with a stale lease answers HTTP_CONFLICT. */
enum {
    HTTP_OK = 200,
    HTTP_CREATED = 201,
    HTTP_NOT_FOUND = 404,
    HTTP_CONFLICT = 409,
};

/* Replies with the JSON text written into w (which it takes); ERRAND_ENOMEM when writing
 * it ran out of memory (handlers_task_runs.c). */
int reply_written(struct http_reply *reply, int status, struct jw *w, errand_error *err);
/* Replies with the task-run object of r. */
int reply_run(struct http_reply *reply, int status, const struct run_row *r, errand_error *err);
/* Writes {"<key>": [<each row as a task-run or claim object>] into w, leaving the object open
 * for more members. */
void write_run_array(struct jw *w, const char *key, const struct run_list *l, bool claims);

/* Parks a long-poll (http_park) until a signal for w, its next re-check (ERRAND_POLL_RECHECK_MS
 * after now_ms) or deadline_ms, whichever comes first; returns what http_park does. */
int handler_park(const struct handler_ctx *ctx, const struct http_request *req, notify_waiter *w,
                 int64_t now_ms, int64_t deadline_ms);

/* A worker is active ("alive" in /metrics) when seen within this many lease periods. */
#define WORKER_ALIVE_LEASE_PERIODS 3

typedef int (*handler_fn)(const struct handler_ctx *ctx, const struct http_request *req,
                          struct http_reply *reply, errand_error *err);

/* handlers_task_runs.c */
int handle_submit(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                  errand_error *);
int handle_submit_batch(const struct handler_ctx *, const struct http_request *,
                        struct http_reply *, errand_error *);
int handle_get_run(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                   errand_error *);
int handle_list_runs(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                     errand_error *);
int handle_cancel_run(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                      errand_error *);

/* handlers_run_retry.c. run_retry: a new run of original's task, parameters and options,
 * linked to it (ERRAND_ECONFLICT unless original is FAILED, CRASHED or CANCELLED). */
int run_retry(const struct handler_ctx *ctx, const struct run_row *original, struct run_row *out,
              errand_error *err);
int handle_retry_run(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                     errand_error *);

/* handlers_run_history.c */
int handle_run_states(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                      errand_error *);
int handle_run_logs(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                    errand_error *);

/* handlers_wait.c */
int handle_wait_run(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                    errand_error *);

/* handlers_claim.c */
int handle_claim(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                 errand_error *);

/* handlers_workers.c */
int handle_heartbeat(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                     errand_error *);
int handle_report(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                  errand_error *);
int handle_list_workers(const struct handler_ctx *, const struct http_request *,
                        struct http_reply *, errand_error *);

/* handlers_events.c */
int handle_events(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                  errand_error *);

/* handlers_stats.c: the dashboard's figures, pausing tasks */
int handle_stats(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                 errand_error *);
/* handlers_limits.c: concurrency limits */
int handle_list_limits(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                       errand_error *);
int handle_set_limit(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                     errand_error *);
int handle_task_pause(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                      errand_error *);
int handle_task_resume(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                       errand_error *);

/* handlers_webhooks.c: the tasks' webhooks, and the deliveries not made yet */
int handle_list_webhooks(const struct handler_ctx *, const struct http_request *,
                         struct http_reply *, errand_error *);
int handle_set_webhook(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                       errand_error *);

/* handlers_schedules.c: schedules */
int handle_schedule_put(const struct handler_ctx *, const struct http_request *,
                        struct http_reply *, errand_error *);
int handle_schedule_list(const struct handler_ctx *, const struct http_request *,
                         struct http_reply *, errand_error *);
int handle_schedule_delete(const struct handler_ctx *, const struct http_request *,
                           struct http_reply *, errand_error *);
int handle_schedule_pause(const struct handler_ctx *, const struct http_request *,
                          struct http_reply *, errand_error *);
int handle_schedule_resume(const struct handler_ctx *, const struct http_request *,
                           struct http_reply *, errand_error *);

/* handlers_bulk.c: failure groups, and actions on a filtered set of runs */
int handle_failures(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                    errand_error *);
int handle_bulk(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                errand_error *);

/* handlers_session.c: the dashboard's login */
int handle_session_get(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                       errand_error *);
int handle_session_login(const struct handler_ctx *, const struct http_request *,
                         struct http_reply *, errand_error *);
int handle_session_logout(const struct handler_ctx *, const struct http_request *,
                          struct http_reply *, errand_error *);

/* handlers_openapi.c: the API's OpenAPI document */
int handle_openapi(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                   errand_error *);

/* The query parameters each listing takes and the fields of the bodies the handlers read
 * themselves (the others: submission.h, worker_request.h), NULL-terminated; anything else
 * is refused naming it. Exported so that test_openapi can hold them against the API's
 * OpenAPI document (docs/openapi.json). */
extern const struct query_param list_runs_params[]; /* GET /api/task_runs */
extern const struct query_param wait_params[];      /* GET /api/task_runs/{id}/wait */
extern const struct query_param logs_params[];      /* GET /api/task_runs/{id}/logs */
extern const struct query_param workers_params[];   /* GET /api/workers */
extern const struct query_param events_params[];    /* GET /api/events */
extern const struct query_param stats_params[];     /* GET /api/stats */
extern const struct query_param failures_params[];  /* GET /api/failures */
extern const char *const bulk_fields[];             /* POST /api/task_runs/bulk */
extern const char *const task_control_fields[];     /* POST /api/tasks/pause, /resume */
extern const char *const session_login_fields[];    /* POST /api/session */
extern const char *const limit_fields[];            /* POST /api/limits */
extern const char *const webhook_fields[];          /* POST /api/webhooks */
extern const char *const schedule_fields[];         /* POST /api/schedules */
extern const char *const schedule_run_fields[];     /* ... its "run" object */
extern const char *const schedule_control_fields[]; /* POST /api/schedules/delete, ... */

/* handlers_ui.c: the dashboard's files */
int handle_ui(const struct handler_ctx *, const struct http_request *, struct http_reply *,
              errand_error *);

/* handlers_health.c, handlers_metrics.c */
int handle_run_result(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                      errand_error *);
int handle_ready(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                 errand_error *);
int handle_health(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                  errand_error *);
int handle_metrics(const struct handler_ctx *, const struct http_request *, struct http_reply *,
                   errand_error *);

#endif
