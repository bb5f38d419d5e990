/* SPDX-License-Identifier: MIT */
/*
 * sqlite_sql.c — the text of every named statement of the SQLite store (see sqlite_sql.h).
 *
 * Notes on index use (checked with EXPLAIN QUERY PLAN, see tests/unit/test_store_sqlite.c):
 *  - SQL_CLAIM_CANDIDATES walks the partial index task_runs_claim (task, priority DESC,
 *    scheduled_at, id) WHERE state_type = 0 AND delayed = 0 in its own order: the index
 *    holds only ready runs, so a claim reads the entries it returns and nothing else, however
 *    many runs wait for their time. The literals (0 for SCHEDULED, delayed = 0) must stay
 *    literal: SQLite uses a partial index only when the query's WHERE visibly implies the
 *    index's WHERE, and a bound parameter does not.
 *  - SQL_CLAIM_READY_EXISTS, SQL_DELAYED_DUE_EXISTS and SQL_WORKER_FRESH are a claim's look
 *    before it writes, on a reader: one seek each.
 *  - SQL_PROMOTE_DUE moves the delayed runs that are due into the ready queue, soonest first
 *    from task_runs_delayed, a bounded batch at a time; when none is due it is one seek.
 *  - SQL_CACHE_SOURCE reads task_runs_cache, which holds only possible sources (runs that
 *    COMPLETED by running), newest first: the Cached copies of a popular key are not in it.
 *  - SQL_LEASE_EXPIRED uses task_runs_lease (lease_expires WHERE lease_expires IS NOT NULL):
 *    "lease_expires < ?" implies NOT NULL.
 *  - Listing by state, one state at a time (the store merges states), each state from the
 *    index that holds exactly its runs, so a page costs the size of that state's set, not
 *    of the table:
 *      PENDING, RUNNING       task_runs_lease (the runs in flight), then a top-N sort;
 *      FAILED .. CANCELLED    task_runs_attention, already in id order;
 *      SCHEDULED, COMPLETED   task_runs_scheduled, task_runs_completed, in id order (they
 *                             used to be walks of the primary key past every newer run of
 *                             other states).
 *    Listing one task's runs (SQL_LIST_TASK) reads task_runs_task in id order; one task's
 *    runs in one state walk either that task's runs (SQL_LIST_TASK_STATE) or the state's
 *    index with the task checked on each row, whichever the counters (task_counts,
 *    run_counts) say is smaller, limited to the number of runs that match.
 *    The literal terms ("lease_expires IS NOT NULL", "state_type >= 4")
 *    repeat the partial indexes' WHERE, which is what lets SQLite use them; INDEXED BY
 *    makes a mismatch an error instead of a silent full scan.
 *  - SQL_LIST_TRACE walks task_runs_trace, an index on the trace id inside traceparent
 *    (TRACE_ID_OF, spelled exactly as in the index: SQLite matches an indexed expression by
 *    its text) holding only the runs that have one; the other filters are checked on each
 *    row, bounded by SQL_BOUND_TRACE as for a tag. ?9 is the trace id.
 *  - SQL_LIST_TAG starts from task_run_tags (CROSS JOIN fixes that join order) so a rare
 *    tag does not scan every run; SQL_LIST_WORKER walks task_runs_worker.
 *  - A listing whose filters combine (a task and a state, a tag or a worker and anything
 *    else) walks one filter's index and checks the others on each row; the walk is bounded
 *    by a SQL_BOUND_* statement first: the id STORE_LIST_SCAN_MAX entries down the same
 *    index from the cursor (LIMIT 1 OFFSET n over the index alone, no table reads), which
 *    becomes the listing's lower id bound (?6) and, when the page is not full, its cursor.
 *  - Parameters keep one meaning in every listing: ?1 cursor (ids below it), ?2 task,
 *    ?3 limit, ?4 the state or the tag the index is walked for, ?5 a mask of states,
 *    ?6 the lowest id (inclusive), ?7 worker, ?8 the bound's offset.
 *  - SQL_WORKER_CLAIMED / SQL_WORKER_SEEN leave a worker's row alone when nothing but
 *    last_seen would change and it changed less than ?granularity ms ago: an idle worker's
 *    empty long-poll claims then write nothing, and a transaction that wrote nothing
 *    commits without touching the WAL or waiting for an fsync.
 *  - Retention reads task_runs_finished oldest first (SQL_EXPIRED_RUNS) and deletes each run's
 *    history and logs by run_id (their primary key and task_run_logs_run) and its tags by
 *    (tag, run_id), read from the run's tags; SQL_RESULT_REF_USED is one seek in
 *    task_runs_result_ref. SQL_WORKERS_LIST pages workers_seen backwards by (last_seen,
 *    name), a row-value comparison SQLite answers from the index.
 *  - No statement uses RETURNING: SQLite implements it with an ephemeral table per
 *    execution, which costs more than a second point query on the writer.
 *  - Optional filters are written "(?N IS NULL OR col = ?N)" so one prepared statement
 *    serves every combination.
 */
#include "store/sqlite/sqlite_sql.h"

#include <stddef.h>

#include "errand/errand.h"
#include "store/trace_sql.h"

_Static_assert(ERRAND_STATE_SCHEDULED == 0, "SQL below spells SCHEDULED as the literal 0");
_Static_assert(ERRAND_STATE_COMPLETED == 3,
               "SQL below and the cache index spell COMPLETED as the literal 3 (the name "
               "'Completed' is state_default_name(ERRAND_STATE_COMPLETED), checked by the tests)");
_Static_assert(ERRAND_STATE_FAILED == 4 && ERRAND_STATE_CRASHED == 5 &&
                   ERRAND_STATE_CANCELLING == 6 && ERRAND_STATE_CANCELLED == 7,
               "SQL below and the schema spell the attention states as state_type >= 4");

#define RUN_COLUMNS                                                                                \
    "id, task, parameters, state_type, state_name, state_timestamp, state_message, attempt, "      \
    "max_attempts, created, scheduled_at, started, finished, worker, priority, tags, "             \
    "idempotency_key, cache_key, retries, retry_delays, retry_jitter_factor, "                     \
    "timeout_seconds, persist_result, result, result_ref, redeliveries, retry_of, lease_expires, " \
    "traceparent, wait_for, allow_upstream_failure"

#define LEASE_COLUMNS                                                                              \
    "rowid, state_type, state_timestamp, attempt, max_attempts, lease_token, worker, "             \
    "retry_delays, retry_jitter_factor, cache_key, cache_expiration_seconds, started, "            \
    "scheduled_at, n_states, lease_expires, id, ended_by, redeliveries, task, delayed, "           \
    "dependants, "                                                                                 \
    "holds_slots"

/* A schedule's columns, in the order store_sqlite_schedules.c reads them. */
#define SCHEDULE_COLUMNS                                                                           \
    "name, task, run_options, cron, every_ms, time_zone, catch_up, paused, next_tick, "            \
    "last_tick, last_run_id, generation, created, updated"
/* The columns of a webhook delivery, as store_sqlite_webhooks.c reads them. */
#define WEBHOOK_DELIVERY_COLUMNS "id, run_id, url, attempt, next_at, last_error, created"

/* The task (a parameter) is not paused: one primary-key seek in tasks, whatever is stored. */
#define NOT_PAUSED(task) "NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.task =" task "AND paused = 1)"

struct sql_def {
    const char *name;
    const char *text;
};

#define SQL(id, text) [id] = {#id, text}
/* The value of task_runs.delayed for a row written with state type STATE, scheduled_at AT,
 * at time NOW: 1 for a SCHEDULED run that is not due yet. */
#define DELAYED_WHEN(state, at, now) "(" state " = 0 AND " at " > " now ")"

static const struct sql_def sql_table[SQL_COUNT] = {
    SQL(SQL_BEGIN_WRITE, "BEGIN IMMEDIATE"),
    SQL(SQL_BEGIN_READ, "BEGIN"),
    SQL(SQL_COMMIT, "COMMIT"),
    SQL(SQL_ROLLBACK, "ROLLBACK"),
    SQL(SQL_SAVEPOINT, "SAVEPOINT op"),
    SQL(SQL_RELEASE, "RELEASE op"),
    SQL(SQL_ROLLBACK_TO, "ROLLBACK TO op"),

    SQL(SQL_RUN_GET, "SELECT " RUN_COLUMNS " FROM task_runs WHERE id = ?1"),
    SQL(SQL_RUN_GET_STATE, "SELECT state_type FROM task_runs WHERE id = ?1"),
    SQL(SQL_RUN_BY_IDEMPOTENCY,
        "SELECT " RUN_COLUMNS " FROM task_runs WHERE task = ?1 AND idempotency_key = ?2"),
    SQL(SQL_RUN_LEASE_INFO, "SELECT " LEASE_COLUMNS " FROM task_runs WHERE id = ?1"),

    SQL(SQL_RUN_INSERT,
        "INSERT INTO task_runs (id, task, parameters, state_type, state_name, state_timestamp, "
        "state_message, n_states, attempt, max_attempts, created, scheduled_at, finished, "
        "priority, tags, idempotency_key, cache_key, cache_expiration_seconds, "
        "cache_expires_at, retries, retry_delays, retry_jitter_factor, timeout_seconds, "
        "persist_result, result, result_ref, delayed, retry_of, traceparent, wait_for, "
        "result_refs, upstream_pending, allow_upstream_failure) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
        "?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, "
        "CASE WHEN ?29 > 0 THEN 2 ELSE " DELAYED_WHEN("?4", "?10", "?6") " END, ?25, ?26, ?27, "
                                                                         "?28, ?29, ?30)"),
    SQL(SQL_EDGE_INSERT,
        "INSERT OR IGNORE INTO task_run_edges (upstream, downstream) VALUES (?1, ?2)"),
    SQL(SQL_DEPENDANTS_ADD, "UPDATE task_runs SET dependants = dependants + 1 WHERE id = ?1"),
    SQL(SQL_EDGES_OF, "SELECT downstream FROM task_run_edges WHERE upstream = ?1"),
    SQL(SQL_EDGES_DELETE, "DELETE FROM task_run_edges WHERE upstream = ?1"),
    SQL(SQL_DEPS_UPSTREAM, "SELECT state_type, result, result_ref FROM task_runs WHERE id = ?1"),
    SQL(SQL_DEPS_DOWNSTREAM,
        "SELECT parameters, result_refs, upstream_pending, allow_upstream_failure "
        "FROM task_runs WHERE id = ?1"),
    SQL(SQL_DEPS_WAIT,
        "UPDATE task_runs SET upstream_pending = ?2, parameters = coalesce(?3, parameters), "
        "state_message = ?4 WHERE rowid = ?1"),
    SQL(SQL_DEPS_RELEASE,
        "UPDATE task_runs SET upstream_pending = 0, parameters = coalesce(?3, parameters), "
        "state_name = ?5, state_message = '', state_timestamp = ?4, n_states = ?6, "
        "delayed = " DELAYED_WHEN("0", "scheduled_at", "?4") " WHERE rowid = ?1"),
    SQL(SQL_TAG_INSERT, "INSERT OR IGNORE INTO task_run_tags (tag, run_id) VALUES (?1, ?2)"),
    SQL(SQL_STATE_INSERT,
        "INSERT INTO task_run_states (run_id, seq, type, name, timestamp, message) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
    SQL(SQL_RUN_TRANSITION,
        "UPDATE task_runs SET state_type = ?2, state_name = ?3, state_timestamp = ?4, "
        "state_message = ?5, n_states = ?6, attempt = ?7, scheduled_at = ?8, started = ?9, "
        "finished = ?10, lease_token = ?11, lease_expires = ?12, "
        "ended_by = coalesce(?16, ended_by), redeliveries = ?17, "
        "delayed = " DELAYED_WHEN("?2", "?8", "?4") " WHERE rowid = ?1"),
    SQL(SQL_RUN_COMPLETE,
        "UPDATE task_runs SET state_type = ?2, state_name = ?3, state_timestamp = ?4, "
        "state_message = ?5, n_states = ?6, attempt = ?7, scheduled_at = ?8, started = ?9, "
        "finished = ?10, lease_token = ?11, lease_expires = ?12, result = ?13, "
        "result_ref = ?14, cache_expires_at = ?15, ended_by = coalesce(?16, ended_by), "
        "redeliveries = ?17, "
        "delayed = " DELAYED_WHEN("?2", "?8", "?4") " WHERE rowid = ?1"),
    SQL(SQL_CACHE_SOURCE,
        "SELECT id, result, result_ref, cache_expires_at FROM task_runs "
        "WHERE task = ?3 AND cache_key = ?1 AND state_type = 3 AND state_name = 'Completed' "
        "AND (cache_expires_at IS NULL OR cache_expires_at > ?2) "
        "ORDER BY finished DESC LIMIT 1"),

    SQL(SQL_CLAIM_CANDIDATES,
        "SELECT rowid, id, priority, scheduled_at, task, parameters, attempt, max_attempts, "
        "timeout_seconds, persist_result, cache_key, n_states, traceparent, tags FROM task_runs "
        "WHERE state_type = 0 AND delayed = 0 AND task = ?1 AND scheduled_at <= ?2 "
        "AND " NOT_PAUSED(" ?1 ") " ORDER BY priority DESC, scheduled_at, id LIMIT ?3"),
    SQL(SQL_CLAIM_READY_EXISTS,
        "SELECT 1 FROM task_runs INDEXED BY task_runs_claim WHERE state_type = 0 AND delayed = 0 "
        "AND task = ?1 AND scheduled_at <= ?2 AND " NOT_PAUSED(" ?1 ") " LIMIT 1"),
    SQL(SQL_DELAYED_DUE_EXISTS,
        "SELECT 1 FROM task_runs INDEXED BY task_runs_delayed WHERE state_type = 0 "
        "AND delayed = 1 AND scheduled_at <= ?1 LIMIT 1"),
    SQL(SQL_WORKER_FRESH,
        "SELECT 1 FROM workers WHERE name = ?1 AND tasks = ?2 AND last_seen >= ?3"),
    SQL(SQL_PROMOTE_DUE,
        "UPDATE task_runs SET delayed = 0 WHERE rowid IN (SELECT rowid FROM task_runs "
        "INDEXED BY task_runs_delayed WHERE state_type = 0 AND delayed = 1 "
        "AND scheduled_at <= ?1 ORDER BY scheduled_at LIMIT ?2) RETURNING task"),
    SQL(SQL_CLAIM_UPDATE,
        "UPDATE task_runs SET state_type = ?2, state_name = ?3, state_timestamp = ?4, "
        "state_message = '', n_states = ?8, attempt = ?9, worker = ?5, lease_token = ?6, "
        "lease_expires = ?7 WHERE rowid = ?1 AND state_type = 0"),
    SQL(SQL_CLAIM_REQUEST_GET, "SELECT leases FROM claim_requests WHERE id = ?1"),
    SQL(SQL_LIMITS_ANY, "SELECT 1 FROM limits WHERE kind = ?1 AND max_running IS NOT NULL LIMIT 1"),
    SQL(SQL_RATES_ANY, "SELECT 1 FROM limits WHERE kind = 0 AND rate_max IS NOT NULL LIMIT 1"),
    SQL(SQL_LIMIT_GET, "SELECT coalesce(max_running, 0) FROM limits WHERE kind = ?1 AND name = ?2"),
    SQL(SQL_RATE_GET, "SELECT rate_interval_ms, rate_next_at FROM limits "
                      "WHERE kind = 0 AND name = ?1 AND rate_interval_ms IS NOT NULL"),
    SQL(SQL_RATE_TAKE, "UPDATE limits SET rate_next_at = ?2 WHERE kind = 0 AND name = ?1"),
    SQL(SQL_LIMIT_HELD, "SELECT count(*) FROM limit_holders WHERE kind = ?1 AND name = ?2"),
    SQL(SQL_LIMIT_HOLD, "INSERT OR IGNORE INTO limit_holders (kind, name, run_id, since) "
                        "VALUES (?1, ?2, ?3, ?4)"),
    SQL(SQL_RUN_HOLDS_SLOTS, "UPDATE task_runs SET holds_slots = ?2 WHERE rowid = ?1"),
    SQL(SQL_LIMIT_RELEASE, "DELETE FROM limit_holders WHERE run_id = ?1"),
    SQL(SQL_LIMIT_SET,
        "INSERT INTO limits (kind, name, max_running) VALUES (?1, ?2, nullif(?3, 0)) "
        "ON CONFLICT (kind, name) DO UPDATE SET max_running = excluded.max_running"),
    SQL(SQL_RATE_SET,
        "INSERT INTO limits (kind, name, rate_max, rate_period_ms, rate_interval_ms) "
        "VALUES (0, ?1, nullif(?2, 0), CASE WHEN ?2 > 0 THEN ?3 END, "
        "CASE WHEN ?2 > 0 THEN CAST(?3 AS REAL) / ?2 END) "
        "ON CONFLICT (kind, name) DO UPDATE SET rate_max = excluded.rate_max, "
        "rate_period_ms = excluded.rate_period_ms, rate_interval_ms = excluded.rate_interval_ms"),
    SQL(SQL_LIMIT_DELETE, "DELETE FROM limits WHERE kind = ?1 AND name = ?2 "
                          "AND max_running IS NULL AND rate_max IS NULL"),
    SQL(SQL_LIMIT_HOLDERS_DELETE, "DELETE FROM limit_holders WHERE kind = ?1 AND name = ?2"),
    SQL(SQL_LIMITS_LIST, "SELECT kind, name, coalesce(max_running, 0), coalesce(rate_max, 0), "
                         "coalesce(rate_period_ms, 0) FROM limits ORDER BY kind, name LIMIT ?1"),
    SQL(SQL_LIMIT_HOLDERS,
        "SELECT h.run_id, h.since, r.task, r.worker FROM limit_holders AS h "
        "LEFT JOIN task_runs AS r ON r.id = h.run_id WHERE h.kind = ?1 AND h.name = ?2 "
        "ORDER BY h.since, h.run_id LIMIT ?3"),
    SQL(SQL_CLAIM_REQUEST_NEW, "INSERT OR IGNORE INTO claim_requests (id, at, leases) "
                               "VALUES (?1, ?2, ?3)"),
    SQL(SQL_CLAIM_REQUESTS_PRUNE,
        "DELETE FROM claim_requests WHERE id IN (SELECT id FROM claim_requests "
        "INDEXED BY claim_requests_at WHERE at < ?1 ORDER BY at LIMIT ?2)"),
    SQL(SQL_CLAIM_REPEAT,
        "SELECT rowid, id, priority, scheduled_at, task, parameters, attempt, max_attempts, "
        "timeout_seconds, persist_result, cache_key, n_states, traceparent, tags FROM task_runs "
        "WHERE id = ?1 AND state_type = 1 AND lease_token = ?2"),
    SQL(SQL_LEASE_RENEW, "UPDATE task_runs SET lease_expires = ?2 WHERE rowid = ?1"),
    SQL(SQL_LEASE_CHECK,
        "SELECT rowid, state_type, lease_token, ended_by, holds_slots, task, tags FROM task_runs "
        "WHERE id = ?1"),
    SQL(SQL_LEASE_EXTEND,
        "UPDATE task_runs SET lease_expires = ?2 WHERE rowid = ?1 AND lease_expires < ?3"),
    SQL(SQL_LEASE_EXPIRED, "SELECT " LEASE_COLUMNS " FROM task_runs WHERE lease_expires < ?1 "
                           "ORDER BY lease_expires LIMIT ?2"),
    SQL(SQL_LOG_INSERT,
        "INSERT INTO task_run_logs (run_id, timestamp, level, message) "
        "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM task_runs WHERE id = ?1)"),
    SQL(SQL_REPORT_BATCH_NEW, "INSERT OR IGNORE INTO report_batches (id, at) VALUES (?1, ?2)"),
    SQL(SQL_REPORT_BATCHES_PRUNE,
        "DELETE FROM report_batches WHERE id IN (SELECT id FROM report_batches "
        "INDEXED BY report_batches_at WHERE at < ?1 ORDER BY at LIMIT ?2)"),
    SQL(SQL_WORKER_CLAIMED,
        "INSERT INTO workers (name, tasks, last_seen, claimed) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (name) DO UPDATE SET tasks = excluded.tasks, "
        "last_seen = excluded.last_seen, claimed = claimed + excluded.claimed "
        "WHERE excluded.claimed > 0 OR tasks <> excluded.tasks "
        "OR last_seen < excluded.last_seen - ?5"),
    SQL(SQL_WORKER_SEEN,
        "INSERT INTO workers (name, tasks, last_seen, claimed) VALUES (?1, '[]', ?2, 0) "
        "ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen "
        "WHERE last_seen < excluded.last_seen - ?3"),

    SQL(SQL_LIST_ALL, "SELECT " RUN_COLUMNS " FROM task_runs WHERE id < ?1 AND id >= ?6 "
                      "AND (?2 IS NULL OR task = ?2) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_TASK, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_task "
                       "WHERE task = ?2 AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_TASK_STATE, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_task "
                             "WHERE task = ?2 AND id < ?1 AND id >= ?6 AND state_type = ?4 "
                             "ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_SCHEDULED, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_scheduled "
                            "WHERE state_type = 0 AND state_type = ?4 AND id < ?1 AND id >= ?6 "
                            "AND (?2 IS NULL OR task = ?2) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_COMPLETED, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_completed "
                            "WHERE state_type = 3 AND state_type = ?4 AND id < ?1 AND id >= ?6 "
                            "AND (?2 IS NULL OR task = ?2) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_LEASED,
        "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_lease "
        "WHERE lease_expires IS NOT NULL AND state_type = ?4 AND id < ?1 AND id >= ?6 "
        "AND (?2 IS NULL OR task = ?2) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_ATTENTION, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_attention "
                            "WHERE state_type >= 4 AND state_type = ?4 AND id < ?1 AND id >= ?6 "
                            "AND (?2 IS NULL OR task = ?2) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_TAG,
        "SELECT " RUN_COLUMNS " FROM task_run_tags CROSS JOIN task_runs ON id = run_id "
        "WHERE tag = ?4 AND run_id < ?1 AND run_id >= ?6 AND (?2 IS NULL OR task = ?2) "
        "AND (?5 = 0 OR ((?5 >> state_type) & 1) = 1) AND (?7 IS NULL OR worker = ?7) "
        "ORDER BY run_id DESC LIMIT ?3"),
    SQL(SQL_LIST_WORKER, "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_worker "
                         "WHERE worker = ?7 AND id < ?1 AND id >= ?6 AND (?2 IS NULL OR task = ?2) "
                         "AND (?5 = 0 OR ((?5 >> state_type) & 1) = 1) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_LIST_TRACE,
        "SELECT " RUN_COLUMNS " FROM task_runs INDEXED BY task_runs_trace "
        "WHERE traceparent IS NOT NULL AND " TRACE_ID_OF(
            "traceparent") " = ?9 AND id < ?1 "
                           "AND id >= ?6 AND (?2 IS NULL OR task = ?2) AND (?5 = 0 OR ((?5 >> "
                           "state_type) & 1) = 1) "
                           "AND (?7 IS NULL OR worker = ?7) AND (?4 IS NULL OR EXISTS (SELECT 1 "
                           "FROM task_run_tags "
                           "WHERE tag = ?4 AND run_id = task_runs.id)) ORDER BY id DESC LIMIT ?3"),
    SQL(SQL_BOUND_TASK, "SELECT id FROM task_runs INDEXED BY task_runs_task WHERE task = ?2 "
                        "AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_SCHEDULED,
        "SELECT id FROM task_runs INDEXED BY task_runs_scheduled WHERE state_type = 0 "
        "AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_COMPLETED,
        "SELECT id FROM task_runs INDEXED BY task_runs_completed WHERE state_type = 3 "
        "AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_ATTENTION,
        "SELECT id FROM task_runs INDEXED BY task_runs_attention WHERE state_type >= 4 "
        "AND state_type = ?4 AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_TAG, "SELECT run_id FROM task_run_tags WHERE tag = ?4 AND run_id < ?1 "
                       "AND run_id >= ?6 ORDER BY run_id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_WORKER, "SELECT id FROM task_runs INDEXED BY task_runs_worker WHERE worker = ?7 "
                          "AND id < ?1 AND id >= ?6 ORDER BY id DESC LIMIT 1 OFFSET ?8"),
    SQL(SQL_BOUND_TRACE,
        "SELECT id FROM task_runs INDEXED BY task_runs_trace WHERE traceparent IS NOT NULL "
        "AND " TRACE_ID_OF("traceparent") " = ?9 AND id < ?1 AND id >= ?6 ORDER BY id DESC "
                                          "LIMIT 1 OFFSET ?8"),
    SQL(SQL_STATES_GET,
        "SELECT type, name, timestamp, message FROM task_run_states WHERE run_id = ?1 "
        "ORDER BY seq"),
    SQL(SQL_LOGS_GET, "SELECT seq, timestamp, level, message FROM task_run_logs WHERE run_id = ?1 "
                      "AND seq > ?2 ORDER BY seq LIMIT ?3"),
    SQL(SQL_WORKERS_LIST,
        "SELECT name, tasks, last_seen, claimed FROM workers INDEXED BY workers_seen "
        "WHERE (last_seen, name) < (?1, ?2) ORDER BY last_seen DESC, name DESC LIMIT ?3"),

    SQL(SQL_EXPIRED_RUNS,
        "SELECT rowid, id, state_type, tags, result_ref, task, state_message FROM task_runs "
        "INDEXED BY task_runs_finished WHERE finished IS NOT NULL AND finished < ?1 "
        "ORDER BY finished LIMIT ?2"),
    SQL(SQL_RUN_DELETE, "DELETE FROM task_runs WHERE rowid = ?1"),
    SQL(SQL_RUN_DELETABLE,
        "SELECT rowid, id, state_type, tags, result_ref, task, state_message FROM task_runs "
        "WHERE id = ?1 AND state_type IN (3, 4, 5, 7)"),
    SQL(SQL_STATES_DELETE, "DELETE FROM task_run_states WHERE run_id = ?1"),
    SQL(SQL_LOGS_DELETE, "DELETE FROM task_run_logs WHERE run_id = ?1"),
    SQL(SQL_TAG_DELETE, "DELETE FROM task_run_tags WHERE tag = ?1 AND run_id = ?2"),
    SQL(SQL_RESULT_REF_USED,
        "SELECT 1 FROM task_runs INDEXED BY task_runs_result_ref WHERE result_ref = ?1 LIMIT 1"),
    SQL(SQL_WORKERS_PRUNE,
        "DELETE FROM workers WHERE rowid IN (SELECT rowid FROM workers INDEXED BY workers_seen "
        "WHERE last_seen < ?1 ORDER BY last_seen LIMIT ?2)"),
    SQL(SQL_COUNTS, "SELECT state_type, n FROM run_counts"),
    SQL(SQL_COUNT_ADD, "UPDATE run_counts SET n = n + ?2 WHERE state_type = ?1"),
    SQL(SQL_TASK_COUNT_ADD, "INSERT INTO task_counts (task, state_type, n) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (task, state_type) DO UPDATE SET n = n + excluded.n"),
    SQL(SQL_TASK_COUNTS, "SELECT state_type, n FROM task_counts WHERE task = ?1"),
    /* /metrics: the oldest ready run of task ?1 at the highest priority below ?2, one seek
       into the ready queue (store_oldest_ready walks the priorities present). */
    SQL(SQL_READY_OLDEST, "SELECT priority, scheduled_at FROM task_runs INDEXED BY task_runs_claim "
                          "WHERE state_type = 0 AND delayed = 0 AND task = ?1 AND priority < ?2 "
                          "ORDER BY priority DESC, scheduled_at LIMIT 1"),
    SQL(SQL_MINUTE_ADD,
        "INSERT INTO run_minutes (minute, task, completed, failed, cancelled) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (minute, task) DO UPDATE SET "
        "completed = completed + excluded.completed, failed = failed + excluded.failed, "
        "cancelled = cancelled + excluded.cancelled"),
    SQL(SQL_TASK_FAILURE,
        "INSERT INTO tasks (task, last_failure_id, last_failure_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (task) DO UPDATE SET last_failure_id = excluded.last_failure_id, "
        "last_failure_at = excluded.last_failure_at"),
    SQL(SQL_STATS_TASK_COUNTS,
        "SELECT task, state_type, n FROM task_counts WHERE n != 0 ORDER BY task"),
    SQL(SQL_STATS_TASK_WINDOW,
        "SELECT task, sum(completed), sum(failed), sum(cancelled) FROM run_minutes "
        "WHERE minute >= ?1 GROUP BY task"),
    SQL(SQL_STATS_MINUTES,
        "SELECT minute, sum(completed), sum(failed), sum(cancelled) FROM run_minutes "
        "WHERE minute >= ?1 GROUP BY minute ORDER BY minute"),
    SQL(SQL_STATS_TASKS, "SELECT task, paused, last_failure_id, last_failure_at FROM tasks"),
    SQL(SQL_STATS_SAMPLE,
        "SELECT task, scheduled_at, started, finished FROM task_runs "
        "INDEXED BY task_runs_finished WHERE finished IS NOT NULL AND finished >= ?1 "
        "ORDER BY finished DESC LIMIT ?2"),
    SQL(SQL_TASK_PAUSE, "INSERT INTO tasks (task, paused) VALUES (?1, ?2) "
                        "ON CONFLICT (task) DO UPDATE SET paused = excluded.paused"),
    SQL(SQL_FAILURE_ADD,
        "INSERT INTO failure_groups (task, fingerprint, message, n, last_at, last_id) "
        "VALUES (?1, ?2, ?3, 1, ?4, ?5) ON CONFLICT (task, fingerprint) DO UPDATE SET "
        "n = n + 1, message = excluded.message, last_at = excluded.last_at, "
        "last_id = excluded.last_id"),
    SQL(SQL_FAILURE_REMOVE,
        "UPDATE failure_groups SET n = n - 1 WHERE task = ?1 AND fingerprint = ?2"),
    SQL(SQL_FAILURE_DROP_EMPTY,
        "DELETE FROM failure_groups WHERE task = ?1 AND fingerprint = ?2 AND n <= 0"),
    SQL(SQL_FAILURE_GROUPS,
        "SELECT task, fingerprint, message, n, last_at, last_id FROM failure_groups "
        "INDEXED BY failure_groups_recent WHERE (?1 IS NULL OR task = ?1) "
        "ORDER BY last_at DESC LIMIT ?2"),
    /* The change feed, in pages (sqlite_feed.h): the next page starts where the last ends.
       It replaces the last only when that one is empty (the upgrade's placeholder). */
    SQL(SQL_FEED_NEXT_SEQ, "SELECT first_seq + n FROM run_feed ORDER BY first_seq DESC LIMIT 1"),
    SQL(SQL_FEED_INSERT,
        "INSERT OR REPLACE INTO run_feed (first_seq, n, at, events) VALUES (?1, ?2, ?3, ?4)"),
    /* The page holding seq ?1 (or the oldest, when ?1 was pruned) and those after it. */
    SQL(SQL_FEED_FROM,
        "SELECT first_seq, events FROM run_feed WHERE first_seq >= coalesce((SELECT first_seq "
        "FROM run_feed WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1), 0) "
        "ORDER BY first_seq"),
    /* An event's task comes from its run (NULL once retention deleted it): a primary-key
       lookup per event read, instead of a copy of the task name in every event written. */
    SQL(SQL_RUN_TASK, "SELECT task FROM task_runs WHERE id = ?1"),
    SQL(SQL_FEED_FIRST, "SELECT first_seq FROM run_feed ORDER BY first_seq LIMIT 1"),
    SQL(SQL_FEED_LAST, "SELECT first_seq + n - 1 FROM run_feed ORDER BY first_seq DESC LIMIT 1"),
    /* Pruning reads the oldest pages, never the newest (so seq never restarts), and stops at
       the first it keeps: pages are appended in time order, so a feed of young pages is not
       walked looking for an old one. */
    SQL(SQL_FEED_OLDEST, "SELECT first_seq, n, at FROM run_feed WHERE first_seq < "
                         "(SELECT max(first_seq) FROM run_feed) ORDER BY first_seq LIMIT ?1"),
    SQL(SQL_FEED_PRUNE, "DELETE FROM run_feed WHERE first_seq < ?1"),
    /* Schedules: a handful of rows, read by name (the primary key) or, for the scheduler,
       through schedules_due (paused = 0 spelled literally, as the partial index needs). */
    SQL(SQL_SCHEDULE_GET, "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name = ?1"),
    SQL(SQL_SCHEDULE_LIST, "SELECT " SCHEDULE_COLUMNS " FROM schedules ORDER BY name LIMIT ?1"),
    SQL(SQL_SCHEDULE_COUNT, "SELECT count(*) FROM schedules"),
    SQL(SQL_SCHEDULE_UPSERT,
        "INSERT INTO schedules (name, task, run_options, cron, every_ms, time_zone, catch_up, "
        "paused, next_tick, generation, created, updated) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10) ON CONFLICT (name) DO UPDATE "
        "SET task = excluded.task, run_options = excluded.run_options, cron = excluded.cron, "
        "every_ms = excluded.every_ms, time_zone = excluded.time_zone, "
        "catch_up = excluded.catch_up, paused = excluded.paused, next_tick = excluded.next_tick, "
        "generation = generation + 1, updated = excluded.updated"),
    SQL(SQL_SCHEDULE_DELETE, "DELETE FROM schedules WHERE name = ?1"),
    SQL(SQL_SCHEDULE_PAUSE,
        "UPDATE schedules SET paused = ?2, next_tick = CASE WHEN ?2 = 0 THEN ?3 ELSE next_tick "
        "END, updated = ?4 WHERE name = ?1"),
    SQL(SQL_SCHEDULE_DUE, "SELECT " SCHEDULE_COLUMNS " FROM schedules INDEXED BY schedules_due "
                          "WHERE paused = 0 AND next_tick <= ?1 ORDER BY next_tick LIMIT ?2"),
    SQL(SQL_SCHEDULE_ADVANCE, "UPDATE schedules SET next_tick = ?4, "
                              "last_tick = CASE WHEN ?6 IS NULL THEN last_tick ELSE ?5 END, "
                              "last_run_id = coalesce(?6, last_run_id), updated = ?7 "
                              "WHERE name = ?1 AND generation = ?2 AND next_tick = ?3"),
    /* Webhooks. A run's end looks up its own URL, then its task's (two primary-key seeks),
       and writes the delivery when it finds one. */
    SQL(SQL_WEBHOOK_RUN_SET, "INSERT OR REPLACE INTO run_webhooks (run_id, url) VALUES (?1, ?2)"),
    SQL(SQL_WEBHOOK_RUN_ENDED,
        "INSERT INTO webhook_deliveries (run_id, url, next_at, created) "
        "SELECT ?1, url, ?3, ?3 FROM (SELECT url, 0 AS o FROM run_webhooks WHERE run_id = ?1 "
        "UNION ALL SELECT url, 1 FROM task_webhooks WHERE task = ?2) ORDER BY o LIMIT 1"),
    SQL(SQL_WEBHOOK_RUN_FORGET, "DELETE FROM run_webhooks WHERE run_id = ?1"),
    SQL(SQL_WEBHOOK_GET, "SELECT 1 FROM task_webhooks WHERE task = ?1"),
    SQL(SQL_WEBHOOK_COUNT, "SELECT count(*) FROM task_webhooks"),
    SQL(SQL_WEBHOOK_SET, "INSERT INTO task_webhooks (task, url, created, updated) "
                         "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (task) DO UPDATE "
                         "SET url = excluded.url, updated = excluded.updated"),
    SQL(SQL_WEBHOOK_REMOVE, "DELETE FROM task_webhooks WHERE task = ?1"),
    SQL(SQL_WEBHOOK_LIST,
        "SELECT task, url, created, updated FROM task_webhooks ORDER BY task LIMIT ?1"),
    SQL(SQL_WEBHOOK_PENDING, "SELECT " WEBHOOK_DELIVERY_COLUMNS " FROM webhook_deliveries "
                             "INDEXED BY webhook_deliveries_due ORDER BY next_at, id LIMIT ?1"),
    SQL(SQL_WEBHOOK_PENDING_COUNT, "SELECT count(*) FROM webhook_deliveries"),
    SQL(SQL_WEBHOOK_DUE, "SELECT 1 FROM webhook_deliveries INDEXED BY webhook_deliveries_due "
                         "WHERE next_at <= ?1 LIMIT 1"),
    SQL(SQL_WEBHOOK_TAKE,
        "UPDATE webhook_deliveries SET attempt = attempt + 1, next_at = ?2 WHERE id IN "
        "(SELECT id FROM webhook_deliveries INDEXED BY webhook_deliveries_due "
        "WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?3) RETURNING " WEBHOOK_DELIVERY_COLUMNS),
    SQL(SQL_WEBHOOK_DONE, "DELETE FROM webhook_deliveries WHERE id = ?1"),
    SQL(SQL_WEBHOOK_RETRY, "UPDATE webhook_deliveries SET next_at = ?3, last_error = ?4 "
                           "WHERE id = ?1 AND attempt = ?2"),
};

const char *sqlite_sql_text(enum sql_id id)
{
    return (unsigned)id < SQL_COUNT ? sql_table[id].text : NULL;
}

const char *sqlite_sql_name(enum sql_id id)
{
    return (unsigned)id < SQL_COUNT ? sql_table[id].name : "SQL_?";
}
