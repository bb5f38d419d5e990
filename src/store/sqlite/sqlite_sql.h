/* SPDX-License-Identifier: MIT */
/*
 * sqlite_sql.h — every statement the SQLite store runs after its schema exists, by name.
 * The text lives in sqlite_sql.c, in one table, so the SQL of the backend can be read (and
 * reviewed for index use) in one place; connections prepare each statement once, at first
 * use, and keep it (sqlite_conn.h). The schema itself is in sqlite_schema.c.
 *
 * Column order of the statements that return whole runs is enum run_col.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_SQL_H
#define ERRAND_STORE_SQLITE_SQLITE_SQL_H

enum sql_id {
    /* transaction control (writer and readers) */
    SQL_BEGIN_WRITE,
    SQL_BEGIN_READ,
    SQL_COMMIT,
    SQL_ROLLBACK,
    SQL_SAVEPOINT,
    SQL_RELEASE,
    SQL_ROLLBACK_TO,
    /* runs: point reads */
    SQL_RUN_GET,
    SQL_RUN_GET_STATE,
    SQL_RUN_BY_IDEMPOTENCY,
    SQL_RUN_LEASE_INFO,
    /* runs: writes */
    SQL_RUN_INSERT,
    SQL_TAG_INSERT,
    SQL_STATE_INSERT,
    SQL_RUN_TRANSITION,
    SQL_RUN_COMPLETE,
    SQL_CACHE_SOURCE,
    /* dependencies (store/run_deps.h) */
    SQL_EDGE_INSERT,
    SQL_DEPENDANTS_ADD,
    SQL_EDGES_OF,
    SQL_EDGES_DELETE,
    SQL_DEPS_UPSTREAM,
    SQL_DEPS_DOWNSTREAM,
    SQL_DEPS_WAIT,
    SQL_DEPS_RELEASE,
    /* worker protocol */
    SQL_CLAIM_CANDIDATES,
    SQL_CLAIM_READY_EXISTS,
    SQL_DELAYED_DUE_EXISTS,
    SQL_WORKER_FRESH,
    SQL_PROMOTE_DUE,
    SQL_CLAIM_UPDATE,
    SQL_CLAIM_REQUEST_GET,
    SQL_CLAIM_REQUEST_NEW,
    SQL_CLAIM_REQUESTS_PRUNE,
    SQL_CLAIM_REPEAT,
    SQL_LEASE_RENEW,
    SQL_LEASE_CHECK,
    SQL_LEASE_EXTEND,
    SQL_LEASE_EXPIRED,
    SQL_LOG_INSERT,
    SQL_REPORT_BATCH_NEW,
    SQL_REPORT_BATCHES_PRUNE,
    SQL_WORKER_CLAIMED,
    SQL_WORKER_SEEN,
    /* listings */
    SQL_LIST_ALL,
    SQL_LIST_TASK,
    SQL_LIST_TASK_STATE,
    SQL_LIST_SCHEDULED,
    SQL_LIST_COMPLETED,
    SQL_LIST_LEASED,
    SQL_LIST_ATTENTION,
    SQL_LIST_TAG,
    SQL_LIST_WORKER,
    SQL_LIST_TRACE,
    SQL_BOUND_TASK,
    SQL_BOUND_SCHEDULED,
    SQL_BOUND_COMPLETED,
    SQL_BOUND_ATTENTION,
    SQL_BOUND_TAG,
    SQL_BOUND_WORKER,
    SQL_BOUND_TRACE,
    SQL_STATES_GET,
    SQL_LOGS_GET,
    SQL_WORKERS_LIST,
    /* retention */
    SQL_EXPIRED_RUNS,
    SQL_RUN_DELETE,
    SQL_RUN_DELETABLE,
    SQL_STATES_DELETE,
    SQL_LOGS_DELETE,
    SQL_TAG_DELETE,
    SQL_RESULT_REF_USED,
    SQL_WORKERS_PRUNE,
    SQL_COUNTS,
    SQL_COUNT_ADD,
    SQL_TASK_COUNT_ADD,
    SQL_TASK_COUNTS,
    SQL_READY_OLDEST,
    SQL_MINUTE_ADD,
    SQL_TASK_FAILURE,
    /* the dashboard's figures, task controls */
    SQL_STATS_TASK_COUNTS,
    SQL_STATS_TASK_WINDOW,
    SQL_STATS_MINUTES,
    SQL_STATS_TASKS,
    SQL_STATS_SAMPLE,
    SQL_TASK_PAUSE,
    SQL_FAILURE_ADD,
    SQL_FAILURE_REMOVE,
    SQL_FAILURE_DROP_EMPTY,
    SQL_FAILURE_GROUPS,
    /* the change feed */
    SQL_FEED_NEXT_SEQ,
    SQL_FEED_INSERT,
    SQL_FEED_FROM,
    SQL_RUN_TASK,
    SQL_FEED_FIRST,
    SQL_FEED_LAST,
    SQL_FEED_OLDEST,
    SQL_FEED_PRUNE,
    /* schedules (store_sqlite_schedules.c); SQL_SCHEDULE_GET, _LIST and _DUE return
       SCHEDULE_COLUMNS */
    SQL_SCHEDULE_GET,
    SQL_SCHEDULE_LIST,
    SQL_SCHEDULE_COUNT,
    SQL_SCHEDULE_UPSERT,
    SQL_SCHEDULE_DELETE,
    SQL_SCHEDULE_PAUSE,
    SQL_SCHEDULE_DUE,
    SQL_SCHEDULE_ADVANCE,
    SQL_COUNT
};

/* Columns of SQL_RUN_GET, SQL_RUN_BY_IDEMPOTENCY and the SQL_LIST_* statements. */
enum run_col {
    RC_ID,
    RC_TASK,
    RC_PARAMETERS,
    RC_STATE_TYPE,
    RC_STATE_NAME,
    RC_STATE_TIMESTAMP,
    RC_STATE_MESSAGE,
    RC_ATTEMPT,
    RC_MAX_ATTEMPTS,
    RC_CREATED,
    RC_SCHEDULED_AT,
    RC_STARTED,
    RC_FINISHED,
    RC_WORKER,
    RC_PRIORITY,
    RC_TAGS,
    RC_IDEMPOTENCY_KEY,
    RC_CACHE_KEY,
    RC_RETRIES,
    RC_RETRY_DELAYS,
    RC_RETRY_JITTER,
    RC_TIMEOUT,
    RC_PERSIST_RESULT,
    RC_RESULT,
    RC_RESULT_REF,
    RC_REDELIVERIES,
    RC_RETRY_OF,
    RC_LEASE_EXPIRES,
    RC_TRACEPARENT,
    RC_WAIT_FOR,
    RC_ALLOW_UPSTREAM_FAILURE,
};

/* Columns of SQL_CLAIM_CANDIDATES. */
enum claim_col {
    CC_ROWID,
    CC_ID,
    CC_PRIORITY,
    CC_SCHEDULED_AT,
    CC_TASK,
    CC_PARAMETERS,
    CC_ATTEMPT,
    CC_MAX_ATTEMPTS,
    CC_TIMEOUT,
    CC_PERSIST_RESULT,
    CC_CACHE_KEY,
    CC_N_STATES,
    CC_TRACEPARENT,
};

/* Columns of SQL_RUN_LEASE_INFO and SQL_LEASE_EXPIRED. */
enum lease_col {
    LC_ROWID,
    LC_STATE_TYPE,
    LC_STATE_TIMESTAMP,
    LC_ATTEMPT,
    LC_MAX_ATTEMPTS,
    LC_LEASE_TOKEN,
    LC_WORKER,
    LC_RETRY_DELAYS,
    LC_RETRY_JITTER,
    LC_CACHE_KEY,
    LC_CACHE_EXPIRATION,
    LC_STARTED,
    LC_SCHEDULED_AT,
    LC_N_STATES,
    LC_LEASE_EXPIRES,
    LC_ID,
    LC_ENDED_BY,
    LC_REDELIVERIES,
    LC_TASK,
    LC_DELAYED,
    LC_DEPENDANTS,
};

const char *sqlite_sql_text(enum sql_id id);
/* The statement's name for error messages ("SQL_CLAIM_UPDATE"). */
const char *sqlite_sql_name(enum sql_id id);

#endif
