/*
 * store.c — picks the store backend from the database URL and forwards every call to it.
 * Handlers call store_* and never know which database is behind it.
 *
 *   sqlite://...                   the embedded SQLite store (store_sqlite.c)
 *   postgresql://... postgres://   PostgreSQL (not built yet: refused with a clear message)
 */
#include "server/store.h"

#include <string.h>

#include "core/error.h"

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
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "PostgreSQL store is not built yet; use sqlite:///path/errand.db");
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

const char *store_kind(const store *st)
{
    return st->backend->kind;
}

int store_submit(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                 json_t **runs_out, bool *created, errand_error *err)
{
    return st->backend->submit(st, specs, n, now_ms, runs_out, created, err);
}

int store_get_run(store *st, const char *id, json_t **run_out, errand_error *err)
{
    return st->backend->get_run(st, id, run_out, err);
}

int store_get_state(store *st, const char *id, errand_state *out, errand_error *err)
{
    return st->backend->get_state(st, id, out, err);
}

int store_list_runs(store *st, const struct run_filter *f, json_t **runs_out, char next_cursor[37],
                    errand_error *err)
{
    return st->backend->list_runs(st, f, runs_out, next_cursor, err);
}

int store_get_states(store *st, const char *id, json_t **states_out, errand_error *err)
{
    return st->backend->get_states(st, id, states_out, err);
}

int store_get_logs(store *st, const char *id, int64_t after_seq, int limit, json_t **logs_out,
                   int64_t *next_after, errand_error *err)
{
    return st->backend->get_logs(st, id, after_seq, limit, logs_out, next_after, err);
}

int store_cancel(store *st, const char *id, int64_t now_ms, json_t **run_out, errand_error *err)
{
    return st->backend->cancel(st, id, now_ms, run_out, err);
}

int store_claim(store *st, const struct claim_request *req, int64_t now_ms, json_t **runs_out,
                errand_error *err)
{
    return st->backend->claim(st, req, now_ms, runs_out, err);
}

int store_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                    int lease_seconds, int64_t now_ms, json_t **results_out, bool *any_stale,
                    errand_error *err)
{
    return st->backend->heartbeat(st, worker, leases, n, lease_seconds, now_ms, results_out,
                                  any_stale, err);
}

int store_report(store *st, const char *worker, const struct run_report *reports, size_t n,
                 const struct log_entry *logs, size_t n_logs, int64_t now_ms, json_t **results_out,
                 bool *any_stale, errand_error *err)
{
    return st->backend->report(st, worker, reports, n, logs, n_logs, now_ms, results_out, any_stale,
                               err);
}

int store_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err)
{
    return st->backend->sweep(st, now_ms, counts, err);
}

int store_list_workers(store *st, int64_t now_ms, int64_t active_window_ms, json_t **out,
                       errand_error *err)
{
    return st->backend->list_workers(st, now_ms, active_window_ms, out, err);
}

int store_count_by_state(store *st, int64_t counts[8], errand_error *err)
{
    return st->backend->count_by_state(st, counts, err);
}
