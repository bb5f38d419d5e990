/* SPDX-License-Identifier: MIT */
/*
 * run_transition.h — what every backend needs to change the state of a stored run, apart
 * from its SQL: the run as the rules see it (struct run_current), the column values a state
 * decision (core/state.h) implies (struct run_update, run_transition_plan), and the tally of
 * state changes an op made, from which a backend adjusts its counters once per op
 * (struct run_count_delta).
 *
 * The counters the tally feeds, in every backend:
 *   runs per state type (the overview's totals, /metrics);
 *   runs per task and state type (the per-task table);
 *   runs finished per minute and task: completed, failed (FAILED or CRASHED), cancelled
 *   (the overview's charts);
 *   each task's last failure.
 */
#ifndef ERRAND_STORE_RUN_TRANSITION_H
#define ERRAND_STORE_RUN_TRANSITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "store/run_spec.h"
#include "store/store.h"

#define RUN_LEASE_TOKEN_MAX 72  /* room for any token we issue (32 hex) and then some */
#define RUN_WORKER_NAME_MAX 256 /* the worker name as quoted in messages */
#define RUN_TALLY_TASKS 8
#define RUN_TALLY_TASK_MAX (WIRE_TASK_NAME_MAX * 4 + 1) /* UTF-8 */

/* What the rules need to know about a run. */
struct run_current {
    int64_t rowid; /* the backend's row key, where it has one */
    char id[UUID_STR_LEN];
    errand_state state;
    int64_t state_timestamp;
    int attempt;
    int max_attempts;
    int redeliveries;
    int n_states;
    int64_t started;
    int64_t scheduled_at;
    int64_t lease_expires;
    char lease_token[RUN_LEASE_TOKEN_MAX]; /* "" when none (or unusably long) */
    char ended_by[RUN_LEASE_TOKEN_MAX];    /* "<token>:<state>" of the report that ended the
                                              last lease, "" when none */
    char worker[RUN_WORKER_NAME_MAX];      /* "" when none; cut to fit */
    char task[RUN_TALLY_TASK_MAX];
    bool delayed;     /* SCHEDULED and waiting in the delayed set or for upstream runs
                         (task_runs.delayed: both count as delayed in the tally) */
    int dependants;   /* runs that were made to wait for this one (store/run_deps.h) */
    bool holds_slots; /* holds slots of concurrency limits (store.h) */
    bool has_cache_key;
    double cache_expiration_seconds; /* 0 = never expires */
    double jitter;
    double delays[RUN_SPEC_DELAYS_MAX]; /* filled only when asked for */
    size_t n_delays;
};

/* Copies text into a fixed buffer; false when it does not fit (the buffer is then ""). */
bool run_copy_fixed(char *dst, size_t size, const char *src);

/* Parses a stored retry_delays JSON array into cur->delays. */
int run_current_parse_delays(const char *text, struct run_current *cur, errand_error *err);

/* The new column values of a transition. */
struct run_update {
    errand_state next;
    const char *name;
    const char *message; /* "" when NULL */
    int attempt;
    int redeliveries;
    int64_t scheduled_at;
    int64_t started;
    int64_t finished;
    const char *lease_token; /* NULL clears the lease */
    const char *ended_by;    /* "<token>:<state>" of a report that ends the lease; or NULL */
    int64_t lease_expires;
    bool complete; /* also write result, result_ref, cache_expires_at */
    const char *result;
    const char *result_ref;
    int64_t cache_expires_at; /* 0 = never (or no cache key) */
};

/* The update decision d implies for cur at now: next state and name, attempt given back on
 * hand-back, scheduled_at when SCHEDULED, finished when final, the lease kept only while
 * the next state is leased. Callers then adjust message, started and the result. */
void run_transition_plan(const struct run_current *cur, const struct state_decision *d,
                         int64_t now_ms, struct run_update *u);

/* task_counts' row of a task's delayed runs: beside the state types, a count of the SCHEDULED
 * runs that wait in the delayed set (a part of its SCHEDULED count), so /metrics can tell
 * ready from delayed runs without counting them. */
#define RUN_TALLY_DELAYED 8

struct run_tally_task {
    char task[RUN_TALLY_TASK_MAX];
    int64_t d[RUN_TALLY_DELAYED + 1];     /* per state type, then the delayed runs */
    int64_t completed, failed, cancelled; /* runs of the task that finished so in the op */
    char last_failure[UUID_STR_LEN];      /* the run that failed last in the op, or "" */
};

struct run_count_delta {
    int64_t d[8];
    struct run_tally_task tasks[RUN_TALLY_TASKS];
    size_t n_tasks;
};

/* Run run_id of task moves from `from` to `to` (from < 0: a new run). false, and nothing
 * tallied, when the tally already holds RUN_TALLY_TASKS other tasks: the caller writes it
 * to its counters, empties it (run_tally_reset) and tallies again. */
bool run_tally_move(struct run_count_delta *t, const char *task, const char *run_id, int from,
                    errand_state to);
/* delta more (or fewer) runs of task wait in the delayed set; false as run_tally_move. */
bool run_tally_delayed(struct run_count_delta *t, const char *task, int64_t delta);
/* Whether a run written in state `state` with scheduled_at `at` at now_ms waits in the delayed
 * set (the stores' DELAYED_WHEN). */
static inline bool run_is_delayed(errand_state state, int64_t at, int64_t now_ms)
{
    return state == ERRAND_STATE_SCHEDULED && at > now_ms;
}
/* One run of task in state `state` is deleted; false as run_tally_move. */
bool run_tally_remove(struct run_count_delta *t, const char *task, errand_state state);
void run_tally_reset(struct run_count_delta *t);

/* --- the worker protocol's rules, as the backends apply them ---------------------------- */

/* ended_by of a run whose lease ran out: "<token>" RUN_EXPIRED_MARK. */
#define RUN_EXPIRED_MARK ":expired"
#define RUN_REDELIVERY_FMT "%s; redelivery %d of %d"
#define RUN_OUT_OF_REDELIVERIES_FMT "%s; redelivered %d time%s, the limit (ERRAND_MAX_REDELIVERIES)"

/* The run's place in its two budgets (state.h). */
struct attempt_budget run_budget(const struct run_current *cur, int max_redeliveries);
/* The state message of a redelivery decision: why, then which redelivery it was or that
 * the limit was reached; just why for any other decision. Written into buf. */
const char *run_redelivery_message(const struct state_decision *d, const struct run_update *u,
                                   int max_redeliveries, const char *why, char *buf, size_t size);
/* Whether cur waits in the queue because the lease `token` ran out, claimed by nobody
 * since: a late heartbeat or report under it resumes the lease. */
bool run_expired_lease_of(const struct run_current *cur, const char *token);
/* Whether token is cur's current lease. */
bool run_token_matches(const struct run_current *cur, const char *token);
/* When a result cached from cur, completed at now, expires (0 = never). */
int64_t run_cache_expiry(const struct run_current *cur, int64_t now_ms);
/* What identifies a report that ended a lease: its token and the state it reported
 * ("<token>:<state>"), so that only the same report sent again is recognised. */
void run_ended_mark(const struct run_report *rep, char *out, size_t size);

#endif
