/* SPDX-License-Identifier: MIT */
/*
 * sqlite_conn.c — opening SQLite connections for the store and keeping their prepared
 * statements (see sqlite_conn.h).
 *
 * Pragmas, and why:
 *  - journal_mode=WAL (writer; persistent in the file): readers never block the writer and
 *    the writer never blocks readers, and a commit is one append + fsync of the WAL.
 *  - synchronous from ERRAND_DATABASE_SYNC: FULL fsyncs the WAL at every commit, so a
 *    commit that returned survives power loss; NORMAL may lose the last commits on power
 *    loss (never on a process crash); OFF leaves it to the OS.
 *  - busy_timeout: only another process (a backup, the sqlite3 shell) can hold the lock,
 *    since this process has one writer; wait a while for it rather than fail at once.
 *  - temp_store=MEMORY: the savepoint sub-journal of each write op (sqlite_writer.c) stays
 *    in memory instead of spilling to a temporary file.
 *  - foreign_keys stay OFF: the store is the only writer of its tables and removes nothing,
 *    so the checks would cost every insert and protect nothing.
 *  - journal_size_limit: truncate the WAL after a checkpoint so a burst does not leave a
 *    large file behind.
 */
#include "store/sqlite/sqlite_conn.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"

/* Page caches. The writer works at the ends of its b-trees (ids and keys sort by time), so a
 * small cache holds what it touches: with 3M runs stored, 16 MiB ran the bench as fast as
 * 64 MiB did and took the server's peak from 152–153 to 95–97 MiB (docs/performance.md). */
#define SQLITE_WRITER_CACHE_KIB 16384 /* page cache of the writer: 16 MiB */
#define SQLITE_READER_CACHE_KIB 4096  /* per reader: 4 MiB */
#define SQLITE_CHECKPOINTER_CACHE_KIB 2048
#define SQLITE_WAL_SIZE_LIMIT_BYTES (64 * 1024 * 1024)
#define SQLITE_PRAGMA_MAX 128
#define WAL_SWITCH_RETRY_MS 10

/* The error code of what SQLite just reported on db: a full disk is told apart. */
static int store_code(sqlite3 *db)
{
    return db && (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? ERR_NO_SPACE : ERRAND_ESTORE;
}

int sqlite_conn_fail(struct sqlite_conn *c, const char *what, errand_error *err)
{
    const char *msg = c && c->db ? sqlite3_errmsg(c->db) : "no connection";
    return error_set(err, store_code(c ? c->db : NULL), NULL, "store: %s: %s", what, msg);
}

static const char *sync_pragma(const char *sync)
{
    if (!sync || strcmp(sync, "full") == 0)
        return "FULL";
    if (strcmp(sync, "normal") == 0)
        return "NORMAL";
    if (strcmp(sync, "off") == 0)
        return "OFF";
    return NULL;
}

int sqlite_conn_exec(struct sqlite_conn *c, const char *sql, errand_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc = error_set(err, store_code(c->db), NULL, "store: %.200s: %s", sql,
                       msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return rc;
}

/* Sets the WAL journal mode and checks that SQLite accepted it (it refuses on some file
 * systems, and silently keeps "memory" for in-memory databases). While another process
 * switches a new file to WAL (two servers started at once on one store), SQLite answers
 * "locked" at once rather than through the busy handler: that is waited out here. */
static int set_wal(struct sqlite_conn *c, errand_error *err)
{
    sqlite3_stmt *s = NULL;
    int step = SQLITE_BUSY;
    for (int waited_ms = 0;; waited_ms += WAL_SWITCH_RETRY_MS) {
        if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
            return sqlite_conn_fail(c, "PRAGMA journal_mode", err);
        step = sqlite3_step(s);
        if ((step & 0xff) != SQLITE_BUSY || waited_ms >= SQLITE_BUSY_TIMEOUT_MS)
            break;
        sqlite3_finalize(s);
        sqlite3_sleep(WAL_SWITCH_RETRY_MS);
    }
    int rc = 0;
    if (step != SQLITE_ROW) {
        rc = sqlite_conn_fail(c, "PRAGMA journal_mode", err);
    } else {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (!mode || strcmp(mode, "wal") != 0)
            rc = error_set(err, ERRAND_ESTORE, NULL,
                           "store: the database could not switch to WAL mode (journal mode "
                           "stays '%s'); use a file on a local file system",
                           mode ? mode : "?");
    }
    sqlite3_finalize(s);
    return rc;
}

static int apply_pragmas(struct sqlite_conn *c, const char *sync, errand_error *err)
{
    char sql[SQLITE_PRAGMA_MAX];
    int rc;
    sqlite3_busy_timeout(c->db, SQLITE_BUSY_TIMEOUT_MS);
    if ((rc = sqlite_conn_exec(c, "PRAGMA temp_store=MEMORY", err)) < 0)
        return rc;
    int cache = c->role == SQLITE_CONN_WRITER   ? SQLITE_WRITER_CACHE_KIB
                : c->role == SQLITE_CONN_READER ? SQLITE_READER_CACHE_KIB
                                                : SQLITE_CHECKPOINTER_CACHE_KIB;
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%d", cache);
    if ((rc = sqlite_conn_exec(c, sql, err)) < 0)
        return rc;
    if (c->role == SQLITE_CONN_READER)
        return 0;
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync_pragma(sync));
    if ((rc = sqlite_conn_exec(c, sql, err)) < 0)
        return rc;
    if (c->role == SQLITE_CONN_CHECKPOINTER)
        return 0;
    if ((rc = set_wal(c, err)) < 0)
        return rc;
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%d", SQLITE_WAL_SIZE_LIMIT_BYTES);
    if ((rc = sqlite_conn_exec(c, sql, err)) < 0)
        return rc;
    return sqlite_conn_exec(c, "PRAGMA foreign_keys=OFF", err);
}

/* SQLite's allocation statistics take a global mutex on every malloc; nothing reads them.
 * Must run before SQLite initialises (later it is refused, harmlessly). */
static void configure_sqlite_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int sqlite_conn_open(const char *path, enum sqlite_conn_role role, const char *sync,
                     struct sqlite_conn **out, errand_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_sqlite_once);
    *out = NULL;
    if (role != SQLITE_CONN_READER && !sync_pragma(sync))
        return error_set(err, ERRAND_EINVAL, "sync",
                         "ERRAND_DATABASE_SYNC must be full, normal or off, got '%s'", sync);
    struct sqlite_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    c->role = role;
    int flags = SQLITE_OPEN_NOMUTEX;
    if (role == SQLITE_CONN_WRITER)
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    else if (role == SQLITE_CONN_CHECKPOINTER)
        flags |= SQLITE_OPEN_READWRITE;
    else
        flags |= SQLITE_OPEN_READONLY;
    int rc;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        rc = error_set(err, ERRAND_ESTORE, NULL, "store: cannot open database '%s': %s", path,
                       c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    if ((rc = apply_pragmas(c, sync, err)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    sqlite_conn_close(c);
    return rc;
}

void sqlite_conn_close(struct sqlite_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < SQL_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    feed_page_free(&c->feed);
    run_finals_free(&c->finals);
    mem_free(c->ended.ids);
    sqlite3_close_v2(c->db);
    mem_free(c);
}

sqlite3_stmt *sqlite_conn_stmt(struct sqlite_conn *c, enum sql_id id, errand_error *err)
{
    sqlite3_stmt *s = c->stmt[id];
    if (s) {
        sqlite3_reset(s);
        return s;
    }
    if (sqlite3_prepare_v3(c->db, sqlite_sql_text(id), -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
        SQLITE_OK) {
        sqlite_conn_fail(c, sqlite_sql_name(id), err);
        return NULL;
    }
    c->stmt[id] = s;
    return s;
}

int sqlite_conn_step_done(struct sqlite_conn *c, sqlite3_stmt *s, enum sql_id id, errand_error *err)
{
    int step = sqlite3_step(s);
    int rc = 0;
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = sqlite_conn_fail(c, sqlite_sql_name(id), err);
    sqlite3_reset(s);
    return rc;
}

int sqlite_conn_run(struct sqlite_conn *c, enum sql_id id, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    return sqlite_conn_step_done(c, s, id, err);
}

int sqlite_conn_count(struct sqlite_conn *c, enum sql_id id, int64_t *out, errand_error *err)
{
    *out = 0;
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return step == SQLITE_ROW ? 0 : sqlite_conn_fail(c, sqlite_sql_name(id), err);
}

void sqlite_conn_reset_all(struct sqlite_conn *c)
{
    for (sqlite3_stmt *s = sqlite3_next_stmt(c->db, NULL); s; s = sqlite3_next_stmt(c->db, s)) {
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
    }
}

int sqlite_bind_text(sqlite3_stmt *s, int idx, const char *text)
{
    if (!text)
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_text(s, idx, text, -1, SQLITE_STATIC);
}

int sqlite_bind_ms(sqlite3_stmt *s, int idx, int64_t ms)
{
    if (ms == 0)
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_int64(s, idx, ms);
}

int sqlite_bind_positive(sqlite3_stmt *s, int idx, double v)
{
    if (!(v > 0))
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_double(s, idx, v);
}

int sqlite_bind_opt_int(sqlite3_stmt *s, int idx, int v)
{
    if (v < 0)
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_int(s, idx, v);
}

const char *sqlite_col_text(sqlite3_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s, col);
}

int64_t sqlite_col_ms(sqlite3_stmt *s, int col)
{
    return sqlite3_column_int64(s, col); /* NULL reads as 0 */
}

int sqlite_col_opt_int(sqlite3_stmt *s, int col)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? -1 : sqlite3_column_int(s, col);
}
