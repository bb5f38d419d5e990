/* SPDX-License-Identifier: MIT */
/*
 * pg_conn.h — one libpq connection of the PostgreSQL store, with what an op gathers while
 * its transaction is open, and the helpers every query goes through.
 *
 * Statements: a statement is a static SQL string (its address is its identity); the first
 * pg_query of it on a connection prepares it there (PQprepare, a name derived from a
 * per-connection counter) and later calls run the prepared plan (PQexecPrepared). So SQL
 * lives next to the code that runs it, and a connection plans each statement once.
 * Parameters go as text (pg_params), but byte strings, which go as binary; results come back
 * as text and are read with the pg_get_* helpers (SQL NULL reads as NULL / 0).
 *
 * Many rows in one statement: a column of values goes as one array parameter (pg_array, a
 * text literal such as {"a",NULL,"b"}) and the statement takes the rows apart with unnest;
 * so a batch costs a round trip per statement, not per row.
 *
 * A connection is used by one thread at a time (the pool hands it out, pg_pool.h).
 */
#ifndef ERRAND_STORE_POSTGRES_PG_CONN_H
#define ERRAND_STORE_POSTGRES_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/feed_page.h"
#include "core/uuid.h"
#include "store/run_finals.h"
#include "store/run_wakeups.h"

#define PG_PARAMS_MAX 32
#define PG_STMT_SLOTS 256   /* statements a connection keeps prepared (open addressing) */
#define PG_SIGNALS_MAX 4000 /* bytes of wake-up signals one commit carries; past it, "all" */
#define PG_PIPELINE_MAX 32  /* statements (and preparations) one pipeline sends */
#define PG_DEFERRED_MAX 8   /* statements held for the commit's pipeline (pg_defer) */

/* An array literal built element by element (see the top). buf always holds a valid
 * literal once something was added; running out of memory is remembered (oom) and reported
 * by pg_array_check, so a caller adds a whole batch and checks once. */
struct pg_array {
    char *buf;
    size_t len; /* without the closing brace, which sits at buf[len] */
    size_t cap;
    size_t n; /* elements */
    bool oom;
};
struct pg_array_mark {
    size_t len, n;
};
void pg_array_text(struct pg_array *a, const char *s); /* NULL = a NULL element */
void pg_array_i64(struct pg_array *a, int64_t v);
void pg_array_ms(struct pg_array *a, int64_t ms); /* 0 = NULL */
void pg_array_double(struct pg_array *a, double v);
void pg_array_positive(struct pg_array *a, double v); /* <= 0 = NULL */
void pg_array_bool(struct pg_array *a, bool v);
/* The literal ("{}" when empty); valid until the next change of a. */
const char *pg_array_literal(const struct pg_array *a);
int pg_array_check(const struct pg_array *a, errand_error *err); /* ERRAND_ENOMEM after oom */
void pg_array_reset(struct pg_array *a);                         /* empty; keeps its memory */
void pg_array_free(struct pg_array *a);
struct pg_array_mark pg_array_mark(const struct pg_array *a);
void pg_array_rewind(struct pg_array *a, struct pg_array_mark m);

/* The columns of the state-history rows an open transaction appended (pg_state_append),
 * written with one INSERT at its commit (pg_states_send). */
enum {
    PG_STATE_RUN_ID,
    PG_STATE_SEQ,
    PG_STATE_TYPE,
    PG_STATE_NAME,
    PG_STATE_AT,
    PG_STATE_MESSAGE,
    PG_STATE_COLUMNS
};

/* The columns of the webhook deliveries the runs an open transaction ended may get
 * (pg_webhook_ended), written with one statement at its commit (pg_webhooks_send). */
enum { PG_WEBHOOK_RUN_ID, PG_WEBHOOK_TASK, PG_WEBHOOK_URL, PG_WEBHOOK_AT, PG_WEBHOOK_COLUMNS };

struct pg_stmt_slot {
    const char *sql; /* NULL = free */
    char name[16];
};

/* The parameters of one statement. */
struct pg_params {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX]; /* 0 text, 1 binary */
    char num[PG_PARAMS_MAX][32];
};

/* A statement held for the commit's pipeline: its parameters copied into buf. */
struct pg_deferred {
    const char *sql;
    const char *what;
    struct pg_params p;
    char *buf;
};

struct pg_conn {
    PGconn *pg;
    struct pg_stmt_slot stmts[PG_STMT_SLOTS];
    unsigned next_stmt;
    char sqlstate[6]; /* of the last failed statement, "" when none */
    /* Gathered by the op(s) of the open transaction, written or sent at commit: */
    struct feed_page feed;        /* change-feed events (store_pg_commit writes the page) */
    char signals[PG_SIGNALS_MAX]; /* wake-ups for the other servers (pg_signal_*) */
    size_t signals_len;
    bool signals_all; /* too many to list: wake everything */
    bool wake_here;   /* wake this server's claims too, after the commit (pg_limits.c) */
    /* state-history rows, a column each (pg_states_send writes them) */
    struct pg_array states[PG_STATE_COLUMNS];
    /* runs moved into a final state, a column each, for their webhook deliveries */
    struct pg_array webhooks[PG_WEBHOOK_COLUMNS];
    /* runs moved into a final state, told to the store's observer after COMMIT */
    struct run_finals finals;
    /* runs moved into a final state that others wait for (pg_deps.h), settled before
       COMMIT (store_pg_commit), with the time of the latest such move */
    struct {
        char (*ids)[UUID_STR_LEN];
        size_t n, cap;
        int64_t at_ms;
    } ended;
    /* this server's own long-polls that the dependants settled concern (the other servers
       learn of them from the NOTIFY; a server skips its own), told after COMMIT */
    struct run_wakeups wakeups;
    /* writes whose results no op needs (counts, the worker's row, a claim's request id),
       sent in the commit's pipeline instead of a round trip each (pg_defer) */
    struct pg_deferred deferred[PG_DEFERRED_MAX];
    int n_deferred;
    /* The open pipeline (pg_pipeline_*): what was sent, in order, for reading the replies. */
    struct pg_pending {
        const char *what;
        struct pg_stmt_slot *prepared; /* a preparation: its slot, forgotten if it failed */
    } pending[PG_PIPELINE_MAX];
    int n_pending;
    bool send_failed;
};

/* What a connection gathered up to a point, to undo an op that failed in its savepoint. */
struct pg_conn_mark {
    struct feed_page_mark feed;
    size_t signals_len;
    bool signals_all;
    struct pg_array_mark states[PG_STATE_COLUMNS];
    struct pg_array_mark webhooks[PG_WEBHOOK_COLUMNS];
    size_t finals;
    size_t ended;
    int deferred;
};

/* Connects with conninfo (a postgresql:// URL); ERRAND_ESTORE with libpq's message when it
 * cannot. */
int pg_conn_open(const char *conninfo, struct pg_conn **out, errand_error *err);
void pg_conn_close(struct pg_conn *c);
/* Reconnects when the connection was lost (prepared statements are forgotten). */
int pg_conn_check(struct pg_conn *c, const char *conninfo, errand_error *err);

void pg_p_text(struct pg_params *p, const char *s); /* NULL = SQL NULL */
void pg_p_i64(struct pg_params *p, int64_t v);
void pg_p_int(struct pg_params *p, int v);
void pg_p_ms(struct pg_params *p, int64_t ms); /* 0 = SQL NULL */
void pg_p_double(struct pg_params *p, double v);
void pg_p_positive(struct pg_params *p, double v); /* <= 0 = SQL NULL */
void pg_p_opt_int(struct pg_params *p, int v);     /* < 0 = SQL NULL */
void pg_p_bool(struct pg_params *p, bool v);
void pg_p_bytes(struct pg_params *p, const void *data, size_t len); /* bytea, binary */
void pg_p_array(struct pg_params *p, const struct pg_array *a);     /* its literal, as text */

/* Runs sql (a static string) with p (NULL = none). The result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK) is the caller's to PQclear; NULL on failure, with err filled
 * (ERRAND_ESTORE, "store: <what>: <PostgreSQL's message>") and c->sqlstate set. */
PGresult *pg_query(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
                   errand_error *err);
/* pg_query for a statement whose rows are not needed: 0, or the error. *affected (optional)
 * gets the rows it changed. */
int pg_command(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
               int64_t *affected, errand_error *err);
/* A pipeline: statements sent one after the other without waiting for replies, then all
 * replies read at once — one round trip for statements whose results are not needed in
 * between (the commit: history rows, wake-ups, feed page, COMMIT). pg_pipeline_send takes a
 * static SQL string like pg_query (NULL p = none); pg_pipeline_end waits for every reply: 0,
 * or the first failure (err and c->sqlstate as pg_query's); after one, the server skipped
 * the rest. */
/* Holds a statement whose result no op needs (like pg_command's) for the commit's pipeline
 * (store_pg_commit sends them first), its parameters copied: one round trip fewer each. A
 * failure then fails the commit, and the transaction with it. When PG_DEFERRED_MAX are held
 * already it runs at once. Undone by pg_conn_rewind, dropped by pg_conn_forget. */
int pg_defer(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
             errand_error *err);
/* Sends the held statements into the open pipeline and forgets them. */
void pg_deferred_send(struct pg_conn *c);
void pg_pipeline_begin(struct pg_conn *c);
void pg_pipeline_send(struct pg_conn *c, const char *sql, const struct pg_params *p,
                      const char *what);
void pg_pipeline_send_text(struct pg_conn *c, const char *sql, const char *what); /* COMMIT */
int pg_pipeline_end(struct pg_conn *c, errand_error *err);
/* Runs SQL text without parameters or preparing (BEGIN, COMMIT, the schema). */
int pg_exec(struct pg_conn *c, const char *sql, errand_error *err);

/* Column helpers. */
const char *pg_get_text(const PGresult *r, int row, int col); /* NULL when SQL NULL */
int64_t pg_get_i64(const PGresult *r, int row, int col);      /* 0 when SQL NULL */
int pg_get_int(const PGresult *r, int row, int col);
double pg_get_double(const PGresult *r, int row, int col);
bool pg_get_bool(const PGresult *r, int row, int col);
int pg_get_opt_int(const PGresult *r, int row, int col); /* -1 when SQL NULL */
bool pg_is_null(const PGresult *r, int row, int col);

/* Whether the last failure is worth running the transaction again for: a serialization
 * failure, a deadlock, or a unique key another transaction took first. */
bool pg_conn_retryable(const struct pg_conn *c);

/* Wake-ups for the servers that share the database, sent when the transaction commits:
 * runs of task may be claimable (NULL: of any task); run id may have ended (NULL: any). */
void pg_signal_due(struct pg_conn *c, const char *task);
void pg_signal_final(struct pg_conn *c, const char *id);
/* Forgets what the open transaction gathered (a rollback). */
void pg_conn_forget(struct pg_conn *c);
/* Marks what was gathered so far; rewinding forgets what was gathered since. */
struct pg_conn_mark pg_conn_mark(const struct pg_conn *c);
void pg_conn_rewind(struct pg_conn *c, const struct pg_conn_mark *m);

#endif
