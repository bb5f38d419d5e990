/* SPDX-License-Identifier: MIT */
/*
 * wrun.h — one claimed task run inside the worker: what the claim said (id, lease token,
 * parameters, attempt, timeout, persistence), plus the two atomic flags every thread agrees
 * on:
 *
 *  - stop: why the run must stop (cancelled, timed out, lease lost, worker stopping). The
 *    first reason wins; errand_task_should_stop() and the process runner read it.
 *  - outcome_taken: whoever takes it (the executor when the task returns, the watchdog at a
 *    deadline, the reporter when the lease is lost, serve() on shutdown) is the one that
 *    reports the run's outcome; everyone else discards theirs. So a run is reported once.
 *
 * A wrun is reference-counted: the lease table, the queue/executor and the watchdog each hold
 * a reference. Fields after the claim are immutable except those marked otherwise.
 */
#ifndef ERRAND_WORKER_WRUN_H
#define ERRAND_WORKER_WRUN_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/traceparent.h"
#include "errand/errand.h"

enum stop_reason {
    STOP_NONE = 0,
    STOP_CANCEL,     /* the server said the run is CANCELLING */
    STOP_TIMEOUT,    /* timeout_seconds passed */
    STOP_LEASE_LOST, /* the server refused our lease: another attempt owns the run */
    STOP_SHUTDOWN,   /* the worker is stopping and the grace period ran out */
};

enum running_report {
    RUNNING_NONE = 0,
    RUNNING_QUEUED,  /* queued, not yet in a request */
    RUNNING_SENT,    /* taken into a request */
    RUNNING_DROPPED, /* the outcome came first: not sent */
};

struct task_entry;

enum wrun_waiting {
    WRUN_NEVER_WAITED,
    WRUN_WAITING,
    WRUN_RESUMED, /* waited, and no longer does */
};

struct wrun {
    atomic_int refs;
    char *id;
    char *task;
    char *lease_token;
    char *params; /* compact JSON object text */
    int attempt;
    int max_attempts;
    double timeout_seconds;         /* 0 = none */
    int64_t lease_expires_ms;       /* the claim's lease end (Unix ms, server clock); 0 = unknown */
    int persist_result;             /* -1 = the claim said null, 0, 1 */
    const struct task_entry *entry; /* what serves it; set by the poller */
    /* W3C trace context ("" = none): the run's traceparent as the claim gave it (only a
       valid one is kept), the task's own span (a child of it: same trace id and flags, a
       new parent id, drawn per attempt) that the task's thread, child process or exec
       environment (TRACEPARENT) carries, and " trace_id=<id>" for the worker's log lines. */
    char traceparent[TRACEPARENT_LEN + 1];
    char task_traceparent[TRACEPARENT_LEN + 1];
    char trace_field[sizeof " trace_id=" + TRACE_ID_LEN];

    atomic_int stop; /* enum stop_reason */
    /* Whether it waits for a subtask (enum wrun_waiting), told to the server in heartbeats
       so that it gives back its concurrency-limit slots while it waits. */
    atomic_int waiting;
    /* An eventfd that a stop makes readable, for a task that blocks in a request (a wait for
       a subtask: subtask.h); made on first use, closed with the run. Stored as fd + 1, so a
       zeroed run has none. */
    atomic_int wake_fd1;
    atomic_bool outcome_taken;

    /* Whether a RUNNING report of this run is waiting in the reporter (enum running_report):
       the outcome drops a RUNNING report that has not gone out yet (CAS, no lock). */
    atomic_int running_report;

    /* Owned by the reporter thread alone: the lease table links. */
    bool held;
    struct wrun *lease_prev, *lease_next;

    /* Owned by the run queue, under its lock. */
    struct wrun *queue_next;
};

/* Builds a run from one element of a claim answer's "runs" (docs/api.md). */
int wrun_from_claim(const json_t *item, struct wrun **out, errand_error *err);

struct wrun *wrun_ref(struct wrun *r);
void wrun_unref(struct wrun *r);

/* Sets the stop reason unless one is set already (and makes the wake fd readable); true
 * when this call set it. */
bool wrun_request_stop(struct wrun *r, enum stop_reason why);
/* The run's wake fd (made now if it has none): readable once a stop reason is set, whenever
 * it was set. -1 when no eventfd can be made. Valid while the caller holds a reference. */
int wrun_wake_fd(struct wrun *r);
enum stop_reason wrun_stop_reason(const struct wrun *r);
/* True exactly once per run: the caller now owns reporting its outcome. */
bool wrun_take_outcome(struct wrun *r);

#endif
