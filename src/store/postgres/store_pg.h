/* SPDX-License-Identifier: MIT */
/*
 * store_pg.h — the PostgreSQL backend's shared parts, for its own files only
 * (store_pg.c: open, close, point reads, the transaction runner and the listener;
 * pg_transition.c: state changes and counters; store_pg_submit.c: submissions and cancel;
 * store_pg_worker.c: claim, heartbeat, sweep; store_pg_report.c: report; store_pg_list.c:
 * listings, history, logs, workers, counts; store_pg_stats.c: the dashboard's figures, paused
 * tasks, failure groups; store_pg_retention.c: deleting what expired; store_pg_events.c: the change
 * feed; pg_limits.c: concurrency and rate limits; store_pg_webhooks.c: webhooks and their
 * deliveries). Everyone else uses store.h.
 *
 * Shape of the backend, and why (docs/architecture.md, "PostgreSQL"):
 *  - a pool of connections; every call takes one, runs its op in a transaction
 *    (store_pg_write / store_pg_read) and gives it back. Several servers share one
 *    database with no coordinator: what makes that safe is in the SQL — claims take runs
 *    with FOR UPDATE SKIP LOCKED, fenced updates say `AND lease_token = $n`, a state change
 *    first locks its run (pg_run_current_get with for_update);
 *  - a transaction that fails on a serialization failure, a deadlock or a unique key taken
 *    by a concurrent one is run again from the start (ops are written to be re-runnable:
 *    they reset what they fill);
 *  - single submissions are queued to a submitter thread that commits them in groups,
 *    so store_submit_begin never blocks its caller;
 *  - a listener connection LISTENs on the store's channel: the wake-ups other servers send
 *    at their commits (pg_signal_*) reach this server's long-polls, and its change-feed
 *    followers learn of their events.
 */
#ifndef ERRAND_STORE_POSTGRES_STORE_PG_H
#define ERRAND_STORE_POSTGRES_STORE_PG_H

#include <pthread.h>

#include "core/uuid.h"
#include "store/postgres/pg_conn.h"
#include "store/run_row.h"
#include "store/run_transition.h"
#include "store/store.h"

/* Connections for calls when the options give none; plus the submitter's and the listener's. */
#define STORE_PG_POOL_DEFAULT 8

struct pg_submit_queue; /* store_pg_submit.c */

struct store_pg {
    struct store base; /* first: store.c dispatches through base.backend */
    char *conninfo;
    int default_lease_seconds;
    int max_redeliveries;
    /* the pool */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int pool_size;
    struct pg_conn **conns; /* pool_size of each */
    bool *busy;
    /* wake-ups: the channel every server on this database (and schema) listens on, and
       this process's tag in what it sends, so it skips its own */
    char channel[64];
    char origin[17];
    void (*on_events)(void *arg);
    void *on_events_arg;
    void (*on_signal)(void *arg, enum store_signal sig, const char *key);
    void *on_signal_arg;
    pthread_t listener;
    bool listener_started;
    int stop_pipe[2];
    struct pg_submit_queue *submits;
    struct store_observer observer; /* set before the store is shared (store_observe) */
};

static inline struct store_pg *store_pg_of(store *st)
{
    return (struct store_pg *)st;
}

/* An op of a transaction. It must be re-runnable: store_pg_write runs it again, on a new
 * transaction, after a serialization failure or deadlock. */
typedef int (*pg_op_fn)(struct pg_conn *c, void *arg, errand_error *err);

/* Runs fn in a read-write transaction (READ COMMITTED) and commits it with its feed page
 * and wake-ups; again (a bounded number of times) when it failed retryably. After the
 * commit, this server's own change-feed callback runs when events were added. */
int store_pg_write(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err);
/* As store_pg_write, for a transaction whose loss in a crash of the database is harmless:
 * claims, heartbeats and runs' starts (docs/operations.md, "Durability"). Its COMMIT does not wait
 * for the WAL to reach the disk (synchronous_commit off for it alone); every later durable commit
 * flushes it along with itself, so an outcome fenced by its lease is never durable without
 * it. What a crash can lose: the claim (the run is SCHEDULED again, and the worker that held
 * it is refused at its next report), a lease extension, or a run's start (it is PENDING again
 * under the same lease: store_reports_may_be_lost). */
int store_pg_write_lazy(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err);
/* Runs fn in a read-only REPEATABLE READ transaction (one snapshot for all its reads). */
int store_pg_read(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err);
/* Runs fn, which reads with a single statement (its own snapshot), outside a transaction:
 * one round trip instead of three. */
int store_pg_read_single(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err);

/* The pool, for a caller that runs its own transactions (the submitter). */
struct pg_conn *store_pg_acquire(struct store_pg *s, errand_error *err);
void store_pg_release(struct store_pg *s, struct pg_conn *c);
/* Commits c's open transaction with what its ops gathered: first settles the dependants of
 * the runs its ops ended (pg_deps.h), then the state-history rows, the webhook deliveries of
 * the runs it ended (store_pg_webhooks.c), the wake-ups, the feed page, then COMMIT, all in
 * one pipeline (one round trip). On failure the caller rolls
 * back. */
int store_pg_commit(struct store_pg *s, struct pg_conn *c, errand_error *err);
/* After a commit: runs the local callbacks for what c gathered, and forgets it. */
void store_pg_after_commit(struct store_pg *s, struct pg_conn *c);

/* The columns of a whole run, in the order store_pg_read_run reads them. */
#define PG_RUN_COLUMNS                                                                             \
    "id, task, parameters, state_type, state_name, state_timestamp, state_message, attempt, "      \
    "max_attempts, created, scheduled_at, started, finished, worker, priority, tags, "             \
    "idempotency_key, cache_key, retries, retry_delays, retry_jitter_factor, "                     \
    "timeout_seconds, persist_result, result, result_ref, redeliveries, retry_of, lease_expires, " \
    "traceparent, wait_for, allow_upstream_failure"
/* Points out at the columns of row `row` of r (PG_RUN_COLUMNS from column `first` on); the
 * strings stay valid until r is cleared. */
void store_pg_read_run(const PGresult *r, int row, int first, struct run_row *out);

/* The columns of a run as the rules see it (struct run_current). A run waiting for upstream
 * runs (delayed NULL, pg_schema.c) reads as delayed. */
#define PG_LEASE_COLUMNS                                                                           \
    "state_type, state_timestamp, attempt, max_attempts, lease_token, worker, retry_delays, "      \
    "retry_jitter_factor, cache_key IS NOT NULL, cache_expiration_seconds, started, "              \
    "scheduled_at, n_states, lease_expires, id, ended_by, redeliveries, task, "                    \
    "delayed IS NOT FALSE, dependants, holds_slots"
#define PG_LEASE_COLUMN_COUNT 21
int pg_run_current_read(const PGresult *r, int row, struct run_current *cur, bool with_delays,
                        errand_error *err);
/* Looks the run up by id, locking its row (FOR UPDATE) when for_update: 0, ERRAND_ENOTFOUND
 * (err says which id) or a store error. */
int pg_run_current_get(struct pg_conn *c, const char *id, bool with_delays, bool for_update,
                       struct run_current *cur, errand_error *err);

/* --- pg_transition.c ------------------------------------------------------------------ */

/* Writes u to the run — fenced: only while its lease token is still cur's — appends the
 * state to its history and the feed, tallies the move and gathers the wake-ups it implies.
 * ERRAND_ECONFLICT when the fence refused (another server changed the run since cur was
 * read; cannot happen when cur was read FOR UPDATE). */
int pg_transition_write(struct pg_conn *c, const struct run_current *cur,
                        const struct run_update *u, int64_t now_ms, struct run_count_delta *counts,
                        errand_error *err);
/* A batch of transitions written with one UPDATE: pg_transition_queue adds one (and does
 * at once what it implies besides the UPDATE: counters, failure group, wake-ups, history
 * row), pg_transitions_flush writes them all, fenced like pg_transition_write (ECONFLICT
 * naming a run when one was refused). A run may be in a batch once: flush before queueing
 * the same run again. */
struct pg_transitions;
struct pg_transitions *pg_transitions_new(void); /* NULL: out of memory */
void pg_transitions_free(struct pg_transitions *t);
int pg_transition_queue(struct pg_conn *c, struct pg_transitions *t, const struct run_current *cur,
                        const struct run_update *u, int64_t now_ms, struct run_count_delta *counts,
                        errand_error *err);
int pg_transitions_flush(struct pg_conn *c, struct pg_transitions *t, errand_error *err);
/* Appends one history row (used by submission and claim too) and its change-feed event:
 * gathered in c, written at the commit: pg_states_send adds the INSERT to c's open pipeline
 * (store_pg_commit's). */
int pg_state_append(struct pg_conn *c, const char *run_id, const char *task, int seq,
                    errand_state type, const char *name, int64_t at_ms, const char *message,
                    errand_error *err);
int pg_states_send(struct pg_conn *c, errand_error *err);
/* run_tally_move / run_tally_remove, writing the tally first when it is full. */
int pg_count_move(struct pg_conn *c, struct run_count_delta *t, const char *task,
                  const char *run_id, int from, errand_state to, int64_t now_ms, errand_error *err);
/* delta more (or fewer) runs of task wait in the delayed set. */
int pg_count_delayed(struct pg_conn *c, struct run_count_delta *t, const char *task, int64_t delta,
                     int64_t now_ms, errand_error *err);
int pg_count_remove(struct pg_conn *c, struct run_count_delta *t, const char *task,
                    errand_state state, int64_t now_ms, errand_error *err);
/* Adds the tally to the counters (new rows: see pg_schema.c) and empties it. */
int pg_counts_apply(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms,
                    errand_error *err);
/* The same, held for the commit's pipeline (pg_defer): for ops outside savepoints. */
int pg_counts_defer(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms,
                    errand_error *err);
/* failure_groups: a run of task failed with message, or a failed run of task is deleted. */
int pg_failure_add(struct pg_conn *c, const char *task, const char *run_id, const char *message,
                   int64_t now_ms, errand_error *err);
int pg_failure_remove(struct pg_conn *c, const char *task, const char *message, errand_error *err);

/* --- shared by several files ---------------------------------------------------------- */

/* Undoes the expiry of cur's lease `token` (run_expired_lease_of checked): the transition
 * queued in t, or written at once when t is NULL. cur is updated (store_pg_worker.c). */
int pg_lease_resume(struct pg_conn *c, struct pg_transitions *t, struct run_current *cur,
                    const char *token, const char *worker, int64_t now_ms, int64_t lease_expires,
                    struct run_count_delta *counts, errand_error *err);
/* Moves the delayed runs due by now_ms into the ready queue, a bounded batch, taken with SKIP
 * LOCKED; *n_promoted (optional) counts them. */
int store_pg_promote_due(struct pg_conn *c, int64_t now_ms, int *n_promoted, errand_error *err);
/* Records that worker was seen at now_ms (at most every STORE_PG_WORKER_SEEN_MS), held for
 * the commit's pipeline (pg_defer). */
int pg_worker_seen(struct pg_conn *c, const char *worker, int64_t now_ms, errand_error *err);

/* A worker's last_seen is rewritten at most this often unless something else changes. */
#define STORE_PG_WORKER_SEEN_MS 1000
/* How long a claim's request id is remembered. */
#define STORE_PG_CLAIM_REQUEST_MEMORY_MS (5LL * 60 * 1000)
/* Delayed runs moved into the ready queue per claim or sweep transaction. */
#define STORE_PG_PROMOTE_BATCH 1000
int64_t store_pg_lease_ms(const struct store_pg *s, int lease_seconds);
/* Folds the counters' added rows into one per key (store_pg_stats.c); the sweeper's. */
int store_pg_fold_counts(struct store_pg *s, errand_error *err);
/* Reads the counts per state type (of task, or of all runs when task is NULL). */
int store_pg_read_counts(struct pg_conn *c, const char *task, int64_t counts[8], errand_error *err);

/* The operations, one per file group. */
int store_pg_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                          void (*done)(void *arg), void *arg, store_submission **out,
                          errand_error *err);
int store_pg_submit_end(store_submission *sub, struct run_row *rows_out, bool *created,
                        errand_error *err);
int store_pg_submitter_start(struct store_pg *s, errand_error *err);
void store_pg_submitter_stop(struct store_pg *s);
int store_pg_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out,
                    errand_error *err);
int store_pg_claim(store *st, const struct claim_request *req, int64_t now_ms, struct run_list *out,
                   errand_error *err);
int store_pg_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                       int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                       errand_error *err);
int store_pg_report(store *st, const char *worker, const char *batch_id,
                    const struct run_report *reports, size_t n, const struct log_entry *logs,
                    size_t n_logs, int64_t now_ms, struct lease_answer *answers, errand_error *err);
int store_pg_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err);
int store_pg_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                       char next_cursor[37], errand_error *err);
int store_pg_get_states(store *st, const char *id, struct state_history *out, errand_error *err);
int store_pg_get_logs(store *st, const char *id, int64_t after_seq, int limit, struct log_page *out,
                      errand_error *err);
int store_pg_list_workers(store *st, const struct worker_cursor *cursor, int limit,
                          struct worker_list *out, bool *more, errand_error *err);
int store_pg_count_by_state(store *st, int64_t counts[8], errand_error *err);
int store_pg_delete_expired(store *st, int64_t finished_before_ms, int64_t workers_seen_before_ms,
                            int limit, struct retention_counts *counts, struct ref_list *freed,
                            errand_error *err);
int store_pg_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                         struct ref_list *freed, errand_error *err);
int store_pg_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                         errand_error *err);
int store_pg_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err);
int store_pg_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                          errand_error *err);
int store_pg_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                        errand_error *err);
int store_pg_set_paused(store *st, const char *task, bool paused, errand_error *err);
/* /metrics (store_pg_stats.c). */
void store_pg_observe(store *st, const struct store_observer *o);
int store_pg_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                          errand_error *err);
int store_pg_list_failures(store *st, const char *task, int limit, struct failure_group_list *out,
                           errand_error *err);

/* store_pg_schedules.c */
int store_pg_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                          struct schedule_row *out, bool *created, errand_error *err);
int store_pg_schedule_get(store *st, const char *name, struct schedule_row *out, errand_error *err);
int store_pg_schedule_list(store *st, struct schedule_list *out, errand_error *err);
int store_pg_schedule_delete(store *st, const char *name, errand_error *err);
int store_pg_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                                 int64_t now_ms, errand_error *err);
int store_pg_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                          errand_error *err);
int store_pg_schedule_advance(store *st, const char *name, int64_t generation, int64_t from_tick,
                              int64_t to_tick, int64_t fired_tick, const char *run_id,
                              int64_t now_ms, bool *advanced, errand_error *err);

/* store_pg_webhooks.c */
int store_pg_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                         errand_error *err);
int store_pg_webhook_list(store *st, struct task_webhook_list *out, errand_error *err);
int store_pg_webhook_pending(store *st, int limit, struct webhook_delivery_list *out,
                             int64_t *total, errand_error *err);
int store_pg_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                          struct webhook_delivery_list *out, errand_error *err);
int store_pg_webhook_done(store *st, int64_t id, errand_error *err);
int store_pg_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at, const char *error,
                           errand_error *err);
/* Run id of task moved into a final state at at_ms (pg_transition_queue; a run born final at
 * submit): noted on c for its webhook delivery, which pg_webhooks_send writes at the commit —
 * to url when given (a run born final with its submission's URL), else to the URL its
 * submission left in run_webhooks, else to its task's webhook, if any. */
void pg_webhook_ended(struct pg_conn *c, const char *id, const char *task, const char *url,
                      int64_t at_ms);
/* Adds the deliveries of the runs noted on c to c's open pipeline (store_pg_commit's); 0, or
 * ERRAND_ENOMEM when noting them ran out of memory. */
int pg_webhooks_send(struct pg_conn *c, errand_error *err);

#endif
