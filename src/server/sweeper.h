/* SPDX-License-Identifier: MIT */
/*
 * sweeper.h — the sweeper: one thread that calls store_sweep every interval, so runs held by
 * a worker that died go back to SCHEDULED (attempts remain), CRASHED (none remain) or
 * CANCELLED (cancel requested), and delayed runs that became due enter the ready queue.
 * When a sweep changes anything it wakes the long-polls (claims: runs became due; /wait:
 * runs became final) and counts the expiries.
 *
 * It also applies retention: finished runs older than the retention go, in passes of
 * SWEEPER_RETENTION_BATCH runs (each its own short transaction), and with them the result
 * files under the server's local storage path that no run points at any more; workers not
 * seen within the worker retention are dropped; events of the change feed older than their
 * retention are pruned.
 */
#ifndef ERRAND_SERVER_SWEEPER_H
#define ERRAND_SERVER_SWEEPER_H

#include "errand/errand.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/result_storage.h"
#include "store/store.h"

/* Runs deleted per retention transaction, and transactions per sweep at most (the rest
 * waits for the next sweep, so lease expiry is never held up for long). */
#define SWEEPER_RETENTION_BATCH 500
#define SWEEPER_RETENTION_PASSES 20
/* Change-feed events deleted per transaction (whole pages, deleted by key range). */
#define SWEEPER_EVENTS_BATCH 20000

typedef struct sweeper sweeper;

struct sweeper_config {
    int interval_ms;
    int64_t retention_ms;        /* finished runs older than this go; 0 = keep */
    int64_t worker_retention_ms; /* workers unseen for longer go; 0 = keep */
    int64_t events_retention_ms; /* change-feed events older than this go; 0 = keep */
    int64_t events_max;          /* and those beyond the newest events_max; 0 = no bound */
    const result_storage *results; /* result files are deleted only there; NULL: none */
};

/* Starts the thread; the store, notify and metrics must outlive sweeper_stop(). The config
 * is copied. */
int sweeper_start(store *st, notify *n, metrics *m, const struct sweeper_config *cfg, sweeper **out,
                  errand_error *err);

/* Stops the thread (promptly, mid-interval) and frees the sweeper. NULL is fine. */
void sweeper_stop(sweeper *sw);

#endif
