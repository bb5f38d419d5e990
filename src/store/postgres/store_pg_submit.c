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
 * Idempotency across servers: two servers inserting the same key at once meet at the
 * unique index task_runs_idempotency; the one that loses gets a unique violation, rolls back
 * to its savepoint and runs the submission again, and then finds the other's run.
 */
#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "store/postgres/store_pg.h"

#define CACHE_MESSAGE_FMT "cached result of run %s"
#define CANCEL_MESSAGE "cancelled by request"
#define CANCELLING_MESSAGE "cancellation requested"

/* One submitted run: filled before the op (id, delays, prebuilt), by the op (the rest). */
struct submit_slot {
    char id[UUID_STR_LEN];
    char *delays_text;       /* JSON array text of the spec's retry delays */
    json_t *tags;            /* the spec's tags as an array of strings, NULL when none */
    struct run_row prebuilt; /* the answer if the run is created as SCHEDULED (owned) */
    struct run_row answer;   /* the answer read by the op (idempotency or cache hit) */
    bool answered;           /* answer is set */
    bool created;
    bool cached; /* cache hit: the fields below are owned copies */
    char *cache_message;
    char *cache_result;
    char *cache_result_ref;
    int64_t cache_expires_at;
};

struct submit_op {
    const struct run_spec *specs;
    struct submit_slot *slots;
    size_t n;
    int64_t now_ms;
    struct run_count_delta counts;
};

static void slot_clear_outputs(struct submit_slot *slot)
{
    run_row_clear(&slot->answer);
    slot->answered = false;
    mem_free(slot->cache_message);
    mem_free(slot->cache_result);
    mem_free(slot->cache_result_ref);
    slot->cache_message = slot->cache_result = slot->cache_result_ref = NULL;
    slot->cached = false;
    slot->created = false;
}

/* The run of task submitted before under key (keys are per task), if any. */
static int find_idempotent(struct pg_conn *c, const char *task, const char *key,
                           struct submit_slot *slot, bool *found, errand_error *err)
{
    static const char sql[] =
        "SELECT " PG_RUN_COLUMNS " FROM task_runs WHERE task = $1 AND idempotency_key = $2";
    *found = false;
    struct pg_params p = {0};
    pg_p_text(&p, task);
    pg_p_text(&p, key);
    PGresult *r = pg_query(c, sql, &p, "looking up an idempotency key", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    if (PQntuples(r) == 1) {
        store_pg_read_run(r, 0, 0, &slot->answer);
        rc = run_row_own_strings(&slot->answer, err);
        slot->answered = *found = rc == 0;
        if (rc < 0)
            memset(&slot->answer, 0, sizeof slot->answer);
    }
    PQclear(r);
    return rc;
}

/* The newest unexpired result of task under cache key (keys are per task), if any. */
static int find_cached(struct pg_conn *c, const char *task, const char *key, int64_t now_ms,
                       struct submit_slot *slot, errand_error *err)
{
    static const char sql[] =
        "SELECT id, result, result_ref, cache_expires_at FROM task_runs "
        "WHERE task = $3 AND cache_key = $1 AND state_type = 3 AND state_name = 'Completed' "
        "AND (cache_expires_at IS NULL OR cache_expires_at > $2) "
        "ORDER BY finished DESC LIMIT 1 FOR KEY SHARE";
    struct pg_params p = {0};
    pg_p_text(&p, key);
    pg_p_i64(&p, now_ms);
    pg_p_text(&p, task);
    PGresult *r = pg_query(c, sql, &p, "looking up a cache key", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    if (PQntuples(r) == 1) {
        const char *result = pg_get_text(r, 0, 1), *ref = pg_get_text(r, 0, 2);
        slot->cache_message = mem_printf(CACHE_MESSAGE_FMT, pg_get_text(r, 0, 0));
        slot->cache_result = result ? mem_strdup(result) : NULL;
        slot->cache_result_ref = ref ? mem_strdup(ref) : NULL;
        slot->cache_expires_at = pg_get_i64(r, 0, 3);
        slot->cached = true;
        if (!slot->cache_message || (result && !slot->cache_result) ||
            (ref && !slot->cache_result_ref))
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    PQclear(r);
    return rc;
}

static int insert_run(struct pg_conn *c, const struct run_spec *spec,
                      const struct submit_slot *slot, int64_t now_ms,
                      struct run_count_delta *counts, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO task_runs (id, task, parameters, state_type, state_name, state_timestamp, "
        "state_message, n_states, attempt, max_attempts, created, scheduled_at, finished, "
        "priority, tags, idempotency_key, cache_key, cache_expiration_seconds, "
        "cache_expires_at, retries, retry_delays, retry_jitter_factor, timeout_seconds, "
        "persist_result, result, result_ref, delayed, retry_of) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 0, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
        "$17, $18, $19, $20, $21, $22, $23, $24, ($4::integer = 0 AND $10::bigint > $6::bigint), "
        "$25)";
    static const char sql_tag[] =
        "INSERT INTO task_run_tags (tag, run_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    errand_state state = slot->cached ? ERRAND_STATE_COMPLETED : ERRAND_STATE_SCHEDULED;
    const char *name = slot->cached ? STATE_NAME_CACHED : STATE_NAME_SCHEDULED;
    const char *message = slot->cached ? slot->cache_message : "";
    struct pg_params p = {0};
    pg_p_text(&p, slot->id);
    pg_p_text(&p, spec->task);
    pg_p_text(&p, spec->parameters);
    pg_p_int(&p, (int)state);
    pg_p_text(&p, name);
    pg_p_i64(&p, now_ms);
    pg_p_text(&p, message);
    pg_p_int(&p, spec->retries + 1);
    pg_p_i64(&p, now_ms);
    pg_p_i64(&p, spec->scheduled_at_ms);
    pg_p_ms(&p, slot->cached ? now_ms : 0);
    pg_p_int(&p, spec->priority);
    pg_p_text(&p, spec->tags ? spec->tags : "[]");
    pg_p_text(&p, spec->idempotency_key);
    pg_p_text(&p, spec->cache_key);
    pg_p_positive(&p, spec->cache_expiration_seconds);
    pg_p_ms(&p, slot->cached ? slot->cache_expires_at : 0);
    pg_p_int(&p, spec->retries);
    pg_p_text(&p, slot->delays_text);
    pg_p_double(&p, spec->retry_jitter_factor);
    pg_p_positive(&p, spec->timeout_seconds);
    pg_p_opt_int(&p, spec->persist_result);
    pg_p_text(&p, slot->cached ? slot->cache_result : NULL);
    pg_p_text(&p, slot->cached ? slot->cache_result_ref : NULL);
    pg_p_text(&p, spec->retry_of);
    int rc = pg_command(c, sql, &p, "inserting a run", NULL, err);
    if (rc < 0)
        return rc;
    if ((rc = pg_count_move(c, counts, spec->task, slot->id, -1, state, now_ms, err)) < 0)
        return rc;
    for (size_t i = 0; i < json_array_size(slot->tags); i++) {
        struct pg_params t = {0};
        pg_p_text(&t, json_string_value(json_array_get(slot->tags, i)));
        pg_p_text(&t, slot->id);
        if ((rc = pg_command(c, sql_tag, &t, "tagging a run", NULL, err)) < 0)
            return rc;
    }
    if (state == ERRAND_STATE_SCHEDULED)
        pg_signal_due(c, spec->task);
    return pg_state_append(c, slot->id, 1, state, name, now_ms, message, err);
}

/* The row of a run this submission creates, from the spec (no read back); owned. */
static int created_row(const struct run_spec *spec, const struct submit_slot *slot, int64_t now_ms,
                       struct run_row *r, errand_error *err)
{
    memset(r, 0, sizeof *r);
    r->id = slot->id;
    r->task = spec->task;
    r->parameters = spec->parameters;
    r->state = slot->cached ? ERRAND_STATE_COMPLETED : ERRAND_STATE_SCHEDULED;
    r->state_name = slot->cached ? STATE_NAME_CACHED : STATE_NAME_SCHEDULED;
    r->state_message = slot->cached ? slot->cache_message : "";
    r->state_timestamp = now_ms;
    r->max_attempts = spec->retries + 1;
    r->created = now_ms;
    r->scheduled_at = spec->scheduled_at_ms;
    r->finished = slot->cached ? now_ms : 0;
    r->priority = spec->priority;
    r->tags = spec->tags ? spec->tags : "[]";
    r->idempotency_key = spec->idempotency_key;
    r->cache_key = spec->cache_key;
    r->retries = spec->retries;
    r->retry_delays = slot->delays_text;
    r->retry_jitter_factor = spec->retry_jitter_factor;
    r->timeout_seconds = spec->timeout_seconds;
    r->persist_result = spec->persist_result;
    r->result = slot->cached ? slot->cache_result : NULL;
    r->result_ref = slot->cached ? slot->cache_result_ref : NULL;
    r->retry_of = spec->retry_of;
    int rc = run_row_own_strings(r, err);
    if (rc < 0)
        memset(r, 0, sizeof *r);
    return rc;
}

/* The op: every run of the batch, or (by returning an error) none. Re-runnable. */
static int submit_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct submit_op *op = arg;
    run_tally_reset(&op->counts);
    for (size_t i = 0; i < op->n; i++)
        slot_clear_outputs(&op->slots[i]);
    for (size_t i = 0; i < op->n; i++) {
        const struct run_spec *spec = &op->specs[i];
        struct submit_slot *slot = &op->slots[i];
        int rc;
        if (spec->idempotency_key) {
            bool found = false;
            if ((rc = find_idempotent(c, spec->task, spec->idempotency_key, slot, &found, err)) < 0)
                return rc;
            if (found)
                continue;
        }
        if (spec->cache_key &&
            (rc = find_cached(c, spec->task, spec->cache_key, op->now_ms, slot, err)) < 0)
            return rc;
        if ((rc = insert_run(c, spec, slot, op->now_ms, &op->counts, err)) < 0)
            return rc;
        if (slot->cached) {
            if ((rc = created_row(spec, slot, op->now_ms, &slot->answer, err)) < 0)
                return rc;
            slot->answered = true;
        }
        slot->created = true;
    }
    return pg_counts_apply(c, &op->counts, op->now_ms, err);
}

static char *delays_text(const struct run_spec *spec)
{
    if (spec->n_retry_delays == 0)
        return mem_strdup("[]");
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < spec->n_retry_delays; i++) {
        if (json_array_append_new(arr, json_number_exact(spec->retry_delays[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr ? json_compact(arr) : NULL;
    json_decref(arr);
    return text;
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
    for (size_t i = 0; sub->slots && i < sub->n; i++) {
        slot_clear_outputs(&sub->slots[i]);
        run_row_clear(&sub->slots[i].prebuilt);
        json_decref(sub->slots[i].tags);
        mem_free(sub->slots[i].delays_text);
    }
    mem_free(sub->slots);
    mem_free(sub);
}

/* Everything a submission needs before the writer sees it: ids, texts, the rows it answers
 * with when the runs are created. */
static int submission_prepare(store_submission *sub, const struct run_spec *specs, size_t n,
                              int64_t now_ms, errand_error *err)
{
    if (!(sub->slots = mem_calloc(n, sizeof *sub->slots)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sub->n = n;
    for (size_t i = 0; i < n; i++) {
        struct submit_slot *slot = &sub->slots[i];
        int rc;
        if (uuid_v7(now_ms, slot->id) < 0)
            return error_set(err, ERRAND_EIO, NULL, "cannot generate a task-run id");
        if (!(slot->delays_text = delays_text(&specs[i])))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        if ((rc = created_row(&specs[i], slot, now_ms, &slot->prebuilt, err)) < 0)
            return rc;
        const char *tags = specs[i].tags;
        if (tags && strcmp(tags, "[]") != 0 && !(slot->tags = json_loads(tags, 0, NULL)))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory"); /* specs hold valid JSON */
    }
    sub->op = (struct submit_op){.specs = specs, .slots = sub->slots, .n = n, .now_ms = now_ms};
    return 0;
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
        struct feed_page_mark mark = feed_page_mark(&c->feed);
        size_t signals_len = c->signals_len;
        bool signals_all = c->signals_all;
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
        feed_page_rewind(&c->feed, mark);
        c->signals_len = signals_len;
        c->signals[signals_len] = '\0';
        c->signals_all = signals_all;
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
        if ((rc = store_pg_before_commit(s, c, &err)) == 0 &&
            (rc = pg_exec(c, "COMMIT", &err)) == 0)
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
    for (size_t i = 0; rc == 0 && i < sub->n; i++) {
        struct submit_slot *slot = &sub->slots[i];
        if (created)
            created[i] = slot->created;
        struct run_row *from = slot->answered ? &slot->answer : &slot->prebuilt;
        rows_out[i] = *from;
        memset(from, 0, sizeof *from);
    }
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
    store_pg_norm_id(id, norm);
    struct cancel_op op = {.id = norm, .now_ms = now_ms};
    int rc = store_pg_write(store_pg_of(st), cancel_in_tx, &op, err);
    if (rc == 0)
        *out = op.run;
    else
        run_row_clear(&op.run);
    return rc;
}
