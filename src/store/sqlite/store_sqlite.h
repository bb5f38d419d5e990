/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite.h — the SQLite backend's shared parts, for its own files only
 * (store_sqlite.c: open, close and reads; store_sqlite_list.c: listing runs;
 * store_sqlite_submit.c: submissions and cancel; store_sqlite_worker.c: claim, heartbeat,
 * report, sweep; store_sqlite_retention.c: deleting what expired; store_sqlite_events.c: the
 * change feed; store_sqlite_stats.c: the dashboard's figures and paused tasks). Everyone else uses
 * store.h.
 *
 * Threads: `writer` funnels every write to the writer thread (sqlite_writer.h); `readers`
 * hands out read-only connections (sqlite_pool.h). The struct itself is immutable after
 * open, so any thread may read it.
 */
#ifndef ERRAND_STORE_SQLITE_STORE_SQLITE_H
#define ERRAND_STORE_SQLITE_STORE_SQLITE_H

#include "core/uuid.h"
#include "store/run_row.h"
#include "store/sqlite/sqlite_checkpointer.h"
#include "store/sqlite/sqlite_pool.h"
#include "store/sqlite/sqlite_writer.h"
#include "store/store.h"

struct store_sqlite {
    struct store base; /* first: store.c dispatches through base.backend */
    sqlite_writer *writer;
    sqlite_pool *readers;
    sqlite_checkpointer *checkpointer;
    int default_lease_seconds;
    int max_redeliveries;            /* ERRAND_MAX_REDELIVERIES */
    struct sqlite_conn *writer_conn; /* the writer's; store_observe points it at observer */
    struct store_observer observer;  /* set before the store is shared */
};

static inline struct store_sqlite *store_sqlite_of(store *st)
{
    return (struct store_sqlite *)st;
}

/* The number of state types (errand_state), as the counters index them. */
#define STORE_SQLITE_STATE_TYPES 8
/* Reads a counter statement whose rows are (state_type, n) — SQL_COUNTS, or SQL_TASK_COUNTS
 * for task (?1) — into counts (0 for a state without a row). */
int store_sqlite_read_counts(struct sqlite_conn *c, enum sql_id id, const char *task,
                             int64_t counts[STORE_SQLITE_STATE_TYPES], errand_error *err);

/* Points r at the columns of the current row of s (enum run_col order); the strings stay
 * valid until s is stepped or reset. */
void store_sqlite_read_run(sqlite3_stmt *s, struct run_row *r);

/* Shared by the claim (store_sqlite_claim.c) and the rest of the worker protocol
 * (store_sqlite_worker.c). */
/* A worker's last_seen is rewritten at most this often unless something else changes
 * (active means seen within three lease periods, so a second is plenty precise). */
#define STORE_SQLITE_WORKER_SEEN_MS 1000
/* How long a claim's request id is remembered: a worker retries a claim within seconds, and
 * what the claim handed out is answered again only while still PENDING under its lease. */
#define STORE_SQLITE_CLAIM_REQUEST_MEMORY_MS (5LL * 60 * 1000)
/* Delayed runs moved into the ready queue per claim or sweep transaction: bounds the work a
 * backlog of runs all due at once adds to one transaction (the next one moves more). */
#define STORE_SQLITE_PROMOTE_BATCH 1000
/* A lease of lease_seconds (0 = the store's default), in ms. */
int64_t store_sqlite_lease_ms(const struct store_sqlite *s, int lease_seconds);
/* Moves up to a batch of delayed runs that are due at now_ms into the ready queue;
 * *n_promoted (optional) counts them. */
int store_sqlite_promote_due(struct sqlite_conn *c, int64_t now_ms, int *n_promoted,
                             errand_error *err);

/* The operations, one per file group. */
int store_sqlite_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                              void (*done)(void *arg), void *arg, store_submission **out,
                              errand_error *err);
int store_sqlite_submit_end(store_submission *sub, struct run_row *rows_out, bool *created,
                            errand_error *err);
int store_sqlite_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                           char next_cursor[37], errand_error *err);
int store_sqlite_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out,
                        errand_error *err);
int store_sqlite_claim(store *st, const struct claim_request *req, int64_t now_ms,
                       struct run_list *out, errand_error *err);
int store_sqlite_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                           int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                           errand_error *err);
int store_sqlite_report(store *st, const char *worker, const char *batch_id,
                        const struct run_report *reports, size_t n, const struct log_entry *logs,
                        size_t n_logs, int64_t now_ms, struct lease_answer *answers,
                        errand_error *err);
int store_sqlite_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err);
int store_sqlite_delete_expired(store *st, int64_t finished_before_ms,
                                int64_t workers_seen_before_ms, int limit,
                                struct retention_counts *counts, struct ref_list *freed,
                                errand_error *err);
int store_sqlite_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                             struct ref_list *freed, errand_error *err);
int store_sqlite_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                             errand_error *err);
int store_sqlite_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err);
int store_sqlite_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                              errand_error *err);
void store_sqlite_on_events(store *st, void (*fn)(void *), void *arg);
void store_sqlite_on_signal(store *st, void (*fn)(void *, enum store_signal, const char *),
                            void *arg);
int store_sqlite_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                            errand_error *err);
int store_sqlite_set_paused(store *st, const char *task, bool paused, errand_error *err);
int store_sqlite_list_failures(store *st, const char *task, int limit,
                               struct failure_group_list *out, errand_error *err);

/* store_sqlite_stats.c: what /metrics reads and measures. */
void store_sqlite_observe(store *st, const struct store_observer *o);
int store_sqlite_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                              errand_error *err);

/* store_sqlite_webhooks.c */
int store_sqlite_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                             errand_error *err);
int store_sqlite_webhook_list(store *st, struct task_webhook_list *out, errand_error *err);
int store_sqlite_webhook_pending(store *st, int limit, struct webhook_delivery_list *out,
                                 int64_t *total, errand_error *err);
int store_sqlite_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                              struct webhook_delivery_list *out, errand_error *err);
int store_sqlite_webhook_done(store *st, int64_t id, errand_error *err);
int store_sqlite_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at,
                               const char *error, errand_error *err);

/* store_sqlite_schedules.c */
int store_sqlite_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                              struct schedule_row *out, bool *created, errand_error *err);
int store_sqlite_schedule_get(store *st, const char *name, struct schedule_row *out,
                              errand_error *err);
int store_sqlite_schedule_list(store *st, struct schedule_list *out, errand_error *err);
int store_sqlite_schedule_delete(store *st, const char *name, errand_error *err);
int store_sqlite_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                                     int64_t now_ms, errand_error *err);
int store_sqlite_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                              errand_error *err);
int store_sqlite_schedule_advance(store *st, const char *name, int64_t generation,
                                  int64_t from_tick, int64_t to_tick, int64_t fired_tick,
                                  const char *run_id, int64_t now_ms, bool *advanced,
                                  errand_error *err);

#endif
