/* SPDX-License-Identifier: MIT */
/*
 * run_queue.h — claimed runs waiting for an executor thread, and the worker's slot count.
 *
 * `inflight` counts runs claimed and not finished (queued + executing). The poller asks for
 * exactly capacity - inflight runs. Capacity is the worker's concurrency plus its prefetch:
 * without prefetch the worker never holds a lease it cannot start at once (a run pushed here
 * always has a free executor thread); with it, up to prefetch runs wait here for a slot,
 * under leases the reporter keeps alive, and are handed back on stop. All fields are
 * guarded by mu.
 */
#ifndef ERRAND_WORKER_RUN_QUEUE_H
#define ERRAND_WORKER_RUN_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/wrun.h"

struct run_queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty; /* executors wait here for runs */
    size_t idle;             /* executors waiting on nonempty */
    bool waking;             /* one of them was signalled and has not run yet */
    pthread_cond_t space;    /* the poller waits here for a free slot */
    struct wrun *head, *tail;
    size_t queued;
    size_t inflight;
    size_t capacity;
    bool no_claims; /* stop: the poller stops waiting for space */
    bool closed;    /* stop: executors stop taking runs */
};

int run_queue_init(struct run_queue *q, size_t capacity);
void run_queue_destroy(struct run_queue *q);

/* Blocks until a slot is free; returns how many (0 once run_queue_stop_claims ran). */
size_t run_queue_wait_free(struct run_queue *q);
/* Wakes the poller for good. */
void run_queue_stop_claims(struct run_queue *q);

/* Adds n claimed runs (takes the caller's references) and counts them in flight. */
void run_queue_push_many(struct run_queue *q, struct wrun *const *runs, size_t n);
/* For an executor thread: frees the slot of the run it finished (when finished_one), then
 * waits for the next run (the caller owns the reference); NULL once the queue is closed.
 * One lock round for both, since this is every run's path. */
struct wrun *run_queue_next(struct run_queue *q, bool finished_one);

/* Waits until no run is in flight (queued or executing) or deadline (clock_mono_ms) passes;
 * true when idle. */
bool run_queue_wait_idle(struct run_queue *q, int64_t deadline_ms);

/* Closes the queue and returns the runs nobody started (a chain through queue_next; the
 * caller owns their references). Their slots are freed. */
struct wrun *run_queue_close(struct run_queue *q);

#endif
