/* SPDX-License-Identifier: MIT */
/*
 * sqlite_pool.h — a small pool of read-only SQLite connections, so reads (GET of a run,
 * listings, long-poll checks) run in parallel with each other and with the writer: in WAL
 * mode a reader sees the last committed state and never waits for the writer.
 *
 * Thread-safe: one mutex guards the free list; acquire waits on a condition variable when
 * every connection is out. A connection belongs to its taker until released.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_POOL_H
#define ERRAND_STORE_SQLITE_SQLITE_POOL_H

#include "errand/errand.h"
#include "store/sqlite/sqlite_conn.h"

#define SQLITE_POOL_READERS 4

typedef struct sqlite_pool sqlite_pool;

/* Opens n read-only connections to path (which must exist, in WAL mode). */
int sqlite_pool_open(const char *path, int n, sqlite_pool **out, errand_error *err);
void sqlite_pool_close(sqlite_pool *p);

struct sqlite_conn *sqlite_pool_acquire(sqlite_pool *p);
/* Gives c back; resets any statement the user left stepping. */
void sqlite_pool_release(sqlite_pool *p, struct sqlite_conn *c);

/* Frees the page cache of every idle connection (sqlite3_db_release_memory); connections in
 * use keep theirs. */
void sqlite_pool_release_memory(sqlite_pool *p);

#endif
