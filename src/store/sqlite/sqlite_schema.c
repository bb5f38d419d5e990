/* SPDX-License-Identifier: MIT */
/*
 * sqlite_schema.c — the tables of the SQLite store, as an ordered list of named migrations.
 * A migration is never edited once released: a schema change is a new step at the end
 * (and a line in CHANGELOG.md).
 *
 * Tables and why they look the way they do:
 *  - task_runs: one row per run, the current state inline (so a GET is one row read). id is
 *    a UUIDv7 text, time-ordered, so "newest first" is an index walk on the primary key.
 *    Times are Unix ms integers (NULL = absent). parameters, tags, retry_delays and result
 *    are JSON text exactly as the wire carries them. n_states counts task_run_states rows,
 *    giving the next history seq without a MAX() query. lease_token / lease_expires are set
 *    exactly while a worker holds the run (PENDING, RUNNING, CANCELLING).
 *    delayed is 1 for a SCHEDULED run that was not due when it was written, until a claim or
 *    the sweeper promotes it (sets it to 0) once it is due; 2 for a run waiting for upstream
 *    runs (migration 23); 0 otherwise.
 *    Indexes are partial wherever most rows would carry NULL or never match, so the common
 *    insert touches few b-trees:
 *      task_runs_claim        (task, priority DESC, scheduled_at, id) WHERE SCHEDULED and
 *                             not delayed: the ready queue in claim order, holding only
 *                             claimable runs (a claim reads what it returns, never the
 *                             runs waiting for their time);
 *      task_runs_delayed      (scheduled_at) WHERE SCHEDULED and delayed: the runs waiting
 *                             for their time, soonest first, for the promotion;
 *      task_runs_lease        (lease_expires) WHERE leased: the sweeper's scan;
 *      task_runs_idempotency  UNIQUE (task, idempotency_key) WHERE set: keys are per task;
 *      task_runs_cache        (task, cache_key, finished) WHERE set on a run that COMPLETED by
 *                             running (state name "Completed", not a "Cached" copy):
 *                             the newest cache source, read without passing the copies;
 *      task_runs_attention    (state_type, id) WHERE state_type >= 4, i.e. FAILED,
 *                             CRASHED, CANCELLING or CANCELLED (a range test: an IN list
 *                             here made SQLite build an ephemeral table on every write):
 *                             listings of the states people look for, which
 *                             are rare. A full (state_type, id) index cost 15% of the
 *                             writer's time, since every transition moves an entry; the
 *                             common states (SCHEDULED, PENDING, RUNNING, COMPLETED) are
 *                             listed by walking the primary key newest first instead,
 *                             where they are dense.
 *      task_runs_task         (task, id): one task's runs newest first (listing by task);
 *      task_runs_scheduled    (id) WHERE SCHEDULED, and task_runs_completed (id) WHERE
 *                             COMPLETED: listing those runs newest first.
 *      task_runs_worker       (worker, id) WHERE claimed: one worker's runs newest first
 *                             (an entry added at a run's first claim, moved only when
 *                             another worker claims it again).
 *  - task_run_tags (tag, run_id): one row per tag of a run, for the tag filter (a run without
 *    tags costs nothing here).
 *  - task_run_states (run_id, seq): the state history, WITHOUT ROWID so it is one b-tree.
 *  - task_run_logs: seq INTEGER PRIMARY KEY is the global, increasing log cursor.
 *      task_runs_finished     (finished) WHERE set, i.e. final runs, oldest first: what
 *                             retention deletes;
 *      task_runs_result_ref   (result_ref) WHERE set: whether any run still points at a
 *                             result file that a deletion released.
 *  - workers: who claimed lately (GET /api/workers); workers_seen (last_seen, name) pages the
 *    list most recent first and finds the workers to prune.
 *  - report_batches (id, at): ids of report requests applied lately, so a resent batch's log
 *    lines are not stored twice; task_runs.ended_by is "<lease token>:<state>" of the report
 *    that ended the run's last lease (or "<lease token>:expired" when the lease ran out), so
 *    that report resent is answered as applied, and a late outcome of an expired lease is
 *    recognised. task_runs.redeliveries counts the runs' returns to the queue without an
 *    outcome (state.h).
 *  - claim_requests (id, at, leases): claims that carried a request id, with the leases they
 *    handed out ("<run id>:<token>" comma-separated), so that a claim sent again after its
 *    answer was lost gets the same runs back; forgotten after REQUEST_MEMORY_MS.
 *  - run_feed (first_seq INTEGER PRIMARY KEY, n, at, events): the change feed, one event per
 *    state a run enters, gathered with its history row (sqlite_state_append) and stored in
 *    the same transaction as a page of events (sqlite_feed.h) — one row per commit — so
 *    seq is commit order and never skips a committed change; pruned by age and count
 *    (store_prune_events), the newest page always kept so seq never goes back.
 *  - run_counts: runs per state type, so /metrics and the dashboard count in O(1) instead of
 *    scanning task_runs. The store adjusts it once per write op from a tally of the state
 *    changes it made (sqlite_transition.h), not with triggers: a trigger makes every write
 *    to task_runs open a statement journal, which measurably slowed the writer. The same
 *    tally keeps task_counts (task, state_type, n), run_minutes (minute, task: completed,
 *    failed, cancelled) and tasks (task: paused, last failure), so the dashboard's overview
 *    reads counters, never the runs. failure_groups (task, fingerprint) counts the FAILED
 *    and CRASHED runs stored by the shape of their message, with the latest one.
 */
#include "store/sqlite/sqlite_schema.h"

#include <stdio.h>

#include "core/error.h"
#include "store/trace_sql.h"

struct migration {
    int version;
    const char *name;
    const char *sql;
};

static const struct migration migrations[] = {
    {1, "schema_migrations",
     "CREATE TABLE schema_migrations ("
     "  version INTEGER PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  applied_at INTEGER NOT NULL);"},

    {2, "task_runs",
     "CREATE TABLE task_runs ("
     "  id TEXT NOT NULL PRIMARY KEY,"
     "  task TEXT NOT NULL,"
     "  parameters TEXT NOT NULL,"
     "  state_type INTEGER NOT NULL,"
     "  state_name TEXT NOT NULL,"
     "  state_timestamp INTEGER NOT NULL,"
     "  state_message TEXT NOT NULL DEFAULT '',"
     "  n_states INTEGER NOT NULL DEFAULT 1,"
     "  attempt INTEGER NOT NULL DEFAULT 0,"
     "  max_attempts INTEGER NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  scheduled_at INTEGER NOT NULL,"
     "  started INTEGER,"
     "  finished INTEGER,"
     "  worker TEXT,"
     "  priority INTEGER NOT NULL DEFAULT 0,"
     "  tags TEXT NOT NULL DEFAULT '[]',"
     "  idempotency_key TEXT,"
     "  cache_key TEXT,"
     "  cache_expiration_seconds REAL,"
     "  cache_expires_at INTEGER,"
     "  retries INTEGER NOT NULL DEFAULT 0,"
     "  retry_delays TEXT NOT NULL DEFAULT '[]',"
     "  retry_jitter_factor REAL NOT NULL DEFAULT 0,"
     "  timeout_seconds REAL,"
     "  persist_result INTEGER,"
     "  result TEXT,"
     "  result_ref TEXT,"
     "  lease_token TEXT,"
     "  lease_expires INTEGER);"
     "CREATE INDEX task_runs_claim ON task_runs (task, priority DESC, scheduled_at, id)"
     "  WHERE state_type = 0;"
     "CREATE INDEX task_runs_lease ON task_runs (lease_expires)"
     "  WHERE lease_expires IS NOT NULL;"
     "CREATE UNIQUE INDEX task_runs_idempotency ON task_runs (idempotency_key)"
     "  WHERE idempotency_key IS NOT NULL;"
     "CREATE INDEX task_runs_cache ON task_runs (cache_key, finished)"
     "  WHERE cache_key IS NOT NULL;"
     "CREATE INDEX task_runs_attention ON task_runs (state_type, id)"
     "  WHERE state_type >= 4;"},

    {3, "task_run_tags",
     "CREATE TABLE task_run_tags ("
     "  tag TEXT NOT NULL,"
     "  run_id TEXT NOT NULL,"
     "  PRIMARY KEY (tag, run_id)) WITHOUT ROWID;"},

    {4, "task_run_states",
     "CREATE TABLE task_run_states ("
     "  run_id TEXT NOT NULL,"
     "  seq INTEGER NOT NULL,"
     "  type INTEGER NOT NULL,"
     "  name TEXT NOT NULL,"
     "  timestamp INTEGER NOT NULL,"
     "  message TEXT NOT NULL DEFAULT '',"
     "  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"},

    {5, "task_run_logs",
     "CREATE TABLE task_run_logs ("
     "  seq INTEGER PRIMARY KEY,"
     "  run_id TEXT NOT NULL,"
     "  timestamp INTEGER NOT NULL,"
     "  level INTEGER NOT NULL,"
     "  message TEXT NOT NULL);"
     "CREATE INDEX task_run_logs_run ON task_run_logs (run_id, seq);"},

    {6, "workers",
     "CREATE TABLE workers ("
     "  name TEXT NOT NULL PRIMARY KEY,"
     "  tasks TEXT NOT NULL DEFAULT '[]',"
     "  last_seen INTEGER NOT NULL,"
     "  claimed INTEGER NOT NULL DEFAULT 0);"},

    {7, "run_counts",
     "CREATE TABLE run_counts ("
     "  state_type INTEGER PRIMARY KEY,"
     "  n INTEGER NOT NULL DEFAULT 0);"
     "INSERT INTO run_counts (state_type, n)"
     "  VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0);"
     "UPDATE run_counts SET n = (SELECT count(*) FROM task_runs"
     "  WHERE task_runs.state_type = run_counts.state_type);"},

    /* The delayed set apart from the ready queue: task_runs_claim holds only runs that were
       due when written (or promoted since), so a claim never walks the runs that are not
       due yet, however many there are. Runs not due at the upgrade start delayed. */
    {8, "ready_and_delayed",
     "ALTER TABLE task_runs ADD COLUMN delayed INTEGER NOT NULL DEFAULT 0;"
     "UPDATE task_runs SET delayed = 1 WHERE state_type = 0"
     "  AND scheduled_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);"
     "DROP INDEX task_runs_claim;"
     "CREATE INDEX task_runs_claim ON task_runs (task, priority DESC, scheduled_at, id)"
     "  WHERE state_type = 0 AND delayed = 0;"
     "CREATE INDEX task_runs_delayed ON task_runs (scheduled_at)"
     "  WHERE state_type = 0 AND delayed = 1;"},

    /* Only runs that can be a cache source are in the cache index: the copies a cache hit
       creates (COMPLETED/"Cached") and failed runs share the key but never serve it, and a
       lookup used to walk all of them, newest first, before reaching the source. */
    {9, "cache_sources",
     "DROP INDEX task_runs_cache;"
     "CREATE INDEX task_runs_cache ON task_runs (cache_key, finished)"
     "  WHERE cache_key IS NOT NULL AND state_type = 3 AND state_name = 'Completed';"},

    /* Retention: final runs by the time they finished, oldest first, so a pass deletes what
       expired without reading anything else; result references, so a file is deleted only
       once no run points at it (a cached copy shares its source's); workers by the time they
       were last seen, for pruning and for paging the worker list. */
    {10, "retention",
     "CREATE INDEX task_runs_finished ON task_runs (finished) WHERE finished IS NOT NULL;"
     "CREATE INDEX task_runs_result_ref ON task_runs (result_ref)"
     "  WHERE result_ref IS NOT NULL;"
     "CREATE INDEX workers_seen ON workers (last_seen, name);"},

    /* Listings whose first page must not walk unrelated runs: one task's runs (a task index
       written once per run, since a run never changes task), the SCHEDULED runs (a partial
       index a run enters when submitted and leaves when claimed) and the COMPLETED runs (one
       a run enters when it completes), which used to be found by walking every newer run. */
    {11, "listing",
     "CREATE INDEX task_runs_task ON task_runs (task, id);"
     "CREATE INDEX task_runs_scheduled ON task_runs (id) WHERE state_type = 0;"
     "CREATE INDEX task_runs_completed ON task_runs (id) WHERE state_type = 3;"},

    /* Reports that arrive twice (the worker resent a batch whose answer it did not get): the
       lease token of the report that ended a run's lease is kept, so the same report again is
       answered as applied instead of as stale; and a report batch's id is remembered for a
       while, so its log lines are stored once. */
    {12, "idempotent_reports",
     "ALTER TABLE task_runs ADD COLUMN ended_by TEXT;"
     "CREATE TABLE report_batches (id TEXT NOT NULL PRIMARY KEY, at INTEGER NOT NULL)"
     "  WITHOUT ROWID;"
     "CREATE INDEX report_batches_at ON report_batches (at);"},

    /* Redeliveries: how often a run went back to the queue without an outcome (lease expiry,
       a stopping worker's hand-back mid-run), counted apart from its attempts. And claims
       that carry a request id: the leases a claim handed out, remembered for a while, so the
       same claim sent again (its answer was lost) gets the same runs back at once. */
    {13, "redeliveries",
     "ALTER TABLE task_runs ADD COLUMN redeliveries INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE claim_requests (id TEXT NOT NULL PRIMARY KEY, at INTEGER NOT NULL,"
     "  leases TEXT NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX claim_requests_at ON claim_requests (at);"},

    /* Idempotency and cache keys belong to a task: the same key (an order id, say) submitted
       for two tasks names two runs. Scoping only relaxes the old store-wide uniqueness, so
       existing data always fits the new index. */
    {14, "per_task_keys",
     "DROP INDEX task_runs_idempotency;"
     "CREATE UNIQUE INDEX task_runs_idempotency ON task_runs (task, idempotency_key)"
     "  WHERE idempotency_key IS NOT NULL;"
     "DROP INDEX task_runs_cache;"
     "CREATE INDEX task_runs_cache ON task_runs (task, cache_key, finished)"
     "  WHERE cache_key IS NOT NULL AND state_type = 3 AND state_name = 'Completed';"},

    /* A run made by POST /api/task_runs/{id}/retry keeps the id of the run it retries. */
    {15, "retry_of", "ALTER TABLE task_runs ADD COLUMN retry_of TEXT;"},

    /* The change feed (GET /api/events): one row per state a run enters, numbered in commit
       order, so any server sharing the store can follow it and a client can resume from the
       last number it saw. An append at the right edge of one b-tree; the task is read from
       the run when the feed is read, not copied here. */
    {16, "run_events",
     "CREATE TABLE run_events ("
     "  seq INTEGER PRIMARY KEY,"
     "  run_id TEXT NOT NULL,"
     "  type INTEGER NOT NULL,"
     "  name TEXT NOT NULL,"
     "  at INTEGER NOT NULL);"},

    /* The dashboard's figures without scanning the runs: runs per task and state, runs
       finished per minute and task, and per task its last failure (and, later, whether it
       is paused). Kept in step by every op's tally (sqlite_transition.h). The upgrade counts
       what is stored once, and the last day's finished runs per minute (task_runs_finished). */
    {17, "task_stats",
     "CREATE TABLE task_counts ("
     "  task TEXT NOT NULL,"
     "  state_type INTEGER NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  PRIMARY KEY (task, state_type)) WITHOUT ROWID;"
     "INSERT INTO task_counts (task, state_type, n)"
     "  SELECT task, state_type, count(*) FROM task_runs GROUP BY task, state_type;"
     "CREATE TABLE run_minutes ("
     "  minute INTEGER NOT NULL,"
     "  task TEXT NOT NULL,"
     "  completed INTEGER NOT NULL DEFAULT 0,"
     "  failed INTEGER NOT NULL DEFAULT 0,"
     "  cancelled INTEGER NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (minute, task)) WITHOUT ROWID;"
     "INSERT INTO run_minutes (minute, task, completed, failed, cancelled)"
     "  SELECT finished / 60000, task, sum(state_type = 3 AND state_name = 'Completed'),"
     "         sum(state_type IN (4, 5)), sum(state_type = 7)"
     "  FROM task_runs INDEXED BY task_runs_finished"
     "  WHERE finished IS NOT NULL AND finished >="
     "    CAST((julianday('now') - 2440587.5 - 1) * 86400000 AS INTEGER)"
     "  GROUP BY finished / 60000, task;"
     "CREATE TABLE tasks ("
     "  task TEXT NOT NULL PRIMARY KEY,"
     "  paused INTEGER NOT NULL DEFAULT 0,"
     "  last_failure_id TEXT,"
     "  last_failure_at INTEGER) WITHOUT ROWID;"},

    /* Failures grouped by task and fingerprint (core/fingerprint.h) for the dashboard: a
       group is kept in step as runs fail and as retention deletes them, so listing the groups
       reads the groups, not a million failed runs. Failures stored before this step are not
       grouped. */
    {18, "failure_groups",
     "CREATE TABLE failure_groups ("
     "  task TEXT NOT NULL,"
     "  fingerprint TEXT NOT NULL,"
     "  message TEXT NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  last_at INTEGER NOT NULL,"
     "  last_id TEXT NOT NULL,"
     "  PRIMARY KEY (task, fingerprint)) WITHOUT ROWID;"
     "CREATE INDEX failure_groups_recent ON failure_groups (last_at);"},

    /* The dashboard's worker filter: the runs a worker claimed last, newest first. */
    {19, "worker_listing",
     "CREATE INDEX task_runs_worker ON task_runs (worker, id) WHERE worker IS NOT NULL;"},

    /* The change feed in pages, one row per commit instead of one per state change
       (sqlite_feed.h). The events stored until now are dropped (the feed is a window of
       recent changes; a client behind it gets a reset event and reloads), and a page with
       no event carries the numbering on after the last of them. */
    {20, "feed_pages",
     "CREATE TABLE run_feed ("
     "  first_seq INTEGER PRIMARY KEY,"
     "  n INTEGER NOT NULL,"
     "  at INTEGER NOT NULL,"
     "  events BLOB NOT NULL);"
     "INSERT INTO run_feed (first_seq, n, at, events) "
     "  SELECT seq + 1, 0, at, x'01' FROM run_events ORDER BY seq DESC LIMIT 1;"
     "DROP TABLE run_events;"},

    /* W3C trace context: the traceparent a run was submitted with, and the runs of one trace
       found without a scan (GET /api/task_runs?trace_id=): an index on the trace id inside
       it, holding only the runs that have one. The expression is store/trace_sql.h's
       TRACE_ID_OF, which the listing statements must spell the same way. */
    {21, "trace_context",
     "ALTER TABLE task_runs ADD COLUMN traceparent TEXT;"
     "CREATE INDEX task_runs_trace ON task_runs (" TRACE_ID_OF(
         "traceparent") ", id)"
                        "  WHERE traceparent IS NOT NULL;"},
    /* /metrics tells ready from delayed runs per task without counting them: task_counts
       gains a row per task (state_type 8, RUN_TALLY_DELAYED) counting its SCHEDULED runs
       in the delayed set, kept by every op's tally. The upgrade counts them once (through
       task_runs_delayed). Version 22: 21 is taken by a change made alongside. */
    {22, "delayed_counts",
     "INSERT INTO task_counts (task, state_type, n)"
     "  SELECT task, 8, count(*) FROM task_runs INDEXED BY task_runs_delayed"
     "  WHERE state_type = 0 AND delayed = 1 GROUP BY task;"},

    /* Dependencies (store/run_deps.h): a run waiting for upstream runs has delayed = 2, which
       keeps it out of both the ready queue (task_runs_claim: delayed = 0) and the delayed set
       (task_runs_delayed: delayed = 1); upstream_pending counts the upstream runs it still
       waits for; task_run_edges holds one row per (upstream, downstream) still to settle,
       found by upstream when it ends; dependants on the upstream says whether to look at
       all, so the runs nobody waits for (nearly all) pay nothing when they end. */
    {23, "dependencies",
     "ALTER TABLE task_runs ADD COLUMN wait_for TEXT;"
     "ALTER TABLE task_runs ADD COLUMN result_refs TEXT;"
     "ALTER TABLE task_runs ADD COLUMN upstream_pending INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE task_runs ADD COLUMN allow_upstream_failure INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE task_runs ADD COLUMN dependants INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE task_run_edges ("
     "  upstream TEXT NOT NULL,"
     "  downstream TEXT NOT NULL,"
     "  PRIMARY KEY (upstream, downstream)) WITHOUT ROWID;"},

    /* Concurrency and rate limits (store.h): limits (kind 0 a task, 1 a tag; max_running,
       NULL = no concurrency limit; a task's rate: rate_interval_ms between starts, NULL =
       none, and rate_next_at, the earliest next start) and the slots held, one
       limit_holders row per (limit, run) taken at the claim and deleted when the run's lease
       ends (found by limit_holders_run); a limit's count of held slots is a count of its
       rows, bounded by its max. holds_slots on the run says whether there is anything to
       delete, so runs under no limit pay nothing when they end. */
    {24, "limits",
     "CREATE TABLE limits ("
     "  kind INTEGER NOT NULL,"
     "  name TEXT NOT NULL,"
     "  max_running INTEGER,"
     "  rate_max INTEGER,"
     "  rate_period_ms INTEGER,"
     "  rate_interval_ms REAL,"
     "  rate_next_at REAL NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (kind, name)) WITHOUT ROWID;"
     "CREATE TABLE limit_holders ("
     "  kind INTEGER NOT NULL,"
     "  name TEXT NOT NULL,"
     "  run_id TEXT NOT NULL,"
     "  since INTEGER NOT NULL,"
     "  PRIMARY KEY (kind, name, run_id)) WITHOUT ROWID;"
     "CREATE INDEX limit_holders_run ON limit_holders (run_id);"
     "ALTER TABLE task_runs ADD COLUMN holds_slots INTEGER NOT NULL DEFAULT 0;"},

    /* Schedules (store/schedule_row.h): one row per schedule, by name; schedules_due holds
       the schedules not paused in next_tick order, so the scheduler's look for due ticks is
       one seek when none is due. Version 25: 23 and 24 are the dependencies' and limits' (made
       alongside). */
    {25, "schedules",
     "CREATE TABLE schedules ("
     "  name TEXT NOT NULL PRIMARY KEY,"
     "  task TEXT NOT NULL,"
     "  run_options TEXT NOT NULL,"
     "  cron TEXT,"
     "  every_ms INTEGER,"
     "  time_zone TEXT NOT NULL,"
     "  catch_up INTEGER NOT NULL,"
     "  paused INTEGER NOT NULL DEFAULT 0,"
     "  next_tick INTEGER NOT NULL,"
     "  last_tick INTEGER,"
     "  last_run_id TEXT,"
     "  generation INTEGER NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  updated INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX schedules_due ON schedules (next_tick) WHERE paused = 0;"},

    /* Webhooks (store/webhook_row.h): the tasks' webhooks; a submission's own URL, kept
       until its run is deleted; and the deliveries to make, written in the commit that ends their
       run and read through webhook_deliveries_due (next_at, id), so the sender's look for
       due ones is one seek when none is. */
    {26, "webhooks",
     "CREATE TABLE task_webhooks ("
     "  task TEXT NOT NULL PRIMARY KEY,"
     "  url TEXT NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  updated INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE run_webhooks ("
     "  run_id TEXT NOT NULL PRIMARY KEY,"
     "  url TEXT NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE webhook_deliveries ("
     "  id INTEGER PRIMARY KEY,"
     "  run_id TEXT NOT NULL,"
     "  url TEXT NOT NULL,"
     "  attempt INTEGER NOT NULL DEFAULT 0,"
     "  next_at INTEGER NOT NULL,"
     "  last_error TEXT,"
     "  created INTEGER NOT NULL);"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at, id);"},
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))
#define SCHEMA_SQL_MAX 256

int sqlite_schema_version(void)
{
    return migrations[MIGRATION_COUNT - 1].version;
}

int sqlite_schema_migration_count(void)
{
    return MIGRATION_COUNT;
}

static int read_user_version(struct sqlite_conn *c, int *out, errand_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return sqlite_conn_fail(c, "PRAGMA user_version", err);
    int rc = 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    else
        rc = sqlite_conn_fail(c, "PRAGMA user_version", err);
    sqlite3_finalize(s);
    return rc;
}

static int record_migration(struct sqlite_conn *c, const struct migration *m, int64_t now_ms,
                            errand_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO schema_migrations (version, name, applied_at) "
                           "VALUES (?1, ?2, ?3)",
                           -1, &s, NULL) != SQLITE_OK)
        return sqlite_conn_fail(c, "schema_migrations", err);
    sqlite3_bind_int(s, 1, m->version);
    sqlite3_bind_text(s, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : sqlite_conn_fail(c, "schema_migrations", err);
    sqlite3_finalize(s);
    return rc;
}

/* Applies m in its own transaction. The version is re-read under the write lock, so two
 * processes opening a fresh file at once do not both apply it. */
static int apply_one(struct sqlite_conn *c, const struct migration *m, int64_t now_ms,
                     errand_error *err)
{
    int rc = sqlite_conn_exec(c, "BEGIN IMMEDIATE", err);
    if (rc < 0)
        return rc;
    int current = 0;
    if ((rc = read_user_version(c, &current, err)) < 0)
        goto fail;
    if (current >= m->version) {
        sqlite_conn_exec(c, "ROLLBACK", NULL);
        return 0;
    }
    if ((rc = sqlite_conn_exec(c, m->sql, err)) < 0 ||
        (rc = record_migration(c, m, now_ms, err)) < 0)
        goto fail;
    char sql[SCHEMA_SQL_MAX];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", m->version);
    if ((rc = sqlite_conn_exec(c, sql, err)) < 0 || (rc = sqlite_conn_exec(c, "COMMIT", err)) < 0)
        goto fail;
    return 0;
fail:
    sqlite_conn_exec(c, "ROLLBACK", NULL);
    if (err)
        error_set(err, rc, NULL, "store: migration %d (%s) failed: %.400s", m->version, m->name,
                  err->message);
    return rc;
}

int sqlite_schema_migrate(struct sqlite_conn *c, int64_t now_ms, errand_error *err)
{
    int current = 0;
    int rc = read_user_version(c, &current, err);
    if (rc < 0)
        return rc;
    if (current > sqlite_schema_version())
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the database has schema version %d, newer than this errand "
                         "understands (%d); upgrade errand",
                         current, sqlite_schema_version());
    for (int i = 0; i < MIGRATION_COUNT; i++) {
        if (migrations[i].version <= current)
            continue;
        if ((rc = apply_one(c, &migrations[i], now_ms, err)) < 0)
            return rc;
    }
    return 0;
}
