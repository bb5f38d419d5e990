/* SPDX-License-Identifier: MIT */
/*
 * run_transition.c — the backend-neutral half of a state change (run_transition.h): from a
 * decision of the rules (core/state.c) to column values, and the tally of state changes.
 */
#include "store/run_transition.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/uuid.h"

bool run_copy_fixed(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= size) {
        dst[0] = '\0';
        return false;
    }
    memcpy(dst, src ? src : "", len + 1);
    return true;
}

int run_current_parse_delays(const char *text, struct run_current *cur, errand_error *err)
{
    cur->n_delays = 0;
    if (!text || strcmp(text, "[]") == 0)
        return 0;
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the stored retry delays of run %s are not a JSON array", cur->id);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i >= RUN_SPEC_DELAYS_MAX)
            break;
        cur->delays[cur->n_delays++] = json_number_value(v);
    }
    json_decref(arr);
    return 0;
}

void run_transition_plan(const struct run_current *cur, const struct state_decision *d,
                         int64_t now_ms, struct run_update *u)
{
    memset(u, 0, sizeof *u);
    u->next = d->next;
    u->name = d->name;
    u->message = "";
    u->attempt = cur->attempt;
    if (d->uncount_attempt && u->attempt > 0)
        u->attempt--;
    u->redeliveries = cur->redeliveries + (d->count_redelivery ? 1 : 0);
    u->scheduled_at = d->next == ERRAND_STATE_SCHEDULED ? d->scheduled_at_ms : cur->scheduled_at;
    u->started = cur->started;
    if (d->next == ERRAND_STATE_RUNNING && u->started == 0)
        u->started = now_ms;
    u->finished = state_is_final(d->next) ? now_ms : 0;
    if (state_is_leased(d->next) && cur->lease_token[0]) {
        u->lease_token = cur->lease_token;
        u->lease_expires = cur->lease_expires;
    }
}

/* The tally's entry for task, added when new; NULL when the tally is full. */
static struct run_tally_task *tally_task(struct run_count_delta *t, const char *task)
{
    task = task ? task : "";
    for (size_t i = 0; i < t->n_tasks; i++)
        if (strcmp(t->tasks[i].task, task) == 0)
            return &t->tasks[i];
    if (t->n_tasks == RUN_TALLY_TASKS)
        return NULL;
    struct run_tally_task *e = &t->tasks[t->n_tasks++];
    memset(e, 0, sizeof *e);
    run_copy_fixed(e->task, sizeof e->task, task);
    return e;
}

bool run_tally_move(struct run_count_delta *t, const char *task, const char *run_id, int from,
                    errand_state to)
{
    if (from == (int)to)
        return true;
    struct run_tally_task *e = tally_task(t, task);
    if (!e)
        return false;
    if (from >= 0) {
        t->d[from]--;
        e->d[from]--;
    }
    t->d[to]++;
    e->d[to]++;
    if (to == ERRAND_STATE_COMPLETED && from >= 0) /* a cache hit is created COMPLETED: not run */
        e->completed++;
    else if (to == ERRAND_STATE_FAILED || to == ERRAND_STATE_CRASHED) {
        e->failed++;
        run_copy_fixed(e->last_failure, sizeof e->last_failure, run_id);
    } else if (to == ERRAND_STATE_CANCELLED)
        e->cancelled++;
    return true;
}

bool run_tally_delayed(struct run_count_delta *t, const char *task, int64_t delta)
{
    if (delta == 0)
        return true;
    struct run_tally_task *e = tally_task(t, task);
    if (!e)
        return false;
    e->d[RUN_TALLY_DELAYED] += delta;
    return true;
}

bool run_tally_remove(struct run_count_delta *t, const char *task, errand_state state)
{
    struct run_tally_task *e = tally_task(t, task);
    if (!e)
        return false;
    t->d[state]--;
    e->d[state]--;
    return true;
}

void run_tally_reset(struct run_count_delta *t)
{
    memset(t->d, 0, sizeof t->d);
    t->n_tasks = 0;
}

/* --- the worker protocol's rules of thumb, shared by the backends ----------------------- */

/* The run's place in its two budgets (state.h). */
struct attempt_budget run_budget(const struct run_current *cur, int max_redeliveries)
{
    struct attempt_budget b = {
        .attempt = cur->attempt,
        .max_attempts = cur->max_attempts,
        .redeliveries = cur->redeliveries,
        .max_redeliveries = max_redeliveries,
    };
    return b;
}

/* The state message of a redelivery decision: why, then which redelivery it was or that
 * the limit was reached; just why for any other decision. Written into buf. */
const char *run_redelivery_message(const struct state_decision *d, const struct run_update *u,
                                   int max_redeliveries, const char *why, char *buf, size_t size)
{
    if (d->count_redelivery)
        snprintf(buf, size, RUN_REDELIVERY_FMT, why, u->redeliveries, max_redeliveries);
    else if (d->out_of_redeliveries)
        snprintf(buf, size, RUN_OUT_OF_REDELIVERIES_FMT, why, max_redeliveries,
                 max_redeliveries == 1 ? "" : "s");
    else
        snprintf(buf, size, "%s", why);
    return buf;
}

/* Whether cur waits in the queue because the lease `token` ran out, claimed by nobody
 * since (see the top of the file). */
bool run_expired_lease_of(const struct run_current *cur, const char *token)
{
    size_t n = token ? strlen(token) : 0;
    return cur->state == ERRAND_STATE_SCHEDULED && n > 0 &&
           strlen(cur->ended_by) == n + sizeof RUN_EXPIRED_MARK - 1 &&
           token_equal_n(cur->ended_by, token, n) &&
           strcmp(cur->ended_by + n, RUN_EXPIRED_MARK) == 0;
}

bool run_token_matches(const struct run_current *cur, const char *token)
{
    return state_is_leased(cur->state) && cur->lease_token[0] &&
           token_equal(cur->lease_token, token);
}

int64_t run_cache_expiry(const struct run_current *cur, int64_t now_ms)
{
    if (!cur->has_cache_key || !(cur->cache_expiration_seconds > 0))
        return 0; /* never expires */
    return now_ms + (int64_t)(cur->cache_expiration_seconds * MS_PER_S + 0.5);
}

/* What identifies a report that ended a lease: its token and the state it reported
 * ("<token>:<state>"), so that only the same report sent again is recognised. */
void run_ended_mark(const struct run_report *rep, char *out, size_t size)
{
    snprintf(out, size, "%s:%d", rep->lease_token ? rep->lease_token : "", (int)rep->state);
}
