/*
 * sweeper.h — the lease sweeper: one thread that calls store_sweep every interval, so runs
 * held by a worker that died go back to SCHEDULED (attempts remain), CRASHED (none remain)
 * or CANCELLED (cancel requested), and delayed runs that became due enter the ready queue.
 * When a sweep changes anything it wakes the long-polls (claims: runs became due; /wait:
 * runs became final) and counts the expiries.
 */
#ifndef ERRAND_SERVER_SWEEPER_H
#define ERRAND_SERVER_SWEEPER_H

#include "errand/errand.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "store/store.h"

typedef struct sweeper sweeper;

/* Starts the thread; the store, notify and metrics must outlive sweeper_stop(). */
int sweeper_start(store *st, notify *n, metrics *m, int interval_ms, sweeper **out,
                  errand_error *err);

/* Stops the thread (promptly, mid-interval) and frees the sweeper. NULL is fine. */
void sweeper_stop(sweeper *sw);

#endif
