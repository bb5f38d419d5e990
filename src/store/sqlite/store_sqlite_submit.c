/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_submit.c — the client-side writes of the SQLite store: submitting runs (one
 * or a batch) and cancelling one.
 *
 * A batch is ONE writer op, so all or nothing: if any of its runs cannot be stored, none is
 * (docs/api.md). Work that needs no database — ids, the retry-delay JSON, the row of a run
 * that will be created — happens on the caller's thread before the op, so the single writer
 * thread spends its time on SQL. Nothing is allocated after the commit: a row that depends
 * on the database (an idempotency or cache hit, rare) is read inside the op, so running out
 * of memory can never leave runs stored behind an error answer.
 *
 * Idempotency: the key is looked up inside the op, on the writer's connection, which sees
 * the rows inserted earlier in the same transaction — so two submissions with one key
 * yield one run even when they share a batch or a group commit. The partial UNIQUE index
 * on idempotency_key backs this up.
 *
 * Caching: a cache key matching a COMPLETED run (its own result, not a cached copy) whose
 * cache has not expired yields a new run created directly as COMPLETED/"Cached", carrying
 * the source's result, result_ref and cache expiry.
 */
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_deps.h"
#include "store/sqlite/sqlite_transition.h"
#include "store/sqlite/sqlite_webhooks.h"
#include "store/sqlite/store_sqlite.h"
#include "store/submit_slot.h"

#define CANCEL_MESSAGE "cancelled by request"
#define CANCELLING_MESSAGE "cancellation requested"

/* The run of task submitted before under key (keys are per task), if any. */
static int find_idempotent(struct sqlite_conn *c, const char *task, const char *key,
                           struct submit_slot *slot, bool *found, errand_error *err)
{
    *found = false;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_BY_IDEMPOTENCY, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, task);
    sqlite_bind_text(s, 2, key);
    int step = sqlite3_step(s);
    int rc = 0;
    if (step == SQLITE_ROW) {
        store_sqlite_read_run(s, &slot->answer);
        rc = run_row_own_strings(&slot->answer, err);
        slot->answered = *found = rc == 0;
        if (rc < 0)
            memset(&slot->answer, 0, sizeof slot->answer);
    } else if (step != SQLITE_DONE) {
        rc = sqlite_conn_fail(c, "SQL_RUN_BY_IDEMPOTENCY", err);
    }
    sqlite3_reset(s);
    return rc;
}

/* The newest unexpired result of task under cache key (keys are per task), if any. */
static int find_cached(struct sqlite_conn *c, const char *task, const char *key, int64_t now_ms,
                       struct submit_slot *slot, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CACHE_SOURCE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, key);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite_bind_text(s, 3, task);
    int step = sqlite3_step(s);
    int rc = 0;
    if (step == SQLITE_ROW) {
        const char *result = sqlite_col_text(s, 1), *ref = sqlite_col_text(s, 2);
        slot->cache_message = mem_printf(SUBMIT_CACHE_MESSAGE_FMT, sqlite_col_text(s, 0));
        slot->cache_result = result ? mem_strdup(result) : NULL;
        slot->cache_result_ref = ref ? mem_strdup(ref) : NULL;
        slot->cache_expires_at = sqlite_col_ms(s, 3);
        slot->cached = true;
        if (!slot->cache_message || (result && !slot->cache_result) ||
            (ref && !slot->cache_result_ref))
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    } else if (step != SQLITE_DONE) {
        rc = sqlite_conn_fail(c, "SQL_CACHE_SOURCE", err);
    }
    sqlite3_reset(s);
    return rc;
}

static int insert_run(struct sqlite_conn *c, const struct run_spec *spec,
                      const struct submit_slot *slot, int64_t now_ms,
                      struct run_count_delta *counts, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_INSERT, err);
    if (!s)
        return ERRAND_ESTORE;
    errand_state state = slot->cached ? ERRAND_STATE_COMPLETED : ERRAND_STATE_SCHEDULED;
    const char *name = slot->cached ? STATE_NAME_CACHED : STATE_NAME_SCHEDULED;
    const char *message = slot->cached ? slot->cache_message : "";
    const struct run_deps_plan *deps = slot->has_deps ? &slot->deps : NULL;
    if (deps) {
        state = deps->state;
        name = deps->name;
        message = deps->message;
    }
    bool ended = state_is_final(state);
    sqlite_bind_text(s, 1, slot->id);
    sqlite_bind_text(s, 2, spec->task);
    sqlite_bind_text(s, 3, deps && deps->parameters ? deps->parameters : spec->parameters);
    sqlite3_bind_int(s, 4, (int)state);
    sqlite_bind_text(s, 5, name);
    sqlite3_bind_int64(s, 6, now_ms);
    sqlite_bind_text(s, 7, message);
    sqlite3_bind_int(s, 8, spec->retries + 1);
    sqlite3_bind_int64(s, 9, now_ms);
    sqlite3_bind_int64(s, 10, spec->scheduled_at_ms);
    sqlite_bind_ms(s, 11, ended ? now_ms : 0);
    sqlite3_bind_int(s, 12, spec->priority);
    sqlite_bind_text(s, 13, spec->tags ? spec->tags : "[]");
    sqlite_bind_text(s, 14, spec->idempotency_key);
    sqlite_bind_text(s, 15, spec->cache_key);
    sqlite_bind_positive(s, 16, spec->cache_expiration_seconds);
    sqlite_bind_ms(s, 17, slot->cached ? slot->cache_expires_at : 0);
    sqlite3_bind_int(s, 18, spec->retries);
    sqlite_bind_text(s, 19, slot->delays_text);
    sqlite3_bind_double(s, 20, spec->retry_jitter_factor);
    sqlite_bind_positive(s, 21, spec->timeout_seconds);
    sqlite_bind_opt_int(s, 22, spec->persist_result);
    sqlite_bind_text(s, 23, slot->cached ? slot->cache_result : NULL);
    sqlite_bind_text(s, 24, slot->cached ? slot->cache_result_ref : NULL);
    sqlite_bind_text(s, 25, spec->retry_of);
    sqlite_bind_text(s, 26, spec->traceparent);
    sqlite_bind_text(s, 27, deps ? deps->wait_for : NULL);
    sqlite_bind_text(s, 28, deps ? deps->result_refs : NULL);
    sqlite3_bind_int(s, 29, deps ? deps->pending : 0);
    sqlite3_bind_int(s, 30, spec->allow_upstream_failure ? 1 : 0);
    int rc = sqlite_conn_step_done(c, s, SQL_RUN_INSERT, err);
    if (rc < 0)
        return rc;
    if ((rc = run_count_move(c, counts, spec->task, slot->id, -1, state, now_ms, err)) < 0)
        return rc;
    if (ended)
        run_finals_add(&c->finals, spec->task, state, slot->cached, -1);
    if (state == ERRAND_STATE_FAILED &&
        (rc = sqlite_failure_add(c, spec->task, slot->id, message, now_ms, err)) < 0)
        return rc;
    bool waiting = deps && deps->pending > 0; /* counted with the delayed runs */
    if ((waiting || run_is_delayed(state, spec->scheduled_at_ms, now_ms)) &&
        (rc = run_count_delayed(c, counts, spec->task, 1, now_ms, err)) < 0)
        return rc;
    if (deps && (rc = sqlite_deps_register(c, slot->id, deps, err)) < 0)
        return rc;
    /* a run born final (a cache hit, or an upstream that already failed) ends here */
    if (spec->webhook_url && (rc = sqlite_webhook_run_set(c, slot->id, spec->webhook_url, err)) < 0)
        return rc;
    if (ended && (rc = sqlite_webhook_run_ended(c, slot->id, spec->task, now_ms, err)) < 0)
        return rc;
    /* One row per statement: a multi-row insert would need a statement journal (see
     * sqlite_writer.c, cost note). */
    for (size_t i = 0; i < json_array_size(slot->tags); i++) {
        if (!(s = sqlite_conn_stmt(c, SQL_TAG_INSERT, err)))
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, json_string_value(json_array_get(slot->tags, i)));
        sqlite_bind_text(s, 2, slot->id);
        if ((rc = sqlite_conn_step_done(c, s, SQL_TAG_INSERT, err)) < 0)
            return rc;
    }
    return sqlite_state_append(c, slot->id, spec->task, 1, state, name, now_ms, message, err);
}

static int read_run(struct sqlite_conn *c, const char *id, struct run_row *out, errand_error *err);

/* How run i of the batch starts, given its upstream runs ("runs[N]" resolved against the
 * batch's earlier runs, as created or found by their idempotency key). */
static int plan_deps(struct sqlite_conn *c, struct submit_op *op, size_t i, errand_error *err)
{
    const char **ids = mem_calloc(i ? i : 1, sizeof *ids);
    if (!ids)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t j = 0; j < i; j++)
        ids[j] = op->slots[j].answered ? op->slots[j].answer.id : op->slots[j].id;
    struct submit_slot *slot = &op->slots[i];
    run_deps_plan_clear(&slot->deps);
    int rc = sqlite_deps_plan(c, &op->specs[i], ids, i, &slot->deps, err);
    mem_free(ids);
    slot->has_deps = rc == 0;
    return rc;
}

/* The writer op: every run of the batch, or (by returning an error) none. */
static int submit_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct submit_op *op = arg;
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
        if (spec->wait_for && !slot->cached && (rc = plan_deps(c, op, i, err)) < 0)
            return rc;
        if ((rc = insert_run(c, spec, slot, op->now_ms, &op->counts, err)) < 0)
            return rc;
        if (slot->has_deps) { /* its state depends on the upstream runs: read it back */
            if ((rc = read_run(c, slot->id, &slot->answer, err)) < 0)
                return rc;
            slot->answered = true;
        } else if (slot->cached) {
            if ((rc = submit_slot_created_row(spec, slot, op->now_ms, &slot->answer, err)) < 0)
                return rc;
            slot->answered = true;
        }
        slot->created = true;
    }
    return sqlite_counts_apply(c, &op->counts, op->now_ms, err);
}

/* A submission on its way through the writer (store_submit_begin .. store_submit_end). */
struct store_submission {
    struct submit_op op;
    struct submit_slot *slots;
    size_t n;
    int rc; /* the op's outcome, set on the writer thread before done is called */
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

static void submission_committed(void *arg, int rc, const errand_error *err)
{
    store_submission *sub = arg;
    sub->rc = rc;
    if (rc < 0)
        sub->err = *err;
    sub->done(sub->done_arg);
}

int store_sqlite_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                              void (*done)(void *arg), void *arg, store_submission **out,
                              errand_error *err)
{
    *out = NULL;
    store_submission *sub = mem_calloc(1, sizeof *sub);
    if (!sub)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sub->done = done;
    sub->done_arg = arg;
    int rc = n ? submission_prepare(sub, specs, n, now_ms, err) : 0;
    if (rc == 0)
        rc = sqlite_writer_start_op(store_sqlite_of(st)->writer, submit_in_writer, &sub->op,
                                    submission_committed, sub, err);
    if (rc < 0) {
        submission_free(sub);
        return rc;
    }
    *out = sub;
    return 0;
}

int store_sqlite_submit_end(store_submission *sub, struct run_row *rows_out, bool *created,
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

/* Reads run id from the writer's connection. Inside the op, so that a failure to read it
 * undoes the cancel instead of reporting an error for a done cancel. */
static int read_run(struct sqlite_conn *c, const char *id, struct run_row *out, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_GET, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, id);
    int step = sqlite3_step(s);
    int rc;
    if (step == SQLITE_ROW) {
        store_sqlite_read_run(s, out);
        if ((rc = run_row_own_strings(out, err)) < 0)
            memset(out, 0, sizeof *out);
    } else if (step == SQLITE_DONE) {
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    } else {
        rc = sqlite_conn_fail(c, "SQL_RUN_GET", err);
    }
    sqlite3_reset(s);
    return rc;
}

static int cancel_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct cancel_op *op = arg;
    struct run_current cur;
    int rc = sqlite_run_current_get(c, op->id, false, &cur, err);
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
        if ((rc = sqlite_transition_write(c, &cur, &u, op->now_ms, &counts, err)) < 0 ||
            (rc = sqlite_counts_apply(c, &counts, op->now_ms, err)) < 0)
            return rc;
    }
    return read_run(c, op->id, &op->run, err);
}

int store_sqlite_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out,
                        errand_error *err)
{
    memset(out, 0, sizeof *out);
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct cancel_op op = {.id = norm, .now_ms = now_ms};
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, cancel_in_writer, &op, err);
    if (rc == 0)
        *out = op.run;
    else
        run_row_clear(&op.run);
    return rc;
}
