/*
 * state.h — the task-run state rules, pure functions with no I/O, unit-tested on their own.
 * Both store backends apply transitions only through these, so the lifecycle is defined in
 * exactly one place:
 *
 *   SCHEDULED ──claim──▶ PENDING ──start──▶ RUNNING ──▶ COMPLETED | FAILED
 *       ▲                   │                  │
 *       └── retry / lease expired (attempts remain) ┘──▶ CRASHED (none remain)
 *   any non-final ──cancel──▶ CANCELLED (SCHEDULED) or CANCELLING (held by a worker) ──▶ CANCELLED
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

/* The outcome of a rule: the next state, its name, when it may next be claimed (for
 * SCHEDULED), whether the attempt counter goes back (hand-back) and a message. */
struct state_decision {
    bool allowed;            /* false: the transition is refused (see reason) */
    errand_state next;
    const char *name;        /* display name of next */
    int64_t scheduled_at_ms; /* when next == SCHEDULED */
    bool uncount_attempt;    /* hand-back: attempt -= 1 */
    const char *reason;      /* why refused, for error messages */
};

/* The delay before retry number `retry` (1-based) given the configured delays (the last one
 * repeats; none = 0) and jitter factor, with rand01 in [0,1) supplied by the caller. */
int64_t state_retry_delay_ms(const double *delays, size_t n_delays, int retry, double jitter,
                             double rand01);

/* A worker reports `reported` for a run currently in `current`.
 * attempt/max_attempts are the run's; retryable=false forbids a retry. */
struct state_decision state_on_report(errand_state current, errand_state reported, int attempt,
                                      int max_attempts, bool retryable, const double *delays,
                                      size_t n_delays, double jitter, double rand01,
                                      int64_t now_ms);

/* The lease of a run in `current` ran out. */
struct state_decision state_on_lease_expired(errand_state current, int attempt, int max_attempts,
                                             int64_t now_ms);

/* Somebody asked to cancel a run in `current`. Final states are refused. */
struct state_decision state_on_cancel(errand_state current);

/* A worker claims a SCHEDULED run. */
struct state_decision state_on_claim(errand_state current);

#endif
