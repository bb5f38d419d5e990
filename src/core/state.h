/* SPDX-License-Identifier: MIT */
/*
 * state.h — the task-run state rules, pure functions with no I/O, unit-tested on their own.
 * Both store backends apply transitions only through these, so the lifecycle is defined in
 * exactly one place:
 *
 *   SCHEDULED ──claim──▶ PENDING ──start──▶ RUNNING ──▶ COMPLETED | FAILED
 *       ▲                   │                  │
 *       ├── retry (the task failed, attempts remain) ◀┤
 *       └── redelivery (lease expired or handed back, redeliveries remain) ◀┘──▶ CRASHED
 *   any non-final ──cancel──▶ CANCELLED (SCHEDULED) or CANCELLING (held by a worker) ──▶ CANCELLED
 *
 * Two budgets: a task's failures use its attempts (retries + 1); losing the worker (lease
 * expiry, a claim answer that never arrived, a deploy that ends a running task) uses
 * redeliveries, which give the attempt back, up to the server's limit.
 */
#ifndef ERRAND_CORE_STATE_H
#define ERRAND_CORE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"

#define STATE_NAME_SCHEDULED "Scheduled"
#define STATE_NAME_AWAITING_RETRY "AwaitingRetry"
#define STATE_NAME_CACHED "Cached"

/* "SCHEDULED" ... ; NULL for an out-of-range value. */
const char *state_type_name(errand_state s);
/* The default display name: "Scheduled", "Pending", "Running", "Completed", ... */
const char *state_default_name(errand_state s);
/* Parses a type name (upper case, as on the wire); false if unknown. */
bool state_parse(const char *text, errand_state *out);
bool state_is_final(errand_state s);
/* True when a worker holds the run under a lease (PENDING, RUNNING, CANCELLING). */
bool state_is_leased(errand_state s);

/* Where a run stands in its two budgets. */
struct attempt_budget {
    int attempt;          /* executions charged so far (a claim charges one) */
    int max_attempts;     /* retries + 1 */
    int redeliveries;     /* times the run went back to the queue without an outcome */
    int max_redeliveries; /* the server's limit (ERRAND_MAX_REDELIVERIES) */
};

/* The outcome of a rule: the next state, its name, when it may next be claimed (for
 * SCHEDULED), whether the attempt counter goes back (hand-back, redelivery), whether a
 * redelivery is counted, and a message. */
struct state_decision {
    bool allowed; /* false: the transition is refused (see reason) */
    errand_state next;
    const char *name;         /* display name of next */
    int64_t scheduled_at_ms;  /* when next == SCHEDULED */
    bool uncount_attempt;     /* hand-back or redelivery: attempt -= 1 */
    bool count_redelivery;    /* redeliveries += 1 */
    bool out_of_redeliveries; /* CRASHED because the redelivery limit was reached */
    const char *reason;       /* why refused, for error messages */
};

/* The delay before retry number `retry` (1-based) given the configured delays (the last one
 * repeats; none = 0) and jitter factor, with rand01 in [0,1) supplied by the caller. */
int64_t state_retry_delay_ms(const double *delays, size_t n_delays, int retry, double jitter,
                             double rand01);

/* A worker reports `reported` for a run currently in `current`; retryable=false forbids a
 * retry. SCHEDULED is a hand-back: of a PENDING run (never started) it charges nothing; of
 * a RUNNING one (the worker stopped before the task ended) it is a redelivery. */
struct state_decision state_on_report(errand_state current, errand_state reported,
                                      const struct attempt_budget *b, bool retryable,
                                      const double *delays, size_t n_delays, double jitter,
                                      double rand01, int64_t now_ms);

/* Whether state_on_report would use its rand01 for a report of `reported` with this jitter:
 * only a failure that may be retried after a jittered delay. The caller draws a random number
 * (random_unit, a CSPRNG call) only then; every other report passes 0. */
bool state_report_uses_rand(errand_state reported, double jitter);

/* The lease of a run in `current` ran out: a redelivery while any remain, else CRASHED. */
struct state_decision state_on_lease_expired(errand_state current, const struct attempt_budget *b,
                                             int64_t now_ms);

/* The worker whose lease ran out is back (a heartbeat or an outcome under that lease) while
 * the run still waits in the queue, claimed by nobody since: the expiry is undone and the
 * run is held again, RUNNING if it had started, else PENDING. The caller restores the
 * attempt and redelivery counts the expiry changed. Refused unless current is SCHEDULED. */
struct state_decision state_on_lease_resumed(errand_state current, bool started);

/* Somebody asked to cancel a run in `current`. Final states are refused. */
struct state_decision state_on_cancel(errand_state current);

/* A worker claims a SCHEDULED run. */
struct state_decision state_on_claim(errand_state current);

#endif
