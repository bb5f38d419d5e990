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

#define PG_PARAMS_MAX 32
#define PG_STMT_SLOTS 256   /* statements a connection keeps prepared (open addressing) */
#define PG_SIGNALS_MAX 4000 /* bytes of wake-up signals one commit carries; past it, "all" */

struct pg_stmt_slot {
    const char *sql; /* NULL = free */
    char name[16];
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
};

/* Connects with conninfo (a postgresql:// URL); ERRAND_ESTORE with libpq's message when it
 * cannot. */
int pg_conn_open(const char *conninfo, struct pg_conn **out, errand_error *err);
void pg_conn_close(struct pg_conn *c);
/* Reconnects when the connection was lost (prepared statements are forgotten). */
int pg_conn_check(struct pg_conn *c, const char *conninfo, errand_error *err);

/* The parameters of one statement. */
struct pg_params {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX]; /* 0 text, 1 binary */
    char num[PG_PARAMS_MAX][32];
};
void pg_p_text(struct pg_params *p, const char *s); /* NULL = SQL NULL */
void pg_p_i64(struct pg_params *p, int64_t v);
void pg_p_int(struct pg_params *p, int v);
void pg_p_ms(struct pg_params *p, int64_t ms); /* 0 = SQL NULL */
void pg_p_double(struct pg_params *p, double v);
void pg_p_positive(struct pg_params *p, double v); /* <= 0 = SQL NULL */
void pg_p_opt_int(struct pg_params *p, int v);     /* < 0 = SQL NULL */
void pg_p_bool(struct pg_params *p, bool v);
void pg_p_bytes(struct pg_params *p, const void *data, size_t len); /* bytea, binary */

/* Runs sql (a static string) with p (NULL = none). The result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK) is the caller's to PQclear; NULL on failure, with err filled
 * (ERRAND_ESTORE, "store: <what>: <PostgreSQL's message>") and c->sqlstate set. */
PGresult *pg_query(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
                   errand_error *err);
/* pg_query for a statement whose rows are not needed: 0, or the error. *affected (optional)
 * gets the rows it changed. */
int pg_command(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
               int64_t *affected, errand_error *err);
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

#endif
