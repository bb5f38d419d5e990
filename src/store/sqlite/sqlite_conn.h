/* SPDX-License-Identifier: MIT */
/*
 * sqlite_conn.h — one connection of the SQLite store: opened with the store's pragmas, with
 * its named statements (sqlite_sql.h) prepared once, at first use, and kept until close.
 *
 * A connection is used by one thread at a time (the writer thread owns the writer; a reader
 * belongs to whoever took it from the pool), so connections are opened SQLITE_OPEN_NOMUTEX
 * and carry no lock of their own.
 *
 * Statement discipline: sqlite_conn_stmt() hands out a statement that is reset and ready to
 * bind; whoever steps it resets it when done (sqlite3_reset), so a reader never keeps a read
 * transaction open (which would stop WAL checkpoints). Text is bound SQLITE_STATIC: the
 * caller keeps it alive until the statement is reset.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_CONN_H
#define ERRAND_STORE_SQLITE_SQLITE_CONN_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/sqlite/sqlite_feed.h"
#include "store/run_finals.h"
#include "store/run_wakeups.h"
#include "store/sqlite/sqlite_sql.h"

/* How long a connection waits for a lock another process holds (busy_timeout). */
#define SQLITE_BUSY_TIMEOUT_MS 5000

enum sqlite_conn_role {
    SQLITE_CONN_WRITER,       /* read-write, creates the file, sets WAL and synchronous */
    SQLITE_CONN_READER,       /* read-only */
    SQLITE_CONN_CHECKPOINTER, /* read-write, synchronous as the writer, small cache */
};

struct sqlite_conn {
    sqlite3 *db;
    enum sqlite_conn_role role;
    sqlite3_stmt *stmt[SQL_COUNT]; /* NULL until first use */
    /* Writer only: the change-feed events of the open transaction, not yet stored
       (sqlite_feed.h), and the events stored so far (rolled-back ones included), so the
       writer can tell after a commit whether the feed grew. */
    struct feed_page feed;
    unsigned long long events_written;
    /* Writer only: the runs the open transaction moved into a final state, told to the
       store's observer after COMMIT (store/run_finals.h). */
    struct run_finals finals;
    /* Writer only: the long-polls the open transaction's dependency side effects concern,
       signalled after COMMIT (store/run_wakeups.h); and the runs that ended while their
       dependants were being settled, settled in turn (sqlite_deps.h). */
    struct run_wakeups wakeups;
    struct {
        char (*ids)[UUID_STR_LEN];
        size_t n, cap;
        bool busy;
    } ended;
};

/* Opens path. sync ("full" | "normal" | "off") applies to the writer and checkpointer;
 * readers ignore it. */
int sqlite_conn_open(const char *path, enum sqlite_conn_role role, const char *sync,
                     struct sqlite_conn **out, errand_error *err);
void sqlite_conn_close(struct sqlite_conn *c);

/* The named statement, reset and ready to bind; NULL (err filled) if it cannot be prepared. */
sqlite3_stmt *sqlite_conn_stmt(struct sqlite_conn *c, enum sql_id id, errand_error *err);

/* Runs a statement that returns no rows (BEGIN, COMMIT, ...) to completion. */
int sqlite_conn_run(struct sqlite_conn *c, enum sql_id id, errand_error *err);

/* Runs statement id, which takes no parameters and answers one integer (a count), into *out. */
int sqlite_conn_count(struct sqlite_conn *c, enum sql_id id, int64_t *out, errand_error *err);

/* Steps s (statement id of c) once and resets it; a row or done is success. For inserts and
 * updates without RETURNING. */
int sqlite_conn_step_done(struct sqlite_conn *c, sqlite3_stmt *s, enum sql_id id,
                          errand_error *err);

/* Runs SQL text (schema, pragmas) with sqlite3_exec. */
int sqlite_conn_exec(struct sqlite_conn *c, const char *sql, errand_error *err);

/* ERRAND_ESTORE with "store: <what>: <SQLite's message>" in err. */
int sqlite_conn_fail(struct sqlite_conn *c, const char *what, errand_error *err);

/* Resets every statement still stepping (safety net when a connection changes hands). */
void sqlite_conn_reset_all(struct sqlite_conn *c);

/* Binding helpers: NULL text, a 0 time and a negative "unset" become SQL NULL. */
int sqlite_bind_text(sqlite3_stmt *s, int idx, const char *text);
int sqlite_bind_ms(sqlite3_stmt *s, int idx, int64_t ms);
int sqlite_bind_positive(sqlite3_stmt *s, int idx, double v);
int sqlite_bind_opt_int(sqlite3_stmt *s, int idx, int v);

/* Column helpers: SQL NULL reads as NULL text / 0. */
const char *sqlite_col_text(sqlite3_stmt *s, int col);
int64_t sqlite_col_ms(sqlite3_stmt *s, int col);
/* The column of an optional integer bound with sqlite_bind_opt_int(): SQL NULL reads as -1. */
int sqlite_col_opt_int(sqlite3_stmt *s, int col);

#endif
