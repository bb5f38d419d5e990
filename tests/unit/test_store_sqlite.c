/*
 * test_store_sqlite.c — the SQLite store through store.h, on real database files in a fresh
 * mkdtemp directory per test: submissions (batch all-or-nothing, idempotency, caching),
 * claims (order, due time, task filter, no double claim across threads), leases (heartbeat,
 * stale tokens, sweep), reports (retries, hand-back), cancel in every state, listings,
 * logs, workers, counts, durability across reopen, group-commit isolation of the writer,
 * index use of the hot queries, and a printed (never asserted) throughput figure.
 *
 * Times are synthetic: every store call takes now_ms, so a test moves the clock by passing
 * a later now instead of sleeping.
 */
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
#include "server/run_spec.h"
#include "server/sqlite_schema.h"
#include "server/sqlite_writer.h"
#include "server/store.h"
#include "server/store_sqlite.h"

#define SEC INT64_C(1000)
#define BENCH_RUNS 20000
#define BENCH_BATCH 1000
#define CONCURRENT_CLAIM_RUNS 2000
#define CONCURRENT_CLAIM_LIMIT 37
#define GROUP_THREADS 8
#define GROUP_SUBMITS_PER_THREAD 250

struct fixture {
    char dir[64];
    char path[128];
    char url[160];
    store *st;
    int64_t t0;
};

/* --- helpers ------------------------------------------------------------------------- */

static void open_store(struct fixture *fx, const char *sync)
{
    struct store_options opt = {.sync = sync, .default_lease_seconds = 30};
    errand_error err;
    int rc = store_open(fx->url, &opt, &fx->st, &err);
    if (rc != 0)
        fail_msg("store_open(%s): %s", fx->url, err.message);
}

static int setup(void **state)
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

static void remove_db_files(const struct fixture *fx)
{
    char p[200];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    rmdir(fx->dir);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    remove_db_files(fx);
    free(fx);
    return 0;
}

static void parse_spec(struct run_spec *spec, int64_t now, const char *text)
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
static json_t *submit(struct fixture *fx, int64_t now, const char *text, bool *created_out)
{
    struct run_spec spec;
    parse_spec(&spec, now, text);
    json_t *run = NULL;
    bool created = false;
    errand_error err;
    int rc = store_submit(fx->st, &spec, 1, now, &run, &created, &err);
    run_spec_clear(&spec);
    if (rc != 0)
        fail_msg("store_submit(%s): %s", text, err.message);
    if (created_out)
        *created_out = created;
    return run;
}

static const char *sfield(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("field %s is not a string", key);
    return json_string_value(v);
}

static long long ifield(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

static const char *state_type_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "type");
}

static const char *state_name_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "name");
}

static json_t *get_run(struct fixture *fx, const char *id)
{
    json_t *run = NULL;
    errand_error err;
    if (store_get_run(fx->st, id, &run, &err) != 0)
        fail_msg("store_get_run(%s): %s", id, err.message);
    return run;
}

static json_t *claim(struct fixture *fx, const char *worker, const char *task, int limit,
                     int lease_seconds, int64_t now)
{
    const char *tasks[] = {task};
    struct claim_request req = {.worker = worker,
                                .tasks = tasks,
                                .n_tasks = 1,
                                .limit = limit,
                                .lease_seconds = lease_seconds};
    json_t *runs = NULL;
    errand_error err;
    if (store_claim(fx->st, &req, now, &runs, &err) != 0)
        fail_msg("store_claim: %s", err.message);
    return runs;
}

/* Reports one state for one run; returns the item status. */
static int report(struct fixture *fx, const char *id, const char *token, errand_state state,
                  const json_t *result, const char *message, bool retryable, int64_t now)
{
    struct run_report rep = {.id = id,
                             .lease_token = token,
                             .state = state,
                             .result = result,
                             .message = message,
                             .retryable = retryable};
    json_t *out = NULL;
    bool stale = false;
    errand_error err;
    if (store_report(fx->st, "w1", &rep, 1, NULL, 0, now, &out, &stale, &err) != 0)
        fail_msg("store_report: %s", err.message);
    int status = (int)ifield(json_array_get(out, 0), "status");
    assert_int_equal(stale, status != 200);
    json_decref(out);
    return status;
}

static void counts(struct fixture *fx, int64_t c[8])
{
    errand_error err;
    if (store_count_by_state(fx->st, c, &err) != 0)
        fail_msg("store_count_by_state: %s", err.message);
}

static int64_t total_runs(struct fixture *fx)
{
    int64_t c[8], sum = 0;
    counts(fx, c);
    for (int i = 0; i < 8; i++)
        sum += c[i];
    return sum;
}

static int64_t parse_time(const json_t *v)
{
    int64_t ms = 0;
    assert_true(json_is_string(v));
    assert_true(clock_parse_rfc3339(json_string_value(v), &ms));
    return ms;
}

/* --- submissions --------------------------------------------------------------------- */

static void submit_get_round_trip(void **state)
{
    struct fixture *fx = *state;
    bool created = false;
    json_t *run = submit(fx, fx->t0,
                         "{\"task\": \"mail\", \"parameters\": {\"to\": \"a@b.c\", \"n\": 3},"
                         " \"priority\": 7, \"tags\": [\"web\", \"eu\"], \"retries\": 2,"
                         " \"retry_delay_seconds\": [1, 2.5], \"retry_jitter_factor\": 0.5,"
                         " \"timeout_seconds\": 60, \"persist_result\": true}",
                         &created);
    assert_true(created);
    const char *id = sfield(run, "id");
    assert_int_equal(strlen(id), 36);
    json_t *got = get_run(fx, id);
    /* The answer of the submit and a later GET are the same object. */
    assert_true(json_equal(run, got));
    assert_string_equal(sfield(got, "task"), "mail");
    assert_string_equal(state_type_of(got), "SCHEDULED");
    assert_string_equal(state_name_of(got), "Scheduled");
    assert_int_equal(ifield(got, "attempt"), 0);
    assert_int_equal(ifield(got, "max_attempts"), 3);
    assert_int_equal(ifield(got, "priority"), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "parameters"), "n")),
                     3);
    assert_int_equal(json_array_size(json_object_get(got, "tags")), 2);
    json_t *delays = json_object_get(got, "retry_delay_seconds");
    assert_true(json_is_integer(json_array_get(delays, 0)));
    assert_true(json_real_value(json_array_get(delays, 1)) == 2.5);
    assert_true(json_is_true(json_object_get(got, "persist_result")));
    assert_int_equal(ifield(got, "timeout_seconds"), 60);
    assert_true(json_is_null(json_object_get(got, "started")));
    assert_true(json_is_null(json_object_get(got, "worker")));
    assert_true(json_is_null(json_object_get(got, "idempotency_key")));
    assert_null(json_object_get(got, "result"));
    assert_int_equal(parse_time(json_object_get(got, "created")), fx->t0);

    errand_state st;
    errand_error err;
    assert_int_equal(store_get_state(fx->st, id, &st, &err), 0);
    assert_int_equal(st, ERRAND_STATE_SCHEDULED);
    /* Ids are case-insensitive on the way in. */
    char upper[37];
    for (size_t i = 0; i < 37; i++)
        upper[i] = (char)((id[i] >= 'a' && id[i] <= 'f') ? id[i] - 32 : id[i]);
    json_t *again = get_run(fx, upper);
    assert_string_equal(sfield(again, "id"), id);
    json_decref(again);

    json_t *states = NULL;
    assert_int_equal(store_get_states(fx->st, id, &states, &err), 0);
    assert_int_equal(json_array_size(states), 1);
    assert_string_equal(sfield(json_array_get(states, 0), "name"), "Scheduled");
    json_decref(states);

    json_t *none = NULL;
    assert_int_equal(store_get_run(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &none, &err),
                     ERRAND_ENOTFOUND);
    assert_null(none);
    assert_int_equal(store_get_state(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &st, &err),
                     ERRAND_ENOTFOUND);
    assert_int_equal(
        store_get_states(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &states, &err),
        ERRAND_ENOTFOUND);
    json_decref(run);
    json_decref(got);
}

static void batch_idempotency_inside_one_batch(void **state)
{
    struct fixture *fx = *state;
    struct run_spec specs[3];
    parse_spec(&specs[0], fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"k1\"}");
    parse_spec(&specs[1], fx->t0, "{\"task\": \"t\"}");
    parse_spec(&specs[2], fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"k1\"}");
    json_t *runs[3];
    bool created[3];
    errand_error err;
    assert_int_equal(store_submit(fx->st, specs, 3, fx->t0, runs, created, &err), 0);
    assert_true(created[0]);
    assert_true(created[1]);
    assert_false(created[2]);
    assert_string_equal(sfield(runs[0], "id"), sfield(runs[2], "id"));
    assert_string_equal(sfield(runs[2], "idempotency_key"), "k1");
    assert_int_equal(total_runs(fx), 2);
    for (int i = 0; i < 3; i++) {
        json_decref(runs[i]);
        run_spec_clear(&specs[i]);
    }
}

static void idempotency_across_calls(void **state)
{
    struct fixture *fx = *state;
    bool created = false;
    json_t *a = submit(fx, fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"order-1\"}", &created);
    assert_true(created);
    json_t *b =
        submit(fx, fx->t0 + SEC, "{\"task\": \"t\", \"idempotency_key\": \"order-1\"}", &created);
    assert_false(created);
    assert_true(json_equal(a, b));
    assert_int_equal(total_runs(fx), 1);
    json_decref(a);
    json_decref(b);
}

/* An allocation failure anywhere in a batch (including inside the writer, after some runs
 * of the batch were inserted) stores nothing; once allocations work again, all is stored. */
static void batch_all_or_nothing_on_failure(void **state)
{
    struct fixture *fx = *state;
    /* A stored run whose idempotency key the batch repeats: the writer copies it mid-batch. */
    json_t *first = submit(fx, fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"dup\"}", NULL);
    json_decref(first);
    const int n = 6;
    struct run_spec specs[6];
    for (int i = 0; i < n; i++)
        parse_spec(&specs[i], fx->t0,
                   i == 4 ? "{\"task\": \"t\", \"idempotency_key\": \"dup\"}"
                          : "{\"task\": \"t\", \"tags\": [\"x\"], \"retry_delay_seconds\": 1}");
    int failures = 0;
    for (long budget = 0;; budget++) {
        json_t *runs[6] = {0};
        bool created[6];
        errand_error err;
        mem_fail_after(budget);
        int rc = store_submit(fx->st, specs, (size_t)n, fx->t0, runs, created, &err);
        mem_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(total_runs(fx), 1 + n - 1);
            for (int i = 0; i < n; i++)
                json_decref(runs[i]);
            break;
        }
        failures++;
        for (int i = 0; i < n; i++)
            assert_null(runs[i]);
        assert_int_equal(total_runs(fx), 1); /* nothing of the failed batch */
    }
    assert_true(failures > 0);
    for (int i = 0; i < n; i++)
        run_spec_clear(&specs[i]);
}

/* --- caching ------------------------------------------------------------------------- */

static void complete_run(struct fixture *fx, const char *task, const char *result_text, int64_t now)
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

static void cache_hit_and_expiry(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *src = submit(
        fx, t, "{\"task\": \"c\", \"cache_key\": \"K\", \"cache_expiration_seconds\": 10}", NULL);
    /* Not completed yet: no cache hit. */
    json_t *early = submit(fx, t, "{\"task\": \"other\", \"cache_key\": \"K\"}", NULL);
    assert_string_equal(state_type_of(early), "SCHEDULED");
    json_decref(early);

    complete_run(fx, "c", "{\"answer\": 42}", t);
    bool created = false;
    json_t *hit = submit(fx, t + 1 * SEC, "{\"task\": \"c\", \"cache_key\": \"K\"}", &created);
    assert_true(created);
    assert_string_equal(state_type_of(hit), "COMPLETED");
    assert_string_equal(state_name_of(hit), "Cached");
    assert_non_null(strstr(sfield(json_object_get(hit, "state"), "message"), sfield(src, "id")));
    assert_int_equal(ifield(json_object_get(hit, "result"), "answer"), 42);
    json_t *stored = get_run(fx, sfield(hit, "id"));
    assert_true(json_equal(hit, stored));
    json_decref(stored);

    json_t *miss = submit(fx, t + 11 * SEC, "{\"task\": \"c\", \"cache_key\": \"K\"}", NULL);
    assert_string_equal(state_type_of(miss), "SCHEDULED");

    /* Without an expiration the cache never expires. */
    json_t *forever = submit(fx, t, "{\"task\": \"f\", \"cache_key\": \"F\"}", NULL);
    complete_run(fx, "f", "[1, 2]", t);
    json_t *late =
        submit(fx, t + 1000 * 24 * 3600 * SEC, "{\"task\": \"f\", \"cache_key\": \"F\"}", NULL);
    assert_string_equal(state_name_of(late), "Cached");
    assert_int_equal(json_array_size(json_object_get(late, "result")), 2);

    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_COMPLETED], 4);
    json_decref(src);
    json_decref(hit);
    json_decref(miss);
    json_decref(forever);
    json_decref(late);
}

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
    assert_int_equal(store_claim(fx->st, &req, t + 61 * SEC, &runs, &err), 0);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(other, "id"));
    json_decref(runs);
    req.limit = 5;
    assert_int_equal(store_claim(fx->st, &req, t + 61 * SEC, &runs, &err), 0);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(a2, "id"));
    json_decref(runs);

    req.limit = 0;
    assert_int_equal(store_claim(fx->st, &req, t, &runs, &err), ERRAND_EINVAL);
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
        if (store_claim(cl->fx->st, &req, cl->fx->t0 + SEC, &runs, &err) != 0)
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
    json_t **runs = calloc(CONCURRENT_CLAIM_RUNS, sizeof *runs);
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
        json_decref(runs[i]);
        run_spec_clear(&specs[i]);
    }
    free(all);
    free(cl[0].ids);
    free(cl[1].ids);
    free(runs);
    free(specs);
}

/* --- leases -------------------------------------------------------------------------- */

static int heartbeat1(struct fixture *fx, const char *id, const char *token, int lease_seconds,
                      int64_t now, bool *cancel)
{
    struct lease_ref ref = {.id = id, .lease_token = token};
    json_t *out = NULL;
    bool stale = false;
    errand_error err;
    if (store_heartbeat(fx->st, "w1", &ref, 1, lease_seconds, now, &out, &stale, &err) != 0)
        fail_msg("store_heartbeat: %s", err.message);
    json_t *item = json_array_get(out, 0);
    assert_string_equal(sfield(item, "id"), id);
    int status = (int)ifield(item, "status");
    assert_int_equal(stale, status != 200);
    if (cancel)
        *cancel = json_is_true(json_object_get(item, "cancel"));
    json_decref(out);
    return status;
}

static int sweep(struct fixture *fx, int64_t now)
{
    int n = -1;
    errand_error err;
    if (store_sweep(fx->st, now, &n, &err) != 0)
        fail_msg("store_sweep: %s", err.message);
    return n;
}

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
    assert_int_equal(store_cancel(fx->st, id, t + 6 * SEC, &after, &err), 0);
    assert_string_equal(state_type_of(after), "CANCELLING");
    json_decref(after);
    assert_int_equal(heartbeat1(fx, id, token, 10, t + 7 * SEC, &cancel), 200);
    assert_true(cancel);
    /* Mixed heartbeat: one good, one stale -> any_stale, the good one still extended. */
    struct lease_ref refs[2] = {{id, token}, {id, "nope"}};
    json_t *out = NULL;
    bool stale = false;
    assert_int_equal(store_heartbeat(fx->st, "w1", refs, 2, 100, t + 8 * SEC, &out, &stale, &err),
                     0);
    assert_true(stale);
    assert_int_equal(ifield(json_array_get(out, 0), "status"), 200);
    assert_int_equal(ifield(json_array_get(out, 1), "status"), 409);
    json_decref(out);
    assert_int_equal(sweep(fx, t + 100 * SEC), 0);
    assert_int_equal(sweep(fx, t + 109 * SEC), 1);
    json_t *done = get_run(fx, id);
    assert_string_equal(state_type_of(done), "CANCELLED"); /* lease ran out while cancelling */
    json_decref(done);
    json_decref(runs);
    json_decref(run);
}

static void sweep_reschedules_then_crashes(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"s\", \"retries\": 1}", NULL);
    const char *id = sfield(run, "id");
    json_decref(claim(fx, "box-7", "s", 1, 1, t));
    assert_int_equal(sweep(fx, t + 1 * SEC), 0); /* not before it expires */
    assert_int_equal(sweep(fx, t + 2 * SEC), 1);
    json_t *r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "SCHEDULED");
    assert_string_equal(state_name_of(r), "Scheduled");
    assert_non_null(strstr(sfield(json_object_get(r, "state"), "message"), "lease expired"));
    assert_non_null(strstr(sfield(json_object_get(r, "state"), "message"), "box-7"));
    assert_int_equal(ifield(r, "attempt"), 1);
    json_decref(r);
    json_t *runs = claim(fx, "box-8", "s", 1, 1, t + 2 * SEC);
    assert_int_equal(ifield(json_array_get(runs, 0), "attempt"), 2);
    json_decref(runs);
    assert_int_equal(sweep(fx, t + 4 * SEC), 1);
    r = get_run(fx, id);
    assert_string_equal(state_type_of(r), "CRASHED");
    assert_false(json_is_null(json_object_get(r, "finished")));
    json_decref(r);
    json_t *states = NULL;
    errand_error err;
    assert_int_equal(store_get_states(fx->st, id, &states, &err), 0);
    const char *want[] = {"SCHEDULED", "PENDING", "SCHEDULED", "PENDING", "CRASHED"};
    assert_int_equal(json_array_size(states), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(sfield(json_array_get(states, i), "type"), want[i]);
    json_decref(states);
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
                             .result = json_null(),
                             .result_ref = "local:///x.json"};
    json_t *out = NULL;
    bool stale = true;
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", &rep, 1, NULL, 0, t + 9, &out, &stale, &err), 0);
    assert_false(stale);
    assert_string_equal(sfield(json_array_get(out, 0), "state"), "COMPLETED");
    json_decref(out);
    r = get_run(fx, sfield(run, "id"));
    assert_string_equal(state_type_of(r), "COMPLETED");
    assert_true(json_is_null(json_object_get(r, "result"))); /* present, JSON null */
    assert_string_equal(sfield(r, "result_ref"), "local:///x.json");
    assert_int_equal(parse_time(json_object_get(r, "started")), t + 1);
    assert_int_equal(parse_time(json_object_get(r, "finished")), t + 9);
    json_decref(r);
    /* A report for an unknown run: 404, no error. */
    rep.id = "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21";
    assert_int_equal(store_report(fx->st, "w1", &rep, 1, NULL, 0, t, &out, &stale, &err), 0);
    assert_true(stale);
    assert_int_equal(ifield(json_array_get(out, 0), "status"), 404);
    json_decref(out);
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
    assert_int_equal(store_cancel(fx->st, sfield(sched, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLED");
    assert_false(json_is_null(json_object_get(out, "finished")));
    json_decref(out);
    assert_int_equal(store_cancel(fx->st, sfield(sched, "id"), t, &out, &err), ERRAND_ECONFLICT);
    assert_null(out);

    json_t *pend = submit(fx, t, "{\"task\": \"x\"}", NULL);
    json_t *runs = claim(fx, "w1", "x", 1, 30, t);
    const char *token = sfield(json_array_get(runs, 0), "lease_token");
    assert_int_equal(store_cancel(fx->st, sfield(pend, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLING");
    json_decref(out);
    /* Asking again is fine and records nothing new. */
    assert_int_equal(store_cancel(fx->st, sfield(pend, "id"), t, &out, &err), 0);
    json_decref(out);
    json_t *states = NULL;
    assert_int_equal(store_get_states(fx->st, sfield(pend, "id"), &states, &err), 0);
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
    assert_int_equal(store_cancel(fx->st, sfield(running, "id"), t, &out, &err), 0);
    assert_string_equal(state_type_of(out), "CANCELLING");
    json_decref(out);
    /* The task finished anyway: COMPLETED from CANCELLING is accepted. */
    assert_int_equal(
        report(fx, sfield(running, "id"), token, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 1),
        200);
    assert_int_equal(store_cancel(fx->st, sfield(running, "id"), t, &out, &err), ERRAND_ECONFLICT);
    json_decref(runs);

    assert_int_equal(store_cancel(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", t, &out, &err),
                     ERRAND_ENOTFOUND);
    json_decref(sched);
    json_decref(pend);
    json_decref(running);
}

/* --- listings, logs, workers, counts ------------------------------------------------- */

static json_t *list(struct fixture *fx, unsigned mask, const char *task, const char *tag,
                    const char *cursor, int limit, char next[37])
{
    struct run_filter f = {
        .state_mask = mask, .task = task, .tag = tag, .cursor = cursor, .limit = limit};
    json_t *runs = NULL;
    errand_error err;
    if (store_list_runs(fx->st, &f, &runs, next, &err) != 0)
        fail_msg("store_list_runs: %s", err.message);
    return runs;
}

static void list_pagination_and_filters(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char ids[25][37];
    for (int i = 0; i < 25; i++) {
        json_t *r = submit(fx, t + i,
                           i % 2 ? "{\"task\": \"odd\", \"tags\": [\"blue\"]}"
                                 : "{\"task\": \"even\", \"tags\": [\"red\", \"blue\"]}",
                           NULL);
        snprintf(ids[i], 37, "%s", sfield(r, "id"));
        json_decref(r);
    }
    /* Pages of 10, newest first, covering everything once. */
    char next[37];
    json_t *p1 = list(fx, 0, NULL, NULL, NULL, 10, next);
    assert_int_equal(json_array_size(p1), 10);
    assert_string_equal(sfield(json_array_get(p1, 0), "id"), ids[24]);
    assert_string_equal(next, ids[15]);
    char cur[37];
    snprintf(cur, sizeof cur, "%s", next);
    json_t *p2 = list(fx, 0, NULL, NULL, cur, 10, next);
    assert_string_equal(sfield(json_array_get(p2, 0), "id"), ids[14]);
    snprintf(cur, sizeof cur, "%s", next);
    json_t *p3 = list(fx, 0, NULL, NULL, cur, 10, next);
    assert_int_equal(json_array_size(p3), 5);
    assert_string_equal(next, "");
    assert_string_equal(sfield(json_array_get(p3, 4), "id"), ids[0]);
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);

    json_t *odd = list(fx, 0, "odd", NULL, NULL, 100, next);
    assert_int_equal(json_array_size(odd), 12);
    json_decref(odd);
    json_t *red = list(fx, 0, NULL, "red", NULL, 100, next);
    assert_int_equal(json_array_size(red), 13);
    assert_string_equal(sfield(json_array_get(red, 0), "id"), ids[24]);
    json_decref(red);
    json_t *red_page = list(fx, 0, NULL, "red", NULL, 5, next);
    assert_int_equal(json_array_size(red_page), 5);
    assert_string_equal(next, ids[16]);
    json_decref(red_page);

    /* Complete 3 "even" runs, cancel 2; filter by states. */
    json_t *claimed = claim(fx, "w1", "even", 3, 30, t + 100);
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(claimed, i);
        report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_COMPLETED, NULL, NULL,
               true, t + 101);
    }
    json_decref(claimed);
    errand_error err;
    json_t *out;
    assert_int_equal(store_cancel(fx->st, ids[1], t, &out, &err), 0);
    json_decref(out);
    assert_int_equal(store_cancel(fx->st, ids[3], t, &out, &err), 0);
    json_decref(out);

    unsigned done = (1u << ERRAND_STATE_COMPLETED) | (1u << ERRAND_STATE_CANCELLED);
    json_t *fin = list(fx, done, NULL, NULL, NULL, 100, next);
    assert_int_equal(json_array_size(fin), 5);
    for (size_t i = 1; i < 5; i++) /* still newest first across the merged states */
        assert_true(strcmp(sfield(json_array_get(fin, i - 1), "id"),
                           sfield(json_array_get(fin, i), "id")) > 0);
    json_decref(fin);
    json_t *fin_page = list(fx, done, NULL, NULL, NULL, 2, next);
    assert_int_equal(json_array_size(fin_page), 2);
    assert_string_not_equal(next, "");
    snprintf(cur, sizeof cur, "%s", next);
    json_decref(fin_page);
    fin_page = list(fx, done, NULL, NULL, cur, 10, next);
    assert_int_equal(json_array_size(fin_page), 3);
    json_decref(fin_page);
    json_t *comp_odd = list(fx, 1u << ERRAND_STATE_COMPLETED, "odd", NULL, NULL, 100, next);
    assert_int_equal(json_array_size(comp_odd), 0);
    json_decref(comp_odd);
    json_t *cancel_blue = list(fx, 1u << ERRAND_STATE_CANCELLED, NULL, "blue", NULL, 100, next);
    assert_int_equal(json_array_size(cancel_blue), 2);
    json_decref(cancel_blue);
    json_t *cancel_red = list(fx, 1u << ERRAND_STATE_CANCELLED, NULL, "red", NULL, 100, next);
    assert_int_equal(json_array_size(cancel_red), 0);
    json_decref(cancel_red);

    struct run_filter bad = {.limit = 0};
    assert_int_equal(store_list_runs(fx->st, &bad, &out, next, &err), ERR_INVALID_PARAMETER);
    assert_string_equal(err.field, "limit");
}

/* Every state is listed from its own index; merged states keep newest-first paging. */
static void list_each_state(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 7; i++)
        json_decref(submit(fx, t + i, "{\"task\": \"ls\"}", NULL));
    /* The 5 oldest are claimed: 2 end RUNNING, 1 COMPLETED, 1 FAILED, 1 stays PENDING. */
    json_t *claimed = claim(fx, "w1", "ls", 5, 30, t + 10);
    for (size_t i = 0; i < 5; i++) {
        json_t *c = json_array_get(claimed, i);
        const char *id = sfield(c, "id"), *tok = sfield(c, "lease_token");
        if (i < 3)
            report(fx, id, tok, ERRAND_STATE_RUNNING, NULL, NULL, true, t + 11);
        if (i == 2)
            report(fx, id, tok, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 12);
        if (i == 3)
            report(fx, id, tok, ERRAND_STATE_FAILED, NULL, "x", false, t + 12);
    }
    const struct {
        errand_state s;
        size_t n;
    } expect[] = {
        {ERRAND_STATE_SCHEDULED, 2}, {ERRAND_STATE_PENDING, 1}, {ERRAND_STATE_RUNNING, 2},
        {ERRAND_STATE_COMPLETED, 1}, {ERRAND_STATE_FAILED, 1},  {ERRAND_STATE_CRASHED, 0},
    };
    char next[37];
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        json_t *runs = list(fx, 1u << expect[i].s, NULL, NULL, NULL, 10, next);
        assert_int_equal(json_array_size(runs), expect[i].n);
        for (size_t j = 0; j < json_array_size(runs); j++)
            assert_string_equal(state_type_of(json_array_get(runs, j)),
                                state_type_name(expect[i].s));
        json_decref(runs);
        runs = list(fx, 1u << expect[i].s, "nope", NULL, NULL, 10, next);
        assert_int_equal(json_array_size(runs), 0);
        json_decref(runs);
    }
    /* In flight (PENDING | RUNNING), one per page, newest first. */
    unsigned mask = (1u << ERRAND_STATE_PENDING) | (1u << ERRAND_STATE_RUNNING);
    char cursor[37] = "";
    const char *prev = NULL;
    int seen = 0;
    json_t *page = NULL;
    for (;;) {
        json_t *p = list(fx, mask, NULL, NULL, cursor[0] ? cursor : NULL, 1, next);
        if (json_array_size(p) == 1) {
            const char *id = sfield(json_array_get(p, 0), "id");
            if (prev)
                assert_true(strcmp(prev, id) > 0);
            seen++;
        }
        json_decref(page);
        page = p;
        prev = json_array_size(p) ? sfield(json_array_get(p, 0), "id") : prev;
        if (!next[0])
            break;
        snprintf(cursor, sizeof cursor, "%s", next);
    }
    json_decref(page);
    assert_int_equal(seen, 3);
    json_decref(claimed);
}

static void logs_append_and_page(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"l\"}", NULL);
    const char *id = sfield(run, "id");
    struct log_entry logs[] = {
        {id, t + 1, ERRAND_LOG_INFO, "hello"},
        {"01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", t + 1, ERRAND_LOG_INFO, "nobody"},
        {id, t + 2, ERRAND_LOG_WARNING, "careful"},
        {id, t + 3, ERRAND_LOG_ERROR, "oops"},
        {id, t + 4, ERRAND_LOG_DEBUG, "details"},
    };
    json_t *out = NULL;
    bool stale = true;
    errand_error err;
    /* Logs need no lease: they are history. */
    assert_int_equal(store_report(fx->st, "w1", NULL, 0, logs, 5, t, &out, &stale, &err), 0);
    assert_false(stale);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    json_t *page = NULL;
    int64_t next = -1;
    assert_int_equal(store_get_logs(fx->st, id, 0, 2, &page, &next, &err), 0);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(sfield(json_array_get(page, 0), "message"), "hello");
    assert_string_equal(sfield(json_array_get(page, 0), "level"), "info");
    assert_string_equal(sfield(json_array_get(page, 1), "level"), "warning");
    assert_int_equal(next, ifield(json_array_get(page, 1), "seq"));
    json_decref(page);
    assert_int_equal(store_get_logs(fx->st, id, next, 100, &page, &next, &err), 0);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(sfield(json_array_get(page, 0), "level"), "error");
    assert_string_equal(sfield(json_array_get(page, 1), "level"), "debug");
    assert_int_equal(parse_time(json_object_get(json_array_get(page, 1), "timestamp")), t + 4);
    json_decref(page);
    int64_t last = next;
    assert_int_equal(store_get_logs(fx->st, id, last, 100, &page, &next, &err), 0);
    assert_int_equal(json_array_size(page), 0);
    assert_int_equal(next, last);
    json_decref(page);
    assert_int_equal(
        store_get_logs(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", 0, 10, &page, &next, &err),
        ERRAND_ENOTFOUND);
    json_decref(run);
}

static void workers_and_counts(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 3; i++)
        json_decref(submit(fx, t, "{\"task\": \"wk\"}", NULL));
    json_t *runs = claim(fx, "alpha", "wk", 2, 30, t);
    json_decref(runs);
    runs = claim(fx, "beta", "wk", 5, 30, t + 10 * SEC);
    json_t *c = json_array_get(runs, 0);
    report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_RUNNING, NULL, NULL, true,
           t + 10 * SEC);
    json_decref(runs);
    json_t *w = NULL;
    errand_error err;
    assert_int_equal(store_list_workers(fx->st, t + 20 * SEC, 15 * SEC, &w, &err), 0);
    json_t *arr = json_object_get(w, "workers");
    assert_int_equal(json_array_size(arr), 3); /* beta, w1 (report), alpha */
    json_t *alpha = NULL, *beta = NULL;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *x = json_array_get(arr, i);
        if (strcmp(sfield(x, "name"), "alpha") == 0)
            alpha = x;
        if (strcmp(sfield(x, "name"), "beta") == 0)
            beta = x;
    }
    assert_non_null(alpha);
    assert_non_null(beta);
    assert_int_equal(ifield(alpha, "claimed"), 2);
    assert_false(json_is_true(json_object_get(alpha, "active")));
    assert_true(json_is_true(json_object_get(beta, "active")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(beta, "tasks"), 0)), "wk");
    json_decref(w);
    int64_t cnt[8];
    counts(fx, cnt);
    assert_int_equal(cnt[ERRAND_STATE_PENDING], 2);
    assert_int_equal(cnt[ERRAND_STATE_RUNNING], 1);
    assert_int_equal(cnt[ERRAND_STATE_SCHEDULED], 0);
}

/* --- durability, schema, plumbing ---------------------------------------------------- */

static void reopen_keeps_everything(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *a = submit(fx, t, "{\"task\": \"d\", \"idempotency_key\": \"keep\"}", NULL);
    complete_run(fx, "d", "{\"v\": \"kept\"}", t);
    json_t *b = submit(fx, t, "{\"task\": \"d\"}", NULL);
    json_t *before = get_run(fx, sfield(a, "id"));
    int64_t c1[8];
    counts(fx, c1);
    store_close(fx->st);
    fx->st = NULL;
    open_store(fx, "full");
    json_t *after = get_run(fx, sfield(a, "id"));
    assert_true(json_equal(before, after));
    int64_t c2[8];
    counts(fx, c2);
    assert_memory_equal(c1, c2, sizeof c1);
    bool created = true;
    json_t *again = submit(fx, t, "{\"task\": \"d\", \"idempotency_key\": \"keep\"}", &created);
    assert_false(created);
    json_t *runs = claim(fx, "w1", "d", 10, 30, t);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(b, "id"));
    json_decref(runs);
    json_decref(again);
    json_decref(a);
    json_decref(b);
    json_decref(before);
    json_decref(after);
}

static void schema_version_checked(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    fx->st = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), sqlite_schema_version());
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db, "SELECT count(*) FROM schema_migrations", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), sqlite_schema_version());
    sqlite3_finalize(s);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", sqlite_schema_version() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct store_options opt = {.sync = "full"};
    errand_error err;
    assert_int_equal(store_open(fx->url, &opt, &fx->st, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "newer"));
    assert_null(fx->st);
    /* Put it back so teardown can close a real store. */
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", sqlite_schema_version());
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    open_store(fx, "off");
}

static void open_errors_name_the_problem(void **state)
{
    (void)state;
    store *st = NULL;
    errand_error err;
    struct store_options opt = {.sync = "full"};
    assert_int_equal(store_open("postgresql://u@h/db", &opt, &st, &err), ERRAND_EINVAL);
    assert_string_equal(err.message,
                        "PostgreSQL store is not built yet; use sqlite:///path/errand.db");
    assert_int_equal(store_open("postgres://u@h/db", &opt, &st, &err), ERRAND_EINVAL);
    assert_int_equal(store_open("mysql://x", &opt, &st, &err), ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "mysql://x"));
    assert_int_equal(store_open("sqlite://", &opt, &st, &err), ERRAND_EINVAL);
    assert_int_equal(store_open("sqlite://:memory:", &opt, &st, &err), ERRAND_EINVAL);
    struct store_options bad = {.sync = "sometimes"};
    assert_int_equal(store_open("sqlite:///tmp/errand-never-created.db", &bad, &st, &err),
                     ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "sometimes"));
    assert_null(st);
}

static void creates_missing_directories(void **state)
{
    struct fixture *fx = *state;
    char url[256], dir1[200], dir2[200], db[220];
    snprintf(dir1, sizeof dir1, "%s/home", fx->dir);
    snprintf(dir2, sizeof dir2, "%s/home/sub", fx->dir);
    snprintf(db, sizeof db, "%s/errand.db", dir2);
    snprintf(url, sizeof url, "sqlite://%s", db);
    store *st = NULL;
    errand_error err;
    struct store_options opt = {.sync = "normal"};
    assert_int_equal(store_open(url, &opt, &st, &err), 0);
    assert_string_equal(store_kind(st), "sqlite");
    store_close(st);
    char p[240];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", db, suffixes[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(dir2), 0);
    assert_int_equal(rmdir(dir1), 0);
}

/* The hot queries walk the indexes meant for them. */
static void hot_queries_use_their_indexes(void **state)
{
    struct fixture *fx = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    struct {
        enum sql_id id;
        const char *index;
    } want[] = {
        {SQL_CLAIM_CANDIDATES, "task_runs_claim"},         {SQL_LEASE_EXPIRED, "task_runs_lease"},
        {SQL_LIST_ATTENTION, "task_runs_attention"},       {SQL_CACHE_SOURCE, "task_runs_cache"},
        {SQL_RUN_BY_IDEMPOTENCY, "task_runs_idempotency"}, {SQL_LIST_TAG, "task_run_tags"},
        {SQL_LIST_SCHEDULED, "task_runs_claim"},           {SQL_LIST_LEASED, "task_runs_lease"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char sql[2048];
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", sqlite_sql_text(want[i].id));
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        char plan[1024] = "";
        bool sorts = false;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(s, 3);
            strncat(plan, detail, sizeof plan - strlen(plan) - 2);
            strcat(plan, "; ");
            if (strstr(detail, "TEMP B-TREE"))
                sorts = true;
        }
        sqlite3_finalize(s);
        if (!strstr(plan, want[i].index))
            fail_msg("%s does not use %s: %s", sqlite_sql_name(want[i].id), want[i].index, plan);
        /* These sort the (small) set they read; the others read in the order they return. */
        bool may_sort = want[i].id == SQL_CACHE_SOURCE || want[i].id == SQL_LIST_SCHEDULED ||
                        want[i].id == SQL_LIST_LEASED;
        if (sorts && !may_sort)
            fail_msg("%s sorts: %s", sqlite_sql_name(want[i].id), plan);
    }
    sqlite3_close(db);
}

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
    json_t *runs = NULL;
    errand_error err;
    int rc = store_claim(fx->st, &req, fault_now, &runs, &err);
    if (rc == 0 && json_array_size(runs) > 0) {
        json_t *c = json_array_get(runs, 0);
        snprintf(fault_id, sizeof fault_id, "%s", sfield(c, "id"));
        snprintf(fault_token, sizeof fault_token, "%s", sfield(c, "lease_token"));
    }
    json_decref(runs);
    return rc;
}

static int fault_heartbeat(struct fixture *fx)
{
    struct lease_ref ref = {fault_id, fault_token};
    json_t *out = NULL;
    bool stale;
    errand_error err;
    int rc = store_heartbeat(fx->st, "wf", &ref, 1, 30, fault_now, &out, &stale, &err);
    json_decref(out);
    return rc;
}

static int fault_report(struct fixture *fx)
{
    json_t *result = json_pack("{s:[i,i,i]}", "r", 1, 2, 3);
    struct run_report rep = {.id = fault_id,
                             .lease_token = fault_token,
                             .state = ERRAND_STATE_FAILED,
                             .message = "m",
                             .retryable = true};
    struct log_entry log = {fault_id, fault_now, ERRAND_LOG_INFO, "a log line"};
    json_t *out = NULL;
    bool stale;
    errand_error err;
    int rc = store_report(fx->st, "wf", &rep, 1, &log, 1, fault_now, &out, &stale, &err);
    json_decref(out);
    json_decref(result);
    return rc;
}

static int fault_reads(struct fixture *fx)
{
    errand_error err;
    json_t *v = NULL;
    int rc;
    char next[37];
    int64_t after;
    int64_t c[8];
    struct run_filter f = {.state_mask = 1u << ERRAND_STATE_SCHEDULED, .tag = NULL, .limit = 3};
    struct run_filter ft = {.tag = "t1", .limit = 3};
    if ((rc = store_get_run(fx->st, fault_id, &v, &err)) < 0)
        return rc;
    json_decref(v);
    if ((rc = store_get_states(fx->st, fault_id, &v, &err)) < 0)
        return rc;
    json_decref(v);
    if ((rc = store_get_logs(fx->st, fault_id, 0, 10, &v, &after, &err)) < 0)
        return rc;
    json_decref(v);
    if ((rc = store_list_runs(fx->st, &f, &v, next, &err)) < 0)
        return rc;
    json_decref(v);
    if ((rc = store_list_runs(fx->st, &ft, &v, next, &err)) < 0)
        return rc;
    json_decref(v);
    if ((rc = store_list_workers(fx->st, fault_now, SEC, &v, &err)) < 0)
        return rc;
    json_decref(v);
    return store_count_by_state(fx->st, c, &err);
}

static int fault_cancel(struct fixture *fx)
{
    json_t *run = NULL;
    errand_error err;
    int rc = store_cancel(fx->st, fault_id, fault_now, &run, &err);
    json_decref(run);
    return rc;
}

static int fault_sweep(struct fixture *fx)
{
    int n;
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
    /* The counts still add up to the runs stored. */
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7], 4);
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
        json_t *runs[KILL_BATCH];
        for (int i = 0; i < KILL_BATCH; i++)
            parse_spec(&specs[i], t, "{\"task\": \"k\", \"tags\": [\"x\"]}");
        if (store_submit(st, specs, KILL_BATCH, t, runs, NULL, &err) != 0)
            _exit(3);
        for (int i = 0; i < KILL_BATCH; i++) {
            char line[40];
            int len = snprintf(line, sizeof line, "%s\n", sfield(runs[i], "id"));
            if (write(fd, line, (size_t)len) != len)
                _exit(0);
            json_decref(runs[i]);
            run_spec_clear(&specs[i]);
        }
        const char *tasks[] = {"k"};
        struct claim_request req = {.worker = "kw", .tasks = tasks, .n_tasks = 1, .limit = 20};
        json_t *claimed = NULL;
        if (store_claim(st, &req, t, &claimed, &err) != 0)
            _exit(4);
        for (size_t i = 0; i < json_array_size(claimed); i++) {
            json_t *c = json_array_get(claimed, i);
            struct run_report rep = {.id = sfield(c, "id"),
                                     .lease_token = sfield(c, "lease_token"),
                                     .state = ERRAND_STATE_COMPLETED,
                                     .result = c};
            json_t *out = NULL;
            bool stale;
            store_report(st, "kw", &rep, 1, NULL, 0, t, &out, &stale, &err);
            json_decref(out);
        }
        json_decref(claimed);
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

/* --- throughput (printed, never asserted) -------------------------------------------- */

struct submitter {
    store *st;
    int64_t now;
    int n;
};

static void *submitter_main(void *p)
{
    struct submitter *sb = p;
    for (int i = 0; i < sb->n; i++) {
        struct run_spec spec;
        parse_spec(&spec, sb->now, "{\"task\": \"single\"}");
        json_t *run = NULL;
        errand_error err;
        if (store_submit(sb->st, &spec, 1, sb->now, &run, NULL, &err) != 0)
            fail_msg("submit: %s", err.message);
        json_decref(run);
        run_spec_clear(&spec);
    }
    return NULL;
}

/* ERRAND_BENCH_SYNC picks the synchronous setting of the benchmark (default full). */
static const char *bench_sync(void)
{
    const char *s = getenv("ERRAND_BENCH_SYNC");
    return s && s[0] ? s : "full";
}

static void throughput_benchmark(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    fx->st = NULL;
    open_store(fx, bench_sync()); /* the benchmark's setting: every commit fsynced */
    int64_t t = fx->t0;
    struct run_spec *specs = calloc(BENCH_RUNS, sizeof *specs);
    json_t **runs = calloc(BENCH_BATCH, sizeof *runs);
    for (int i = 0; i < BENCH_RUNS; i++)
        parse_spec(&specs[i], t,
                   "{\"task\": \"bench\", \"parameters\": {\"payload\": \"hello world\", "
                   "\"n\": 12345}}");
    json_t *result = json_pack("{s:b, s:s}", "ok", 1, "text", "a short structured result");
    errand_error err;

    struct sqlite_writer_stats w0, w1, w2;
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &w0);
    int64_t m0 = clock_mono_ms();
    for (int b = 0; b < BENCH_RUNS / BENCH_BATCH; b++) {
        assert_int_equal(
            store_submit(fx->st, specs + b * BENCH_BATCH, BENCH_BATCH, t, runs, NULL, &err), 0);
        for (int i = 0; i < BENCH_BATCH; i++)
            json_decref(runs[i]);
    }
    int64_t m1 = clock_mono_ms();
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &w1);
    int done = 0;
    int64_t claim_ms = 0, report_ms = 0;
    struct run_report *reps = calloc(BENCH_BATCH, sizeof *reps);
    while (done < BENCH_RUNS) {
        int64_t a = clock_mono_ms();
        json_t *claimed = claim(fx, "bench-w", "bench", BENCH_BATCH, 30, t);
        int64_t b = clock_mono_ms();
        size_t n = json_array_size(claimed);
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++) {
            json_t *c = json_array_get(claimed, i);
            reps[i] = (struct run_report){.id = sfield(c, "id"),
                                          .lease_token = sfield(c, "lease_token"),
                                          .state = ERRAND_STATE_COMPLETED,
                                          .result = result};
        }
        json_t *out = NULL;
        bool stale = false;
        assert_int_equal(store_report(fx->st, "bench-w", reps, n, NULL, 0, t, &out, &stale, &err),
                         0);
        assert_false(stale);
        json_decref(out);
        json_decref(claimed);
        claim_ms += b - a;
        report_ms += clock_mono_ms() - b;
        done += (int)n;
    }
    int64_t m2 = clock_mono_ms();
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &w2);
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_COMPLETED], BENCH_RUNS);
    double total = (double)(m2 - m0);
    printf("[ bench    ] %d runs submit+claim+COMPLETED, batches of %d, synchronous=%s: "
           "%.0f ms = %.0f runs/s (submit %lld ms, claim %lld ms, report %lld ms)\n",
           BENCH_RUNS, BENCH_BATCH, bench_sync(), total,
           total > 0 ? BENCH_RUNS * 1000.0 / total : 0.0, (long long)(m1 - m0), (long long)claim_ms,
           (long long)report_ms);
    printf("[ bench    ] writer thread busy: submit %.0f ms, claim+report %.0f ms = %.1f us per "
           "run (%.0f runs/s if callers were free); of which CPU %.1f us per run\n",
           (double)(w1.busy_us - w0.busy_us) / 1000.0, (double)(w2.busy_us - w1.busy_us) / 1000.0,
           (double)(w2.busy_us - w0.busy_us) / BENCH_RUNS,
           BENCH_RUNS * 1e6 / (double)(w2.busy_us - w0.busy_us + 1),
           (double)(w2.cpu_us - w0.cpu_us) / BENCH_RUNS);

    /* Many callers, one run each: group commit gathers them into few transactions. */
    struct sqlite_writer_stats s0, s1;
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &s0);
    struct submitter sb = {fx->st, t, GROUP_SUBMITS_PER_THREAD};
    pthread_t th[GROUP_THREADS];
    int64_t g0 = clock_mono_ms();
    for (int i = 0; i < GROUP_THREADS; i++)
        pthread_create(&th[i], NULL, submitter_main, &sb);
    for (int i = 0; i < GROUP_THREADS; i++)
        pthread_join(th[i], NULL);
    int64_t g1 = clock_mono_ms();
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &s1);
    int singles = GROUP_THREADS * GROUP_SUBMITS_PER_THREAD;
    printf("[ bench    ] %d single-run submits from %d threads: %lld ms = %.0f submits/s, "
           "%llu commits (%.1f ops per commit)\n",
           singles, GROUP_THREADS, (long long)(g1 - g0),
           g1 > g0 ? singles * 1000.0 / (double)(g1 - g0) : 0.0, s1.commits - s0.commits,
           (double)(s1.ops - s0.ops) /
               (double)(s1.commits - s0.commits ? s1.commits - s0.commits : 1));

    json_decref(result);
    for (int i = 0; i < BENCH_RUNS; i++)
        run_spec_clear(&specs[i]);
    free(specs);
    free(runs);
    free(reps);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(submit_get_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_idempotency_inside_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency_across_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_all_or_nothing_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_hit_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(claim_order_due_time_and_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(claim_each_run_once_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(heartbeat_extends_and_stale_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(sweep_reschedules_then_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(report_failed_retries_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(report_not_retryable_and_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(hand_back_uncounts_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_in_each_state, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pagination_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(list_each_state, setup, teardown),
        cmocka_unit_test_setup_teardown(logs_append_and_page, setup, teardown),
        cmocka_unit_test_setup_teardown(workers_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(schema_version_checked, setup, teardown),
        cmocka_unit_test(open_errors_name_the_problem),
        cmocka_unit_test_setup_teardown(creates_missing_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(hot_queries_use_their_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(every_call_survives_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(killed_process_loses_no_acknowledged_run, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_group_isolates_failing_op, setup, teardown),
        cmocka_unit_test_setup_teardown(throughput_benchmark, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
