/* SPDX-License-Identifier: MIT */
/*
 * store_pg_submit.c — the client-side writes of the PostgreSQL store: submitting runs (one
 * or a batch) and cancelling one. The semantics are the SQLite store's
 * (store_sqlite_submit.c): a batch is all or nothing; an idempotency key seen before yields
 * the stored run; a cache key matching an unexpired COMPLETED run yields a new run created
 * COMPLETED/"Cached".
 *
 * Submissions go to a submitter thread (store_submit_begin must not block its caller) that
 * commits what queued up meanwhile in one transaction, each submission in its savepoint, so
 * one bad submission fails alone and a burst of single submits costs one commit.
 *
 * A batch is written set-wise, a statement per step rather than per run: the stored
 * idempotency keys of the whole batch in one query, its cache hits in one, its runs in one
 * INSERT ... SELECT FROM unnest(...) and its tags in another (history rows go at the commit,
 * with the connection's). A key repeated within the batch yields its first run, as if the
 * runs had been inserted one by one.
 *
 * Idempotency across servers: two servers inserting the same key at once meet at the
 * unique index task_runs_idempotency; the one that loses gets a unique violation, rolls back
 * to its savepoint and runs the submission again, and then finds the other's run.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "store/postgres/pg_deps.h"
#include "store/postgres/store_pg.h"
#include "store/submit_slot.h"

#define CANCEL_MESSAGE "cancelled by request"
#define CANCELLING_MESSAGE "cancellation requested"

/* The (task, key) pairs of some slots, as two arrays for unnest, and the slot of each pair
 * (a query's `WITH ORDINALITY` number k_i is its index + 1). */
struct key_set {
    struct pg_array tasks, keys;
    size_t *slot;
    size_t n;
};

static void key_set_free(struct key_set *k)
{
    pg_array_free(&k->tasks);
    pg_array_free(&k->keys);
    mem_free(k->slot);
}

/* The idempotency keys (cache: the cache keys) of the slots with want[i] (NULL: all). */
static int key_set_build(struct key_set *k, const struct submit_op *op, const bool *want,
                         bool cache, errand_error *err)
{
    *k = (struct key_set){0};
    if (!(k->slot = mem_calloc(op->n ? op->n : 1, sizeof *k->slot)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < op->n; i++) {
        const char *key = cache ? op->specs[i].cache_key : op->specs[i].idempotency_key;
        if (!key || (want && !want[i]))
            continue;
        pg_array_text(&k->tasks, op->specs[i].task);
        pg_array_text(&k->keys, key);
        k->slot[k->n++] = i;
    }
    int rc = pg_array_check(&k->tasks, err);
    return rc < 0 ? rc : pg_array_check(&k->keys, err);
}

/* Runs sql with the key set (and now_ms as $3 when cache); NULL result when the set is empty. */
static int key_set_query(struct pg_conn *c, const struct key_set *k, const char *sql,
                         const int64_t *now_ms, const char *what, PGresult **out, errand_error *err)
{
    *out = NULL;
    if (k->n == 0)
        return 0;
    struct pg_params p = {0};
    pg_p_array(&p, &k->tasks);
    pg_p_array(&p, &k->keys);
    if (now_ms)
        pg_p_i64(&p, *now_ms);
    return (*out = pg_query(c, sql, &p, what, err)) ? 0 : ERRAND_ESTORE;
}

/* Answers every slot whose (task, idempotency key) is stored already with the stored run
 * (keys are per task), in one query: a probe of the unique index per key (a LATERAL
 * subquery is run once per key), never a join the planner could make by sorting or hashing
 * every keyed run when its statistics think them few. */
static int find_idempotent(struct pg_conn *c, struct submit_op *op, errand_error *err)
{
    static const char sql[] =
        "SELECT u.k_i, run.* FROM unnest($1::text[], $2::text[]) "
        "WITH ORDINALITY AS u(k_task, k_key, k_i) CROSS JOIN LATERAL (SELECT " PG_RUN_COLUMNS
        " FROM task_runs WHERE task = u.k_task AND idempotency_key = u.k_key LIMIT 1) AS run";
    struct key_set k;
    PGresult *r = NULL;
    int rc = key_set_build(&k, op, NULL, false, err);
    if (rc == 0)
        rc = key_set_query(c, &k, sql, NULL, "looking up idempotency keys", &r, err);
    for (int row = 0; r && rc == 0 && row < PQntuples(r); row++) {
        struct submit_slot *slot = &op->slots[k.slot[pg_get_i64(r, row, 0) - 1]];
        store_pg_read_run(r, row, 1, &slot->answer);
        if ((rc = run_row_own_strings(&slot->answer, err)) < 0)
            memset(&slot->answer, 0, sizeof slot->answer);
        slot->answered = rc == 0;
    }
    PQclear(r);
    key_set_free(&k);
    return rc;
}

/* For every run to create with a cache key: the newest unexpired result of its task under
 * that key (keys are per task), if any, in one query. */
static int find_cached(struct pg_conn *c, struct submit_op *op, const bool *create,
                       errand_error *err)
{
    static const char sql[] =
        "SELECT u.k_i, hit.id, hit.result, hit.result_ref, hit.cache_expires_at "
        "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k_task, k_key, k_i) "
        "CROSS JOIN LATERAL (SELECT id, result, result_ref, cache_expires_at FROM task_runs "
        "WHERE task = u.k_task AND cache_key = u.k_key AND state_type = 3 "
        "AND state_name = 'Completed' AND (cache_expires_at IS NULL OR cache_expires_at > $3) "
        "ORDER BY finished DESC LIMIT 1 FOR KEY SHARE) AS hit";
    struct key_set k;
    PGresult *r = NULL;
    int rc = key_set_build(&k, op, create, true, err);
    if (rc == 0)
        rc = key_set_query(c, &k, sql, &op->now_ms, "looking up cache keys", &r, err);
    for (int row = 0; r && rc == 0 && row < PQntuples(r); row++) {
        struct submit_slot *slot = &op->slots[k.slot[pg_get_i64(r, row, 0) - 1]];
        const char *result = pg_get_text(r, row, 2), *ref = pg_get_text(r, row, 3);
        slot->cache_message = mem_printf(SUBMIT_CACHE_MESSAGE_FMT, pg_get_text(r, row, 1));
        slot->cache_result = result ? mem_strdup(result) : NULL;
        slot->cache_result_ref = ref ? mem_strdup(ref) : NULL;
        slot->cache_expires_at = pg_get_i64(r, row, 4);
        slot->cached = true;
        if (!slot->cache_message || (result && !slot->cache_result) ||
            (ref && !slot->cache_result_ref))
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    PQclear(r);
    key_set_free(&k);
    return rc;
}

/* The first run of the batch before i to be created under the same (task, idempotency key)
 * as i, if any (SIZE_MAX when none): i then yields that run. */
static size_t same_key_before(const struct submit_op *op, const bool *create, size_t i)
{
    const struct run_spec *spec = &op->specs[i];
    for (size_t j = 0; spec->idempotency_key && j < i; j++) {
        const struct run_spec *o = &op->specs[j];
        if (create[j] && o->idempotency_key &&
            strcmp(o->idempotency_key, spec->idempotency_key) == 0 &&
            strcmp(o->task, spec->task) == 0)
            return j;
    }
    return SIZE_MAX;
}

/* The columns of new runs, one array each, in the order of sql_insert's unnest. */
enum {
    COL_ID,
    COL_TASK,
    COL_PARAMETERS,
    COL_STATE_TYPE,
    COL_STATE_NAME,
    COL_STATE_MESSAGE,
    COL_MAX_ATTEMPTS,
    COL_SCHEDULED_AT,
    COL_FINISHED,
    COL_PRIORITY,
    COL_TAGS,
    COL_IDEMPOTENCY,
    COL_CACHE_KEY,
    COL_CACHE_EXPIRATION,
    COL_CACHE_EXPIRES_AT,
    COL_RETRIES,
    COL_RETRY_DELAYS,
    COL_JITTER,
    COL_TIMEOUT,
    COL_PERSIST,
    COL_RESULT,
    COL_RESULT_REF,
    COL_RETRY_OF,
    COL_TRACEPARENT,
    COL_WAIT_FOR,
    COL_RESULT_REFS,
    COL_UPSTREAM_PENDING,
    COL_ALLOW_UPSTREAM_FAILURE,
    N_COLS
};

/* The state a created run starts in: its cache hit's, its upstream runs', or SCHEDULED. */
static errand_state start_state(const struct submit_slot *slot)
{
    if (slot->has_deps)
        return slot->deps.state;
    return slot->cached ? ERRAND_STATE_COMPLETED : ERRAND_STATE_SCHEDULED;
}

static const char *start_name(const struct submit_slot *slot)
{
    if (slot->has_deps)
        return slot->deps.name;
    return slot->cached ? STATE_NAME_CACHED : STATE_NAME_SCHEDULED;
}

static const char *start_message(const struct submit_slot *slot)
{
    if (slot->has_deps)
        return slot->deps.message;
    return slot->cached ? slot->cache_message : "";
}

/* Adds the run of slot (created) to the columns. */
static void add_run(struct pg_array *col, const struct run_spec *spec,
                    const struct submit_slot *slot, int64_t now_ms)
{
    const struct run_deps_plan *deps = slot->has_deps ? &slot->deps : NULL;
    pg_array_text(&col[COL_ID], slot->id);
    pg_array_text(&col[COL_TASK], spec->task);
    pg_array_text(&col[COL_PARAMETERS],
                  deps && deps->parameters ? deps->parameters : spec->parameters);
    pg_array_i64(&col[COL_STATE_TYPE], start_state(slot));
    pg_array_text(&col[COL_STATE_NAME], start_name(slot));
    pg_array_text(&col[COL_STATE_MESSAGE], start_message(slot));
    pg_array_i64(&col[COL_MAX_ATTEMPTS], spec->retries + 1);
    pg_array_i64(&col[COL_SCHEDULED_AT], spec->scheduled_at_ms);
    pg_array_ms(&col[COL_FINISHED], state_is_final(start_state(slot)) ? now_ms : 0);
    pg_array_i64(&col[COL_PRIORITY], spec->priority);
    pg_array_text(&col[COL_TAGS], spec->tags ? spec->tags : "[]");
    pg_array_text(&col[COL_IDEMPOTENCY], spec->idempotency_key);
    pg_array_text(&col[COL_CACHE_KEY], spec->cache_key);
    pg_array_positive(&col[COL_CACHE_EXPIRATION], spec->cache_expiration_seconds);
    pg_array_ms(&col[COL_CACHE_EXPIRES_AT], slot->cached ? slot->cache_expires_at : 0);
    pg_array_i64(&col[COL_RETRIES], spec->retries);
    pg_array_text(&col[COL_RETRY_DELAYS], slot->delays_text);
    pg_array_double(&col[COL_JITTER], spec->retry_jitter_factor);
    pg_array_positive(&col[COL_TIMEOUT], spec->timeout_seconds);
    if (spec->persist_result < 0)
        pg_array_text(&col[COL_PERSIST], NULL);
    else
        pg_array_i64(&col[COL_PERSIST], spec->persist_result);
    pg_array_text(&col[COL_RESULT], slot->cached ? slot->cache_result : NULL);
    pg_array_text(&col[COL_RESULT_REF], slot->cached ? slot->cache_result_ref : NULL);
    pg_array_text(&col[COL_RETRY_OF], spec->retry_of);
    pg_array_text(&col[COL_TRACEPARENT], spec->traceparent);
    pg_array_text(&col[COL_WAIT_FOR], deps ? deps->wait_for : NULL);
    pg_array_text(&col[COL_RESULT_REFS], deps ? deps->result_refs : NULL);
    pg_array_i64(&col[COL_UPSTREAM_PENDING], deps ? deps->pending : 0);
    pg_array_bool(&col[COL_ALLOW_UPSTREAM_FAILURE], spec->allow_upstream_failure);
}

/* Inserts the runs to create (and their tags) with one statement each. */
static int insert_runs(struct pg_conn *c, const struct submit_op *op, const bool *create,
                       errand_error *err)
{
    static const char sql_insert[] =
        "INSERT INTO task_runs (id, task, parameters, state_type, state_name, state_timestamp, "
        "state_message, n_states, attempt, max_attempts, created, scheduled_at, finished, "
        "priority, tags, idempotency_key, cache_key, cache_expiration_seconds, "
        "cache_expires_at, retries, retry_delays, retry_jitter_factor, timeout_seconds, "
        "persist_result, result, result_ref, delayed, retry_of, traceparent, wait_for, "
        "result_refs, upstream_pending, allow_upstream_failure) "
        "SELECT id, task, parameters, state_type, state_name, $1::bigint, state_message, 1, 0, "
        "max_attempts, $1::bigint, scheduled_at, finished, priority, tags, idempotency_key, "
        "cache_key, cache_expiration_seconds, cache_expires_at, retries, retry_delays, "
        "retry_jitter_factor, timeout_seconds, persist_result, result, result_ref, "
        /* waiting for upstream runs: NULL, in neither the ready queue nor the delayed set */
        "CASE WHEN upstream_pending > 0 THEN NULL "
        "ELSE (state_type = 0 AND scheduled_at > $1::bigint) END, retry_of, traceparent, "
        "wait_for, result_refs, upstream_pending, allow_upstream_failure "
        "FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], "
        "$8::integer[], $9::bigint[], $10::bigint[], $11::integer[], $12::text[], $13::text[], "
        "$14::text[], $15::double precision[], $16::bigint[], $17::integer[], $18::text[], "
        "$19::double precision[], $20::double precision[], $21::integer[], $22::text[], "
        "$23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::integer[], "
        "$29::boolean[]) AS u(id, task, parameters, state_type, state_name, "
        "state_message, max_attempts, scheduled_at, finished, priority, tags, idempotency_key, "
        "cache_key, cache_expiration_seconds, cache_expires_at, retries, retry_delays, "
        "retry_jitter_factor, timeout_seconds, persist_result, result, result_ref, retry_of, "
        "traceparent, wait_for, result_refs, upstream_pending, allow_upstream_failure)";
    static const char sql_tags[] = "INSERT INTO task_run_tags (tag, run_id) "
                                   "SELECT * FROM unnest($1::text[], $2::text[]) "
                                   "ON CONFLICT DO NOTHING";
    /* A submission's own webhook URL, kept until its run is deleted (a run born final gets
       its delivery at the commit instead: record_created). */
    static const char sql_webhooks[] = "INSERT INTO run_webhooks (run_id, url) "
                                       "SELECT * FROM unnest($1::text[], $2::text[])";
    struct pg_array col[N_COLS] = {0}, tags = {0}, tag_runs = {0}, hook_runs = {0}, hooks = {0};
    for (size_t i = 0; i < op->n; i++) {
        if (!create[i])
            continue;
        add_run(col, &op->specs[i], &op->slots[i], op->now_ms);
        if (op->specs[i].webhook_url && !state_is_final(start_state(&op->slots[i]))) {
            pg_array_text(&hook_runs, op->slots[i].id);
            pg_array_text(&hooks, op->specs[i].webhook_url);
        }
        const json_t *list = op->slots[i].tags;
        for (size_t t = 0; t < json_array_size(list); t++) {
            pg_array_text(&tags, json_string_value(json_array_get(list, t)));
            pg_array_text(&tag_runs, op->slots[i].id);
        }
    }
    int rc = pg_array_check(&tags, err);
    if (rc == 0)
        rc = pg_array_check(&tag_runs, err);
    if (rc == 0)
        rc = pg_array_check(&hook_runs, err);
    if (rc == 0)
        rc = pg_array_check(&hooks, err);
    struct pg_params p = {0};
    pg_p_i64(&p, op->now_ms);
    for (int k = 0; k < N_COLS; k++) {
        if (rc == 0)
            rc = pg_array_check(&col[k], err);
        pg_p_array(&p, &col[k]);
    }
    if (rc == 0 && col[COL_ID].n > 0)
        rc = pg_command(c, sql_insert, &p, "inserting runs", NULL, err);
    if (rc == 0 && tags.n > 0) {
        struct pg_params t = {0};
        pg_p_array(&t, &tags);
        pg_p_array(&t, &tag_runs);
        rc = pg_command(c, sql_tags, &t, "tagging runs", NULL, err);
    }
    if (rc == 0 && hooks.n > 0) {
        struct pg_params w = {0};
        pg_p_array(&w, &hook_runs);
        pg_p_array(&w, &hooks);
        rc = pg_command(c, sql_webhooks, &w, "recording runs' webhooks", NULL, err);
    }
    for (int k = 0; k < N_COLS; k++)
        pg_array_free(&col[k]);
    pg_array_free(&tags);
    pg_array_free(&tag_runs);
    pg_array_free(&hook_runs);
    pg_array_free(&hooks);
    return rc;
}

static int read_run(struct pg_conn *c, const char *id, struct run_row *out, errand_error *err);

/* What creating slot's run implies besides its row: the counters, the wake-up, the first
 * state (and its feed event), the edges from its upstream runs. */
static int record_created(struct pg_conn *c, struct submit_op *op, size_t i, errand_error *err)
{
    const struct run_spec *spec = &op->specs[i];
    struct submit_slot *slot = &op->slots[i];
    errand_state state = start_state(slot);
    const char *message = start_message(slot);
    bool waiting = slot->has_deps && slot->deps.pending > 0; /* counted with the delayed runs */
    int rc = pg_count_move(c, &op->counts, spec->task, slot->id, -1, state, op->now_ms, err);
    if (rc < 0)
        return rc;
    if (state_is_final(state)) { /* born final: a cache hit, or an upstream's failure */
        run_finals_add(&c->finals, spec->task, state, slot->cached, -1);
        pg_webhook_ended(c, slot->id, spec->task, spec->webhook_url, op->now_ms);
    }
    if (state == ERRAND_STATE_FAILED &&
        (rc = pg_failure_add(c, spec->task, slot->id, message, op->now_ms, err)) < 0)
        return rc;
    if ((waiting || run_is_delayed(state, spec->scheduled_at_ms, op->now_ms)) &&
        (rc = pg_count_delayed(c, &op->counts, spec->task, 1, op->now_ms, err)) < 0)
        return rc;
    if (state == ERRAND_STATE_SCHEDULED && !waiting)
        pg_signal_due(c, spec->task);
    if ((rc = pg_state_append(c, slot->id, spec->task, 1, state, start_name(slot), op->now_ms,
                              message, err)) < 0)
        return rc;
    if (slot->has_deps) { /* its state depends on the upstream runs: read it back */
        if ((rc = pg_deps_register(c, slot->id, &slot->deps, err)) < 0 ||
            (rc = read_run(c, slot->id, &slot->answer, err)) < 0)
            return rc;
        slot->answered = true;
    } else if (slot->cached) {
        if ((rc = submit_slot_created_row(spec, slot, op->now_ms, &slot->answer, err)) < 0)
            return rc;
        slot->answered = true;
    }
    slot->created = true;
    return 0;
}

/* The answer of slot i, whose key repeats run `first` of the batch. */
static int answer_repeat(struct pg_conn *c, struct submit_op *op, size_t i, size_t first,
                         errand_error *err)
{
    struct submit_slot *slot = &op->slots[i];
    int rc = op->slots[first].has_deps
                 ? read_run(c, op->slots[first].id, &slot->answer, err)
                 : submit_slot_created_row(&op->specs[first], &op->slots[first], op->now_ms,
                                           &slot->answer, err);
    slot->answered = rc == 0;
    return rc;
}

/* How run i of the batch starts, given its upstream runs ("runs[N]" resolved against the
 * batch's earlier runs, as created or found by their idempotency key). */
static int plan_deps(struct pg_conn *c, struct submit_op *op, size_t i, errand_error *err)
{
    const char **ids = mem_calloc(i ? i : 1, sizeof *ids);
    if (!ids)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t j = 0; j < i; j++)
        ids[j] = op->slots[j].answered ? op->slots[j].answer.id : op->slots[j].id;
    struct submit_slot *slot = &op->slots[i];
    run_deps_plan_clear(&slot->deps);
    int rc = pg_deps_plan(c, &op->specs[i], ids, i, &slot->deps, err);
    mem_free(ids);
    slot->has_deps = rc == 0;
    return rc;
}

/* A batch with upstream runs, a run at a time in order (rare; a run's upstream may be an
 * earlier run of the batch, which must be stored first): plan, insert, record. */
static int submit_per_row(struct pg_conn *c, struct submit_op *op, const bool *create,
                          errand_error *err)
{
    bool *only = mem_calloc(op->n, sizeof *only);
    if (!only)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < op->n; i++) {
        struct submit_slot *slot = &op->slots[i];
        if (create[i]) {
            if (op->specs[i].wait_for && !slot->cached)
                rc = plan_deps(c, op, i, err);
            only[i] = true;
            if (rc == 0)
                rc = insert_runs(c, op, only, err);
            only[i] = false;
            if (rc == 0)
                rc = record_created(c, op, i, err);
        } else if (!slot->answered) {
            rc = answer_repeat(c, op, i, same_key_before(op, create, i), err);
        }
    }
    mem_free(only);
    return rc;
}

/* The op: every run of the batch, or (by returning an error) none. Re-runnable. A set at a
 * time: the stored idempotency keys; which runs to create (not stored, and not a key
 * repeated in the batch); their cache hits; one insert of them all; then the repeats get
 * their first run. A batch where a run to create waits for others goes a run at a time. */
static int submit_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct submit_op *op = arg;
    run_tally_reset(&op->counts);
    for (size_t i = 0; i < op->n; i++)
        submit_slot_clear_outputs(&op->slots[i]);
    bool *create = mem_calloc(op->n ? op->n : 1, sizeof *create);
    if (!create)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = find_idempotent(c, op, err);
    for (size_t i = 0; rc == 0 && i < op->n; i++)
        create[i] = !op->slots[i].answered && same_key_before(op, create, i) == SIZE_MAX;
    if (rc == 0)
        rc = find_cached(c, op, create, err);
    bool per_row = false;
    for (size_t i = 0; rc == 0 && i < op->n; i++)
        per_row = per_row || (create[i] && op->specs[i].wait_for && !op->slots[i].cached);
    if (rc == 0 && per_row) {
        rc = submit_per_row(c, op, create, err);
    } else if (rc == 0) {
        rc = insert_runs(c, op, create, err);
        for (size_t i = 0; rc == 0 && i < op->n; i++) {
            if (create[i])
                rc = record_created(c, op, i, err);
            else if (!op->slots[i].answered)
                rc = answer_repeat(c, op, i, same_key_before(op, create, i), err);
        }
    }
    mem_free(create);
    return rc < 0 ? rc : pg_counts_apply(c, &op->counts, op->now_ms, err);
}

/* A submission on its way through the submitter (store_submit_begin .. store_submit_end). */
struct store_submission {
    struct store_submission *next; /* in the submitter's queue */
    struct submit_op op;
    struct submit_slot *slots;
    size_t n;
    int rc; /* the op's outcome, set on the submitter thread before done is called */
    errand_error err;
    void (*done)(void *arg);
    void *done_arg;
};

static void submission_free(store_submission *sub)
{
    submit_slots_free(sub->slots, sub->n);
    mem_free(sub);
}

/* Everything a submission needs before the writer sees it: ids, texts, the rows it answers
 * with when the runs are created. */
static int submission_prepare(store_submission *sub, const struct run_spec *specs, size_t n,
                              int64_t now_ms, errand_error *err)
{
    int rc = submit_slots_new(specs, n, now_ms, &sub->slots, err);
    sub->n = n;
    sub->op = (struct submit_op){.specs = specs, .slots = sub->slots, .n = n, .now_ms = now_ms};
    return rc;
}

/* --- the submitter ------------------------------------------------------------------ */

#define GROUP_MAX 256  /* submissions committed together at most */
#define SUB_ATTEMPTS 8 /* runs of one submission that keeps failing retryably */

struct pg_submit_queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    store_submission *head, *tail;
    bool stop;
    pthread_t thread;
    bool started;
};

/* Runs one submission in its savepoint: committed with the group, or rolled back alone. */
static void run_one(struct pg_conn *c, store_submission *sub)
{
    for (int attempt = 1; attempt <= SUB_ATTEMPTS; attempt++) {
        struct pg_conn_mark mark = pg_conn_mark(c);
        errand_error err = {0};
        int rc = pg_exec(c, "SAVEPOINT submission", &err);
        if (rc == 0 && (rc = submit_in_tx(c, &sub->op, &err)) == 0 &&
            (rc = pg_exec(c, "RELEASE SAVEPOINT submission", &err)) == 0) {
            sub->rc = 0;
            return;
        }
        bool again = pg_conn_retryable(c);
        errand_error ignored;
        pg_exec(c, "ROLLBACK TO SAVEPOINT submission", &ignored);
        pg_exec(c, "RELEASE SAVEPOINT submission", &ignored);
        pg_conn_rewind(c, &mark);
        sub->rc = rc;
        sub->err = err;
        if (!again)
            return;
    }
}

/* Commits a group of submissions and calls their done callbacks. */
static void commit_group(struct store_pg *s, store_submission *group)
{
    errand_error err = {0};
    struct pg_conn *c = store_pg_acquire(s, &err);
    int rc = c ? pg_exec(c, "BEGIN", &err) : ERRAND_ESTORE;
    if (rc == 0) {
        pg_conn_forget(c);
        for (store_submission *sub = group; sub; sub = sub->next)
            run_one(c, sub);
        if ((rc = store_pg_commit(s, c, &err)) == 0)
            store_pg_after_commit(s, c);
    }
    if (c && rc < 0) {
        errand_error ignored;
        pg_exec(c, "ROLLBACK", &ignored);
        pg_conn_forget(c);
    }
    if (c)
        store_pg_release(s, c);
    store_submission *sub = group;
    while (sub) {
        store_submission *next = sub->next; /* done() may free sub (via submit_end) */
        if (rc < 0 && sub->rc == 0) {
            sub->rc = rc;
            sub->err = err;
        }
        sub->done(sub->done_arg);
        sub = next;
    }
}

static void *submitter_main(void *arg)
{
    struct store_pg *s = arg;
    struct pg_submit_queue *q = s->submits;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cond, &q->mu);
        if (!q->head) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        store_submission *group = q->head, *last = group;
        for (int n = 1; n < GROUP_MAX && last->next; n++)
            last = last->next;
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&q->mu);
        commit_group(s, group);
    }
}

int store_pg_submitter_start(struct store_pg *s, errand_error *err)
{
    struct pg_submit_queue *q = mem_calloc(1, sizeof *q);
    if (!q)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cond, NULL);
    s->submits = q;
    if (pthread_create(&q->thread, NULL, submitter_main, s) != 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot start the store's submitter thread");
    q->started = true;
    return 0;
}

void store_pg_submitter_stop(struct store_pg *s)
{
    struct pg_submit_queue *q = s->submits;
    if (!q)
        return;
    if (q->started) {
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL); /* it commits what is queued first */
    }
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    mem_free(q);
    s->submits = NULL;
}

int store_pg_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                          void (*done)(void *arg), void *arg, store_submission **out,
                          errand_error *err)
{
    *out = NULL;
    struct pg_submit_queue *q = store_pg_of(st)->submits;
    store_submission *sub = mem_calloc(1, sizeof *sub);
    if (!sub)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sub->done = done;
    sub->done_arg = arg;
    int rc = n ? submission_prepare(sub, specs, n, now_ms, err) : 0;
    if (rc < 0) {
        submission_free(sub);
        return rc;
    }
    *out = sub;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = sub;
    else
        q->head = sub;
    q->tail = sub;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int store_pg_submit_end(store_submission *sub, struct run_row *rows_out, bool *created,
                        errand_error *err)
{
    int rc = sub->rc;
    memset(rows_out, 0, sub->n * sizeof *rows_out);
    if (rc < 0 && err)
        *err = sub->err;
    if (rc == 0)
        submit_slots_hand_out(sub->slots, sub->n, rows_out, created);
    submission_free(sub);
    return rc;
}

/* --- cancel ------------------------------------------------------------------------ */

struct cancel_op {
    const char *id;
    int64_t now_ms;
    struct run_row run; /* the run afterwards, read inside the op (owned) */
};

/* Reads run id inside the op, so that a failure to read it undoes the cancel instead of
 * reporting an error for a done cancel. */
static int read_run(struct pg_conn *c, const char *id, struct run_row *out, errand_error *err)
{
    static const char sql[] = "SELECT " PG_RUN_COLUMNS " FROM task_runs WHERE id = $1";
    struct pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *r = pg_query(c, sql, &p, "reading a run", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc;
    if (PQntuples(r) == 1) {
        store_pg_read_run(r, 0, 0, out);
        if ((rc = run_row_own_strings(out, err)) < 0)
            memset(out, 0, sizeof *out);
    } else {
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    }
    PQclear(r);
    return rc;
}

static int cancel_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct cancel_op *op = arg;
    run_row_clear(&op->run);
    struct run_current cur;
    int rc = pg_run_current_get(c, op->id, false, true, &cur, err);
    if (rc < 0)
        return rc;
    struct state_decision d = state_on_cancel(cur.state);
    if (!d.allowed)
        return error_set(err, ERRAND_ECONFLICT, NULL, "task run %s is already %s: %s", op->id,
                         state_type_name(cur.state), d.reason);
    if (d.next != cur.state) { /* asking again while CANCELLING changes nothing */
        struct run_update u;
        struct run_count_delta counts = {0};
        run_transition_plan(&cur, &d, op->now_ms, &u);
        u.message = d.next == ERRAND_STATE_CANCELLED ? CANCEL_MESSAGE : CANCELLING_MESSAGE;
        if ((rc = pg_transition_write(c, &cur, &u, op->now_ms, &counts, err)) < 0 ||
            (rc = pg_counts_apply(c, &counts, op->now_ms, err)) < 0)
            return rc;
    }
    return read_run(c, op->id, &op->run, err);
}

int store_pg_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out,
                    errand_error *err)
{
    memset(out, 0, sizeof *out);
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct cancel_op op = {.id = norm, .now_ms = now_ms};
    int rc = store_pg_write(store_pg_of(st), cancel_in_tx, &op, err);
    if (rc == 0)
        *out = op.run;
    else
        run_row_clear(&op.run);
    return rc;
}
