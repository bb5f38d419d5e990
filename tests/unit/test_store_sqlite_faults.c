/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_faults.c — the SQLite store under faults: every call survives
 * allocation failures, a killed process loses no acknowledged run, one failing op in a
 * commit group rolls back alone. (Throughput is measured by bench/store_throughput.c.)
 */
#include "store_fixture.h"

/* --- faults: allocation failures and a killed process ------------------------------- */

/* Runs call(fx) with the k-th allocation failing, k = 0, 1, ... until it succeeds: every
 * failure is a clean error (no crash; leaks show under ASan), and success comes. */
static void until_success(struct fixture *fx, const char *what, int (*call)(struct fixture *))
{
    for (long budget = 0;; budget++) {
        mem_fail_after(budget);
        int rc = call(fx);
        mem_fail_after(-1);
        if (rc == 0)
            return;
        if (rc != ERRAND_ENOMEM && rc != ERRAND_ESTORE)
            fail_msg("%s with %ld allocations: unexpected error %d", what, budget, rc);
        if (budget > 100000)
            fail_msg("%s never succeeds", what);
    }
}

static char fault_id[37], fault_token[40];
static int64_t fault_now;

static int fault_claim(struct fixture *fx)
{
    const char *tasks[] = {"fault"};
    struct claim_request req = {.worker = "wf", .tasks = tasks, .n_tasks = 1, .limit = 5};
    struct run_list runs;
    errand_error err;
    int rc = store_claim(fx->st, &req, fault_now, &runs, &err);
    if (rc == 0 && runs.n > 0) {
        snprintf(fault_id, sizeof fault_id, "%s", runs.rows[0].id);
        snprintf(fault_token, sizeof fault_token, "%s", runs.rows[0].lease_token);
    }
    if (rc == 0)
        run_list_clear(&runs);
    return rc;
}

static int fault_heartbeat(struct fixture *fx)
{
    struct lease_ref ref = {fault_id, fault_token, -1};
    struct lease_answer answer;
    errand_error err;
    return store_heartbeat(fx->st, "wf", &ref, 1, 30, fault_now, &answer, &err);
}

static int fault_report(struct fixture *fx)
{
    struct run_report rep = {.id = fault_id,
                             .lease_token = fault_token,
                             .state = ERRAND_STATE_FAILED,
                             .message = "m",
                             .retryable = true};
    struct log_entry log = {fault_id, fault_now, ERRAND_LOG_INFO, "a log line"};
    struct lease_answer answer;
    errand_error err;
    return store_report(fx->st, "wf", NULL, &rep, 1, &log, 1, fault_now, &answer, &err);
}

static int fault_reads(struct fixture *fx)
{
    errand_error err;
    struct run_row row;
    struct run_list rows;
    struct state_history states;
    struct log_page logs;
    struct worker_list workers;
    int rc;
    char next[37];
    int64_t c[8];
    struct run_filter f = {.state_mask = 1u << ERRAND_STATE_SCHEDULED, .tag = NULL, .limit = 3};
    struct run_filter ft = {.tag = "t1", .limit = 3};
    if ((rc = store_get_run(fx->st, fault_id, &row, &err)) < 0)
        return rc;
    run_row_clear(&row);
    if ((rc = store_get_states(fx->st, fault_id, &states, &err)) < 0)
        return rc;
    state_history_clear(&states);
    if ((rc = store_get_logs(fx->st, fault_id, 0, 10, &logs, &err)) < 0)
        return rc;
    log_page_clear(&logs);
    if ((rc = store_list_runs(fx->st, &f, &rows, next, &err)) < 0)
        return rc;
    run_list_clear(&rows);
    if ((rc = store_list_runs(fx->st, &ft, &rows, next, &err)) < 0)
        return rc;
    run_list_clear(&rows);
    bool more;
    if ((rc = store_list_workers(fx->st, NULL, 10, &workers, &more, &err)) < 0)
        return rc;
    worker_list_clear(&workers);
    return store_count_by_state(fx->st, c, &err);
}

static int fault_cancel(struct fixture *fx)
{
    struct run_row run;
    errand_error err;
    int rc = store_cancel(fx->st, fault_id, fault_now, &run, &err);
    if (rc == 0)
        run_row_clear(&run);
    return rc;
}

static int fault_retention(struct fixture *fx)
{
    struct retention_counts n;
    struct ref_list freed;
    errand_error err;
    int rc = store_delete_expired(fx->st, fault_now + 7200 * SEC, fault_now + 7200 * SEC, 2, &n,
                                  &freed, &err);
    if (rc == 0)
        ref_list_clear(&freed);
    return rc;
}

static int fault_sweep(struct fixture *fx)
{
    struct sweep_counts n;
    errand_error err;
    return store_sweep(fx->st, fault_now + 3600 * SEC, &n, &err);
}

static void every_call_survives_allocation_failures(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 3; i++)
        json_decref(submit(fx, fx->t0,
                           "{\"task\": \"fault\", \"retries\": 5, \"tags\": [\"t1\"],"
                           " \"parameters\": {\"k\": [1, 2]}}",
                           NULL));
    fault_now = fx->t0;
    /* A claim that fails after its commit (building the answer) leaves its runs PENDING
     * until their lease runs out; so the lease checks below use a run claimed cleanly. */
    until_success(fx, "claim", fault_claim);
    json_decref(submit(fx, fx->t0, "{\"task\": \"fault2\", \"retries\": 5}", NULL));
    json_t *runs = claim(fx, "wf", "fault2", 1, 30, fx->t0);
    snprintf(fault_id, sizeof fault_id, "%s", sfield(json_array_get(runs, 0), "id"));
    snprintf(fault_token, sizeof fault_token, "%s", sfield(json_array_get(runs, 0), "lease_token"));
    json_decref(runs);
    until_success(fx, "heartbeat", fault_heartbeat);
    until_success(fx, "report", fault_report);
    until_success(fx, "reads", fault_reads);
    until_success(fx, "cancel", fault_cancel);
    until_success(fx, "sweep", fault_sweep);
    until_success(fx, "retention", fault_retention);
    /* The counts still add up to the runs stored: the retention pass deleted the one that
     * had finished (the cancelled run). */
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7], 3);
    assert_int_equal(total_runs_counted(fx), 3);
}

#define KILL_AFTER_RUNS 600
#define KILL_BATCH 40

/* The child: submits batches and completes some runs, telling the parent every id whose
 * submission was acknowledged, until it is killed. */
static void killed_child(const char *url, int fd)
{
    store *st = NULL;
    errand_error err;
    struct store_options opt = {.sync = "normal"};
    if (store_open(url, &opt, &st, &err) != 0)
        _exit(2);
    int64_t t = clock_now_ms();
    for (;;) {
        struct run_spec specs[KILL_BATCH];
        struct run_row runs[KILL_BATCH];
        for (int i = 0; i < KILL_BATCH; i++)
            parse_spec(&specs[i], t, "{\"task\": \"k\", \"tags\": [\"x\"]}");
        if (store_submit(st, specs, KILL_BATCH, t, runs, NULL, &err) != 0)
            _exit(3);
        for (int i = 0; i < KILL_BATCH; i++) {
            char line[40];
            int len = snprintf(line, sizeof line, "%s\n", runs[i].id);
            if (write(fd, line, (size_t)len) != len)
                _exit(0);
            run_row_clear(&runs[i]);
            run_spec_clear(&specs[i]);
        }
        const char *tasks[] = {"k"};
        struct claim_request req = {.worker = "kw", .tasks = tasks, .n_tasks = 1, .limit = 20};
        struct run_list claimed;
        if (store_claim(st, &req, t, &claimed, &err) != 0)
            _exit(4);
        for (size_t i = 0; i < claimed.n; i++) {
            const struct run_row *c = &claimed.rows[i];
            struct run_report rep = {.id = c->id,
                                     .lease_token = c->lease_token,
                                     .state = ERRAND_STATE_COMPLETED,
                                     .result = c->parameters};
            struct lease_answer answer;
            store_report(st, "kw", NULL, &rep, 1, NULL, 0, t, &answer, &err);
        }
        run_list_clear(&claimed);
    }
}

static void killed_process_loses_no_acknowledged_run(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    fx->st = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        killed_child(fx->url, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char(*ids)[37] = calloc(KILL_AFTER_RUNS, 37);
    char line[64];
    int n = 0;
    while (n < KILL_AFTER_RUNS && fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = '\0';
        assert_int_equal(strlen(line), 36);
        memcpy(ids[n++], line, 37);
    }
    kill(pid, SIGKILL); /* mid-write, most likely: the child never pauses */
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(in);
    assert_int_equal(n, KILL_AFTER_RUNS);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);

    open_store(fx, "normal");
    for (int i = 0; i < n; i++) {
        json_t *run = get_run(fx, ids[i]);
        json_decref(run);
    }
    /* The per-state counts were committed with the rows they count. */
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db,
                       "SELECT (SELECT count(*) FROM task_runs), (SELECT sum(n) FROM run_counts),"
                       " (SELECT count(*) FROM task_runs WHERE state_type = 3),"
                       " (SELECT n FROM run_counts WHERE state_type = 3)",
                       -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_true(sqlite3_column_int(s, 0) >= n);
    assert_int_equal(sqlite3_column_int(s, 0), sqlite3_column_int(s, 1));
    assert_int_equal(sqlite3_column_int(s, 2), sqlite3_column_int(s, 3));
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db,
                       "SELECT count(*) FROM task_counts c WHERE c.n != (SELECT count(*) FROM "
                       "task_runs r WHERE r.task = c.task AND r.state_type = c.state_type)",
                       -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    free(ids);
}

/* --- the writer: one failing op in a group rolls back alone -------------------------- */

struct writer_case {
    sqlite_writer *w;
    int value;
    bool fail;
    int rc;
};

static atomic_bool holding;

static int insert_value(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct writer_case *wc = arg;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO t (v) VALUES (%d)", wc->value);
    int rc = sqlite_conn_exec(c, sql, err);
    if (rc == 0 && wc->fail)
        rc = error_set(err, ERRAND_ECONFLICT, NULL, "op %d refuses after writing", wc->value);
    return rc;
}

/* Holds the writer until the other two ops are queued, so all three share one group. */
static int hold_until_queued(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct writer_case *wc = arg;
    atomic_store(&holding, true);
    while (sqlite_writer_queued(wc->w) < 2)
        clock_sleep_ms(1);
    return insert_value(c, arg, err);
}

static void *run_case(void *p)
{
    struct writer_case *wc = p;
    errand_error err;
    wc->rc = sqlite_writer_run(wc->w, wc->value == 1 ? hold_until_queued : insert_value, wc, &err);
    return NULL;
}

static void writer_group_isolates_failing_op(void **state)
{
    struct fixture *fx = *state;
    char path[200];
    snprintf(path, sizeof path, "%s/writer.db", fx->dir);
    struct sqlite_conn *c = NULL;
    errand_error err;
    assert_int_equal(sqlite_conn_open(path, SQLITE_CONN_WRITER, "normal", &c, &err), 0);
    assert_int_equal(sqlite_conn_exec(c, "CREATE TABLE t (v INTEGER)", &err), 0);
    sqlite_writer *w = NULL;
    assert_int_equal(sqlite_writer_start(c, &w, &err), 0);
    struct sqlite_writer_stats before;
    sqlite_writer_get_stats(w, &before);
    struct writer_case cases[3] = {{w, 1, false, -1}, {w, 2, true, -1}, {w, 3, false, -1}};
    pthread_t th[3];
    atomic_store(&holding, false);
    pthread_create(&th[0], NULL, run_case, &cases[0]);
    while (!atomic_load(&holding)) /* the holder runs inside the writer */
        clock_sleep_ms(1);
    pthread_create(&th[1], NULL, run_case, &cases[1]);
    pthread_create(&th[2], NULL, run_case, &cases[2]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(cases[0].rc, 0);
    assert_int_equal(cases[1].rc, ERRAND_ECONFLICT);
    assert_int_equal(cases[2].rc, 0);
    struct sqlite_writer_stats after;
    sqlite_writer_get_stats(w, &after);
    assert_int_equal(after.ops - before.ops, 3);
    assert_int_equal(after.commits - before.commits, 2); /* holder alone, then the pair */
    sqlite_writer_stop(w);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "SELECT group_concat(v) FROM (SELECT v FROM t ORDER BY v)", -1, &s,
                       NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "1,3");
    sqlite3_finalize(s);
    sqlite3_close(db);
    char p[220];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_call_survives_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(killed_process_loses_no_acknowledged_run, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_group_isolates_failing_op, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
