/* SPDX-License-Identifier: MIT */
/*
 * sqlite_writer.c — group commit for the SQLite store (see sqlite_writer.h).
 *
 * Why one writer thread: SQLite allows one writer at a time anyway. Letting every HTTP
 * thread open its own write transaction would serialise them on the file lock, each paying
 * its own fsync (a few ms with synchronous=FULL), so the store could commit only a few
 * hundred writes per second whatever the CPU. Instead every write is queued here; the
 * writer takes everything queued (up to SQLITE_WRITER_MAX_BATCH ops), runs it as ONE
 * transaction and pays ONE fsync for all of it. Under load the queue fills while the
 * previous group is being committed, so groups grow by themselves; at light load a lone op
 * is committed at once — the writer never waits for a batch to fill.
 *
 * Why a savepoint per op: ops of unrelated callers share a transaction, so one op's
 * failure (a conflict it detects, an allocation failure halfway through a batch) must not
 * undo the others. Each op runs as
 *   SAVEPOINT op; <op>; RELEASE op        (ROLLBACK TO op; RELEASE op when it fails)
 * and the group ends with COMMIT. Only after COMMIT returned are the callers woken, so no
 * caller ever acknowledges a write that is not in the database. If SQLite drops the whole
 * transaction (I/O error, disk full), every op of it is reported failed, and the rest of
 * the queue goes into a new transaction; a failed COMMIT fails every op of the group.
 *
 * Cost note, measured: savepoints are cheap as long as statements do not need statement
 * journals. While a savepoint is open, a statement that does (triggers, multi-row writes
 * that may abort) truncates SQLite's in-memory sub-journal when it ends by walking its
 * chunk list from the start — quadratic in the size of the op. With counting triggers on
 * task_runs that cost a third of the writer's CPU; so the store keeps no triggers and
 * writes multi-row data (tags) one row per statement, and the savepoints cost ~5%.
 *
 * The change feed: ops gather their events in the connection's page (sqlite_feed.h); the
 * writer stores it before COMMIT (and between ops once it is full), takes a failed op's
 * events back out of it, and empties it when a transaction is rolled back.
 *
 * Why some ops commit without fsync: with synchronous=FULL every commit fsyncs the WAL, and
 * a task run's quickest life has four commits (submit, claim, start, outcome). Losing a
 * claim, a run's start or a heartbeat to a power failure is harmless — the run is simply
 * SCHEDULED again, or PENDING again under the same lease, or its lease shorter, and a worker
 * that lost its claim is refused at its next report (409) — so sqlite_writer_run_relaxed()
 * ops may commit with synchronous=NORMAL when their whole group is relaxed. The WAL is
 * append-only and every durable commit fsyncs all of it, so a relaxed commit never makes an
 * earlier durable one less durable, and one that follows it makes it durable too. This leaves
 * two fsyncs in a run's latency at light load: its submission and its outcome.
 *
 * Locking: `lock` guards the queue, `stopping`, and the `done` flag of every queued op.
 * Each op has its own condition variable, so a commit wakes exactly its callers, not every
 * waiting thread. The writer signals while holding the lock and never touches an op after
 * releasing it, so a woken caller may free its op (it lives on the caller's stack). An
 * asynchronous op (sqlite_writer_start_op) has no waiter: the writer calls its completion
 * after releasing the lock, then frees it.
 * The connection and the batch array belong to the writer thread alone.
 */
#include "store/sqlite/sqlite_writer.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

/* SQLite's numbering of PRAGMA synchronous levels. */
#define SQLITE_SYNCHRONOUS_FULL 2
#define SQL_SYNC_NORMAL "PRAGMA synchronous=NORMAL"
#define SQL_SYNC_FULL "PRAGMA synchronous=FULL"

struct writer_op {
    sqlite_writer_fn fn;
    void *arg;
    bool relaxed; /* may be lost on power failure (see above) */
    int rc;
    errand_error err;
    bool done;
    pthread_cond_t done_cond;
    sqlite_writer_done_fn on_done; /* asynchronous: called instead of waking a waiter */
    void *done_arg;
    struct writer_op *next;
};

struct sqlite_writer {
    pthread_mutex_t lock;
    pthread_cond_t work; /* an op was queued, or stop was asked */
    struct writer_op *head, *tail;
    bool stopping;
    pthread_t thread;
    struct sqlite_conn *conn;
    struct writer_op **batch; /* SQLITE_WRITER_MAX_BATCH slots, writer thread only */
    bool full_sync;           /* the connection was opened synchronous=FULL (writer thread) */
    bool relaxed_now;         /* synchronous is NORMAL at the moment (writer thread) */
    struct sqlite_writer_stats stats;
    void (*on_feed)(void *arg); /* the change feed grew (sqlite_writer_on_feed); guarded by lock */
    void *on_feed_arg;
};

/* The code an op fails with when its transaction failed for why: a full disk stays one. */
static int txn_code(const errand_error *why)
{
    return why->code == ERR_NO_SPACE ? ERR_NO_SPACE : ERRAND_ESTORE;
}

/* Marks ops[from..to) that had succeeded as failed: their transaction did not commit. */
static void fail_committed(struct writer_op **ops, size_t from, size_t to, const errand_error *why)
{
    for (size_t j = from; j < to; j++) {
        if (ops[j]->rc < 0)
            continue;
        ops[j]->rc = error_set(&ops[j]->err, txn_code(why), NULL,
                               "%s (nothing of this request was stored)", why->message);
    }
}

/* Runs one op in its savepoint. Returns false when the enclosing transaction is gone.
 * The change-feed page gathered so far is stored first when it is full (between ops, so no
 * savepoint can roll it back), and the op's own events are taken out of it when it fails. */
static bool run_op(struct sqlite_conn *c, struct writer_op *op, errand_error *txn_err)
{
    error_clear(&op->err);
    if (c->feed.len >= SQLITE_FEED_PAGE_BYTES && sqlite_feed_write(c, txn_err) < 0) {
        op->rc = error_set(&op->err, txn_code(txn_err), NULL, "%s", txn_err->message);
        return false;
    }
    struct feed_page_mark before = feed_page_mark(&c->feed);
    size_t finals_before = c->finals.n;
    op->rc = sqlite_conn_run(c, SQL_SAVEPOINT, &op->err);
    if (op->rc == 0)
        op->rc = op->fn(c, op->arg, &op->err);
    /* An op that forgot to reset a statement must not leave it stepping into COMMIT. */
    sqlite_conn_reset_all(c);
    if (sqlite3_get_autocommit(c->db)) { /* SQLite rolled the whole transaction back */
        error_set(txn_err, op->rc < 0 ? txn_code(&op->err) : ERRAND_ESTORE, NULL,
                  "store: transaction aborted: %s",
                  op->rc < 0 ? op->err.message : sqlite3_errmsg(c->db));
        if (op->rc == 0)
            op->rc = error_set(&op->err, txn_code(txn_err), NULL, "%s", txn_err->message);
        return false;
    }
    errand_error ignored;
    if (op->rc < 0) {
        feed_page_rewind(&c->feed, before);
        run_finals_rewind(&c->finals, finals_before);
    }
    if (op->rc < 0)
        return sqlite_conn_run(c, SQL_ROLLBACK_TO, txn_err) == 0 &&
               sqlite_conn_run(c, SQL_RELEASE, &ignored) == 0;
    if (sqlite_conn_run(c, SQL_RELEASE, txn_err) < 0) {
        op->rc = error_set(&op->err, txn_code(txn_err), NULL, "%s", txn_err->message);
        return false;
    }
    return true;
}

/* With synchronous=FULL configured, commits a group of relaxed ops with NORMAL and any other
 * group with FULL. A failed switch keeps the current level (FULL stays safe). */
static void set_durability(struct sqlite_writer *w, struct writer_op **ops, size_t n)
{
    if (!w->full_sync)
        return;
    bool relaxed = true;
    for (size_t i = 0; i < n && relaxed; i++)
        relaxed = ops[i]->relaxed;
    if (relaxed == w->relaxed_now)
        return;
    errand_error ignored;
    if (sqlite_conn_exec(w->conn, relaxed ? SQL_SYNC_NORMAL : SQL_SYNC_FULL, &ignored) == 0)
        w->relaxed_now = relaxed;
}

/* Runs ops[0..n) in as few transactions as possible (one, unless SQLite aborts one).
 * Returns the number of commits. */
static unsigned run_batch(struct sqlite_writer *w, struct writer_op **ops, size_t n)
{
    struct sqlite_conn *c = w->conn;
    set_durability(w, ops, n);
    unsigned commits = 0;
    size_t i = 0;
    while (i < n) {
        size_t first = i;
        errand_error txn_err;
        error_clear(&txn_err);
        if (sqlite_conn_run(c, SQL_BEGIN_WRITE, &txn_err) < 0) {
            for (size_t j = i; j < n; j++)
                ops[j]->rc =
                    error_set(&ops[j]->err, txn_code(&txn_err), NULL, "%s", txn_err.message);
            log_error("store transaction failed", "error=\"%s\"", txn_err.message);
            return commits;
        }
        bool alive = true;
        while (i < n && alive)
            alive = run_op(c, ops[i++], &txn_err);
        int64_t commit_start = 0;
        if (alive && sqlite_feed_write(c, &txn_err) == 0 && (commit_start = clock_mono_ns()) > 0 &&
            sqlite_conn_run(c, SQL_COMMIT, &txn_err) == 0) {
            /* Timed are the commits that sync as configured; a relaxed group's (no fsync,
             * see above) would flatter the figure. */
            const struct store_observer *o = c->finals.observer;
            if (o && o->commit && !w->relaxed_now)
                o->commit(o->arg, clock_mono_ns() - commit_start);
            run_finals_flush(&c->finals);
            run_wakeups_flush(&c->wakeups);
            commits++;
            continue;
        }
        feed_page_clear(&c->feed); /* its events go with the transaction */
        run_finals_rewind(&c->finals, 0);
        if (!sqlite3_get_autocommit(c->db)) {
            errand_error ignored;
            sqlite_conn_run(c, SQL_ROLLBACK, &ignored);
        }
        log_error("store transaction failed", "ops=%zu error=\"%s\"", i - first, txn_err.message);
        fail_committed(ops, first, i, &txn_err);
    }
    return commits;
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *writer_main(void *p)
{
    struct sqlite_writer *w = p;
    pthread_setname_np(pthread_self(), "errand-writer"); /* for top -H, perf, gdb */
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->work, &w->lock);
        if (!w->head)
            break; /* stopping, and everything queued was committed */
        size_t n = 0;
        while (w->head && n < SQLITE_WRITER_MAX_BATCH) {
            w->batch[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head)
            w->tail = NULL;
        void (*on_feed)(void *) = w->on_feed;
        void *on_feed_arg = w->on_feed_arg;
        pthread_mutex_unlock(&w->lock);

        int64_t started = clock_us(CLOCK_MONOTONIC);
        unsigned long long events_before = w->conn->events_written;
        unsigned commits = run_batch(w, w->batch, n);
        int64_t busy = clock_us(CLOCK_MONOTONIC) - started;
        if (on_feed && commits > 0 && w->conn->events_written != events_before)
            on_feed(on_feed_arg);

        pthread_mutex_lock(&w->lock);
        w->stats.ops += n;
        w->stats.commits += commits;
        w->stats.busy_us += (unsigned long long)busy;
        if (n > w->stats.max_batch)
            w->stats.max_batch = n;
        struct writer_op *finished = NULL; /* asynchronous ops, completed after unlocking */
        for (size_t i = n; i-- > 0;) {
            struct writer_op *op = w->batch[i];
            if (op->on_done) {
                op->next = finished;
                finished = op;
                continue;
            }
            op->done = true;
            pthread_cond_signal(&op->done_cond);
        }
        if (finished) {
            pthread_mutex_unlock(&w->lock);
            while (finished) {
                struct writer_op *op = finished;
                finished = op->next;
                op->on_done(op->done_arg, op->rc, &op->err);
                mem_free(op);
            }
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

void sqlite_writer_on_feed(sqlite_writer *w, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&w->lock);
    w->on_feed = fn;
    w->on_feed_arg = arg;
    pthread_mutex_unlock(&w->lock);
}

void sqlite_writer_on_signal(sqlite_writer *w,
                             void (*fn)(void *arg, enum store_signal sig, const char *key),
                             void *arg)
{
    pthread_mutex_lock(&w->lock);
    w->conn->wakeups.fn = fn;
    w->conn->wakeups.arg = arg;
    pthread_mutex_unlock(&w->lock);
}

int sqlite_writer_start(struct sqlite_conn *conn, sqlite_writer **out, errand_error *err)
{
    *out = NULL;
    struct sqlite_writer *w = mem_calloc(1, sizeof *w);
    if (!w)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    w->batch = mem_calloc(SQLITE_WRITER_MAX_BATCH, sizeof *w->batch);
    if (!w->batch) {
        mem_free(w);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    w->conn = conn;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(conn->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        w->full_sync = sqlite3_column_int(q, 0) >= SQLITE_SYNCHRONOUS_FULL;
    sqlite3_finalize(q);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->lock);
        mem_free(w->batch);
        mem_free(w);
        return error_set(err, ERRAND_ESTORE, NULL, "store: cannot start the writer thread");
    }
    *out = w;
    return 0;
}

static int run_op_waiting(sqlite_writer *w, sqlite_writer_fn fn, void *arg, bool relaxed,
                          errand_error *err)
{
    struct writer_op op;
    memset(&op, 0, sizeof op);
    op.fn = fn;
    op.arg = arg;
    op.relaxed = relaxed;
    pthread_cond_init(&op.done_cond, NULL);

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        pthread_cond_destroy(&op.done_cond);
        return error_set(err, ERRAND_EUNAVAILABLE, NULL, "store: closing");
    }
    if (w->tail)
        w->tail->next = &op;
    else
        w->head = &op;
    w->tail = &op;
    pthread_cond_signal(&w->work);
    while (!op.done)
        pthread_cond_wait(&op.done_cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&op.done_cond);

    if (op.rc < 0 && err)
        *err = op.err;
    return op.rc;
}

int sqlite_writer_start_op(sqlite_writer *w, sqlite_writer_fn fn, void *arg,
                           sqlite_writer_done_fn on_done, void *done_arg, errand_error *err)
{
    struct writer_op *op = mem_calloc(1, sizeof *op);
    if (!op)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    op->fn = fn;
    op->arg = arg;
    op->on_done = on_done;
    op->done_arg = done_arg;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        mem_free(op);
        return error_set(err, ERRAND_EUNAVAILABLE, NULL, "store: closing");
    }
    if (w->tail)
        w->tail->next = op;
    else
        w->head = op;
    w->tail = op;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int sqlite_writer_run(sqlite_writer *w, sqlite_writer_fn fn, void *arg, errand_error *err)
{
    return run_op_waiting(w, fn, arg, false, err);
}

int sqlite_writer_run_relaxed(sqlite_writer *w, sqlite_writer_fn fn, void *arg, errand_error *err)
{
    return run_op_waiting(w, fn, arg, true, err);
}

void sqlite_writer_stop(sqlite_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    sqlite_conn_close(w->conn);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->lock);
    mem_free(w->batch);
    mem_free(w);
}

void sqlite_writer_get_stats(sqlite_writer *w, struct sqlite_writer_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
    /* Read from the writer thread's CPU clock now, not around each group: that clock is not
     * in the vDSO, and two system calls a commit were a measurable part of a lone commit. */
    clockid_t cpu_clock;
    out->cpu_us = pthread_getcpuclockid(w->thread, &cpu_clock) == 0
                      ? (unsigned long long)clock_us(cpu_clock)
                      : 0;
}

size_t sqlite_writer_queued(sqlite_writer *w)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (const struct writer_op *op = w->head; op; op = op->next)
        n++;
    pthread_mutex_unlock(&w->lock);
    return n;
}
