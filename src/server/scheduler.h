/* SPDX-License-Identifier: MIT */
/*
 * scheduler.h — the scheduler: one thread per server that fires the schedules' ticks
 * (store/schedule_row.h, server/schedule_plan.h). Every server runs one, and none is in
 * charge: each reads the due schedules, submits each tick's run through the store's normal
 * submission with the idempotency key "schedule:<name>:<tick>" (so servers firing one tick
 * together make one run: keys are unique per task in the store), then moves next_tick on with
 * a compare-and-set (so one of them moves it). A server killed between the two leaves the
 * tick due; the next server to look submits the same key again, gets the run that exists,
 * and moves it on — a tick makes exactly one run however the servers come and go.
 *
 * The thread sleeps until the soonest next_tick within the interval, or the interval
 * (ERRAND_SCHEDULER_INTERVAL_MS: how soon a schedule changed through another server is seen),
 * or scheduler_wake (a schedule changed through this one). Ticks are judged on the
 * scheduler's clock: the wall clock plus clock_offset_ms (ERRAND_SCHEDULER_CLOCK_OFFSET_
 * SECONDS, 0 but in tests and rehearsals of a date).
 */
#ifndef ERRAND_SERVER_SCHEDULER_H
#define ERRAND_SERVER_SCHEDULER_H

#include <stdint.h>

#include "errand/errand.h"
#include "server/notify.h"
#include "store/store.h"

/* Due schedules read per look, and looks per wake-up at most (the rest waits a little). */
#define SCHEDULER_BATCH 100
#define SCHEDULER_PASSES_MAX 20
/* How soon a tick still due after a look is looked at again. */
#define SCHEDULER_RETRY_MS 100

typedef struct scheduler scheduler;

struct scheduler_config {
    int interval_ms;         /* 0: this server fires no schedules */
    int64_t late_ms;         /* a tick fired later than this was missed (schedule_plan.h) */
    int64_t clock_offset_ms; /* added to the wall clock */
};

/* Starts the thread (none when cfg->interval_ms is 0: *out is then NULL, which every
 * function below takes). The store and notify must outlive scheduler_stop(). */
int scheduler_start(store *st, notify *n, const struct scheduler_config *cfg, scheduler **out,
                    errand_error *err);
/* Looks at the schedules again at once. */
void scheduler_wake(scheduler *sc);
void scheduler_stop(scheduler *sc);

#endif
