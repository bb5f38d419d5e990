/*
 * store.h — the one interface to task-run storage. Backends (store_sqlite.c, later
 * store_pg.c) implement struct store_backend; store.c picks one from the database URL.
 * Everything the server persists goes through here; handlers never see SQL.
 *
 * Every call is thread-safe: HTTP handler threads call the store concurrently. Writes in the
 * SQLite backend are funnelled to one writer thread that commits them in groups; a call
 * returns only after its write is committed (durability per ERRAND_DATABASE_SYNC).
 *
 * Runs come back as jansson objects in the wire format of docs/api.md ("task-run object");
 * the caller owns the returned reference (json_decref).
 * All functions return 0 or a negative ERRAND_E* code and fill err.
 */
#ifndef ERRAND_SERVER_STORE_H
#define ERRAND_SERVER_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "server/run_spec.h"

typedef struct store store;

struct store_options {
    const char *sync;         /* "full" | "normal" | "off" (SQLite synchronous) */
    int default_lease_seconds;
};

/* Opens (and creates/migrates) the store at url: sqlite:///abs/path.db, sqlite://rel.db
 * or postgresql://... . */
int store_open(const char *url, const struct store_options *opt, store **out, errand_error *err);
void store_close(store *st);
const char *store_kind(const store *st); /* "sqlite" | "postgresql" */

/* --- client side ------------------------------------------------------------------- */

/* Inserts n runs, all or nothing. For each: an idempotency key seen before yields the stored
 * run with created[i] = false; a cache key matching an unexpired COMPLETED run yields a new
 * run created directly as COMPLETED/"Cached" carrying that run's result and result_ref.
 * runs_out[i] receives the run object (new reference). */
int store_submit(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                 json_t **runs_out, bool *created, errand_error *err);

int store_get_run(store *st, const char *id, json_t **run_out, errand_error *err);

/* Only the state type of a run (cheap; for long-poll waits). */
int store_get_state(store *st, const char *id, errand_state *out, errand_error *err);

struct run_filter {
    unsigned state_mask; /* bit (1u << errand_state); 0 = all */
    const char *task;    /* NULL = any */
    const char *tag;     /* NULL = any */
    const char *cursor;  /* id: runs strictly older than it; NULL = from the newest */
    int limit;           /* 1..1000 */
};
/* *runs_out: JSON array newest first; next_cursor set to the last id when more may follow,
 * else "" . */
int store_list_runs(store *st, const struct run_filter *f, json_t **runs_out,
                    char next_cursor[37], errand_error *err);

int store_get_states(store *st, const char *id, json_t **states_out, errand_error *err);
int store_get_logs(store *st, const char *id, int64_t after_seq, int limit, json_t **logs_out,
                   int64_t *next_after, errand_error *err);

/* Cancel: ERRAND_ECONFLICT if final; *run_out the run afterwards. */
int store_cancel(store *st, const char *id, int64_t now_ms, json_t **run_out, errand_error *err);

/* --- worker side ------------------------------------------------------------------- */

struct claim_request {
    const char *worker;
    const char *const *tasks;
    size_t n_tasks;
    int limit;
    int lease_seconds;
};
/* Claims up to limit due runs (SCHEDULED, scheduled_at <= now) of those tasks, highest
 * priority then oldest first: PENDING, attempt+1, new lease token. *runs_out: JSON array of
 * claim objects (docs/api.md, claim answer). Also records the worker as seen. */
int store_claim(store *st, const struct claim_request *req, int64_t now_ms, json_t **runs_out,
                errand_error *err);

struct lease_ref {
    const char *id;
    const char *lease_token;
};
/* Extends leases by lease_seconds. *results_out: array of {"id","status","cancel"}.
 * *any_stale set when some item was refused (409) or unknown (404). */
int store_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                    int lease_seconds, int64_t now_ms, json_t **results_out, bool *any_stale,
                    errand_error *err);

struct run_report {
    const char *id;
    const char *lease_token;
    errand_state state;       /* RUNNING, COMPLETED, FAILED, CANCELLED, SCHEDULED (hand-back) */
    const json_t *result;     /* COMPLETED: inline result or NULL */
    const char *result_ref;   /* COMPLETED: storage reference or NULL */
    const char *message;      /* FAILED: why */
    bool retryable;           /* FAILED: false forbids retry */
};
struct log_entry {
    const char *id;        /* task-run id */
    int64_t timestamp_ms;
    int level;             /* errand_log_level */
    const char *message;
};
/* Applies reports in order and appends logs, in one transaction. *results_out: array of
 * {"id","status","state"}; *any_stale when some item was refused. */
int store_report(store *st, const char *worker, const struct run_report *reports, size_t n,
                 const struct log_entry *logs, size_t n_logs, int64_t now_ms,
                 json_t **results_out, bool *any_stale, errand_error *err);

/* What one sweep did: leases expired (state_on_lease_expired), delayed runs that became due
 * and entered the ready queue. */
struct sweep_counts {
    int expired;
    int promoted;
};
/* Expires leases that ran out before now and promotes the delayed runs due by now, in
 * bounded transactions until none is left; *counts (optional) says how many. */
int store_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err);

/* {"workers": [...]} as in docs/api.md; active = seen within active_window_ms. */
int store_list_workers(store *st, int64_t now_ms, int64_t active_window_ms, json_t **out,
                       errand_error *err);

/* Counts of runs by state type: counts[ERRAND_STATE_...]. */
int store_count_by_state(store *st, int64_t counts[8], errand_error *err);

/* --- backend plumbing (store.c dispatches to one of these) -------------------------- */

struct store_backend {
    const char *kind;
    int (*open)(const char *url, const struct store_options *opt, store **out,
                errand_error *err);
    void (*close)(store *st);
    int (*submit)(store *, const struct run_spec *, size_t, int64_t, json_t **, bool *,
                  errand_error *);
    int (*get_run)(store *, const char *, json_t **, errand_error *);
    int (*get_state)(store *, const char *, errand_state *, errand_error *);
    int (*list_runs)(store *, const struct run_filter *, json_t **, char[37], errand_error *);
    int (*get_states)(store *, const char *, json_t **, errand_error *);
    int (*get_logs)(store *, const char *, int64_t, int, json_t **, int64_t *, errand_error *);
    int (*cancel)(store *, const char *, int64_t, json_t **, errand_error *);
    int (*claim)(store *, const struct claim_request *, int64_t, json_t **, errand_error *);
    int (*heartbeat)(store *, const char *, const struct lease_ref *, size_t, int, int64_t,
                     json_t **, bool *, errand_error *);
    int (*report)(store *, const char *, const struct run_report *, size_t,
                  const struct log_entry *, size_t, int64_t, json_t **, bool *, errand_error *);
    int (*sweep)(store *, int64_t, struct sweep_counts *, errand_error *);
    int (*list_workers)(store *, int64_t, int64_t, json_t **, errand_error *);
    int (*count_by_state)(store *, int64_t[8], errand_error *);
};

/* Every backend's store struct begins with this header, so store.c can dispatch. */
struct store {
    const struct store_backend *backend;
};

extern const struct store_backend store_sqlite_backend;

#endif
