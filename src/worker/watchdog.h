/* SPDX-License-Identifier: MIT */
/*
 * watchdog.h — deadlines of running task runs: a timeout (timeout_seconds after the start)
 * or a cancellation grace (a cancelled task that does not return in time). One thread sleeps
 * until the earliest deadline and calls on_expire for each one that passes (without its lock
 * held); the callback decides what to report. Entries hold a reference to their run.
 * Thread safety: every function may be called from any thread (guarded by the mutex).
 */
#ifndef ERRAND_WORKER_WATCHDOG_H
#define ERRAND_WORKER_WATCHDOG_H

#include <stdint.h>

#include "errand/errand.h"
#include "worker/wrun.h"

enum watch_kind { WATCH_TIMEOUT, WATCH_CANCEL };

typedef struct watchdog watchdog;
typedef void (*watchdog_expire_fn)(struct wrun *run, enum watch_kind kind, void *ctx);

int watchdog_new(watchdog_expire_fn on_expire, void *ctx, watchdog **out, errand_error *err);
int watchdog_start(watchdog *w, errand_error *err);
/* Ends the thread; pending deadlines are forgotten. */
void watchdog_stop(watchdog *w);
void watchdog_free(watchdog *w);

/* Calls on_expire(run, kind) once clock_mono_ms() reaches deadline_ms. */
void watchdog_add(watchdog *w, struct wrun *run, int64_t deadline_ms, enum watch_kind kind);
/* Forgets every deadline of run (it finished). */
void watchdog_remove(watchdog *w, struct wrun *run);

#endif
