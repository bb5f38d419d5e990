/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_worker.c — the SQLite store through store.h, worker side: claims
 * (order, due time, task filter, no double claim across threads), leases (heartbeat, stale
 * tokens, sweep), reports (retries, not retryable, hand-back) and cancel in every state.
 */
#include "store_fixture.h"

#define CONCURRENT_CLAIM_RUNS 2000
#define CONCURRENT_CLAIM_LIMIT 37

/* --- claims -------------------------------------------------------------------------- */

static void claim_order_due_time_and_tasks(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *low = submit(fx, t, "{\"task\": \"a\", \"priority\": 0}", NULL);
    json_t *high_old = submit(fx, t, "{\"task\": \"a\", \"priority\": 5}", NULL);
    json_t *mid = submit(fx, t, "{\"task\": \"a\", \"priority\": 1}", NULL);
    json_t *high_new = submit(fx, t + 1, "{\"task\": \"a\", \"priority\": 5}", NULL);
    json_t *later =
        submit(fx, t, "{\"task\": \"a\", \"priority\": 9, \"delay_seconds\": 60}", NULL);
    json_t *other = submit(fx, t, "{\"task\": \"b\", \"priority\": 100}", NULL);

    json_t *runs = claim(fx, "w1", "a", 10, 30, t + 2);
    assert_int_equal(json_array_size(runs), 4);
    const char *want[] = {sfield(high_old, "id"), sfield(high_new, "id"), sfield(mid, "id"),
                          sfield(low, "id")};
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_array_get(runs, i);
        assert_string_equal(sfield(c, "id"), want[i]);
        assert_string_equal(sfield(c, "task"), "a");
        assert_int_equal(ifield(c, "attempt"), 1);
        assert_int_equal(strlen(sfield(c, "lease_token")), 32);
        assert_int_equal(parse_time(json_object_get(c, "lease_expires")), t + 2 + 30 * SEC);
        assert_true(json_is_object(json_object_get(c, "parameters")));
    }
    json_t *pending = get_run(fx, want[0]);
    assert_string_equal(state_type_of(pending), "PENDING");
    assert_string_equal(sfield(pending, "worker"), "w1");
    json_decref(pending);
    json_decref(runs);

    /* Not before its time. */
    runs = claim(fx, "w1", "a", 10, 30, t + 59 * SEC);
    assert_int_equal(json_array_size(runs), 0);
    json_decref(runs);
    runs = claim(fx, "w1", "a", 10, 30, t + 60 * SEC);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(later, "id"));
    json_decref(runs);

    /* Several tasks at once: merged in priority order; limit respected. */
    json_t *a2 = submit(fx, t, "{\"task\": \"a\", \"priority\": 50}", NULL);
    const char *tasks[] = {"a", "b", "a"};
    struct claim_request req = {.worker = "w2", .tasks = tasks, .n_tasks = 3, .limit = 1};
    errand_error err;
    assert_int_equal(store_claim_json(fx->st, &req, t + 61 * SEC, &runs, &err), 0);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(other, "id"));
    json_decref(runs);
    req.limit = 5;
    assert_int_equal(store_claim_json(fx->st, &req, t + 61 * SEC, &runs, &err), 0);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(a2, "id"));
    json_decref(runs);

    req.limit = 0;
    assert_int_equal(store_claim_json(fx->st, &req, t, &runs, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "limit");

    json_decref(low);
    json_decref(high_old);
    json_decref(mid);
    json_decref(high_new);
    json_decref(later);
    json_decref(other);
    json_decref(a2);
}

struct claimer {
    struct fixture *fx;
    const char *worker;
    char (*ids)[37];
    size_t n;
};

static void *claimer_main(void *p)
{
    struct claimer *cl = p;
    const char *tasks[] = {"load"};
    struct claim_request req = {
        .worker = cl->worker, .tasks = tasks, .n_tasks = 1, .limit = CONCURRENT_CLAIM_LIMIT};
    for (;;) {
        json_t *runs = NULL;
        errand_error err;
        if (store_claim_json(cl->fx->st, &req, cl->fx->t0 + SEC, &runs, &err) != 0)
            return NULL;
        size_t n = json_array_size(runs);
        for (size_t i = 0; i < n; i++)
            snprintf(cl->ids[cl->n++], 37, "%s", sfield(json_array_get(runs, i), "id"));
        json_decref(runs);
        if (n == 0)
            return NULL;
    }
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void claim_each_run_once_across_threads(void **state)
{
    struct fixture *fx = *state;
    struct run_spec *specs = calloc(CONCURRENT_CLAIM_RUNS, sizeof *specs);
    struct run_row *runs = calloc(CONCURRENT_CLAIM_RUNS, sizeof *runs);
    for (int i = 0; i < CONCURRENT_CLAIM_RUNS; i++)
        parse_spec(&specs[i], fx->t0, "{\"task\": \"load\"}");
    errand_error err;
    assert_int_equal(store_submit(fx->st, specs, CONCURRENT_CLAIM_RUNS, fx->t0, runs, NULL, &err),
                     0);
    struct claimer cl[2] = {
        {fx, "w1", calloc(CONCURRENT_CLAIM_RUNS, 37), 0},
        {fx, "w2", calloc(CONCURRENT_CLAIM_RUNS, 37), 0},
    };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, claimer_main, &cl[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(cl[0].n + cl[1].n, CONCURRENT_CLAIM_RUNS);
    char(*all)[37] = calloc(CONCURRENT_CLAIM_RUNS, 37);
    memcpy(all, cl[0].ids, cl[0].n * 37);
    memcpy(all + cl[0].n, cl[1].ids, cl[1].n * 37);
    qsort(all, CONCURRENT_CLAIM_RUNS, 37, cmp_id);
    for (int i = 1; i < CONCURRENT_CLAIM_RUNS; i++)
        assert_string_not_equal(all[i - 1], all[i]);
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_PENDING], CONCURRENT_CLAIM_RUNS);
    for (int i = 0; i < CONCURRENT_CLAIM_RUNS; i++) {
        run_row_clear(&runs[i]);
        run_spec_clear(&specs[i]);
    }
    free(all);
    free(cl[0].ids);
    free(cl[1].ids);
    free(runs);
    free(specs);
}

/* --- leases -------------------------------------------------------------------------- */
static void heartbeat_extends_and_stale_tokens(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"h\"}", NULL);
    const char *id = sfield(run, "id");
    json_t *runs = claim(fx, "w1", "h", 1, 10, t);
    const char *token = sfield(json_array_get(runs, 0), "lease_token");
    bool cancel = true;
    assert_int_equal(heartbeat1(fx, id, token, 10, t + 5 * SEC, &cancel), 200);
    assert_false(cancel);
    assert_int_equal(sweep(fx, t + 12 * SEC), 0); /* extended to t + 15 s */
    assert_int_equal(heartbeat1(fx, id, "0123456789abcdef0123456789abcdef", 10, t, NULL), 409);
    assert_int_equal(heartbeat1(fx, id, NULL, 10, t, NULL), 409);
    assert_int_equal(heartbeat1(fx, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", token, 10, t, NULL),
                     404);
    /* A report with a wrong token changes nothing. */
    assert_int_equal(report(fx, id, "bad", ERRAND_STATE_COMPLETED, NULL, NULL, true, t), 409);
    json_t *still = get_run(fx, id);
    assert_string_equal(state_type_of(still), "PENDING");
    json_decref(still);
    /* Cancel: the next heartbeat says so. */
    json_t *after = NULL;
    errand_error err;
    assert_int_equal(store_cancel_json(fx->st, id, t + 6 * SEC, &after, &err), 0);
    assert_string_equal(state_type_of(after), "CANCELLING");
    json_decref(after);
    assert_int_equal(heartbeat1(fx, id, token, 10, t + 7 * SEC, &cancel), 200);
    assert_true(cancel);
    /* Mixed heartbeat: one good, one stale -> any_stale, the good one still extended. */
    struct lease_ref refs[2] = {{id, token, -1}, {id, "nope", -1}};
    struct lease_answer answers[2];
    assert_int_equal(store_heartbeat(fx->st, "w1", refs, 2, 100, t + 8 * SEC, answers, &err), 0);
    assert_int_equal(answers[0].status, LEASE_APPLIED);
    assert_int_equal(answers[1].status, LEASE_STALE);
    assert_int_equal(sweep(fx, t + 100 * SEC), 0);
    assert_int_equal(sweep(fx, t + 109 * SEC), 1);
    json_t *done = get_run(fx, id);
    assert_string_equal(state_type_of(done), "CANCELLED"); /* lease ran out while cancelling */
    json_decref(done);
    json_decref(runs);
    json_decref(run);
}

/* Counts the commits the store times: those that sync as configured (sqlite_writer.c). */
static void count_synced_commit(void *arg, int64_t ns)
{
    (void)ns;
    ++*(int *)arg;
}

/* With sync=full, a report batch that only says runs started commits without an fsync of its
 * own, as claims do (docs/operations.md, "Durability"): a lone run's latency then holds two,
 * its submission's and its outcome's. Log lines, or any other state, make a batch durable. */
static void a_runs_start_alone_commits_without_its_own_fsync(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    open_store(fx, "full");
    int synced = 0;
    store_observe(fx->st, &(struct store_observer){.arg = &synced, .commit = count_synced_commit});
    int64_t t = fx->t0;
    json_t *a = submit(fx, t, "{\"task\": \"s\"}", NULL);
    json_t *b = submit(fx, t, "{\"task\": \"s\"}", NULL);
    assert_int_equal(synced, 2);
    json_t *runs = claim(fx, "w1", "s", 2, 30, t);
    assert_int_equal(json_array_size(runs), 2);
    assert_int_equal(synced, 2); /* a claim: relaxed */
    const char *ids[2], *tokens[2];
    for (size_t i = 0; i < 2; i++) {
        ids[i] = sfield(json_array_get(runs, i), "id");
        tokens[i] = sfield(json_array_get(runs, i), "lease_token");
    }
    assert_int_equal(report(fx, ids[0], tokens[0], ERRAND_STATE_RUNNING, NULL, NULL, true, t), 200);
    assert_int_equal(synced, 2); /* a start alone: relaxed */
    json_t *running = get_run(fx, ids[0]);
    assert_string_equal(state_type_of(running), "RUNNING");
    json_decref(running);

    /* A start with a log line: durable. */
    struct run_report start = {
        .id = ids[1], .lease_token = tokens[1], .state = ERRAND_STATE_RUNNING};
    struct log_entry line = {.id = ids[1], .timestamp_ms = t, .level = 1, .message = "hello"};
    struct lease_answer answer;
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", NULL, &start, 1, &line, 1, t, &answer, &err), 0);
    assert_int_equal(answer.status, LEASE_APPLIED);
    assert_int_equal(synced, 3);

    /* An outcome, alone or beside a start: durable. */
    assert_int_equal(report(fx, ids[0], tokens[0], ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 1),
                     200);
    assert_int_equal(synced, 4);
    struct run_report both[2] = {
        {.id = ids[1], .lease_token = tokens[1], .state = ERRAND_STATE_RUNNING},
        {.id = ids[1], .lease_token = tokens[1], .state = ERRAND_STATE_COMPLETED}};
    struct lease_answer answers[2];
    assert_int_equal(store_report(fx->st, "w1", NULL, both, 2, NULL, 0, t + 2, answers, &err), 0);
    assert_int_equal(answers[1].status, LEASE_APPLIED);
    assert_int_equal(synced, 5);
    assert_false(store_reports_may_be_lost(both, 2, 0));
    assert_true(store_reports_may_be_lost(both, 1, 0));
    assert_false(store_reports_may_be_lost(both, 1, 1));
    assert_false(store_reports_may_be_lost(both, 0, 0));
    json_decref(runs);
    json_decref(a);
    json_decref(b);
}

/* The state message of the run's current state. */
static const char *message_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "message");
}

static void sweep_redelivers_then_crashes(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    /* retries: 0 — lease expiries never use the task's retries, only redeliveries. */
    json_t *run = submit(fx, t, "{\"task\": \"s\", \"retries\": 0}", NULL);
    const char *id = sfield(run, "id");
    json_decref(claim(fx, "box-7", "s", 1, 1, t));
    assert_int_equal(sweep(fx, t + 1 * SEC), 0); /* not before it expires */
    assert_int_equal(sweep(fx, t + 2 * SEC), 1);
    json_t *r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "SCHEDULED");
    assert_string_equal(state_name_of(r), "Scheduled");
    assert_non_null(strstr(message_of(r), "lease expired on worker box-7; redelivery 1 of 5"));
    assert_int_equal(ifield(r, "attempt"), 0); /* given back */
    assert_int_equal(ifield(r, "redeliveries"), 1);
    json_decref(r);
    int64_t now = t + 2 * SEC;
    for (int k = 2; k <= STORE_DEFAULT_MAX_REDELIVERIES + 1; k++) {
        json_t *runs = claim(fx, "box-8", "s", 1, 1, now);
        assert_int_equal(json_array_size(runs), 1);
        assert_int_equal(ifield(json_array_get(runs, 0), "attempt"), 1);
        json_decref(runs);
        now += 2 * SEC;
        assert_int_equal(sweep(fx, now), 1);
    }
    r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "CRASHED");
    assert_non_null(strstr(message_of(r), "redelivered 5 times, the limit"));
    assert_int_equal(ifield(r, "redeliveries"), STORE_DEFAULT_MAX_REDELIVERIES);
    assert_false(json_is_null(json_object_get(r, "finished")));
    json_decref(r);
    json_t *states = NULL;
    errand_error err;
    assert_int_equal(store_states_json(fx->st, id, &states, &err), 0);
    /* SCHEDULED, then (PENDING, SCHEDULED) per redelivery, then PENDING, CRASHED. */
    size_t n = json_array_size(states);
    assert_int_equal(n, 2 + 2 * STORE_DEFAULT_MAX_REDELIVERIES + 1);
    assert_string_equal(sfield(json_array_get(states, n - 1), "type"), "CRASHED");
    json_decref(states);
    json_decref(run);
}

/* Claims the one run of task "late" as box-1 with a 1 s lease at t; its token into token. */
static void claim_late(struct fixture *fx, int64_t t, char token[64])
{
    json_t *runs = claim(fx, "box-1", "late", 1, 1, t);
    assert_int_equal(json_array_size(runs), 1);
    snprintf(token, 64, "%s", sfield(json_array_get(runs, 0), "lease_token"));
    json_decref(runs);
}

/* A run of task "late" (retries 0) that box-1 claimed at t and started, whose lease ran out
 * by t + 2 s: back in the queue, redelivered once. The run and its old lease token. */
static json_t *expired_running_run(struct fixture *fx, int64_t t, char token[64])
{
    json_t *run = submit(fx, t, "{\"task\": \"late\", \"retries\": 0}", NULL);
    claim_late(fx, t, token);
    assert_int_equal(
        report(fx, sfield(run, "id"), token, ERRAND_STATE_RUNNING, NULL, NULL, true, t), 200);
    assert_int_equal(sweep(fx, t + 2 * SEC), 1);
    return run;
}

static void late_outcome_is_accepted_until_claimed_again(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char token[64];
    json_t *run = expired_running_run(fx, t, token); /* its report came too late */
    const char *id = sfield(run, "id");
    json_t *result = json_integer(42);
    assert_int_equal(report(fx, id, token, ERRAND_STATE_COMPLETED, result, NULL, true, t + 3 * SEC),
                     200);
    json_t *r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "COMPLETED");
    assert_int_equal(ifield(r, "attempt"), 1);      /* one execution, counted once */
    assert_int_equal(ifield(r, "redeliveries"), 0); /* the expiry is undone */
    assert_int_equal(json_integer_value(json_object_get(r, "result")), 42);
    json_decref(r);
    json_t *states = NULL;
    errand_error err;
    assert_int_equal(store_states_json(fx->st, id, &states, &err), 0);
    const char *want[] = {"SCHEDULED", "PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"};
    assert_int_equal(json_array_size(states), 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(sfield(json_array_get(states, i), "type"), want[i]);
    assert_non_null(strstr(sfield(json_array_get(states, 4), "message"), "lease resumed"));
    json_decref(states);
    /* Sent again: applied, nothing changes. */
    assert_int_equal(report(fx, id, token, ERRAND_STATE_COMPLETED, result, NULL, true, t + 4 * SEC),
                     200);
    json_decref(result);
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_COMPLETED], 1);
    assert_int_equal(c[ERRAND_STATE_SCHEDULED], 0);
    json_decref(run);

    /* Claimed again since: the old lease's outcome is refused, the new attempt untouched. */
    json_t *run2 = submit(fx, t, "{\"task\": \"late\"}", NULL);
    const char *id2 = sfield(run2, "id");
    claim_late(fx, t + 10 * SEC, token);
    assert_int_equal(sweep(fx, t + 12 * SEC), 1);
    char token2[64];
    claim_late(fx, t + 12 * SEC, token2);
    assert_int_equal(report(fx, id2, token, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 13 * SEC),
                     409);
    r = get_run(fx, id2);
    assert_string_equal(state_type_of(r), "PENDING");
    json_decref(r);
    /* ... and a heartbeat under the old lease does not take it back either. */
    assert_int_equal(heartbeat1(fx, id2, token, 10, t + 13 * SEC, NULL), 409);
    assert_int_equal(
        report(fx, id2, token2, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 13 * SEC), 200);
    json_decref(run2);
}

static void heartbeat_resumes_an_expired_lease(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char token[64];
    json_t *run = expired_running_run(fx, t, token);
    const char *id = sfield(run, "id");
    assert_int_equal(heartbeat1(fx, id, token, 10, t + 3 * SEC, NULL), 200);
    json_t *r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "RUNNING");
    assert_int_equal(ifield(r, "attempt"), 1);
    assert_int_equal(ifield(r, "redeliveries"), 0);
    json_decref(r);
    /* Held again for the heartbeat's lease: nothing to expire before it ends. */
    assert_int_equal(sweep(fx, t + 12 * SEC), 0);
    json_t *none = claim(fx, "box-2", "late", 1, 1, t + 12 * SEC);
    assert_int_equal(json_array_size(none), 0);
    json_decref(none);
    assert_int_equal(report(fx, id, token, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 12 * SEC),
                     200);
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_COMPLETED], 1);
    assert_int_equal(c[ERRAND_STATE_RUNNING], 0);
    json_decref(run);
}

/* Claims task "rq" with a request id; the claimed runs as JSON. */
static json_t *claim_with_id(struct fixture *fx, const char *request_id, int limit, int64_t now)
{
    const char *tasks[] = {"rq"};
    struct claim_request req = {.worker = "box-1",
                                .tasks = tasks,
                                .n_tasks = 1,
                                .limit = limit,
                                .lease_seconds = 10,
                                .request_id = request_id};
    struct run_list runs;
    errand_error err;
    if (store_claim(fx->st, &req, now, &runs, &err) != 0)
        fail_msg("store_claim: %s", err.message);
    return list_json(&runs, true);
}

static void claim_sent_again_gets_the_same_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 4; i++)
        json_decref(submit(fx, t, "{\"task\": \"rq\", \"retries\": 0}", NULL));
    json_t *first = claim_with_id(fx, "req-1", 2, t);
    assert_int_equal(json_array_size(first), 2);
    /* The answer was lost; the same claim again, later: the same runs and tokens, nothing
       new claimed, no attempt charged twice, the leases renewed from now. */
    json_t *again = claim_with_id(fx, "req-1", 2, t + 5 * SEC);
    assert_int_equal(json_array_size(again), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *a = json_array_get(first, i), *b = json_array_get(again, i);
        assert_string_equal(sfield(a, "id"), sfield(b, "id"));
        assert_string_equal(sfield(a, "lease_token"), sfield(b, "lease_token"));
        assert_int_equal(ifield(b, "attempt"), 1);
    }
    assert_int_equal(sweep(fx, t + 12 * SEC), 0); /* renewed: not expired after the first 10 s */
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_PENDING], 2);
    assert_int_equal(c[ERRAND_STATE_SCHEDULED], 2);
    /* A run reported since is not handed out again. */
    json_t *done = json_array_get(again, 0);
    assert_int_equal(report(fx, sfield(done, "id"), sfield(done, "lease_token"),
                            ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 13 * SEC),
                     200);
    json_t *third = claim_with_id(fx, "req-1", 2, t + 13 * SEC);
    assert_int_equal(json_array_size(third), 1);
    assert_string_equal(sfield(json_array_get(third, 0), "id"),
                        sfield(json_array_get(again, 1), "id"));
    /* A new request id is a new claim. */
    json_t *other = claim_with_id(fx, "req-2", 5, t + 13 * SEC);
    assert_int_equal(json_array_size(other), 2);
    /* Forgotten after a while: the id then claims afresh (nothing left to claim here). */
    assert_int_equal(sweep(fx, t + 13 * SEC + 6 * 60 * SEC), 3);
    json_t *late = claim_with_id(fx, "req-1", 5, t + 13 * SEC + 6 * 60 * SEC);
    assert_int_equal(json_array_size(late), 3); /* the three expired runs, redelivered */
    json_decref(late);
    json_decref(other);
    json_decref(third);
    json_decref(again);
    json_decref(first);
}

static void hand_back_mid_run_is_a_redelivery(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"late\", \"retries\": 0}", NULL);
    const char *id = sfield(run, "id");
    char token[64];
    claim_late(fx, t, token);
    assert_int_equal(report(fx, id, token, ERRAND_STATE_RUNNING, NULL, NULL, true, t), 200);
    assert_int_equal(report(fx, id, token, ERRAND_STATE_SCHEDULED, NULL, NULL, true, t), 200);
    json_t *r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "SCHEDULED");
    assert_int_equal(ifield(r, "attempt"), 0);
    assert_int_equal(ifield(r, "redeliveries"), 1);
    assert_non_null(strstr(message_of(r), "before the task finished; redelivery 1 of 5"));
    json_decref(r);
    /* A hand-back's expiry marker is not set: the old lease cannot resume. */
    assert_int_equal(heartbeat1(fx, id, token, 10, t + 1 * SEC, NULL), 409);
    json_decref(run);
}

/* --- reports ------------------------------------------------------------------------- */

static void report_failed_retries_then_fails(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run =
        submit(fx, t, "{\"task\": \"r\", \"retries\": 2, \"retry_delay_seconds\": [10, 20]}", NULL);
    const char *id = sfield(run, "id");
    int64_t now = t;
    const int64_t delays[] = {10 * SEC, 20 * SEC};
    for (int attempt = 1; attempt <= 3; attempt++) {
        json_t *runs = claim(fx, "w1", "r", 1, 30, now);
        assert_int_equal(json_array_size(runs), 1);
        json_t *c = json_array_get(runs, 0);
        assert_int_equal(ifield(c, "attempt"), attempt);
        const char *token = sfield(c, "lease_token");
        assert_int_equal(report(fx, id, token, ERRAND_STATE_RUNNING, NULL, NULL, true, now + 1),
                         200);
        assert_int_equal(report(fx, id, token, ERRAND_STATE_FAILED, NULL, "boom", true, now + 2),
                         200);
        json_t *r = get_run(fx, id);
        if (attempt < 3) {
            assert_string_equal(state_type_of(r), "SCHEDULED");
            assert_string_equal(state_name_of(r), "AwaitingRetry");
            int64_t at = parse_time(json_object_get(r, "scheduled_at"));
            assert_int_equal(at, now + 2 + delays[attempt - 1]);
            /* Not claimable before the retry time. */
            json_t *none = claim(fx, "w1", "r", 1, 30, at - 1);
            assert_int_equal(json_array_size(none), 0);
            json_decref(none);
            now = at;
        } else {
            assert_string_equal(state_type_of(r), "FAILED");
            assert_string_equal(sfield(json_object_get(r, "state"), "message"), "boom");
            assert_false(json_is_null(json_object_get(r, "finished")));
        }
        assert_int_equal(parse_time(json_object_get(r, "started")), t + 1);
        /* The old token is dead once the attempt ended. */
        assert_int_equal(report(fx, id, token, ERRAND_STATE_COMPLETED, NULL, NULL, true, now), 409);
        json_decref(r);
        json_decref(runs);
    }
    json_decref(run);
}

static void report_not_retryable_and_completed(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"n\", \"retries\": 3}", NULL);
    json_t *runs = claim(fx, "w1", "n", 1, 30, t);
    json_t *c = json_array_get(runs, 0);
    assert_int_equal(report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_FAILED,
                            NULL, "bad key", false, t + 5),
                     200);
    json_t *r = get_run(fx, sfield(run, "id"));
    assert_string_equal(state_type_of(r), "FAILED");
    /* COMPLETED straight from PENDING: started = claim time. */
    json_decref(r);
    json_decref(runs);
    json_decref(run);

    run = submit(fx, t, "{\"task\": \"n\"}", NULL);
    runs = claim(fx, "w1", "n", 1, 30, t + 1);
    c = json_array_get(runs, 0);
    struct run_report rep = {.id = sfield(c, "id"),
                             .lease_token = sfield(c, "lease_token"),
                             .state = ERRAND_STATE_COMPLETED,
                             .result = "null",
                             .result_ref = "local:///x.json"};
    struct lease_answer answer;
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", NULL, &rep, 1, NULL, 0, t + 9, &answer, &err), 0);
    assert_int_equal(answer.status, LEASE_APPLIED);
    assert_int_equal(answer.state, ERRAND_STATE_COMPLETED);
    r = get_run(fx, sfield(run, "id"));
    assert_string_equal(state_type_of(r), "COMPLETED");
    assert_true(json_is_null(json_object_get(r, "result"))); /* present, JSON null */
    assert_string_equal(sfield(r, "result_ref"), "local:///x.json");
    assert_int_equal(parse_time(json_object_get(r, "started")), t + 1);
    assert_int_equal(parse_time(json_object_get(r, "finished")), t + 9);
    json_decref(r);
    /* A report for an unknown run: 404, no error. */
    rep.id = "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21";
    assert_int_equal(store_report(fx->st, "w1", NULL, &rep, 1, NULL, 0, t, &answer, &err), 0);
    assert_int_equal(answer.status, LEASE_UNKNOWN);
    json_decref(runs);
    json_decref(run);
}

static void hand_back_uncounts_attempt(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"b\"}", NULL);
    json_t *runs = claim(fx, "w1", "b", 1, 30, t);
    json_t *c = json_array_get(runs, 0);
    assert_int_equal(report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_SCHEDULED,
                            NULL, NULL, true, t + 1),
                     200);
    json_t *r = get_run(fx, sfield(run, "id"));
    assert_string_equal(state_type_of(r), "SCHEDULED");
    assert_int_equal(ifield(r, "attempt"), 0);
    json_decref(r);
    json_decref(runs);
    runs = claim(fx, "w1", "b", 1, 30, t + 2);
    assert_int_equal(ifield(json_array_get(runs, 0), "attempt"), 1);
    json_decref(runs);
    json_decref(run);
}

/* --- cancel -------------------------------------------------------------------------- */

static void cancel_in_each_state(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    errand_error err;
    json_t *out = NULL;

    json_t *sched = submit(fx, t, "{\"task\": \"x\", \"delay_seconds\": 100}", NULL);
    assert_int_equal(store_cancel_json(fx->st, sfield(sched, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLED");
    assert_false(json_is_null(json_object_get(out, "finished")));
    json_decref(out);
    assert_int_equal(store_cancel_json(fx->st, sfield(sched, "id"), t, &out, &err),
                     ERRAND_ECONFLICT);
    assert_null(out);

    json_t *pend = submit(fx, t, "{\"task\": \"x\"}", NULL);
    json_t *runs = claim(fx, "w1", "x", 1, 30, t);
    const char *token = sfield(json_array_get(runs, 0), "lease_token");
    assert_int_equal(store_cancel_json(fx->st, sfield(pend, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLING");
    json_decref(out);
    /* Asking again is fine and records nothing new. */
    assert_int_equal(store_cancel_json(fx->st, sfield(pend, "id"), t, &out, &err), 0);
    json_decref(out);
    json_t *states = NULL;
    assert_int_equal(store_states_json(fx->st, sfield(pend, "id"), &states, &err), 0);
    assert_int_equal(json_array_size(states), 3);
    json_decref(states);
    assert_int_equal(
        report(fx, sfield(pend, "id"), token, ERRAND_STATE_CANCELLED, NULL, NULL, true, t + 1),
        200);
    json_t *r = get_run(fx, sfield(pend, "id"));
    assert_string_equal(state_type_of(r), "CANCELLED");
    json_decref(r);
    json_decref(runs);

    json_t *running = submit(fx, t, "{\"task\": \"x\"}", NULL);
    runs = claim(fx, "w1", "x", 1, 30, t);
    token = sfield(json_array_get(runs, 0), "lease_token");
    assert_int_equal(
        report(fx, sfield(running, "id"), token, ERRAND_STATE_RUNNING, NULL, NULL, true, t), 200);
    assert_int_equal(store_cancel_json(fx->st, sfield(running, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLING");
    json_decref(out);
    /* The task finished anyway: COMPLETED from CANCELLING is accepted. */
    assert_int_equal(
        report(fx, sfield(running, "id"), token, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 1),
        200);
    assert_int_equal(store_cancel_json(fx->st, sfield(running, "id"), t, &out, &err),
                     ERRAND_ECONFLICT);
    json_decref(runs);

    assert_int_equal(
        store_cancel_json(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", t, &out, &err),
        ERRAND_ENOTFOUND);
    json_decref(sched);
    json_decref(pend);
    json_decref(running);
}

/* The stored lease end of run id (not in the run's JSON), read on a connection of our own. */
static int64_t lease_expires_of(struct fixture *fx, const char *id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT lease_expires FROM task_runs WHERE id = ?1", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t at = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return at;
}

/* Heartbeats come every second; the lease index entry moves only once a quarter of the lease
 * is used, and the worker never holds less than three quarters of a lease. */
static void heartbeats_extend_a_lease_once_a_quarter_is_used(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"q\"}", NULL);
    const char *id = sfield(run, "id");
    json_t *runs = claim(fx, "w1", "q", 1, 40, t);
    const char *token = sfield(json_array_get(runs, 0), "lease_token");
    assert_int_equal(lease_expires_of(fx, id), t + 40 * SEC);
    for (int s = 1; s <= 10; s++) {
        assert_int_equal(heartbeat1(fx, id, token, 40, t + s * SEC, NULL), 200);
        assert_int_equal(lease_expires_of(fx, id), t + 40 * SEC); /* 30 s or more left */
    }
    assert_int_equal(heartbeat1(fx, id, token, 40, t + 11 * SEC, NULL), 200);
    assert_int_equal(lease_expires_of(fx, id), t + 51 * SEC);
    /* A longer lease asked for is granted at once. */
    assert_int_equal(heartbeat1(fx, id, token, 120, t + 12 * SEC, NULL), 200);
    assert_int_equal(lease_expires_of(fx, id), t + 132 * SEC);
    json_decref(runs);
    json_decref(run);
}

/* A task's delayed runs as the store counts them (store_read_stats, from task_counts) and as
 * task_runs holds them: the two must agree. */
static void assert_delayed_in_step(struct fixture *fx, const char *task, int64_t want)
{
    struct store_stats st = {0};
    errand_error err;
    if (store_read_stats(fx->st, fx->t0, 0, &st, &err) != 0)
        fail_msg("store_read_stats: %s", err.message);
    int64_t counted = 0;
    for (size_t i = 0; i < st.n_tasks; i++)
        if (strcmp(st.tasks[i].task, task) == 0)
            counted = st.tasks[i].delayed;
    store_stats_clear(&st);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM task_runs WHERE task = ?1 "
                                        "AND state_type = 0 AND delayed = 1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, task, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t stored = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (counted != want || stored != want)
        fail_msg("%s: %lld delayed counted, %lld stored, %lld expected", task, (long long)counted,
                 (long long)stored, (long long)want);
}

/* /metrics' ready and delayed runs per task come from a count the store keeps (task_counts,
 * RUN_TALLY_DELAYED) through every way a run enters or leaves the delayed set: a delayed
 * submit, a claim's promotion, the sweep's, a failure's retry delay, a cancel. */
static void delayed_runs_are_counted_in_step(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 3; i++)
        json_decref(submit(fx, t, "{\"task\": \"d\", \"delay_seconds\": 60}", NULL));
    json_decref(submit(fx, t, "{\"task\": \"d\", \"delay_seconds\": 120}", NULL));
    json_decref(submit(fx, t, "{\"task\": \"d\"}", NULL));
    json_t *cancelled = submit(fx, t, "{\"task\": \"e\", \"delay_seconds\": 60}", NULL);
    assert_delayed_in_step(fx, "d", 4);
    assert_delayed_in_step(fx, "e", 1);

    json_t *out = NULL;
    errand_error err;
    assert_int_equal(store_cancel_json(fx->st, sfield(cancelled, "id"), t, &out, &err), 0);
    json_decref(out);
    assert_delayed_in_step(fx, "e", 0);

    /* Due: a claim promotes what is due (three), claims two; the sweep the fourth later. */
    json_t *runs = claim(fx, "w1", "d", 2, 30, t + 60 * SEC);
    assert_int_equal(json_array_size(runs), 2);
    assert_delayed_in_step(fx, "d", 1);
    sweep(fx, t + 120 * SEC);
    assert_delayed_in_step(fx, "d", 0);

    /* A failure with a retry delay waits delayed again; its retry's claim takes it out. */
    json_t *one = json_array_get(runs, 0);
    json_t *retried = submit(fx, t,
                             "{\"task\": \"f\", \"retries\": 1, "
                             "\"retry_delay_seconds\": 30}",
                             NULL);
    json_t *f = claim(fx, "w1", "f", 1, 30, t);
    assert_int_equal(report(fx, sfield(json_array_get(f, 0), "id"),
                            sfield(json_array_get(f, 0), "lease_token"), ERRAND_STATE_FAILED, NULL,
                            "boom", true, t + SEC),
                     200);
    assert_delayed_in_step(fx, "f", 1);
    json_t *again = claim(fx, "w1", "f", 1, 30, t + 31 * SEC);
    assert_int_equal(json_array_size(again), 1);
    assert_delayed_in_step(fx, "f", 0);
    assert_int_equal(report(fx, sfield(one, "id"), sfield(one, "lease_token"),
                            ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 61 * SEC),
                     200);
    assert_delayed_in_step(fx, "d", 0);
    json_decref(again);
    json_decref(f);
    json_decref(retried);
    json_decref(runs);
    json_decref(cancelled);
}

/* A store of schema 21 had no count of delayed runs: the upgrade counts them once. */
static void an_upgraded_store_counts_its_delayed_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 3; i++)
        json_decref(submit(fx, t, "{\"task\": \"u\", \"delay_seconds\": 60}", NULL));
    json_decref(submit(fx, t, "{\"task\": \"u\"}", NULL));
    store_close(fx->st);
    fx->st = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  UNDO_SCHEMA_23 "DELETE FROM task_counts WHERE state_type = 8;"
                                                 "DELETE FROM schema_migrations WHERE version > 21;"
                                                 "PRAGMA user_version = 21;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    open_store(fx, "normal");
    assert_delayed_in_step(fx, "u", 3);
    json_t *runs = claim(fx, "w1", "u", 10, 30, t + 60 * SEC);
    assert_int_equal(json_array_size(runs), 4);
    assert_delayed_in_step(fx, "u", 0);
    json_decref(runs);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claim_order_due_time_and_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(delayed_runs_are_counted_in_step, setup, teardown),
        cmocka_unit_test_setup_teardown(an_upgraded_store_counts_its_delayed_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(claim_each_run_once_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(heartbeat_extends_and_stale_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(a_runs_start_alone_commits_without_its_own_fsync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sweep_redelivers_then_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(late_outcome_is_accepted_until_claimed_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(heartbeat_resumes_an_expired_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(hand_back_mid_run_is_a_redelivery, setup, teardown),
        cmocka_unit_test_setup_teardown(claim_sent_again_gets_the_same_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(report_failed_retries_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(report_not_retryable_and_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(hand_back_uncounts_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_in_each_state, setup, teardown),
        cmocka_unit_test_setup_teardown(heartbeats_extend_a_lease_once_a_quarter_is_used, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
