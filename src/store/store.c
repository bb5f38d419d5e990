/* SPDX-License-Identifier: MIT */
/*
 * store.c — picks the store backend from the database URL and forwards every call to it.
 * Handlers call store_* and never know which database is behind it. A claim request is
 * checked here, once for every backend.
 *
 *   sqlite://...                   the embedded SQLite store (src/store/sqlite/)
 *   postgresql://... postgres://   PostgreSQL (src/store/postgres/), when built with libpq
 */
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/wire_limits.h"

#define SQLITE_SCHEME "sqlite://"
#define PG_SCHEME "postgresql://"
#define PG_SCHEME_SHORT "postgres://"

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int store_open(const char *url, const struct store_options *opt, store **out, errand_error *err)
{
    *out = NULL;
    if (!url || !url[0])
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "ERRAND_DATABASE_URL is empty; use sqlite:///path/errand.db");
    if (has_prefix(url, SQLITE_SCHEME))
        return store_sqlite_backend.open(url, opt, out, err);
    if (has_prefix(url, PG_SCHEME) || has_prefix(url, PG_SCHEME_SHORT))
#ifdef ERRAND_HAVE_PQ
        return store_pg_backend.open(url, opt, out, err);
#else
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "this errand was built without libpq, so it has no PostgreSQL store; "
                         "rebuild with libpq-dev installed, or use sqlite:///path/errand.db");
#endif
    return error_set(err, ERRAND_EINVAL, "database_url",
                     "ERRAND_DATABASE_URL '%s' has an unknown scheme; use sqlite:///path/errand.db "
                     "or postgresql://...",
                     url);
}

void store_close(store *st)
{
    if (st)
        st->backend->close(st);
}

void store_on_signal(store *st, void (*fn)(void *arg, enum store_signal sig, const char *key),
                     void *arg)
{
    if (st->backend->on_signal)
        st->backend->on_signal(st, fn, arg);
}

void store_observe(store *st, const struct store_observer *o)
{
    if (st->backend->observe)
        st->backend->observe(st, o);
}

int store_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                       errand_error *err)
{
    for (size_t i = 0; i < n; i++)
        due_out[i] = 0;
    return n == 0 ? 0 : st->backend->oldest_ready(st, tasks, n, due_out, err);
}

const char *store_kind(const store *st)
{
    return st->backend->kind;
}

int store_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                       void (*done)(void *arg), void *arg, store_submission **out,
                       errand_error *err)
{
    return st->backend->submit_begin(st, specs, n, now_ms, done, arg, out, err);
}

int store_submit_end(store *st, store_submission *sub, struct run_row *rows_out, bool *created,
                     errand_error *err)
{
    return st->backend->submit_end(sub, rows_out, created, err);
}

/* A caller of store_submit waiting for its submission. */
struct submit_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
};

static void submit_waited(void *arg)
{
    struct submit_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

int store_submit(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                 struct run_row *rows_out, bool *created, errand_error *err)
{
    struct submit_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    store_submission *sub = NULL;
    int rc = store_submit_begin(st, specs, n, now_ms, submit_waited, &w, &sub, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = store_submit_end(st, sub, rows_out, created, err);
    } else {
        memset(rows_out, 0, n * sizeof *rows_out);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

int store_get_run(store *st, const char *id, struct run_row *out, errand_error *err)
{
    return st->backend->get_run(st, id, out, err);
}

int store_get_state(store *st, const char *id, errand_state *out, errand_error *err)
{
    return st->backend->get_state(st, id, out, err);
}

int store_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                    char next_cursor[37], errand_error *err)
{
    return st->backend->list_runs(st, f, out, next_cursor, err);
}

int store_get_states(store *st, const char *id, struct state_history *out, errand_error *err)
{
    return st->backend->get_states(st, id, out, err);
}

int store_get_logs(store *st, const char *id, int64_t after_seq, int limit, struct log_page *out,
                   errand_error *err)
{
    return st->backend->get_logs(st, id, after_seq, limit, out, err);
}

int store_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out, errand_error *err)
{
    return st->backend->cancel(st, id, now_ms, out, err);
}

int store_claim(store *st, const struct claim_request *req, int64_t now_ms, struct run_list *out,
                errand_error *err)
{
    out->rows = NULL;
    out->n = 0;
    if (!req->worker || !req->worker[0])
        return error_set(err, ERRAND_EINVAL, "worker", "field 'worker' must be a non-empty string");
    if (req->n_tasks == 0)
        return error_set(err, ERRAND_EINVAL, "tasks", "field 'tasks' must name at least one task");
    if (req->limit < 1 || req->limit > WIRE_CLAIM_LIMIT_MAX)
        return error_set(err, ERRAND_EINVAL, "limit",
                         "field 'limit' must be between 1 and %d, got %d", WIRE_CLAIM_LIMIT_MAX,
                         req->limit);
    return st->backend->claim(st, req, now_ms, out, err);
}

char *store_claim_tasks_json(const struct claim_request *req)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < req->n_tasks; i++) {
        if (json_array_append_new(arr, json_string(req->tasks[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr ? json_compact(arr) : NULL;
    json_decref(arr);
    return text;
}

int store_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                    int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                    errand_error *err)
{
    return st->backend->heartbeat(st, worker, leases, n, lease_seconds, now_ms, answers, err);
}

int store_report(store *st, const char *worker, const char *batch_id,
                 const struct run_report *reports, size_t n, const struct log_entry *logs,
                 size_t n_logs, int64_t now_ms, struct lease_answer *answers, errand_error *err)
{
    return st->backend->report(st, worker, batch_id, reports, n, logs, n_logs, now_ms, answers,
                               err);
}

bool store_reports_may_be_lost(const struct run_report *reports, size_t n, size_t n_logs)
{
    if (n == 0 || n_logs > 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (reports[i].state != ERRAND_STATE_RUNNING)
            return false;
    return true;
}

int store_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err)
{
    return st->backend->sweep(st, now_ms, counts, err);
}

int store_delete_expired(store *st, int64_t finished_before_ms, int64_t workers_seen_before_ms,
                         int limit, struct retention_counts *counts, struct ref_list *freed,
                         errand_error *err)
{
    return st->backend->delete_expired(st, finished_before_ms, workers_seen_before_ms, limit,
                                       counts, freed, err);
}

int store_list_workers(store *st, const struct worker_cursor *cursor, int limit,
                       struct worker_list *out, bool *more, errand_error *err)
{
    return st->backend->list_workers(st, cursor, limit, out, more, err);
}

int store_count_by_state(store *st, int64_t counts[8], errand_error *err)
{
    return st->backend->count_by_state(st, counts, err);
}

void run_event_list_clear(struct run_event_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->items[i].task);
        mem_free(l->items[i].name);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

int store_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                      errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (limit < 1)
        return error_set(err, ERRAND_EINVAL, "limit", "reading events needs a limit >= 1");
    return st->backend->read_events(st, after_seq, limit, out, err);
}

int store_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err)
{
    *first = *last = 0;
    return st->backend->event_bounds(st, first, last, err);
}

int store_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                       errand_error *err)
{
    int ignored = 0;
    if (!deleted)
        deleted = &ignored;
    *deleted = 0;
    if (limit < 1)
        return error_set(err, ERRAND_EINVAL, "limit", "pruning events needs a limit >= 1");
    if (keep < 0)
        return error_set(err, ERRAND_EINVAL, "keep", "pruning events needs keep >= 0");
    return st->backend->prune_events(st, before_ms, keep, limit, deleted, err);
}

void store_on_events(store *st, void (*fn)(void *arg), void *arg)
{
    st->backend->on_events(st, fn, arg);
}

size_t store_stats_find(const struct store_stats *s, const char *task)
{
    size_t lo = 0, hi = s->n_tasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(s->tasks[mid].task, task);
        if (cmp == 0)
            return mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

void store_stats_clear(struct store_stats *s)
{
    for (size_t i = 0; i < s->n_tasks; i++) {
        mem_free(s->tasks[i].task);
        mem_free(s->tasks[i].last_failure_id);
    }
    mem_free(s->tasks);
    mem_free(s->minutes);
    mem_free(s->samples);
    memset(s, 0, sizeof *s);
}

int store_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                     errand_error *err)
{
    memset(out, 0, sizeof *out);
    if (sample_limit < 0)
        return error_set(err, ERRAND_EINVAL, "sample_limit", "a sample limit must be >= 0");
    return st->backend->read_stats(st, since_ms, sample_limit, out, err);
}

void failure_group_list_clear(struct failure_group_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->items[i].task);
        mem_free(l->items[i].fingerprint);
        mem_free(l->items[i].message);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

int store_list_failures(store *st, const char *task, int limit, struct failure_group_list *out,
                        errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (limit < 1)
        return error_set(err, ERRAND_EINVAL, "limit", "listing failures needs a limit >= 1");
    return st->backend->list_failures(st, task, limit, out, err);
}

int store_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                      struct ref_list *freed, errand_error *err)
{
    return st->backend->delete_runs(st, ids, n, deleted, freed, err);
}

int store_set_paused(store *st, const char *task, bool paused, errand_error *err)
{
    return st->backend->set_paused(st, task, paused, err);
}

int store_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                    errand_error *err)
{
    if (!st->backend->set_limit)
        return error_set(err, ERRAND_EUNAVAILABLE, NULL,
                         "concurrency limits are not supported by the %s store", store_kind(st));
    return st->backend->set_limit(st, kind, name, max_running, err);
}

int store_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                   errand_error *err)
{
    if (!st->backend->set_rate)
        return error_set(err, ERRAND_EUNAVAILABLE, NULL,
                         "rate limits are not supported by the %s store", store_kind(st));
    return st->backend->set_rate(st, task, max_starts, period_ms, err);
}

int store_list_limits(store *st, struct limit_list *out, errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (!st->backend->list_limits)
        return 0;
    return st->backend->list_limits(st, out, err);
}

void limit_list_clear(struct limit_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct limit_record *r = &l->items[i];
        mem_free(r->name);
        for (size_t j = 0; j < r->n_holders; j++) {
            mem_free(r->holders[j].task);
            mem_free(r->holders[j].worker);
        }
        mem_free(r->holders);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

void store_release_memory(store *st)
{
    st->backend->release_memory(st);
}

int store_ready(store *st, errand_error *err)
{
    return st->backend->ready(st, err);
}

/* --- the lists' memory --------------------------------------------------------------- */

void state_history_clear(struct state_history *h)
{
    for (size_t i = 0; i < h->n; i++) {
        mem_free(h->items[i].name);
        mem_free(h->items[i].message);
    }
    mem_free(h->items);
    h->items = NULL;
    h->n = 0;
}

void log_page_clear(struct log_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        mem_free(p->items[i].message);
    mem_free(p->items);
    p->items = NULL;
    p->n = 0;
}

void ref_list_clear(struct ref_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        mem_free(l->refs[i]);
    mem_free(l->refs);
    l->refs = NULL;
    l->n = 0;
}

void worker_list_clear(struct worker_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->items[i].name);
        mem_free(l->items[i].tasks);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

int store_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                       struct schedule_row *out, bool *created, errand_error *err)
{
    bool ignored;
    return st->backend->schedule_put(st, s, now_ms, out, created ? created : &ignored, err);
}

int store_schedule_get(store *st, const char *name, struct schedule_row *out, errand_error *err)
{
    return st->backend->schedule_get(st, name, out, err);
}

int store_schedule_list(store *st, struct schedule_list *out, errand_error *err)
{
    return st->backend->schedule_list(st, out, err);
}

int store_schedule_delete(store *st, const char *name, errand_error *err)
{
    return st->backend->schedule_delete(st, name, err);
}

int store_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                              int64_t now_ms, errand_error *err)
{
    return st->backend->schedule_set_paused(st, name, paused, next_tick, now_ms, err);
}

int store_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                       errand_error *err)
{
    return st->backend->schedule_due(st, now_ms, limit, out, err);
}

int store_schedule_advance(store *st, const char *name, int64_t generation, int64_t from_tick,
                           int64_t to_tick, int64_t fired_tick, const char *run_id, int64_t now_ms,
                           bool *advanced, errand_error *err)
{
    bool ignored;
    return st->backend->schedule_advance(st, name, generation, from_tick, to_tick, fired_tick,
                                         run_id, now_ms, advanced ? advanced : &ignored, err);
}

int store_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                      errand_error *err)
{
    return st->backend->webhook_set(st, task, url, now_ms, err);
}

int store_webhook_list(store *st, struct task_webhook_list *out, errand_error *err)
{
    return st->backend->webhook_list(st, out, err);
}

int store_webhook_pending(store *st, int limit, struct webhook_delivery_list *out, int64_t *total,
                          errand_error *err)
{
    int64_t ignored;
    return st->backend->webhook_pending(st, limit, out, total ? total : &ignored, err);
}

int store_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                       struct webhook_delivery_list *out, errand_error *err)
{
    return st->backend->webhook_take(st, now_ms, hold_until_ms, limit, out, err);
}

int store_webhook_done(store *st, int64_t id, errand_error *err)
{
    return st->backend->webhook_done(st, id, err);
}

int store_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at, const char *error,
                        errand_error *err)
{
    return st->backend->webhook_retry(st, id, attempt, next_at, error, err);
}
