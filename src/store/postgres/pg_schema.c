/* SPDX-License-Identifier: MIT */
/*
 * pg_schema.c — the tables of the PostgreSQL store, as an ordered list of named migrations.
 * A migration is never edited once released: a schema change is a new step at the end (and
 * a line in CHANGELOG.md).
 *
 * The tables are those of the SQLite store (src/store/sqlite/sqlite_schema.c explains each
 * column and index), with what several servers writing at once need:
 *  - task_runs, task_run_tags, task_run_states, task_run_logs (seq from a sequence),
 *    workers, report_batches, claim_requests, tasks, failure_groups: as in SQLite; the ready
 *    queue (task_runs_claim) and the delayed set (task_runs_delayed) are partial indexes as
 *    there, and a claim takes its runs with FOR UPDATE SKIP LOCKED.
 *  - The counters (run_counts, task_counts, run_minutes) are added to, not updated: each
 *    commit inserts the changes of its tally as new rows, and readers sum them. An updated
 *    counter row would be locked by every writer until it commits — one queue for all the
 *    servers. The sweeper folds the rows back into one per key now and then
 *    (store_pg_fold_counts), so a read sums few rows.
 *  - The change feed: run_feed pages as in SQLite, numbered from feed_head, a single row
 *    each committing transaction with events updates last. That row lock is held from the
 *    update to the commit, so pages are numbered in commit order across servers and a reader
 *    never sees seq N+1 before N; it is the one point where writers wait for each other, and
 *    only for the end of their commits.
 */
#include "store/postgres/pg_schema.h"

#include <stdio.h>

#include "core/error.h"
#include "store/trace_sql.h"

struct migration {
    int version;
    const char *name;
    const char *sql;
};

/* Taken (per transaction) by whoever migrates: errand's key, any 64-bit value would do. */
#define MIGRATION_LOCK_KEY "7262617474696e67"

static const struct migration migrations[] = {
    {1, "initial",
     "CREATE TABLE task_runs ("
     "  id text PRIMARY KEY,"
     "  task text NOT NULL,"
     "  parameters text NOT NULL,"
     "  state_type integer NOT NULL,"
     "  state_name text NOT NULL,"
     "  state_timestamp bigint NOT NULL,"
     "  state_message text NOT NULL DEFAULT '',"
     "  n_states integer NOT NULL DEFAULT 1,"
     "  attempt integer NOT NULL DEFAULT 0,"
     "  max_attempts integer NOT NULL,"
     "  created bigint NOT NULL,"
     "  scheduled_at bigint NOT NULL,"
     "  started bigint,"
     "  finished bigint,"
     "  worker text,"
     "  priority integer NOT NULL DEFAULT 0,"
     "  tags text NOT NULL DEFAULT '[]',"
     "  idempotency_key text,"
     "  cache_key text,"
     "  cache_expiration_seconds double precision,"
     "  cache_expires_at bigint,"
     "  retries integer NOT NULL DEFAULT 0,"
     "  retry_delays text NOT NULL DEFAULT '[]',"
     "  retry_jitter_factor double precision NOT NULL DEFAULT 0,"
     "  timeout_seconds double precision,"
     "  persist_result integer,"
     "  result text,"
     "  result_ref text,"
     "  lease_token text,"
     "  lease_expires bigint,"
     "  delayed boolean NOT NULL DEFAULT false,"
     "  ended_by text,"
     "  redeliveries integer NOT NULL DEFAULT 0,"
     "  retry_of text);"
     "CREATE INDEX task_runs_claim ON task_runs (task, priority DESC, scheduled_at, id)"
     "  WHERE state_type = 0 AND NOT delayed;"
     "CREATE INDEX task_runs_delayed ON task_runs (scheduled_at)"
     "  WHERE state_type = 0 AND delayed;"
     "CREATE INDEX task_runs_lease ON task_runs (lease_expires)"
     "  WHERE lease_expires IS NOT NULL;"
     "CREATE UNIQUE INDEX task_runs_idempotency ON task_runs (task, idempotency_key)"
     "  WHERE idempotency_key IS NOT NULL;"
     "CREATE INDEX task_runs_cache ON task_runs (task, cache_key, finished)"
     "  WHERE cache_key IS NOT NULL AND state_type = 3 AND state_name = 'Completed';"
     "CREATE INDEX task_runs_attention ON task_runs (state_type, id) WHERE state_type >= 4;"
     "CREATE INDEX task_runs_finished ON task_runs (finished) WHERE finished IS NOT NULL;"
     "CREATE INDEX task_runs_result_ref ON task_runs (result_ref) WHERE result_ref IS NOT NULL;"
     "CREATE INDEX task_runs_task ON task_runs (task, id);"
     "CREATE INDEX task_runs_scheduled ON task_runs (id) WHERE state_type = 0;"
     "CREATE INDEX task_runs_completed ON task_runs (id) WHERE state_type = 3;"
     "CREATE INDEX task_runs_worker ON task_runs (worker, id) WHERE worker IS NOT NULL;"
     "CREATE TABLE task_run_tags ("
     "  tag text NOT NULL,"
     "  run_id text NOT NULL,"
     "  PRIMARY KEY (tag, run_id));"
     "CREATE TABLE task_run_states ("
     "  run_id text NOT NULL,"
     "  seq integer NOT NULL,"
     "  type integer NOT NULL,"
     "  name text NOT NULL,"
     "  timestamp bigint NOT NULL,"
     "  message text NOT NULL DEFAULT '',"
     "  PRIMARY KEY (run_id, seq));"
     "CREATE TABLE task_run_logs ("
     "  seq bigserial PRIMARY KEY,"
     "  run_id text NOT NULL,"
     "  timestamp bigint NOT NULL,"
     "  level integer NOT NULL,"
     "  message text NOT NULL);"
     "CREATE INDEX task_run_logs_run ON task_run_logs (run_id, seq);"
     "CREATE TABLE workers ("
     "  name text PRIMARY KEY,"
     "  tasks text NOT NULL DEFAULT '[]',"
     "  last_seen bigint NOT NULL,"
     "  claimed bigint NOT NULL DEFAULT 0);"
     "CREATE INDEX workers_seen ON workers (last_seen, name);"
     "CREATE TABLE report_batches (id text PRIMARY KEY, at bigint NOT NULL);"
     "CREATE INDEX report_batches_at ON report_batches (at);"
     "CREATE TABLE claim_requests (id text PRIMARY KEY, at bigint NOT NULL,"
     "  leases text NOT NULL);"
     "CREATE INDEX claim_requests_at ON claim_requests (at);"
     "CREATE TABLE run_counts (state_type integer NOT NULL, n bigint NOT NULL);"
     "CREATE TABLE task_counts (task text NOT NULL, state_type integer NOT NULL,"
     "  n bigint NOT NULL);"
     "CREATE INDEX task_counts_task ON task_counts (task, state_type);"
     "CREATE TABLE run_minutes ("
     "  minute bigint NOT NULL,"
     "  task text NOT NULL,"
     "  completed bigint NOT NULL DEFAULT 0,"
     "  failed bigint NOT NULL DEFAULT 0,"
     "  cancelled bigint NOT NULL DEFAULT 0);"
     "CREATE INDEX run_minutes_minute ON run_minutes (minute, task);"
     "CREATE TABLE tasks ("
     "  task text PRIMARY KEY,"
     "  paused boolean NOT NULL DEFAULT false,"
     "  last_failure_id text,"
     "  last_failure_at bigint);"
     "CREATE TABLE failure_groups ("
     "  task text NOT NULL,"
     "  fingerprint text NOT NULL,"
     "  message text NOT NULL,"
     "  n bigint NOT NULL,"
     "  last_at bigint NOT NULL,"
     "  last_id text NOT NULL,"
     "  PRIMARY KEY (task, fingerprint));"
     "CREATE INDEX failure_groups_recent ON failure_groups (last_at);"
     "CREATE TABLE feed_head (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
     "  next_seq bigint NOT NULL);"
     "INSERT INTO feed_head (next_seq) VALUES (1);"
     "CREATE TABLE run_feed ("
     "  first_seq bigint PRIMARY KEY,"
     "  n integer NOT NULL,"
     "  at bigint NOT NULL,"
     "  events bytea NOT NULL);"},

    /* W3C trace context: the traceparent a run was submitted with, and an index on its trace
       id (store/trace_sql.h) holding only the runs that have one, for listing a trace's runs.
       Adding a nullable column without a default rewrites nothing. */
    {2, "trace_context",
     "ALTER TABLE task_runs ADD COLUMN traceparent text;"
     "CREATE INDEX task_runs_trace ON task_runs (" TRACE_ID_OF(
         "traceparent") ", id)"
                        "  WHERE traceparent IS NOT NULL;"},
    /* /metrics tells ready from delayed runs per task without counting them: task_counts
       gains rows per task with state_type 8 (RUN_TALLY_DELAYED) counting its SCHEDULED runs
       in the delayed set, added to by every op's tally. The upgrade counts them once.
       Version 3: 2 is taken by a change made alongside. */
    {3, "delayed_counts",
     "INSERT INTO task_counts (task, state_type, n)"
     "  SELECT task, 8, count(*) FROM task_runs WHERE state_type = 0 AND delayed"
     "  GROUP BY task;"},
    /* Dependencies (store/run_deps.h), as SQLite's migration 23: a run waiting for upstream
       runs has delayed NULL, which keeps it out of both the ready queue (task_runs_claim:
       NOT delayed) and the delayed set (task_runs_delayed: delayed), and is read as delayed
       by the rules (it counts with the delayed runs in the tally); upstream_pending counts
       the upstream runs it still waits for; task_run_edges holds one row per (upstream,
       downstream) still to settle, found by upstream when it ends; dependants on the
       upstream says whether to look at all. Dropping NOT NULL and adding columns with
       constant defaults rewrite nothing. Version 4: SQLite's numbers are its own. */
    {4, "dependencies",
     "ALTER TABLE task_runs ALTER COLUMN delayed DROP NOT NULL;"
     "ALTER TABLE task_runs ADD COLUMN wait_for text;"
     "ALTER TABLE task_runs ADD COLUMN result_refs text;"
     "ALTER TABLE task_runs ADD COLUMN upstream_pending integer NOT NULL DEFAULT 0;"
     "ALTER TABLE task_runs ADD COLUMN allow_upstream_failure boolean NOT NULL DEFAULT false;"
     "ALTER TABLE task_runs ADD COLUMN dependants integer NOT NULL DEFAULT 0;"
     "CREATE TABLE task_run_edges ("
     "  upstream text NOT NULL,"
     "  downstream text NOT NULL,"
     "  PRIMARY KEY (upstream, downstream));"},

    /* Schedules (store/schedule_row.h), as SQLite's migration 24: one row per schedule by
       name; schedules_due holds those not paused in next_tick order, for the schedulers of
       every server. Version 5: 4 is the dependencies' (made alongside). */
    {5, "schedules",
     "CREATE TABLE schedules ("
     "  name text COLLATE \"C\" NOT NULL PRIMARY KEY,"
     "  task text NOT NULL,"
     "  run_options text NOT NULL,"
     "  cron text,"
     "  every_ms bigint,"
     "  time_zone text NOT NULL,"
     "  catch_up integer NOT NULL,"
     "  paused boolean NOT NULL DEFAULT false,"
     "  next_tick bigint NOT NULL,"
     "  last_tick bigint,"
     "  last_run_id text,"
     "  generation bigint NOT NULL,"
     "  created bigint NOT NULL,"
     "  updated bigint NOT NULL);"
     "CREATE INDEX schedules_due ON schedules (next_tick) WHERE NOT paused;"},

    /* Concurrency and rate limits, as SQLite's migration 24 (sqlite_schema.c explains the
       columns); pg_limits.c says how claims on several servers keep to them (they lock a
       limit's row before counting its limit_holders). Version 6: 4 and 5 are taken by
       changes made alongside. */
    {6, "limits",
     "CREATE TABLE limits ("
     "  kind integer NOT NULL,"
     "  name text NOT NULL,"
     "  max_running integer,"
     "  rate_max integer,"
     "  rate_period_ms bigint,"
     "  rate_interval_ms double precision,"
     "  rate_next_at double precision NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (kind, name));"
     "CREATE TABLE limit_holders ("
     "  kind integer NOT NULL,"
     "  name text NOT NULL,"
     "  run_id text NOT NULL,"
     "  since bigint NOT NULL,"
     "  PRIMARY KEY (kind, name, run_id));"
     "CREATE INDEX limit_holders_run ON limit_holders (run_id);"
     "ALTER TABLE task_runs ADD COLUMN holds_slots smallint NOT NULL DEFAULT 0;"},

    /* Webhooks (store/webhook_row.h): task_webhooks holds a task's URL; run_webhooks the URL
       a submission named for its run, kept until the run is deleted; webhook_deliveries the calls
       to make, written in the commit that ends a run (store_pg_webhooks.c), taken by the
       senders of every server in (next_at, id) order (webhook_deliveries_due). Times are
       Unix ms, as everywhere here. */
    {7, "webhooks",
     "CREATE TABLE task_webhooks ("
     "  task text PRIMARY KEY,"
     "  url text NOT NULL,"
     "  created bigint NOT NULL,"
     "  updated bigint NOT NULL);"
     "CREATE TABLE run_webhooks ("
     "  run_id text PRIMARY KEY,"
     "  url text NOT NULL);"
     "CREATE TABLE webhook_deliveries ("
     "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  run_id text NOT NULL,"
     "  url text NOT NULL,"
     "  attempt integer NOT NULL DEFAULT 0,"
     "  next_at bigint NOT NULL,"
     "  last_error text,"
     "  created bigint NOT NULL);"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at, id);"},
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

int pg_schema_version(void)
{
    return migrations[MIGRATION_COUNT - 1].version;
}

/* The version applied, read under the migration lock; 0 for a database without errand's
 * tables. */
static int read_version(struct pg_conn *c, int *out, errand_error *err)
{
    static const char sql[] = "SELECT coalesce(max(version), 0) FROM errand_schema_migrations";
    PGresult *r = pg_query(c, sql, NULL, "reading the schema version", err);
    if (!r)
        return ERRAND_ESTORE;
    *out = PQntuples(r) ? pg_get_int(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

static int apply_one(struct pg_conn *c, const struct migration *m, int64_t now_ms,
                     errand_error *err)
{
    int rc = pg_exec(c,
                     "BEGIN;"
                     /* no NOTICE that the table exists on stderr at every step after the first */
                     "SET LOCAL client_min_messages = warning;"
                     "SELECT pg_advisory_xact_lock(x'" MIGRATION_LOCK_KEY "'::bigint);"
                     "CREATE TABLE IF NOT EXISTS errand_schema_migrations ("
                     "  version integer PRIMARY KEY, name text NOT NULL,"
                     "  applied_at bigint NOT NULL)",
                     err);
    int current = 0;
    if (rc < 0 || (rc = read_version(c, &current, err)) < 0)
        goto fail;
    if (current >= m->version)
        return pg_exec(c, "COMMIT", err);
    static const char record[] =
        "INSERT INTO errand_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
    struct pg_params p = {0};
    pg_p_int(&p, m->version);
    pg_p_text(&p, m->name);
    pg_p_i64(&p, now_ms);
    if ((rc = pg_exec(c, m->sql, err)) < 0 ||
        (rc = pg_command(c, record, &p, "errand_schema_migrations", NULL, err)) < 0 ||
        (rc = pg_exec(c, "COMMIT", err)) < 0)
        goto fail;
    return 0;
fail:
    pg_exec(c, "ROLLBACK", NULL);
    if (err)
        error_set(err, rc, NULL, "store: migration %d (%s) failed: %.400s", m->version, m->name,
                  err->message);
    return rc;
}

int pg_schema_migrate(struct pg_conn *c, int64_t now_ms, errand_error *err)
{
    for (int i = 0; i < MIGRATION_COUNT; i++) {
        int rc = apply_one(c, &migrations[i], now_ms, err);
        if (rc < 0)
            return rc;
    }
    int current = 0;
    int rc = read_version(c, &current, err);
    if (rc == 0 && current > pg_schema_version())
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the database has schema version %d, newer than this errand "
                         "understands (%d); upgrade errand",
                         current, pg_schema_version());
    return rc;
}
