/* SPDX-License-Identifier: MIT */
/*
 * reporter.h — the worker's one thread that talks to the server about runs it holds:
 *
 *  - state reports (RUNNING, COMPLETED, FAILED, CANCELLED, SCHEDULED) and log lines, batched
 *    into one POST /workers/report. A batch goes out as soon as there is something to send;
 *    whatever arrives while a request is in flight rides in the next one (natural batching,
 *    no timer). Reports keep their order; a batch that fails for a transient reason (server
 *    restarting, 5xx, unreachable) is retried with a bounded backoff before anything newer.
 *  - the lease table: every run from its claim until its final report was answered. Every
 *    lease_seconds/3 one POST /workers/heartbeat extends them all. An answer item with
 *    cancel:true stops the run (STOP_CANCEL, then the on_cancel callback); a 409/404 item
 *    means the lease is lost: the run is stopped (STOP_LEASE_LOST), its outcome taken and
 *    dropped, and its lease forgotten.
 *
 * A RUNNING report that has not gone out when the run's outcome is queued is dropped: the
 * server accepts COMPLETED/FAILED straight from PENDING, and at thousands of short runs a
 * second the extra report would double the work of every run.
 *
 * Thread safety: every function may be called from any thread, without blocking on the
 * network or on a lock held across I/O (see reporter.c). After reporter_stop() returned, new
 * items are dropped.
 */
#ifndef ERRAND_WORKER_REPORTER_H
#define ERRAND_WORKER_REPORTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"
#include "worker/wrun.h"

/* Log lines waiting to be sent beyond this many are dropped (with a warning) rather than
 * growing memory while the server is unreachable. */
#define REPORTER_LOG_BACKLOG_MAX 100000

typedef struct reporter reporter;

/* Called (from the heartbeat thread, without a lock held) when the server asks to cancel run. */
typedef void (*reporter_cancel_fn)(struct wrun *run, void *ctx);

struct reporter_config {
    const char *api_url;
    const char *api_key;
    const char *worker_name;
    int lease_seconds; /* sent with heartbeats; 0 = the server's default */
    reporter_cancel_fn on_cancel;
    void *cb_ctx;
};

int reporter_new(const struct reporter_config *cfg, reporter **out, errand_error *err);
int reporter_start(reporter *r, errand_error *err);
/* Flushes what is queued (retrying until flush_ms passed), then ends the thread. */
void reporter_stop(reporter *r, int64_t flush_ms);
void reporter_free(reporter *r);

/* The lease duration the server granted (claim answer); sets the heartbeat interval. */
/* The run waits for a subtask (or no longer does): said in a heartbeat at once, so the server
 * gives back its concurrency-limit slots while it waits (store.h, struct lease_ref). */
void reporter_waiting(reporter *r, struct wrun *run, bool waiting);

void reporter_set_lease_seconds(reporter *r, int lease_seconds);

/* Starts holding run's lease (heartbeats) until its final report is answered. */
void reporter_hold(reporter *r, struct wrun *run);
/* Queues RUNNING for run (dropped if the outcome follows before it went out). */
void reporter_running(reporter *r, struct wrun *run);
/* Queues the run's outcome: COMPLETED (result stolen, may be NULL; result_ref may be NULL),
 * FAILED (message, retryable), CANCELLED or SCHEDULED (hand-back). The caller must have
 * taken the outcome (wrun_take_outcome). */
void reporter_final(reporter *r, struct wrun *run, errand_state state, const char *message,
                    bool retryable, json_t *result, const char *result_ref);
/* Queues a log line of run_id, timestamped now. */
void reporter_log(reporter *r, const char *run_id, int level, const char *text);

#endif
