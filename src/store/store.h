/* SPDX-License-Identifier: MIT */
/*
 * store.h — the one interface to task-run storage, in the words of the domain: runs
 * (store/run_row.h), new runs (store/run_spec.h), states, leases and their outcomes. Backends
 * implement struct store_backend (src/store/sqlite/, src/store/postgres/); store.c picks one from
 * the database URL (src/store/postgres/ when built with libpq). Everything the server persists goes
 * through here; handlers never see SQL, and the store never sees the wire: it hands back rows and
 * answers as structs and enums, and the server formats them (server/run_json.h, the handlers).
 *
 * Every call is thread-safe: HTTP handler threads call the store concurrently. Writes in the
 * SQLite backend are funnelled to one writer thread that commits them in groups; a call
 * returns only after its write is committed (durability per ERRAND_DATABASE_SYNC), except
 * store_submit_begin, whose completion is called back instead.
 *
 * Rows and lists handed out are owned by the caller (run_row_clear, run_list_clear and the
 * _clear functions below). All functions return 0 or a negative ERRAND_E* code and fill err.
 */
#ifndef ERRAND_STORE_STORE_H
#define ERRAND_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/run_row.h"
#include "store/run_spec.h"
#include "store/schedule_row.h"
#include "store/webhook_row.h"

typedef struct store store;

/* The message of ERRAND_ENOTFOUND for a run id, in every backend. */
#define STORE_NO_RUN_FMT                                                                           \
    "no task run with id '%s': never submitted, or deleted after it finished "                     \
    "(ERRAND_RETENTION_SECONDS)"

/* ERRAND_MAX_REDELIVERIES' default; the store takes max_redeliveries as given (0 = none). */
#define STORE_DEFAULT_MAX_REDELIVERIES 5

struct store_options {
    const char *sync; /* "full" | "normal" | "off" (SQLite synchronous) */
    int pool_size;    /* PostgreSQL: connections for calls, up to DATABASE_POOL_SIZE_MAX
                         (core/settings.h); 0 = 8 */
    int default_lease_seconds;
    int max_redeliveries; /* a run whose lease runs out this many times more ends CRASHED */
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
 * rows_out[i] (n of them, caller's array) receives the run as stored. */
int store_submit(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                 struct run_row *rows_out, bool *created, errand_error *err);

/* store_submit in two halves, for a caller that must not block (an HTTP event thread):
 * begin queues the submission and returns at once; done(arg) is called once, on the store's
 * own thread, when it is committed or failed — it must be quick (it resumes a connection);
 * then end gives what store_submit would have (rows_out: n of them) and frees sub. specs
 * must stay as they are until end. A begin that fails never calls done. */
typedef struct store_submission store_submission;
int store_submit_begin(store *st, const struct run_spec *specs, size_t n, int64_t now_ms,
                       void (*done)(void *arg), void *arg, store_submission **out,
                       errand_error *err);
int store_submit_end(store *st, store_submission *sub, struct run_row *rows_out, bool *created,
                     errand_error *err);

/* The run with that id; ERRAND_ENOTFOUND when there is none. */
int store_get_run(store *st, const char *id, struct run_row *out, errand_error *err);

/* Only the state type of a run (cheap; for long-poll waits). */
int store_get_state(store *st, const char *id, errand_state *out, errand_error *err);

/* A listing whose filters combine reads at most this many candidate runs per call; a page
 * can then hold fewer runs than asked while next_cursor says where to go on. */
#define STORE_LIST_SCAN_MAX 10000

struct run_filter {
    unsigned state_mask;         /* bit (1u << errand_state); 0 = all */
    const char *task;            /* NULL = any */
    const char *tag;             /* NULL = any */
    const char *worker;          /* NULL = any: the runs that worker claimed last */
    const char *cursor;          /* id: runs strictly older than it; NULL = from the newest */
    const char *oldest;          /* id: runs at or above it only (a time range); NULL = no bound */
    const char *idempotency_key; /* with task: the one run submitted with that key */
    const char *trace_id; /* 32 lower-case hex: the runs submitted with that trace; NULL = any */
    int limit;            /* 1..WIRE_LIST_LIMIT_MAX */
};
/* *out: the runs newest first; next_cursor set when more may follow (the last id shown, or
 * where a bounded walk stopped: see STORE_LIST_SCAN_MAX), else "". */
int store_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                    char next_cursor[37], errand_error *err);

/* One entry of a run's state history. */
struct state_record {
    errand_state type;
    char *name;
    char *message;
    int64_t timestamp; /* Unix ms */
};
struct state_history {
    struct state_record *items; /* oldest first */
    size_t n;
};
void state_history_clear(struct state_history *h);
int store_get_states(store *st, const char *id, struct state_history *out, errand_error *err);

/* One log line of a run. */
struct log_record {
    int64_t seq; /* increasing per store; the paging key */
    int64_t timestamp;
    errand_log_level level;
    char *message;
};
struct log_page {
    struct log_record *items; /* oldest first */
    size_t n;
    int64_t next_after; /* the seq to page on from (after_seq when the page is empty) */
};
void log_page_clear(struct log_page *p);
/* Up to limit lines with seq > after_seq; ERRAND_ENOTFOUND when the run does not exist. */
int store_get_logs(store *st, const char *id, int64_t after_seq, int limit, struct log_page *out,
                   errand_error *err);

/* Cancel: ERRAND_ECONFLICT if final; *out the run afterwards. */
int store_cancel(store *st, const char *id, int64_t now_ms, struct run_row *out, errand_error *err);

/* --- worker side ------------------------------------------------------------------- */

struct claim_request {
    const char *worker;
    const char *const *tasks;
    size_t n_tasks;
    int limit;
    int lease_seconds;
    const char *request_id; /* NULL = none */
    /* Out, optional: set (Unix ms) when a task's rate limit held runs back that it will let
       go at that time, so a long-poll can look again then; left alone otherwise. */
    int64_t *held_until_ms;
};
/* Claims up to limit due runs (SCHEDULED, scheduled_at <= now) of those tasks, highest
 * priority then oldest first: PENDING, attempt+1, new lease token. *out: the claimed rows
 * (id, task, parameters, attempt, max_attempts, lease_token, lease_expires, timeout_seconds,
 * persist_result, cache_key filled). Also records the worker as seen.
 * A claim with a request_id seen before (within REQUEST_MEMORY) answers what that claim
 * handed out and nobody changed since (runs still PENDING under the same lease tokens, their
 * leases renewed), claiming nothing new: the same claim sent again after its answer was lost
 * gets the same runs at once. */
int store_claim(store *st, const struct claim_request *req, int64_t now_ms, struct run_list *out,
                errand_error *err);

struct lease_ref {
    const char *id;
    const char *lease_token;
    /* Heartbeats: the run waits for its subtasks (1) or no longer does (0), as its worker
       says; -1 when not said. A run that waits gives back the concurrency-limit slots it
       holds, so the runs it waits for can have them, and takes them back when it resumes —
       even past a limit's max for a moment (claims then hand out nothing under it until it
       is under again). */
    int waiting;
};

/* What became of one item of a heartbeat or a report. */
enum lease_status {
    LEASE_APPLIED, /* the lease is the run's current one: extended, or the report applied */
    LEASE_STALE,   /* refused: another lease holds the run, or the rules forbid the report */
    LEASE_UNKNOWN, /* no run with that id */
};
struct lease_answer {
    enum lease_status status;
    errand_state state; /* the run's state afterwards (not for LEASE_UNKNOWN) */
    bool cancel;        /* heartbeat: the run is CANCELLING, the task should stop */
    const char *reason; /* LEASE_STALE on a report: why (static text), else NULL */
};

/* Extends leases by lease_seconds; answers[i] (n, caller's array) says what became of
 * leases[i]. */
int store_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                    int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                    errand_error *err);

struct run_report {
    const char *id;
    const char *lease_token;
    errand_state state;     /* RUNNING, COMPLETED, FAILED, CANCELLED, SCHEDULED (hand-back) */
    const char *result;     /* COMPLETED: inline result as JSON text, or NULL */
    const char *result_ref; /* COMPLETED: storage reference or NULL */
    const char *message;    /* FAILED: why */
    bool retryable;         /* FAILED: false forbids retry */
};
struct log_entry {
    const char *id; /* task-run id */
    int64_t timestamp_ms;
    int level; /* errand_log_level */
    const char *message;
};
/* Applies reports in order and appends logs, in one transaction; answers[i] (n, caller's
 * array) says what became of reports[i]. Sent again, it changes nothing: a report that ended
 * its run's lease, resent with the same token, is answered LEASE_APPLIED; and when batch_id
 * (the worker's id of the request, or NULL) was seen lately, the logs are not stored again. */
int store_report(store *st, const char *worker, const char *batch_id,
                 const struct run_report *reports, size_t n, const struct log_entry *logs,
                 size_t n_logs, int64_t now_ms, struct lease_answer *answers, errand_error *err);
/* Whether a report batch may commit without its own fsync, as claims and heartbeats do
 * (docs/operations.md, "Durability"): every report in it says only that a run started
 * (RUNNING), and it carries no log lines. Lost to a power failure, such a run is PENDING again
 * under the same lease, and its outcome, always durable, still lands; the next durable commit
 * makes it durable along with itself. It takes one of a run's three fsyncs (submission,
 * start, outcome) out of its latency when the worker reports its start on its own. */
bool store_reports_may_be_lost(const struct run_report *reports, size_t n, size_t n_logs);

/* What one sweep did: leases expired (state_on_lease_expired), delayed runs that became due
 * and entered the ready queue. */
struct sweep_counts {
    int expired;
    int promoted;
};
/* Expires leases that ran out before now and promotes the delayed runs due by now, in
 * bounded transactions until none is left; *counts (optional) says how many. */
int store_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err);

/* --- retention ----------------------------------------------------------------------- */

/* Result references that a deletion left without any run pointing at them: the files behind
 * them may go. The store never touches result storage; the caller deletes them. */
struct ref_list {
    char **refs;
    size_t n;
};
void ref_list_clear(struct ref_list *l);

/* What one retention pass deleted. */
struct retention_counts {
    int runs;
    int workers;
};

/* In one transaction: deletes up to limit final runs (COMPLETED, FAILED, CRASHED, CANCELLED)
 * that finished before finished_before_ms, oldest first, with their state history, logs and
 * tags, and up to limit workers last seen before workers_seen_before_ms. 0 for either time
 * deletes none of that kind. *freed gets the result references no remaining run holds.
 * Bounded work: a pass reads what it deletes and nothing else. */
int store_delete_expired(store *st, int64_t finished_before_ms, int64_t workers_seen_before_ms,
                         int limit, struct retention_counts *counts, struct ref_list *freed,
                         errand_error *err);

/* Deletes, in one transaction, those of the n runs (ids) that are final, with their history,
 * logs and tags, as retention would; others are left as they are. *deleted counts the runs
 * deleted; *freed gets the result references no remaining run holds (the caller deletes
 * their files). */
int store_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                      struct ref_list *freed, errand_error *err);

/* A worker as last seen. */
struct worker_record {
    char *name;
    char *tasks; /* JSON array text of the task names it last claimed */
    int64_t last_seen;
    int64_t claimed; /* runs it has claimed */
};
struct worker_list {
    struct worker_record *items; /* most recently seen first (then name, descending) */
    size_t n;
};
void worker_list_clear(struct worker_list *l);

/* Where a page of workers starts: after the worker (last_seen, name); {0, NULL} = the most
 * recently seen. */
struct worker_cursor {
    int64_t last_seen;
    const char *name;
};
/* Up to limit workers (1..WIRE_LIST_LIMIT_MAX) after cursor (NULL = from the start); *more
 * says whether another page may follow. */
int store_list_workers(store *st, const struct worker_cursor *cursor, int limit,
                       struct worker_list *out, bool *more, errand_error *err);

/* Counts of runs by state type: counts[ERRAND_STATE_...]. */
int store_count_by_state(store *st, int64_t counts[8], errand_error *err);

/* --- the change feed (GET /api/events) ------------------------------------------------ */

/* One state a run entered, numbered in commit order. */
struct run_event {
    int64_t seq; /* increasing, never reused: the feed's cursor */
    char id[37];
    char *task; /* NULL when the run was deleted since */
    errand_state type;
    char *name;
    int64_t at; /* Unix ms */
};
struct run_event_list {
    struct run_event *items; /* oldest first */
    size_t n;
};
void run_event_list_clear(struct run_event_list *l);

/* Up to limit (>= 1) events with seq > after_seq, oldest first. */
int store_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                      errand_error *err);
/* The oldest and newest seq the store holds: 0 and 0 when it never held one; last =
 * first - 1 when it holds none now but numbering goes on after last. */
int store_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err);
/* Deletes the oldest events while they are older than before_ms or more than keep (> 0;
 * 0 = no count bound) newer ones are stored, about limit of them per call (a backend may
 * delete in units of several events, and then a few more), never the newest (so seq never
 * starts again); *deleted (optional) counts them. */
int store_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                       errand_error *err);
/* fn(arg) is called after each commit that added events, on the store's own thread: it must
 * be quick. Set it once, before the store is shared; NULL stops the calls. */
void store_on_events(store *st, void (*fn)(void *arg), void *arg);

/* --- wake-ups from other servers sharing the store ---------------------------------- */

enum store_signal {
    STORE_SIGNAL_RUNS_DUE,  /* runs of task `key` may be claimable (NULL: of any task) */
    STORE_SIGNAL_RUN_FINAL, /* run `key` may have reached a final state (NULL: any run) */
};
/* fn(arg, sig, key) is called, on the store's own thread, for each wake-up another server
 * sharing the store sent with a commit (PostgreSQL: LISTEN/NOTIFY); also once for each kind
 * with key NULL after the store lost and regained its channel, since a wake-up may have
 * been missed; and, in every backend, for what a commit set off beyond the runs its call
 * named: runs a dependency released into the ready queue, runs an upstream's end cancelled
 * (store/run_deps.h). Hints: a caller re-checks the store. It must be quick. Set it once,
 * before the store is shared; NULL stops the calls. (Other servers on one SQLite file are
 * not told: they re-check on their timers.) */
void store_on_signal(store *st, void (*fn)(void *arg, enum store_signal sig, const char *key),
                     void *arg);

/* --- what the server measures (GET /metrics) ------------------------------------------ */

/* Callbacks a backend makes on its own threads; each must be quick (atomic increments).
 * task_key maps a task name to a small number of the observer's choosing (its label), called
 * inside a transaction; run_final is called after the commit, once per run that the
 * committed transaction moved into a final state (type COMPLETED, FAILED, CRASHED or
 * CANCELLED; cached: a COMPLETED/"Cached" run made by a cache hit; ran_ms: the time from the
 * start of its last attempt — entering RUNNING, or its claim when it was not reported
 * started — to the final state, -1 when it did not end out of PENDING or RUNNING); commit is
 * called after each durable commit of a write transaction with the time the commit took
 * (SQLite: COMMIT with its fsync; PostgreSQL: the pipeline that ends with COMMIT). Any of
 * them may be NULL. */
struct store_observer {
    void *arg;
    int (*task_key)(void *arg, const char *task);
    void (*run_final)(void *arg, int key, errand_state type, bool cached, int64_t ran_ms);
    void (*commit)(void *arg, int64_t ns);
};
/* Set once, before the store is shared; the store keeps its own copy. */
void store_observe(store *st, const struct store_observer *o);

/* The oldest ready run of each of n tasks: due_out[i] gets the scheduled_at (Unix ms: when it
 * became due, or its retry delay ended) of the oldest run of tasks[i] that is in the ready
 * queue (SCHEDULED and due), 0 when none. Index seeks only: one per priority present in the
 * task's ready queue, at most STORE_READY_PRIORITIES_MAX of them (the highest); a task with
 * more priorities waiting is judged by those. */
#define STORE_READY_PRIORITIES_MAX 16
int store_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                       errand_error *err);

/* --- the dashboard's figures and task controls ------------------------------------------ */

/* One task as the counters see it. */
struct task_stats {
    char *task;
    int64_t counts[8]; /* runs stored, per state type */
    int64_t delayed;   /* of counts[SCHEDULED], those waiting for their time (the rest are ready) */
    int64_t completed, failed, cancelled; /* runs finished within the window (failed:
                                             FAILED or CRASHED; completed: by running) */
    bool paused;
    char *last_failure_id; /* the run that failed last, NULL when none */
    int64_t last_failure_at;
};
/* Runs finished in one minute (all tasks). */
struct minute_stats {
    int64_t minute_ms; /* its start, Unix ms */
    int64_t completed, failed, cancelled;
};
/* One of the latest finished runs, for duration percentiles. */
struct finished_sample {
    size_t task;     /* index into store_stats.tasks, or SIZE_MAX */
    int64_t wait_ms; /* due → started, -1 when unknown */
    int64_t run_ms;  /* started → finished, -1 when it never started */
};
struct store_stats {
    int64_t counts[8];
    struct task_stats *tasks; /* by name; at most STORE_STATS_TASKS_MAX */
    size_t n_tasks;
    bool tasks_truncated;
    struct minute_stats *minutes; /* minutes of the window with any run finished, oldest first */
    size_t n_minutes;
    struct finished_sample *samples; /* the latest finished runs of the window, newest first */
    size_t n_samples;
};
#define STORE_STATS_TASKS_MAX 1000
void store_stats_clear(struct store_stats *s);

/* The index of task in s->tasks (sorted by name), or SIZE_MAX when it is not there. */
size_t store_stats_find(const struct store_stats *s, const char *task);

/* The figures of the window since since_ms, read from counters (never by scanning runs),
 * with up to sample_limit of the latest runs finished in it. */
int store_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                     errand_error *err);

/* FAILED and CRASHED runs stored, grouped by task and the shape of their message
 * (core/fingerprint.h), the most recent failure first. */
struct failure_group {
    char *task;
    char *fingerprint;
    char *message; /* the latest failure's message */
    int64_t count;
    int64_t last_at;
    char last_id[37];
};
struct failure_group_list {
    struct failure_group *items;
    size_t n;
};
void failure_group_list_clear(struct failure_group_list *l);
/* Up to limit groups (of one task, or of all when task is NULL). */
int store_list_failures(store *st, const char *task, int limit, struct failure_group_list *out,
                        errand_error *err);

/* Pauses (claims hand out none of its runs) or resumes a task; a task not seen yet can be
 * paused ahead. */
int store_set_paused(store *st, const char *task, bool paused, errand_error *err);

/* --- concurrency limits (docs/api.md, "Concurrency limits") ------------------------------ */

/* A limit caps how many runs of a task, or runs carrying a tag, hold a lease (PENDING,
 * RUNNING, CANCELLING) at once, across every worker and server. A claim hands out a run only
 * while every limit it falls under has a free slot; the run holds a slot of each until its
 * lease ends (a final state, a hand-back, the lease running out). */
enum limit_kind {
    LIMIT_TASK,
    LIMIT_TAG,
};
#define STORE_LIMITS_MAX 1000        /* limits listed by store_list_limits */
#define STORE_LIMIT_HOLDERS_MAX 1000 /* holders listed per limit */
#define STORE_LIMIT_MAX_RUNNING 100000

struct limit_holder {
    char run_id[37];
    char *task;
    char *worker;  /* NULL when unknown */
    int64_t since; /* when it took the slot (its claim), Unix ms */
};
struct limit_record {
    enum limit_kind kind;
    char *name;
    int max_running;        /* 0: no concurrency limit */
    int rate_max;           /* a task's rate limit: at most rate_max starts per rate_period_ms; */
    int64_t rate_period_ms; /* 0 = none */
    int64_t held;           /* slots held now (may exceed max_running after a lowering) */
    struct limit_holder *holders; /* the oldest first, up to STORE_LIMIT_HOLDERS_MAX */
    size_t n_holders;
};
struct limit_list {
    struct limit_record *items; /* tasks first, then tags, by name */
    size_t n;
};
void limit_list_clear(struct limit_list *l);

/* Sets the limit of a task or a tag to max_running (1..STORE_LIMIT_MAX_RUNNING), or removes
 * it (max_running 0: the slots it held are forgotten). A claim may be waiting for a slot:
 * the caller wakes the claims. */
int store_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                    errand_error *err);
/* Sets the rate limit of a task: at most max_starts (1..STORE_RATE_MAX) runs started (claimed)
 * per period_ms (1..STORE_RATE_PERIOD_MAX_MS), spaced evenly (period_ms / max_starts apart);
 * max_starts 0 removes it. */
#define STORE_RATE_MAX 1000000
#define STORE_RATE_PERIOD_MAX_MS (24LL * 3600 * 1000)
int store_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                   errand_error *err);
/* Every limit with the runs holding its slots. */
int store_list_limits(store *st, struct limit_list *out, errand_error *err);

/* Gives back memory the store holds only to go faster (page caches), after a burst. */
void store_release_memory(store *st);

/* Readiness: commits a small durable write. 0 when the store can take writes; else the
 * error (ERR_NO_SPACE when its disk is full). */
int store_ready(store *st, errand_error *err);

/* --- schedules (store/schedule_row.h) ------------------------------------------------- */

/* The most schedules a store holds, and so the most GET /api/schedules lists. */
#define STORE_SCHEDULES_MAX 10000

/* Creates the schedule s->name, or replaces it (keeping created, last_tick and last_run_id,
 * and adding 1 to generation): task, run_options, cron, every_ms, time_zone, catch_up,
 * paused and next_tick as given. *out (optional) the row as stored; *created whether it was
 * new. ERRAND_ECONFLICT when STORE_SCHEDULES_MAX are stored and s->name is not one. */
int store_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                       struct schedule_row *out, bool *created, errand_error *err);
/* The schedule named name; ERRAND_ENOTFOUND when there is none. */
int store_schedule_get(store *st, const char *name, struct schedule_row *out, errand_error *err);
/* Every schedule, by name. */
int store_schedule_list(store *st, struct schedule_list *out, errand_error *err);
/* ERRAND_ENOTFOUND when there is none. */
int store_schedule_delete(store *st, const char *name, errand_error *err);
/* Pauses or resumes it; resuming sets next_tick (the caller's next tick from now, so the
 * ticks passed while paused are not caught up). ERRAND_ENOTFOUND when there is none. */
int store_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                              int64_t now_ms, errand_error *err);
/* Up to limit schedules not paused whose next_tick <= now_ms, soonest first. */
int store_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                       errand_error *err);
/* The compare-and-set that moves a schedule past a tick: sets next_tick = to_tick only when
 * the schedule is still at generation with next_tick == from_tick; when run_id is not NULL
 * the schedule also records fired_tick and run_id as its last run. *advanced says whether
 * it did (false: another server advanced it first, or it was replaced or deleted). */
int store_schedule_advance(store *st, const char *name, int64_t generation, int64_t from_tick,
                           int64_t to_tick, int64_t fired_tick, const char *run_id, int64_t now_ms,
                           bool *advanced, errand_error *err);

/* --- webhooks (store/webhook_row.h) --------------------------------------------------- */

/* The most tasks with a webhook a store holds, and so the most GET /api/webhooks lists. */
#define STORE_TASK_WEBHOOKS_MAX 10000

/* Every run that reaches a final state (from one that is not; a cache hit is born final)
 * gets a delivery, in the commit that ends it, when its submission named a webhook_url
 * (run_spec) or its task has a webhook: the submission's URL wins. */

/* Sets the webhook of task to url, or removes it when url is NULL (ERRAND_ENOTFOUND when it
 * has none). ERRAND_ECONFLICT when STORE_TASK_WEBHOOKS_MAX tasks have one and task does not. */
int store_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                      errand_error *err);
/* Every task's webhook, by task. */
int store_webhook_list(store *st, struct task_webhook_list *out, errand_error *err);
/* Up to limit deliveries not made yet, soonest due first; *total how many there are. */
int store_webhook_pending(store *st, int limit, struct webhook_delivery_list *out, int64_t *total,
                          errand_error *err);
/* Takes up to limit deliveries due at now_ms (next_at <= now_ms), soonest first: each one's
 * attempt goes up by 1 and its next_at becomes hold_until_ms, so no other sender takes it
 * while this one calls (one whose sender died is due again when the hold ends). The rows
 * answered carry the new attempt. */
int store_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                       struct webhook_delivery_list *out, errand_error *err);
/* The delivery was made, or given up: its row is deleted. */
int store_webhook_done(store *st, int64_t id, errand_error *err);
/* The call of attempt failed with error: the delivery is due again at next_at. A no-op when
 * another sender has taken it since (its attempt moved on). */
int store_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at, const char *error,
                        errand_error *err);

/* --- backend plumbing (store.c dispatches to one of these) -------------------------- */

struct store_backend {
    const char *kind;
    int (*open)(const char *url, const struct store_options *opt, store **out, errand_error *err);
    void (*close)(store *st);
    int (*submit_begin)(store *, const struct run_spec *, size_t, int64_t, void (*)(void *), void *,
                        store_submission **, errand_error *);
    int (*submit_end)(store_submission *, struct run_row *, bool *, errand_error *);
    int (*get_run)(store *, const char *, struct run_row *, errand_error *);
    int (*get_state)(store *, const char *, errand_state *, errand_error *);
    int (*list_runs)(store *, const struct run_filter *, struct run_list *, char[37],
                     errand_error *);
    int (*get_states)(store *, const char *, struct state_history *, errand_error *);
    int (*get_logs)(store *, const char *, int64_t, int, struct log_page *, errand_error *);
    int (*cancel)(store *, const char *, int64_t, struct run_row *, errand_error *);
    int (*claim)(store *, const struct claim_request *, int64_t, struct run_list *, errand_error *);
    int (*heartbeat)(store *, const char *, const struct lease_ref *, size_t, int, int64_t,
                     struct lease_answer *, errand_error *);
    int (*report)(store *, const char *, const char *, const struct run_report *, size_t,
                  const struct log_entry *, size_t, int64_t, struct lease_answer *, errand_error *);
    int (*sweep)(store *, int64_t, struct sweep_counts *, errand_error *);
    int (*delete_expired)(store *, int64_t, int64_t, int, struct retention_counts *,
                          struct ref_list *, errand_error *);
    int (*list_workers)(store *, const struct worker_cursor *, int, struct worker_list *, bool *,
                        errand_error *);
    int (*count_by_state)(store *, int64_t[8], errand_error *);
    int (*read_events)(store *, int64_t, int, struct run_event_list *, errand_error *);
    int (*event_bounds)(store *, int64_t *, int64_t *, errand_error *);
    int (*prune_events)(store *, int64_t, int64_t, int, int *, errand_error *);
    void (*on_events)(store *, void (*)(void *), void *);
    int (*read_stats)(store *, int64_t, int, struct store_stats *, errand_error *);
    int (*set_paused)(store *, const char *, bool, errand_error *);
    int (*list_failures)(store *, const char *, int, struct failure_group_list *, errand_error *);
    int (*delete_runs)(store *, const char *const *, size_t, int *, struct ref_list *,
                       errand_error *);
    void (*release_memory)(store *);
    int (*ready)(store *, errand_error *);
    void (*on_signal)(store *, void (*)(void *, enum store_signal, const char *), void *);
    void (*observe)(store *, const struct store_observer *);
    int (*oldest_ready)(store *, const char *const *, size_t, int64_t *, errand_error *);
    int (*set_limit)(store *, enum limit_kind, const char *, int, errand_error *);
    int (*set_rate)(store *, const char *, int, int64_t, errand_error *);
    int (*list_limits)(store *, struct limit_list *, errand_error *);
    int (*schedule_put)(store *, const struct schedule_row *, int64_t, struct schedule_row *,
                        bool *, errand_error *);
    int (*schedule_get)(store *, const char *, struct schedule_row *, errand_error *);
    int (*schedule_list)(store *, struct schedule_list *, errand_error *);
    int (*schedule_delete)(store *, const char *, errand_error *);
    int (*schedule_set_paused)(store *, const char *, bool, int64_t, int64_t, errand_error *);
    int (*schedule_due)(store *, int64_t, int, struct schedule_list *, errand_error *);
    int (*schedule_advance)(store *, const char *, int64_t, int64_t, int64_t, int64_t, const char *,
                            int64_t, bool *, errand_error *);
    int (*webhook_set)(store *, const char *, const char *, int64_t, errand_error *);
    int (*webhook_list)(store *, struct task_webhook_list *, errand_error *);
    int (*webhook_pending)(store *, int, struct webhook_delivery_list *, int64_t *, errand_error *);
    int (*webhook_take)(store *, int64_t, int64_t, int, struct webhook_delivery_list *,
                        errand_error *);
    int (*webhook_done)(store *, int64_t, errand_error *);
    int (*webhook_retry)(store *, int64_t, int, int64_t, const char *, errand_error *);
};

/* For backends: store_claim has checked the request (a worker, at least one task, a limit in
 * 1..WIRE_CLAIM_LIMIT_MAX) before it reaches them. The task names of a claim as a JSON array
 * (what GET /api/workers shows the worker serves); NULL when out of memory. */
char *store_claim_tasks_json(const struct claim_request *req);

/* Every backend's store struct begins with this header, so store.c can dispatch. */
struct store {
    const struct store_backend *backend;
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend; /* when built with libpq */

#endif
