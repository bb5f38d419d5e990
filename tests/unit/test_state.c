/* SPDX-License-Identifier: MIT */
/*
 * test_state.c — the task-run lifecycle rules of state.c, checked exhaustively: every
 * (current state x event) pair for claim, cancel, lease expiry and worker reports, plus the
 * retry-delay arithmetic and the state names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/state.h"

#define N_STATES 8
#define NOW INT64_C(1795947919123)
#define SEC 1000
#define MAX_REDELIVERIES 3

/* A run on attempt a of m with no redelivery yet; R(r) one with r redeliveries behind it. */
#define B(a, m) (&(struct attempt_budget){(a), (m), 0, MAX_REDELIVERIES})
#define R(r) (&(struct attempt_budget){1, 1, (r), MAX_REDELIVERIES})

static const double DELAYS[] = {1, 10};
#define N_DELAYS (sizeof DELAYS / sizeof DELAYS[0])

/* The expected outcome of one rule application. */
struct expect {
    bool allowed;
    errand_state next;
    const char *name;
    int64_t scheduled_at_ms;
    bool uncount;
    bool redeliver; /* counts a redelivery */
};

static void check(const char *what, errand_state current, struct state_decision d, struct expect e)
{
    const char *cur = state_type_name(current);
    if (d.allowed != e.allowed)
        fail_msg("%s from %s: allowed=%d, want %d (reason: %s)", what, cur, d.allowed, e.allowed,
                 d.reason ? d.reason : "");
    if (!e.allowed) {
        /* A refusal leaves the run where it is and says why. */
        assert_int_equal(d.next, current);
        assert_non_null(d.reason);
        assert_true(strlen(d.reason) > 0);
        return;
    }
    if (d.next != e.next)
        fail_msg("%s from %s: next=%s, want %s", what, cur, state_type_name(d.next),
                 state_type_name(e.next));
    assert_non_null(d.name);
    if (strcmp(d.name, e.name) != 0)
        fail_msg("%s from %s: name=%s, want %s", what, cur, d.name, e.name);
    if (d.scheduled_at_ms != e.scheduled_at_ms)
        fail_msg("%s from %s: scheduled_at=%lld, want %lld", what, cur,
                 (long long)d.scheduled_at_ms, (long long)e.scheduled_at_ms);
    if (d.uncount_attempt != e.uncount)
        fail_msg("%s from %s: uncount=%d, want %d", what, cur, d.uncount_attempt, e.uncount);
    if (d.count_redelivery != e.redeliver)
        fail_msg("%s from %s: redelivery=%d, want %d", what, cur, d.count_redelivery, e.redeliver);
}

static const struct expect REFUSED = {false, 0, NULL, 0, false, false};

static struct expect to(errand_state next, const char *name)
{
    struct expect e = {true, next, name, 0, false, false};
    return e;
}

static struct expect to_scheduled(const char *name, int64_t at, bool uncount)
{
    struct expect e = {true, ERRAND_STATE_SCHEDULED, name, at, uncount, false};
    return e;
}

/* Back to the queue at once, the attempt given back, one redelivery counted. */
static struct expect redelivered(void)
{
    struct expect e = {true, ERRAND_STATE_SCHEDULED, "Scheduled", NOW, true, true};
    return e;
}

static void names_and_predicates(void **state)
{
    (void)state;
    static const struct {
        errand_state s;
        const char *type, *name;
        bool final, leased;
    } rows[N_STATES] = {
        {ERRAND_STATE_SCHEDULED, "SCHEDULED", "Scheduled", false, false},
        {ERRAND_STATE_PENDING, "PENDING", "Pending", false, true},
        {ERRAND_STATE_RUNNING, "RUNNING", "Running", false, true},
        {ERRAND_STATE_COMPLETED, "COMPLETED", "Completed", true, false},
        {ERRAND_STATE_FAILED, "FAILED", "Failed", true, false},
        {ERRAND_STATE_CRASHED, "CRASHED", "Crashed", true, false},
        {ERRAND_STATE_CANCELLING, "CANCELLING", "Cancelling", false, true},
        {ERRAND_STATE_CANCELLED, "CANCELLED", "Cancelled", true, false},
    };
    for (int i = 0; i < N_STATES; i++) {
        assert_string_equal(state_type_name(rows[i].s), rows[i].type);
        assert_string_equal(errand_state_type_name(rows[i].s), rows[i].type);
        assert_string_equal(state_default_name(rows[i].s), rows[i].name);
        assert_int_equal(state_is_final(rows[i].s), rows[i].final);
        assert_int_equal(errand_state_is_final(rows[i].s), rows[i].final);
        assert_int_equal(state_is_leased(rows[i].s), rows[i].leased);
        errand_state parsed;
        assert_true(state_parse(rows[i].type, &parsed));
        assert_int_equal(parsed, rows[i].s);
    }
    errand_state parsed = ERRAND_STATE_RUNNING;
    assert_false(state_parse("scheduled", &parsed)); /* wire names are upper case */
    assert_false(state_parse("BOGUS", &parsed));
    assert_false(state_parse("", &parsed));
    assert_false(state_parse(NULL, &parsed));
    assert_int_equal(parsed, ERRAND_STATE_RUNNING);
    assert_null(state_type_name((errand_state)N_STATES));
    assert_null(state_default_name((errand_state)-1));
}

static void claim_only_from_scheduled(void **state)
{
    (void)state;
    for (int s = 0; s < N_STATES; s++) {
        struct expect e =
            s == ERRAND_STATE_SCHEDULED ? to(ERRAND_STATE_PENDING, "Pending") : REFUSED;
        check("claim", (errand_state)s, state_on_claim((errand_state)s), e);
    }
}

static void cancel_rules(void **state)
{
    (void)state;
    struct expect want[N_STATES];
    want[ERRAND_STATE_SCHEDULED] = to(ERRAND_STATE_CANCELLED, "Cancelled");
    want[ERRAND_STATE_PENDING] = to(ERRAND_STATE_CANCELLING, "Cancelling");
    want[ERRAND_STATE_RUNNING] = to(ERRAND_STATE_CANCELLING, "Cancelling");
    want[ERRAND_STATE_CANCELLING] = to(ERRAND_STATE_CANCELLING, "Cancelling"); /* idempotent */
    want[ERRAND_STATE_COMPLETED] = REFUSED;
    want[ERRAND_STATE_FAILED] = REFUSED;
    want[ERRAND_STATE_CRASHED] = REFUSED;
    want[ERRAND_STATE_CANCELLED] = REFUSED;
    for (int s = 0; s < N_STATES; s++)
        check("cancel", (errand_state)s, state_on_cancel((errand_state)s), want[s]);
}

static void lease_expiry_rules(void **state)
{
    (void)state;
    /* Lease expiry is a redelivery: it never uses the task's retries (the budgets say last
       attempt of one), only the redelivery limit. */
    for (int s = 0; s < N_STATES; s++) {
        struct expect left, none_left;
        switch (s) {
        case ERRAND_STATE_PENDING:
        case ERRAND_STATE_RUNNING:
            left = redelivered();
            none_left = to(ERRAND_STATE_CRASHED, "Crashed");
            break;
        case ERRAND_STATE_CANCELLING:
            left = none_left = to(ERRAND_STATE_CANCELLED, "Cancelled");
            break;
        default: /* no lease to expire */
            left = none_left = REFUSED;
        }
        check("lease expiry (no redelivery yet)", (errand_state)s,
              state_on_lease_expired((errand_state)s, R(0), NOW), left);
        check("lease expiry (one redelivery left)", (errand_state)s,
              state_on_lease_expired((errand_state)s, R(MAX_REDELIVERIES - 1), NOW), left);
        struct state_decision last =
            state_on_lease_expired((errand_state)s, R(MAX_REDELIVERIES), NOW);
        check("lease expiry (limit reached)", (errand_state)s, last, none_left);
        assert_int_equal(last.out_of_redeliveries,
                         s == ERRAND_STATE_PENDING || s == ERRAND_STATE_RUNNING);
    }
}

/* The expected outcome of a report with attempts remaining, retryable, attempt 1. */
static struct expect report_rule(errand_state cur, errand_state rep)
{
    bool leased = cur == ERRAND_STATE_PENDING || cur == ERRAND_STATE_RUNNING ||
                  cur == ERRAND_STATE_CANCELLING;
    if (!leased)
        return REFUSED;
    switch (rep) {
    case ERRAND_STATE_RUNNING:
        return cur == ERRAND_STATE_PENDING ? to(ERRAND_STATE_RUNNING, "Running") : REFUSED;
    case ERRAND_STATE_COMPLETED:
        return to(ERRAND_STATE_COMPLETED, "Completed");
    case ERRAND_STATE_FAILED:
        if (cur == ERRAND_STATE_CANCELLING)
            return to(ERRAND_STATE_CANCELLED, "Cancelled");
        return to_scheduled("AwaitingRetry", NOW + 1 * SEC, false);
    case ERRAND_STATE_CANCELLED:
        return to(ERRAND_STATE_CANCELLED, "Cancelled");
    case ERRAND_STATE_SCHEDULED: /* hand-back: free before the start, a redelivery after */
        if (cur == ERRAND_STATE_RUNNING)
            return redelivered();
        return cur == ERRAND_STATE_PENDING ? to_scheduled("Scheduled", NOW, true) : REFUSED;
    default: /* PENDING, CRASHED, CANCELLING are never reported by a worker */
        return REFUSED;
    }
}

static void report_matrix(void **state)
{
    (void)state;
    for (int cur = 0; cur < N_STATES; cur++) {
        for (int rep = 0; rep < N_STATES; rep++) {
            char what[64];
            snprintf(what, sizeof what, "report %s", state_type_name((errand_state)rep));
            struct state_decision d = state_on_report((errand_state)cur, (errand_state)rep, B(1, 3),
                                                      true, DELAYS, N_DELAYS, 0, 0, NOW);
            check(what, (errand_state)cur, d, report_rule(cur, rep));
        }
    }
}

static void hand_back_of_a_started_run_is_a_redelivery(void **state)
{
    (void)state;
    /* A deploy that ends a running task does not use the task's retries ... */
    check("hand-back of a running run, last attempt", ERRAND_STATE_RUNNING,
          state_on_report(ERRAND_STATE_RUNNING, ERRAND_STATE_SCHEDULED, R(0), true, NULL, 0, 0, 0,
                          NOW),
          redelivered());
    /* ... but is bounded by the redelivery limit like a lost worker. */
    struct state_decision d = state_on_report(ERRAND_STATE_RUNNING, ERRAND_STATE_SCHEDULED,
                                              R(MAX_REDELIVERIES), true, NULL, 0, 0, 0, NOW);
    check("hand-back of a running run, limit reached", ERRAND_STATE_RUNNING, d,
          to(ERRAND_STATE_CRASHED, "Crashed"));
    assert_true(d.out_of_redeliveries);
    /* An unstarted run handed back costs nothing, whatever its budgets. */
    check("hand-back of a pending run, limit reached", ERRAND_STATE_PENDING,
          state_on_report(ERRAND_STATE_PENDING, ERRAND_STATE_SCHEDULED, R(MAX_REDELIVERIES), true,
                          NULL, 0, 0, 0, NOW),
          to_scheduled("Scheduled", NOW, true));
}

static void expired_lease_resumes_only_from_the_queue(void **state)
{
    (void)state;
    for (int s = 0; s < N_STATES; s++) {
        struct expect started = REFUSED, unstarted = REFUSED;
        if (s == ERRAND_STATE_SCHEDULED) {
            started = to(ERRAND_STATE_RUNNING, "Running");
            unstarted = to(ERRAND_STATE_PENDING, "Pending");
        }
        check("resume (started)", (errand_state)s, state_on_lease_resumed((errand_state)s, true),
              started);
        check("resume (not started)", (errand_state)s,
              state_on_lease_resumed((errand_state)s, false), unstarted);
    }
}

static void failed_report_without_attempts_left_fails(void **state)
{
    (void)state;
    errand_state held[] = {ERRAND_STATE_PENDING, ERRAND_STATE_RUNNING};
    for (size_t i = 0; i < 2; i++) {
        check("FAILED, last attempt", held[i],
              state_on_report(held[i], ERRAND_STATE_FAILED, B(3, 3), true, DELAYS, N_DELAYS, 0, 0,
                              NOW),
              to(ERRAND_STATE_FAILED, "Failed"));
        check("FAILED, not retryable", held[i],
              state_on_report(held[i], ERRAND_STATE_FAILED, B(1, 3), false, DELAYS, N_DELAYS, 0, 0,
                              NOW),
              to(ERRAND_STATE_FAILED, "Failed"));
        check("FAILED, no retries configured", held[i],
              state_on_report(held[i], ERRAND_STATE_FAILED, B(1, 1), true, NULL, 0, 0, 0, NOW),
              to(ERRAND_STATE_FAILED, "Failed"));
    }
    /* While cancelling, a failure is a cancellation even with attempts left or not. */
    check("FAILED while cancelling, last attempt", ERRAND_STATE_CANCELLING,
          state_on_report(ERRAND_STATE_CANCELLING, ERRAND_STATE_FAILED, B(3, 3), false, NULL, 0, 0,
                          0, NOW),
          to(ERRAND_STATE_CANCELLED, "Cancelled"));
}

static void failed_report_schedules_retry_with_its_delay(void **state)
{
    (void)state;
    /* Retry n waits delays[n-1]; the last delay repeats. */
    check("FAILED attempt 2", ERRAND_STATE_RUNNING,
          state_on_report(ERRAND_STATE_RUNNING, ERRAND_STATE_FAILED, B(2, 5), true, DELAYS,
                          N_DELAYS, 0, 0, NOW),
          to_scheduled("AwaitingRetry", NOW + 10 * SEC, false));
    check("FAILED attempt 4", ERRAND_STATE_RUNNING,
          state_on_report(ERRAND_STATE_RUNNING, ERRAND_STATE_FAILED, B(4, 5), true, DELAYS,
                          N_DELAYS, 0, 0, NOW),
          to_scheduled("AwaitingRetry", NOW + 10 * SEC, false));
    check("FAILED, no delays", ERRAND_STATE_RUNNING,
          state_on_report(ERRAND_STATE_RUNNING, ERRAND_STATE_FAILED, B(1, 2), true, NULL, 0, 0.5,
                          0.5, NOW),
          to_scheduled("AwaitingRetry", NOW, false));
    check("FAILED with jitter", ERRAND_STATE_PENDING,
          state_on_report(ERRAND_STATE_PENDING, ERRAND_STATE_FAILED, B(2, 3), true, DELAYS,
                          N_DELAYS, 0.5, 0.5, NOW),
          to_scheduled("AwaitingRetry", NOW + 12500, false));
}

/* Where state_report_uses_rand says a report needs no random number, the decision is the
 * same whatever rand01 is; where it says one is needed, a jittered retry depends on it. */
static void reports_draw_a_random_number_only_for_a_jittered_retry(void **state)
{
    (void)state;
    const double jitters[] = {0, 0.5};
    for (size_t j = 0; j < 2; j++) {
        for (int cur = 0; cur < N_STATES; cur++) {
            for (int rep = 0; rep < N_STATES; rep++) {
                struct state_decision lo =
                    state_on_report((errand_state)cur, (errand_state)rep, B(1, 3), true, DELAYS,
                                    N_DELAYS, jitters[j], 0, NOW);
                struct state_decision hi =
                    state_on_report((errand_state)cur, (errand_state)rep, B(1, 3), true, DELAYS,
                                    N_DELAYS, jitters[j], 0.99, NOW);
                if (!state_report_uses_rand((errand_state)rep, jitters[j])) {
                    assert_int_equal(lo.allowed, hi.allowed);
                    assert_int_equal(lo.next, hi.next);
                    assert_int_equal(lo.scheduled_at_ms, hi.scheduled_at_ms);
                } else if (cur == ERRAND_STATE_RUNNING) {
                    assert_true(hi.scheduled_at_ms > lo.scheduled_at_ms);
                }
            }
        }
    }
    assert_false(state_report_uses_rand(ERRAND_STATE_COMPLETED, 0.5));
    assert_true(state_report_uses_rand(ERRAND_STATE_FAILED, 0.5));
}

static void out_of_range_states_are_refused(void **state)
{
    (void)state;
    struct state_decision d =
        state_on_report(ERRAND_STATE_RUNNING, (errand_state)42, B(1, 3), true, NULL, 0, 0, 0, NOW);
    assert_false(d.allowed);
    d = state_on_report((errand_state)42, ERRAND_STATE_COMPLETED, B(1, 3), true, NULL, 0, 0, 0,
                        NOW);
    assert_false(d.allowed);
    assert_false(state_on_cancel((errand_state)42).allowed);
    assert_false(state_on_claim((errand_state)42).allowed);
    assert_false(state_on_lease_expired((errand_state)42, B(1, 3), NOW).allowed);
}

static void retry_delay_picks_and_repeats(void **state)
{
    (void)state;
    const double d[] = {1, 10, 100};
    assert_int_equal(state_retry_delay_ms(d, 3, 1, 0, 0), 1000);
    assert_int_equal(state_retry_delay_ms(d, 3, 2, 0, 0), 10000);
    assert_int_equal(state_retry_delay_ms(d, 3, 3, 0, 0), 100000);
    assert_int_equal(state_retry_delay_ms(d, 3, 4, 0, 0), 100000);
    assert_int_equal(state_retry_delay_ms(d, 3, 1000000, 0, 0), 100000);
    assert_int_equal(state_retry_delay_ms(d, 3, 0, 0, 0), 1000); /* clamped to the first */
    assert_int_equal(state_retry_delay_ms(d, 3, -5, 0, 0), 1000);
    assert_int_equal(state_retry_delay_ms(d, 0, 1, 0.5, 0.5), 0);
    assert_int_equal(state_retry_delay_ms(NULL, 3, 1, 0, 0), 0);
    const double frac[] = {0.25};
    assert_int_equal(state_retry_delay_ms(frac, 1, 1, 0, 0), 250);
}

static void retry_delay_jitter_stretches(void **state)
{
    (void)state;
    const double d[] = {10};
    assert_int_equal(state_retry_delay_ms(d, 1, 1, 0.5, 0), 10000);
    assert_int_equal(state_retry_delay_ms(d, 1, 1, 0.5, 0.5), 12500);
    assert_int_equal(state_retry_delay_ms(d, 1, 1, 1.0, 0.999), 19990);
    /* Bad jitter or random values do not shrink or explode the delay. */
    assert_int_equal(state_retry_delay_ms(d, 1, 1, -1, 0.5), 10000);
    assert_int_equal(state_retry_delay_ms(d, 1, 1, NAN, 0.5), 10000);
    assert_int_equal(state_retry_delay_ms(d, 1, 1, 0.5, -3), 10000);
    assert_int_equal(state_retry_delay_ms(d, 1, 1, 0.5, 7), 15000);
}

static void retry_delay_guards_bad_values(void **state)
{
    (void)state;
    const double neg[] = {-5};
    assert_int_equal(state_retry_delay_ms(neg, 1, 1, 0, 0), 0);
    const double nan[] = {NAN};
    assert_int_equal(state_retry_delay_ms(nan, 1, 1, 0, 0), 0);
    const double huge[] = {1e300};
    int64_t h = state_retry_delay_ms(huge, 1, 1, 1e300, 0.9);
    assert_true(h > 0);
    assert_true(h < INT64_MAX / 2); /* now + delay cannot overflow */
    const double inf[] = {INFINITY};
    assert_int_equal(state_retry_delay_ms(inf, 1, 1, 0, 0), h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_predicates),
        cmocka_unit_test(claim_only_from_scheduled),
        cmocka_unit_test(cancel_rules),
        cmocka_unit_test(lease_expiry_rules),
        cmocka_unit_test(report_matrix),
        cmocka_unit_test(hand_back_of_a_started_run_is_a_redelivery),
        cmocka_unit_test(expired_lease_resumes_only_from_the_queue),
        cmocka_unit_test(failed_report_without_attempts_left_fails),
        cmocka_unit_test(failed_report_schedules_retry_with_its_delay),
        cmocka_unit_test(reports_draw_a_random_number_only_for_a_jittered_retry),
        cmocka_unit_test(out_of_range_states_are_refused),
        cmocka_unit_test(retry_delay_picks_and_repeats),
        cmocka_unit_test(retry_delay_jitter_stretches),
        cmocka_unit_test(retry_delay_guards_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
