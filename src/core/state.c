/* SPDX-License-Identifier: MIT */
/*
 * state.c — the task-run lifecycle as pure functions (see state.h for the picture and
 * docs/api.md, "POST /api/workers/report" and "Leases", for the wire view). Every store
 * backend asks these functions what a claim, report, cancel or lease expiry does, so the
 * rules exist once and are unit-tested without a database.
 */
#include "core/clock.h"
#include "core/state.h"

#include <string.h>

/* Longest retry delay honoured (about 31 years); keeps now + delay far from overflow. */
#define STATE_MAX_DELAY_MS INT64_C(1000000000000)

static const char *const TYPE_NAMES[] = {
    [ERRAND_STATE_SCHEDULED] = "SCHEDULED",   [ERRAND_STATE_PENDING] = "PENDING",
    [ERRAND_STATE_RUNNING] = "RUNNING",       [ERRAND_STATE_COMPLETED] = "COMPLETED",
    [ERRAND_STATE_FAILED] = "FAILED",         [ERRAND_STATE_CRASHED] = "CRASHED",
    [ERRAND_STATE_CANCELLING] = "CANCELLING", [ERRAND_STATE_CANCELLED] = "CANCELLED",
};

static const char *const DEFAULT_NAMES[] = {
    [ERRAND_STATE_SCHEDULED] = STATE_NAME_SCHEDULED,
    [ERRAND_STATE_PENDING] = "Pending",
    [ERRAND_STATE_RUNNING] = "Running",
    [ERRAND_STATE_COMPLETED] = "Completed",
    [ERRAND_STATE_FAILED] = "Failed",
    [ERRAND_STATE_CRASHED] = "Crashed",
    [ERRAND_STATE_CANCELLING] = "Cancelling",
    [ERRAND_STATE_CANCELLED] = "Cancelled",
};

#define STATE_COUNT (sizeof TYPE_NAMES / sizeof TYPE_NAMES[0])

static bool state_valid(errand_state s)
{
    return (unsigned)s < STATE_COUNT;
}

const char *state_type_name(errand_state s)
{
    return state_valid(s) ? TYPE_NAMES[s] : NULL;
}

const char *state_default_name(errand_state s)
{
    return state_valid(s) ? DEFAULT_NAMES[s] : NULL;
}

bool state_parse(const char *text, errand_state *out)
{
    if (!text)
        return false;
    for (size_t i = 0; i < STATE_COUNT; i++) {
        if (strcmp(text, TYPE_NAMES[i]) == 0) {
            *out = (errand_state)i;
            return true;
        }
    }
    return false;
}

bool state_is_final(errand_state s)
{
    return s == ERRAND_STATE_COMPLETED || s == ERRAND_STATE_FAILED || s == ERRAND_STATE_CRASHED ||
           s == ERRAND_STATE_CANCELLED;
}

bool state_is_leased(errand_state s)
{
    return s == ERRAND_STATE_PENDING || s == ERRAND_STATE_RUNNING || s == ERRAND_STATE_CANCELLING;
}

int64_t state_retry_delay_ms(const double *delays, size_t n_delays, int retry, double jitter,
                             double rand01)
{
    if (!delays || n_delays == 0)
        return 0;
    size_t idx = retry < 1 ? 0 : (size_t)(retry - 1);
    if (idx > n_delays - 1)
        idx = n_delays - 1;
    double secs = delays[idx];
    /* NaN fails every comparison, so it lands in the "not positive" branches. */
    if (!(secs > 0))
        return 0;
    if (!(jitter > 0))
        jitter = 0;
    if (!(rand01 > 0))
        rand01 = 0;
    if (rand01 >= 1)
        rand01 = 1;
    double ms = secs * MS_PER_S * (1.0 + jitter * rand01);
    if (!(ms < (double)STATE_MAX_DELAY_MS))
        return STATE_MAX_DELAY_MS;
    return (int64_t)(ms + 0.5);
}

static struct state_decision refuse(errand_state current, const char *reason)
{
    struct state_decision d;
    memset(&d, 0, sizeof d);
    d.allowed = false;
    d.next = current;
    d.name = state_default_name(current);
    d.reason = reason;
    return d;
}

static struct state_decision go(errand_state next, const char *name, int64_t scheduled_at_ms)
{
    struct state_decision d;
    memset(&d, 0, sizeof d);
    d.allowed = true;
    d.next = next;
    d.name = name ? name : state_default_name(next);
    d.scheduled_at_ms = next == ERRAND_STATE_SCHEDULED ? scheduled_at_ms : 0;
    d.reason = "";
    return d;
}

/* The run goes back to the queue without an outcome (its worker is gone or gave it back
 * mid-run): the attempt is given back and a redelivery counted, or CRASHED once the limit is
 * reached. */
static struct state_decision redeliver(const struct attempt_budget *b, int64_t now_ms)
{
    struct state_decision d;
    if (b->redeliveries < b->max_redeliveries) {
        d = go(ERRAND_STATE_SCHEDULED, STATE_NAME_SCHEDULED, now_ms);
        d.uncount_attempt = true;
        d.count_redelivery = true;
    } else {
        d = go(ERRAND_STATE_CRASHED, NULL, 0);
        d.out_of_redeliveries = true;
    }
    return d;
}

struct state_decision state_on_report(errand_state current, errand_state reported,
                                      const struct attempt_budget *b, bool retryable,
                                      const double *delays, size_t n_delays, double jitter,
                                      double rand01, int64_t now_ms)
{
    int attempt = b->attempt;
    if (!state_valid(current) || !state_valid(reported))
        return refuse(current, "unknown state");
    if (state_is_final(current))
        return refuse(current, "the run is already final");
    if (!state_is_leased(current))
        return refuse(current, "the run is not held by a worker");

    switch (reported) {
    case ERRAND_STATE_RUNNING:
        if (current != ERRAND_STATE_PENDING)
            return refuse(current, "RUNNING may only be reported for a PENDING run");
        return go(ERRAND_STATE_RUNNING, NULL, 0);

    case ERRAND_STATE_COMPLETED:
        return go(ERRAND_STATE_COMPLETED, NULL, 0);

    case ERRAND_STATE_FAILED:
        /* A failure while cancelling ends the run as the user asked: cancelled. */
        if (current == ERRAND_STATE_CANCELLING)
            return go(ERRAND_STATE_CANCELLED, NULL, 0);
        if (retryable && attempt < b->max_attempts) {
            int64_t delay = state_retry_delay_ms(delays, n_delays, attempt, jitter, rand01);
            return go(ERRAND_STATE_SCHEDULED, STATE_NAME_AWAITING_RETRY, now_ms + delay);
        }
        return go(ERRAND_STATE_FAILED, NULL, 0);

    case ERRAND_STATE_CANCELLED:
        return go(ERRAND_STATE_CANCELLED, NULL, 0);

    case ERRAND_STATE_SCHEDULED:
        /* Hand-back (the worker is shutting down): an unstarted run charges nothing; a
         * started one was cut short, which is a redelivery. */
        if (current == ERRAND_STATE_RUNNING)
            return redeliver(b, now_ms);
        if (current != ERRAND_STATE_PENDING)
            return refuse(current, "only a PENDING or RUNNING run may be handed back (SCHEDULED)");
        {
            struct state_decision d = go(ERRAND_STATE_SCHEDULED, STATE_NAME_SCHEDULED, now_ms);
            d.uncount_attempt = true;
            return d;
        }

    default:
        return refuse(
            current, "a worker may report only RUNNING, COMPLETED, FAILED, CANCELLED or SCHEDULED");
    }
}

bool state_report_uses_rand(errand_state reported, double jitter)
{
    return reported == ERRAND_STATE_FAILED && jitter > 0;
}

struct state_decision state_on_lease_expired(errand_state current, const struct attempt_budget *b,
                                             int64_t now_ms)
{
    switch (current) {
    case ERRAND_STATE_CANCELLING:
        return go(ERRAND_STATE_CANCELLED, NULL, 0);
    case ERRAND_STATE_PENDING:
    case ERRAND_STATE_RUNNING:
        return redeliver(b, now_ms);
    default:
        return refuse(current, "the run holds no lease");
    }
}

struct state_decision state_on_lease_resumed(errand_state current, bool started)
{
    if (current != ERRAND_STATE_SCHEDULED)
        return refuse(current, "only a run waiting in the queue may resume its expired lease");
    return go(started ? ERRAND_STATE_RUNNING : ERRAND_STATE_PENDING, NULL, 0);
}

struct state_decision state_on_cancel(errand_state current)
{
    switch (current) {
    case ERRAND_STATE_SCHEDULED:
        return go(ERRAND_STATE_CANCELLED, NULL, 0);
    case ERRAND_STATE_PENDING:
    case ERRAND_STATE_RUNNING:
    case ERRAND_STATE_CANCELLING: /* asking again changes nothing, and is not an error */
        return go(ERRAND_STATE_CANCELLING, NULL, 0);
    default:
        return refuse(current, "the run is already final");
    }
}

struct state_decision state_on_claim(errand_state current)
{
    if (current != ERRAND_STATE_SCHEDULED)
        return refuse(current, "only a SCHEDULED run may be claimed");
    return go(ERRAND_STATE_PENDING, NULL, 0);
}
