/* SPDX-License-Identifier: MIT */
/*
 * run_queue.h — claimed runs waiting for an executor thread, and the worker's slot count.
 *
 * `inflight` counts runs claimed and not finished (queued + executing); `active` the runs
 * executing that hold a slot; `waiting` the runs executing that lent theirs while they wait
 * for a subtask (subtask.h), so inflight = queued + active + waiting. The poller asks for
 * capacity - (queued + active) runs, capacity being the worker's concurrency plus its
 * prefetch, and an executor thread starts a queued run only while active < concurrency.
 * Without prefetch the worker never holds a lease it cannot start at once; with it, up to
 * prefetch runs wait here for a slot, under leases the reporter keeps alive, and are handed
 * back on stop.
 *
 * Lending: a run that waits gives its slot back (active - 1, waiting + 1) while fewer than
 * max_waiting runs wait, so another run can start; when its wait ends it takes a slot
 * again at once, even if that puts active over concurrency for a moment (the poller and the
 * executors then start nothing until active is below it again). Executing runs are at most
 * concurrency + max_waiting, the number of executor threads, so a run started always has a
 * thread. All fields are guarded by mu.
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
    size_t active;      /* executing, holding a slot (may pass concurrency for a moment) */
    size_t waiting;     /* executing, slot lent while waiting for a subtask */
    size_t concurrency; /* slots */
    size_t capacity;    /* concurrency + prefetch */
    size_t max_waiting; /* most runs waiting with their slot lent */
    bool lend_refused;  /* a lend was refused once (the warning is logged once) */
    bool no_claims;     /* stop: the poller stops waiting for space */
    bool closed;        /* stop: executors stop taking runs */
};

int run_queue_init(struct run_queue *q, size_t concurrency, size_t prefetch, size_t max_waiting);
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

/* For a run executing on the caller's thread that is about to wait: gives its slot back,
 * unless max_waiting runs wait already. True when lent (then run_queue_reclaim() once the
 * wait is over); false when the run keeps its slot, with *first_refusal true the first time
 * this queue refused (for a warning logged once). */
bool run_queue_lend(struct run_queue *q, bool *first_refusal);
/* The wait is over: the run holds a slot again, at once. */
void run_queue_reclaim(struct run_queue *q);

/* Waits until no run is in flight (queued or executing) or deadline (clock_mono_ms) passes;
 * true when idle. */
bool run_queue_wait_idle(struct run_queue *q, int64_t deadline_ms);

/* Closes the queue and returns the runs nobody started (a chain through queue_next; the
 * caller owns their references). Their slots are freed. */
struct wrun *run_queue_close(struct run_queue *q);

#endif
