/* SPDX-License-Identifier: MIT */
/*
 * sqlite_writer.h — the one writer of the SQLite store: a thread that owns the read-write
 * connection and commits the writes of all callers in groups.
 *
 * A caller hands over an operation (a function and its argument) and blocks until the
 * transaction holding it has committed, or failed. The op runs on the writer thread inside
 * its own SAVEPOINT, in a transaction shared with the other ops of its group: when it
 * returns an error, only its own changes are rolled back and the others still commit.
 *
 * Contract of an op:
 *  - it runs on another thread: it touches only its argument and the connection given;
 *  - it resets every statement it steps;
 *  - its outputs count only when sqlite_writer_run() returns 0: the transaction may still
 *    fail after the op succeeded (then nothing of it is stored).
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_WRITER_H
#define ERRAND_STORE_SQLITE_SQLITE_WRITER_H

#include "errand/errand.h"
#include "store/sqlite/sqlite_conn.h"

/* Most ops committed in one transaction. */
#define SQLITE_WRITER_MAX_BATCH 4096

typedef struct sqlite_writer sqlite_writer;

/* An op: 0 keeps its changes; a negative ERRAND_E* code rolls them back, with err filled. */
typedef int (*sqlite_writer_fn)(struct sqlite_conn *c, void *arg, errand_error *err);

/* Starts the writer thread; it owns conn from now on (and closes it in stop). */
int sqlite_writer_start(struct sqlite_conn *conn, sqlite_writer **out, errand_error *err);

/* Runs fn(conn, arg) on the writer thread and waits until it is committed: 0 means durable
 * (as durable as the synchronous setting makes it). ERRAND_ESTORE when the transaction
 * failed (nothing of the op was kept); ERRAND_EUNAVAILABLE after stop. */
int sqlite_writer_run(sqlite_writer *w, sqlite_writer_fn fn, void *arg, errand_error *err);

/* The same for an op whose loss on power failure is harmless (a claim, a run's start, a
 * heartbeat): with synchronous=FULL it may be committed without an fsync when nothing durable
 * shares its group. A process crash still loses nothing of it. */
int sqlite_writer_run_relaxed(sqlite_writer *w, sqlite_writer_fn fn, void *arg, errand_error *err);

/* Called on the writer thread once an asynchronous op is committed (rc 0) or failed (rc and
 * err as sqlite_writer_run would return them); err lives only during the call. */
typedef void (*sqlite_writer_done_fn)(void *done_arg, int rc, const errand_error *err);

/* Queues fn(conn, arg) like sqlite_writer_run, without waiting: on_done(done_arg, ...) is
 * called once, on the writer thread, after its group committed or failed. It must be quick:
 * the writer commits nothing else meanwhile. When queuing fails (out of memory, the writer
 * stopping) it returns the error and never calls on_done. */
int sqlite_writer_start_op(sqlite_writer *w, sqlite_writer_fn fn, void *arg,
                           sqlite_writer_done_fn on_done, void *done_arg, errand_error *err);

/* fn(arg) is called on the writer thread after each commit that appended to the change feed
 * (a page of run_feed); it must be quick (it pokes the feed's reader). NULL stops the calls. */
void sqlite_writer_on_feed(sqlite_writer *w, void (*fn)(void *arg), void *arg);

/* fn(arg, sig, key) is called on the writer thread after each commit for the wake-ups its
 * dependency side effects owe (store/run_wakeups.h); set it before the store is shared. */
void sqlite_writer_on_signal(sqlite_writer *w,
                             void (*fn)(void *arg, enum store_signal sig, const char *key),
                             void *arg);

/* Commits what is queued, stops the thread, closes the connection, frees w. */
void sqlite_writer_stop(sqlite_writer *w);

/* Counters for benchmarks and tests. */
struct sqlite_writer_stats {
    unsigned long long ops, commits, max_batch;
    unsigned long long busy_us; /* time spent running groups, commits included */
    unsigned long long cpu_us;  /* CPU time of the writer thread since it started */
};
void sqlite_writer_get_stats(sqlite_writer *w, struct sqlite_writer_stats *out);
/* Ops waiting for the writer right now (lets tests line up a group). */
size_t sqlite_writer_queued(sqlite_writer *w);

#endif
