/* SPDX-License-Identifier: MIT */
/*
 * store_fixture.h — the fixture and helpers shared by the SQLite store tests
 * (test_store_sqlite*.c): a store on a real database file in a fresh mkdtemp directory per
 * test, and short forms of the store calls. Header-only (static inline), because every
 * tests/unit/test_*.c is its own program.
 *
 * Times are synthetic: every store call takes now_ms, so a test moves the clock by passing
 * a later now instead of sleeping.
 */
#ifndef ERRAND_TESTS_STORE_FIXTURE_H
#define ERRAND_TESTS_STORE_FIXTURE_H

/* SQL that takes a store back from schema 26 (webhooks), 25 (schedules), 24 (concurrency and
 * rate limits) and 23 (dependencies) to 22, for the tests that open an older store. */
#define UNDO_SCHEMA_23                                                                             \
    "DROP TABLE webhook_deliveries;"                                                               \
    "DROP TABLE run_webhooks;"                                                                     \
    "DROP TABLE task_webhooks;"                                                                    \
    "DROP TABLE schedules;"                                                                        \
    "DROP TABLE limits;"                                                                           \
    "DROP TABLE limit_holders;"                                                                    \
    "ALTER TABLE task_runs DROP COLUMN holds_slots;"                                               \
    "DROP TABLE task_run_edges;"                                                                   \
    "ALTER TABLE task_runs DROP COLUMN wait_for;"                                                  \
    "ALTER TABLE task_runs DROP COLUMN result_refs;"                                               \
    "ALTER TABLE task_runs DROP COLUMN upstream_pending;"                                          \
    "ALTER TABLE task_runs DROP COLUMN allow_upstream_failure;"                                    \
    "ALTER TABLE task_runs DROP COLUMN dependants;"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "server/run_json.h"
#include "server/submission.h"
#include "store/sqlite/sqlite_schema.h"
#include "store/sqlite/sqlite_writer.h"
#include "store/store.h"
#include "store/sqlite/store_sqlite.h"

#define SEC INT64_C(1000)

struct fixture {
    char dir[64];
    char path[128];
    char url[160];
    store *st;
    int64_t t0;
};

/* --- helpers ------------------------------------------------------------------------- */

static inline void open_store(struct fixture *fx, const char *sync)
{
    struct store_options opt = {.sync = sync,
                                .default_lease_seconds = 30,
                                .max_redeliveries = STORE_DEFAULT_MAX_REDELIVERIES};
    errand_error err;
    int rc = store_open(fx->url, &opt, &fx->st, &err);
    if (rc != 0)
        fail_msg("store_open(%s): %s", fx->url, err.message);
}

static inline int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/errand-store-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/errand.db", fx->dir);
    snprintf(fx->url, sizeof fx->url, "sqlite://%s", fx->path);
    fx->t0 = clock_now_ms();
    open_store(fx, "normal");
    *state = fx;
    return 0;
}

static inline void remove_db_files(const struct fixture *fx)
{
    char p[200];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    rmdir(fx->dir);
}

static inline int teardown(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    remove_db_files(fx);
    free(fx);
    return 0;
}

/* The task-run object of a row the store handed out (the row is cleared). */
/* Runs sql on the database file beside the store, on a connection of its own. */
static inline void exec_sql(struct fixture *fx, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static inline json_t *row_json(struct run_row *row)
{
    json_t *obj = NULL;
    errand_error err;
    if (run_row_to_json(row, &obj, &err) != 0)
        fail_msg("run_row_to_json: %s", err.message);
    run_row_clear(row);
    return obj;
}

/* The array of task-run (or claim) objects of a list the store handed out (cleared). */
static inline json_t *list_json(struct run_list *l, bool claims)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++) {
        json_t *obj = NULL;
        errand_error err;
        int rc = claims ? run_row_claim_json(&l->rows[i], &obj, &err)
                        : run_row_to_json(&l->rows[i], &obj, &err);
        if (rc != 0)
            fail_msg("run to JSON: %s", err.message);
        json_array_append_new(arr, obj);
    }
    run_list_clear(l);
    return arr;
}

/* The HTTP status the server answers for a lease answer. */
static inline int answer_status(const struct lease_answer *a)
{
    return a->status == LEASE_APPLIED ? 200 : a->status == LEASE_STALE ? 409 : 404;
}

/* The store calls with the old JSON answers, for tests that check many fields. */
static inline int store_claim_json(store *st, const struct claim_request *req, int64_t now,
                                   json_t **out, errand_error *err)
{
    struct run_list l;
    *out = NULL;
    int rc = store_claim(st, req, now, &l, err);
    if (rc == 0)
        *out = list_json(&l, true);
    return rc;
}

static inline int store_cancel_json(store *st, const char *id, int64_t now, json_t **out,
                                    errand_error *err)
{
    struct run_row r;
    *out = NULL;
    int rc = store_cancel(st, id, now, &r, err);
    if (rc == 0)
        *out = row_json(&r);
    return rc;
}

/* The state history as [{"type", "name", "message"}]. */
static inline int store_states_json(store *st, const char *id, json_t **out, errand_error *err)
{
    struct state_history h;
    *out = NULL;
    int rc = store_get_states(st, id, &h, err);
    if (rc < 0)
        return rc;
    *out = json_array();
    for (size_t i = 0; i < h.n; i++)
        json_array_append_new(*out, json_pack("{s:s, s:s?, s:s?}", "type",
                                              state_type_name(h.items[i].type), "name",
                                              h.items[i].name, "message", h.items[i].message));
    state_history_clear(&h);
    return 0;
}

static inline void parse_spec(struct run_spec *spec, int64_t now, const char *text)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    if (!obj)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    errand_error err;
    if (run_spec_parse(obj, NULL, now, spec, &err) != 0)
        fail_msg("run_spec_parse(%s): %s", text, err.message);
    json_decref(obj);
}

/* Submits one run described by JSON text; returns the run object. */
static inline json_t *submit(struct fixture *fx, int64_t now, const char *text, bool *created_out)
{
    struct run_spec spec;
    parse_spec(&spec, now, text);
    struct run_row row;
    bool created = false;
    errand_error err;
    int rc = store_submit(fx->st, &spec, 1, now, &row, &created, &err);
    run_spec_clear(&spec);
    if (rc != 0)
        fail_msg("store_submit(%s): %s", text, err.message);
    if (created_out)
        *created_out = created;
    return row_json(&row);
}

static inline const char *sfield(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("field %s is not a string", key);
    return json_string_value(v);
}

static inline long long ifield(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

static inline const char *state_type_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "type");
}

static inline const char *state_name_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "name");
}

static inline json_t *get_run(struct fixture *fx, const char *id)
{
    struct run_row row;
    errand_error err;
    if (store_get_run(fx->st, id, &row, &err) != 0)
        fail_msg("store_get_run(%s): %s", id, err.message);
    return row_json(&row);
}

static inline json_t *claim(struct fixture *fx, const char *worker, const char *task, int limit,
                            int lease_seconds, int64_t now)
{
    const char *tasks[] = {task};
    struct claim_request req = {.worker = worker,
                                .tasks = tasks,
                                .n_tasks = 1,
                                .limit = limit,
                                .lease_seconds = lease_seconds};
    struct run_list runs;
    errand_error err;
    if (store_claim(fx->st, &req, now, &runs, &err) != 0)
        fail_msg("store_claim: %s", err.message);
    return list_json(&runs, true);
}

/* Reports one state for one run; returns the item status. */
static inline int report(struct fixture *fx, const char *id, const char *token, errand_state state,
                         const json_t *result, const char *message, bool retryable, int64_t now)
{
    char *result_text = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    struct run_report rep = {.id = id,
                             .lease_token = token,
                             .state = state,
                             .result = result_text,
                             .message = message,
                             .retryable = retryable};
    struct lease_answer answer;
    errand_error err;
    if (store_report(fx->st, "w1", NULL, &rep, 1, NULL, 0, now, &answer, &err) != 0)
        fail_msg("store_report: %s", err.message);
    free(result_text);
    return answer_status(&answer);
}

static inline void counts(struct fixture *fx, int64_t c[8])
{
    errand_error err;
    if (store_count_by_state(fx->st, c, &err) != 0)
        fail_msg("store_count_by_state: %s", err.message);
}

static inline int64_t total_runs(struct fixture *fx)
{
    int64_t c[8], sum = 0;
    counts(fx, c);
    for (int i = 0; i < 8; i++)
        sum += c[i];
    return sum;
}

/* The runs in the table, counted (not from run_counts). */
static inline int64_t total_runs_counted(struct fixture *fx)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM task_runs", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static inline int64_t parse_time(const json_t *v)
{
    int64_t ms = 0;
    assert_true(json_is_string(v));
    assert_true(clock_parse_rfc3339(json_string_value(v), &ms));
    return ms;
}

static inline void complete_run(struct fixture *fx, const char *task, const char *result_text,
                                int64_t now)
{
    json_t *runs = claim(fx, "w1", task, 1, 30, now);
    assert_int_equal(json_array_size(runs), 1);
    json_t *c = json_array_get(runs, 0);
    json_t *result = json_loads(result_text, JSON_DECODE_ANY, NULL);
    assert_int_equal(report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_COMPLETED,
                            result, NULL, true, now),
                     200);
    json_decref(result);
    json_decref(runs);
}

static inline int heartbeat1(struct fixture *fx, const char *id, const char *token,
                             int lease_seconds, int64_t now, bool *cancel)
{
    struct lease_ref ref = {.id = id, .lease_token = token, .waiting = -1};
    struct lease_answer answer;
    errand_error err;
    if (store_heartbeat(fx->st, "w1", &ref, 1, lease_seconds, now, &answer, &err) != 0)
        fail_msg("store_heartbeat: %s", err.message);
    if (cancel)
        *cancel = answer.cancel;
    return answer_status(&answer);
}

/* Sweeps at now; returns the number of leases expired. */
static inline int sweep(struct fixture *fx, int64_t now)
{
    struct sweep_counts n = {-1, -1};
    errand_error err;
    if (store_sweep(fx->st, now, &n, &err) != 0)
        fail_msg("store_sweep: %s", err.message);
    return n.expired;
}

static inline json_t *list_filtered(struct fixture *fx, const struct run_filter *f, char next[37])
{
    struct run_list runs;
    errand_error err;
    if (store_list_runs(fx->st, f, &runs, next, &err) != 0)
        fail_msg("store_list_runs: %s", err.message);
    return list_json(&runs, false);
}

static inline json_t *list(struct fixture *fx, unsigned mask, const char *task, const char *tag,
                           const char *cursor, int limit, char next[37])
{
    struct run_filter f = {
        .state_mask = mask, .task = task, .tag = tag, .cursor = cursor, .limit = limit};
    return list_filtered(fx, &f, next);
}

#endif
