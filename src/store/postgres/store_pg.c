/* SPDX-License-Identifier: MIT */
/*
 * store_pg.c — the PostgreSQL backend of store.h (see store_pg.h for its shape): opening
 * and closing the store, the pool and the transaction runner, the listener that turns other
 * servers' notifications into wake-ups, and the point reads.
 *
 * The URL (postgresql://user:password@host:port/db?options) goes to libpq as it is, so
 * every libpq connection parameter and environment variable (PGPASSWORD, PGSSLMODE, ...)
 * works. The tables go in the connection's current schema (search_path), created at the
 * first open (pg_schema.c).
 *
 * Wake-ups across servers: a transaction that may wake a long-poll (a run submitted, handed
 * back, retried, ended) sends one NOTIFY on the store's channel with its wake-ups as the
 * payload, lines of "d<task>" (runs of task may be claimable), "f<id>" (run id may have
 * ended), or "*" (all of them); PostgreSQL delivers it to every listener when, and only if,
 * the transaction commits. The payload starts with the sender's origin tag, so a server
 * skips its own (it woke its own long-polls already). What a commit set off beyond the runs
 * its call named — runs a dependency released or ended (pg_deps.c) — the server does not
 * know of, so the store tells its own signal callback after the commit (c->wakeups).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/settings.h"
#include "core/state.h"
#include "store/postgres/pg_deps.h"
#include "store/postgres/pg_limits.h"
#include "store/postgres/pg_schema.h"
#include "store/postgres/store_pg.h"

#define DEFAULT_LEASE_SECONDS 30
#define TX_ATTEMPTS 8        /* runs of a transaction that keeps failing retryably */
#define LISTEN_RETRY_MS 1000 /* between attempts to get the channel back */
#define CHANNEL_PREFIX "errand:"

int64_t store_pg_lease_ms(const struct store_pg *s, int lease_seconds)
{
    int secs = lease_seconds > 0 ? lease_seconds : s->default_lease_seconds;
    return (int64_t)secs * MS_PER_S;
}

void store_pg_read_run(const PGresult *r, int row, int first, struct run_row *out)
{
    int c = first;
    memset(out, 0, sizeof *out);
    out->id = pg_get_text(r, row, c++);
    out->task = pg_get_text(r, row, c++);
    out->parameters = pg_get_text(r, row, c++);
    out->state = (errand_state)pg_get_int(r, row, c++);
    out->state_name = pg_get_text(r, row, c++);
    out->state_timestamp = pg_get_i64(r, row, c++);
    out->state_message = pg_get_text(r, row, c++);
    out->attempt = pg_get_int(r, row, c++);
    out->max_attempts = pg_get_int(r, row, c++);
    out->created = pg_get_i64(r, row, c++);
    out->scheduled_at = pg_get_i64(r, row, c++);
    out->started = pg_get_i64(r, row, c++);
    out->finished = pg_get_i64(r, row, c++);
    out->worker = pg_get_text(r, row, c++);
    out->priority = pg_get_int(r, row, c++);
    out->tags = pg_get_text(r, row, c++);
    out->idempotency_key = pg_get_text(r, row, c++);
    out->cache_key = pg_get_text(r, row, c++);
    out->retries = pg_get_int(r, row, c++);
    out->retry_delays = pg_get_text(r, row, c++);
    out->retry_jitter_factor = pg_get_double(r, row, c++);
    out->timeout_seconds = pg_get_double(r, row, c++);
    out->persist_result = pg_get_opt_int(r, row, c++);
    out->result = pg_get_text(r, row, c++);
    out->result_ref = pg_get_text(r, row, c++);
    out->redeliveries = pg_get_int(r, row, c++);
    out->retry_of = pg_get_text(r, row, c++);
    out->lease_expires = pg_get_i64(r, row, c++);
    out->traceparent = pg_get_text(r, row, c++);
    out->wait_for = pg_get_text(r, row, c++);
    out->allow_upstream_failure = pg_get_bool(r, row, c++);
}

int pg_run_current_read(const PGresult *r, int row, struct run_current *cur, bool with_delays,
                        errand_error *err)
{
    memset(cur, 0, sizeof *cur);
    int c = 0;
    cur->state = (errand_state)pg_get_int(r, row, c++);
    cur->state_timestamp = pg_get_i64(r, row, c++);
    cur->attempt = pg_get_int(r, row, c++);
    cur->max_attempts = pg_get_int(r, row, c++);
    run_copy_fixed(cur->lease_token, sizeof cur->lease_token, pg_get_text(r, row, c++));
    const char *worker = pg_get_text(r, row, c++);
    snprintf(cur->worker, sizeof cur->worker, "%s", worker ? worker : "");
    const char *delays = pg_get_text(r, row, c++);
    cur->jitter = pg_get_double(r, row, c++);
    cur->has_cache_key = pg_get_bool(r, row, c++);
    cur->cache_expiration_seconds = pg_get_double(r, row, c++);
    cur->started = pg_get_i64(r, row, c++);
    cur->scheduled_at = pg_get_i64(r, row, c++);
    cur->n_states = pg_get_int(r, row, c++);
    cur->lease_expires = pg_get_i64(r, row, c++);
    run_copy_fixed(cur->id, sizeof cur->id, pg_get_text(r, row, c++));
    run_copy_fixed(cur->ended_by, sizeof cur->ended_by, pg_get_text(r, row, c++));
    cur->redeliveries = pg_get_int(r, row, c++);
    run_copy_fixed(cur->task, sizeof cur->task, pg_get_text(r, row, c++));
    cur->delayed = pg_get_bool(r, row, c++);
    cur->dependants = pg_get_int(r, row, c++);
    cur->holds_slots = pg_get_int(r, row, c++) != 0;
    return with_delays ? run_current_parse_delays(delays, cur, err) : 0;
}

int pg_run_current_get(struct pg_conn *c, const char *id, bool with_delays, bool for_update,
                       struct run_current *cur, errand_error *err)
{
    static const char sql_read[] = "SELECT " PG_LEASE_COLUMNS " FROM task_runs WHERE id = $1";
    static const char sql_lock[] =
        "SELECT " PG_LEASE_COLUMNS " FROM task_runs WHERE id = $1 FOR UPDATE";
    struct pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *r = pg_query(c, for_update ? sql_lock : sql_read, &p, "reading a run", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = PQntuples(r) == 1 ? pg_run_current_read(r, 0, cur, with_delays, err)
                               : error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    PQclear(r);
    return rc;
}

/* --- the pool ------------------------------------------------------------------------- */

struct pg_conn *store_pg_acquire(struct store_pg *s, errand_error *err)
{
    pthread_mutex_lock(&s->mu);
    int slot = -1;
    while (slot < 0) {
        for (int i = 0; i < s->pool_size; i++)
            if (!s->busy[i]) {
                slot = i;
                break;
            }
        if (slot < 0)
            pthread_cond_wait(&s->cond, &s->mu);
    }
    s->busy[slot] = true;
    struct pg_conn *c = s->conns[slot];
    pthread_mutex_unlock(&s->mu);
    if (!c && pg_conn_open(s->conninfo, &c, err) < 0) {
        pthread_mutex_lock(&s->mu);
        s->busy[slot] = false;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    s->conns[slot] = c; /* only the holder of the slot writes it */
    c->finals.observer = &s->observer;
    c->wakeups.fn = s->on_signal; /* set before the store is shared */
    c->wakeups.arg = s->on_signal_arg;
    if (pg_conn_check(c, s->conninfo, err) < 0) {
        store_pg_release(s, c);
        return NULL;
    }
    return c;
}

void store_pg_release(struct store_pg *s, struct pg_conn *c)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->pool_size; i++)
        if (s->conns[i] == c)
            s->busy[i] = false;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* --- transactions --------------------------------------------------------------------- */

/* The feed page of c's events, numbered from the head row, in one statement (no head row:
 * a NULL first_seq, refused). It goes last before COMMIT, in the same pipeline: every writer
 * updates that one row, so whoever holds it holds up the others until its commit. */
static void send_feed_page(struct pg_conn *c)
{
    static const char sql[] = "WITH head AS (UPDATE feed_head SET next_seq = next_seq + $1 "
                              "RETURNING next_seq - $1 AS first_seq) "
                              "INSERT INTO run_feed (first_seq, n, at, events) "
                              "VALUES ((SELECT first_seq FROM head), $1, $2, $3)";
    struct pg_params p = {0};
    pg_p_i64(&p, c->feed.n);
    pg_p_i64(&p, c->feed.newest_at);
    pg_p_bytes(&p, c->feed.data, c->feed.len);
    pg_pipeline_send(c, sql, &p, "storing the change feed");
}

static void send_signals(struct store_pg *s, struct pg_conn *c)
{
    static const char sql[] = "SELECT pg_notify($1, $2)";
    char payload[PG_SIGNALS_MAX + 32];
    snprintf(payload, sizeof payload, "%s\n%s", s->origin, c->signals_all ? "*\n" : c->signals);
    struct pg_params p = {0};
    pg_p_text(&p, s->channel);
    pg_p_text(&p, payload);
    pg_pipeline_send(c, sql, &p, "notifying the other servers");
}

int store_pg_commit(struct store_pg *s, struct pg_conn *c, errand_error *err)
{
    int64_t start = clock_mono_ns();
    int rc = pg_deps_settle(c, err); /* the op's transitions are written: see pg_deps.c */
    if (rc < 0)
        return rc;
    pg_pipeline_begin(c);
    pg_deferred_send(c);
    rc = pg_states_send(c, err);
    if (rc == 0) /* after the settling, which may end runs too */
        rc = pg_webhooks_send(c, err);
    if (rc == 0) { /* else no COMMIT: the caller rolls back */
        if (c->signals_len > 0 || c->signals_all)
            send_signals(s, c);
        if (c->feed.n > 0)
            send_feed_page(c);
        pg_pipeline_send_text(c, "COMMIT", "committing");
    }
    int piped = pg_pipeline_end(c, rc == 0 ? err : NULL);
    if (rc == 0 && piped == 0 && s->observer.commit)
        s->observer.commit(s->observer.arg, clock_mono_ns() - start);
    return rc < 0 ? rc : piped;
}

void store_pg_after_commit(struct store_pg *s, struct pg_conn *c)
{
    bool events = c->feed.n > 0, wake = c->wake_here;
    run_finals_flush(&c->finals);
    run_wakeups_flush(&c->wakeups);
    pg_conn_forget(c);
    if (wake && s->on_signal) /* slots were freed: our own NOTIFY skips this server */
        s->on_signal(s->on_signal_arg, STORE_SIGNAL_RUNS_DUE, NULL);
    if (events && s->on_events)
        s->on_events(s->on_events_arg);
}

/* How run_tx begins each kind of transaction. */
enum tx_kind { TX_READ, TX_WRITE, TX_WRITE_LAZY };

static const char *const tx_begin[] = {
    [TX_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    [TX_WRITE] = "BEGIN",
    /* One round trip: the setting holds for this transaction only. */
    [TX_WRITE_LAZY] = "BEGIN; SET LOCAL synchronous_commit = off",
};

static int run_tx(struct store_pg *s, pg_op_fn fn, void *arg, enum tx_kind kind, errand_error *err)
{
    bool write = kind != TX_READ;
    struct pg_conn *c = store_pg_acquire(s, err);
    if (!c)
        return ERRAND_ESTORE;
    int rc = 0;
    for (int attempt = 1; attempt <= TX_ATTEMPTS; attempt++) {
        pg_conn_forget(c);
        rc = pg_exec(c, tx_begin[kind], err);
        if (rc == 0)
            rc = fn(c, arg, err);
        if (rc == 0 && (rc = write ? store_pg_commit(s, c, err) : pg_exec(c, "COMMIT", err)) == 0) {
            store_pg_after_commit(s, c);
            break;
        }
        bool again = pg_conn_retryable(c) && attempt < TX_ATTEMPTS;
        pg_exec(c, "ROLLBACK", NULL);
        pg_conn_forget(c);
        if (!again || PQstatus(c->pg) != CONNECTION_OK)
            break;
    }
    store_pg_release(s, c);
    return rc;
}

int store_pg_write(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err)
{
    return run_tx(s, fn, arg, TX_WRITE, err);
}

int store_pg_write_lazy(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err)
{
    return run_tx(s, fn, arg, TX_WRITE_LAZY, err);
}

int store_pg_read(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err)
{
    return run_tx(s, fn, arg, TX_READ, err);
}

int store_pg_read_single(struct store_pg *s, pg_op_fn fn, void *arg, errand_error *err)
{
    struct pg_conn *c = store_pg_acquire(s, err);
    if (!c)
        return ERRAND_ESTORE;
    int rc = fn(c, arg, err);
    store_pg_release(s, c);
    return rc;
}

/* --- the listener --------------------------------------------------------------------- */

static void signal_all(struct store_pg *s)
{
    if (s->on_signal) {
        s->on_signal(s->on_signal_arg, STORE_SIGNAL_RUNS_DUE, NULL);
        s->on_signal(s->on_signal_arg, STORE_SIGNAL_RUN_FINAL, NULL);
    }
    if (s->on_events)
        s->on_events(s->on_events_arg);
}

/* Turns one notification's payload into wake-ups (see the top of the file). */
static void deliver(struct store_pg *s, char *payload)
{
    char *save = NULL;
    char *line = strtok_r(payload, "\n", &save);
    if (!line || strcmp(line, s->origin) == 0)
        return; /* our own, or not errand's */
    if (s->on_events)
        s->on_events(s->on_events_arg);
    if (!s->on_signal)
        return;
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (line[0] == '*') {
            signal_all(s);
            return;
        }
        const char *key = line[1] ? line + 1 : NULL;
        if (line[0] == 'd')
            s->on_signal(s->on_signal_arg, STORE_SIGNAL_RUNS_DUE, key);
        else if (line[0] == 'f')
            s->on_signal(s->on_signal_arg, STORE_SIGNAL_RUN_FINAL, key);
    }
}

static PGconn *listen_connect(struct store_pg *s)
{
    PGconn *pg = PQconnectdb(s->conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        return NULL;
    }
    char *ident = PQescapeIdentifier(pg, s->channel, strlen(s->channel));
    char sql[160];
    snprintf(sql, sizeof sql, "LISTEN %s", ident ? ident : "errand");
    PQfreemem(ident);
    PGresult *r = PQexec(pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static void *listener_main(void *arg)
{
    struct store_pg *s = arg;
    PGconn *pg = NULL;
    bool lost = false;
    for (;;) {
        if (!pg) {
            pg = listen_connect(s);
            if (pg && lost)
                signal_all(s); /* something may have been sent while we were away */
            lost = !pg;
        }
        struct pollfd fds[2] = {{.fd = s->stop_pipe[0], .events = POLLIN},
                                {.fd = pg ? PQsocket(pg) : -1, .events = POLLIN}};
        int n = poll(fds, 2, pg ? -1 : LISTEN_RETRY_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (!pg || !(fds[1].revents))
            continue;
        if (!PQconsumeInput(pg)) {
            log_warn("store: lost the PostgreSQL notification channel; reconnecting",
                     "error=\"%s\"", PQerrorMessage(pg));
            PQfinish(pg);
            pg = NULL;
            lost = true;
            continue;
        }
        PGnotify *nt;
        while ((nt = PQnotifies(pg))) {
            deliver(s, nt->extra);
            PQfreemem(nt);
        }
    }
    PQfinish(pg);
    return NULL;
}

/* --- open and close ------------------------------------------------------------------- */

static int open_channel(struct store_pg *s, struct pg_conn *c, errand_error *err)
{
    PGresult *r = pg_query(c, "SELECT current_schema()", NULL, "reading the schema", err);
    if (!r)
        return ERRAND_ESTORE;
    const char *schema = PQntuples(r) ? pg_get_text(r, 0, 0) : NULL;
    snprintf(s->channel, sizeof s->channel, CHANNEL_PREFIX "%s", schema ? schema : "");
    PQclear(r);
    if (token_random_hex((sizeof s->origin - 1) / 2, s->origin) < 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot draw the store's origin tag");
    if (pipe(s->stop_pipe) < 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot make a pipe: %s", strerror(errno));
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot start the store's listener thread");
    s->listener_started = true;
    return 0;
}

static void store_pg_close(store *st)
{
    struct store_pg *s = store_pg_of(st);
    store_pg_submitter_stop(s);
    if (s->listener_started) {
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(s->listener, NULL);
    }
    if (s->stop_pipe[0] > 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    for (int i = 0; s->conns && i < s->pool_size; i++)
        pg_conn_close(s->conns[i]);
    mem_free(s->conns);
    mem_free(s->busy);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    mem_free(s->conninfo);
    mem_free(s);
}

static int store_pg_open(const char *url, const struct store_options *opt, store **out,
                         errand_error *err)
{
    *out = NULL;
    struct store_pg *s = mem_calloc(1, sizeof *s);
    if (!s)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    s->base.backend = &store_pg_backend;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->default_lease_seconds =
        opt && opt->default_lease_seconds > 0 ? opt->default_lease_seconds : DEFAULT_LEASE_SECONDS;
    s->max_redeliveries = opt ? opt->max_redeliveries : STORE_DEFAULT_MAX_REDELIVERIES;
    s->pool_size = opt && opt->pool_size > 0 ? opt->pool_size : STORE_PG_POOL_DEFAULT;
    if (s->pool_size > DATABASE_POOL_SIZE_MAX)
        s->pool_size = DATABASE_POOL_SIZE_MAX;
    int rc = 0;
    s->conns = mem_calloc((size_t)s->pool_size, sizeof *s->conns);
    s->busy = mem_calloc((size_t)s->pool_size, sizeof *s->busy);
    if (!(s->conninfo = mem_strdup(url)) || !s->conns || !s->busy)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    struct pg_conn *c = rc == 0 ? store_pg_acquire(s, err) : NULL;
    if (rc == 0 && !c)
        rc = ERRAND_ESTORE;
    if (rc == 0) {
        rc = pg_schema_migrate(c, clock_now_ms(), err);
        if (rc == 0)
            rc = open_channel(s, c, err);
        store_pg_release(s, c);
    }
    if (rc == 0)
        rc = store_pg_submitter_start(s, err);
    if (rc < 0) {
        store_pg_close(&s->base);
        return rc;
    }
    log_info("store opened", "store=postgresql schema=%d channel=\"%s\" pool=%d",
             pg_schema_version(), s->channel, s->pool_size);
    *out = &s->base;
    return 0;
}

/* --- point reads ---------------------------------------------------------------------- */

struct get_run_op {
    const char *id; /* normalised */
    const char *asked;
    struct run_row *out;
};

static int get_run_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT " PG_RUN_COLUMNS " FROM task_runs WHERE id = $1";
    struct get_run_op *op = arg;
    run_row_clear(op->out);
    struct pg_params p = {0};
    pg_p_text(&p, op->id);
    PGresult *r = pg_query(c, sql, &p, "reading a run", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc;
    if (PQntuples(r) == 1) {
        store_pg_read_run(r, 0, 0, op->out);
        if ((rc = run_row_own_strings(op->out, err)) < 0)
            memset(op->out, 0, sizeof *op->out);
    } else {
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, op->asked);
    }
    PQclear(r);
    return rc;
}

static int get_run(store *st, const char *id, struct run_row *out, errand_error *err)
{
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    memset(out, 0, sizeof *out);
    struct get_run_op op = {norm, id, out};
    int rc = store_pg_read(store_pg_of(st), get_run_in_tx, &op, err);
    if (rc < 0)
        run_row_clear(out);
    return rc;
}

struct get_state_op {
    const char *id;
    const char *asked;
    errand_state *out;
};

static int get_state_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT state_type FROM task_runs WHERE id = $1";
    struct get_state_op *op = arg;
    struct pg_params p = {0};
    pg_p_text(&p, op->id);
    PGresult *r = pg_query(c, sql, &p, "reading a run's state", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    if (PQntuples(r) == 1)
        *op->out = (errand_state)pg_get_int(r, 0, 0);
    else
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, op->asked);
    PQclear(r);
    return rc;
}

static int get_state(store *st, const char *id, errand_state *out, errand_error *err)
{
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct get_state_op op = {norm, id, out};
    return store_pg_read(store_pg_of(st), get_state_in_tx, &op, err);
}

static int ready_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    (void)arg;
    static const char sql[] =
        "UPDATE errand_schema_migrations SET applied_at = applied_at WHERE version = 1";
    return pg_command(c, sql, NULL, "readiness write", NULL, err);
}

static int ready(store *st, errand_error *err)
{
    return store_pg_write(store_pg_of(st), ready_in_tx, NULL, err);
}

static void release_memory(store *st)
{
    (void)st; /* the page cache is the database server's */
}

static void on_events(store *st, void (*fn)(void *), void *arg)
{
    struct store_pg *s = store_pg_of(st);
    s->on_events = fn;
    s->on_events_arg = arg;
}

static void on_signal(store *st, void (*fn)(void *, enum store_signal, const char *), void *arg)
{
    struct store_pg *s = store_pg_of(st);
    s->on_signal = fn;
    s->on_signal_arg = arg;
}

const struct store_backend store_pg_backend = {
    .kind = "postgresql",
    .open = store_pg_open,
    .close = store_pg_close,
    .submit_begin = store_pg_submit_begin,
    .submit_end = store_pg_submit_end,
    .get_run = get_run,
    .get_state = get_state,
    .list_runs = store_pg_list_runs,
    .get_states = store_pg_get_states,
    .get_logs = store_pg_get_logs,
    .cancel = store_pg_cancel,
    .claim = store_pg_claim,
    .heartbeat = store_pg_heartbeat,
    .report = store_pg_report,
    .sweep = store_pg_sweep,
    .delete_expired = store_pg_delete_expired,
    .list_workers = store_pg_list_workers,
    .count_by_state = store_pg_count_by_state,
    .read_events = store_pg_read_events,
    .event_bounds = store_pg_event_bounds,
    .prune_events = store_pg_prune_events,
    .on_events = on_events,
    .read_stats = store_pg_read_stats,
    .set_paused = store_pg_set_paused,
    .observe = store_pg_observe,
    .oldest_ready = store_pg_oldest_ready,
    .schedule_put = store_pg_schedule_put,
    .schedule_get = store_pg_schedule_get,
    .schedule_list = store_pg_schedule_list,
    .schedule_delete = store_pg_schedule_delete,
    .schedule_set_paused = store_pg_schedule_set_paused,
    .schedule_due = store_pg_schedule_due,
    .schedule_advance = store_pg_schedule_advance,
    .webhook_set = store_pg_webhook_set,
    .webhook_list = store_pg_webhook_list,
    .webhook_pending = store_pg_webhook_pending,
    .webhook_take = store_pg_webhook_take,
    .webhook_done = store_pg_webhook_done,
    .webhook_retry = store_pg_webhook_retry,
    .list_failures = store_pg_list_failures,
    .delete_runs = store_pg_delete_runs,
    .release_memory = release_memory,
    .ready = ready,
    .on_signal = on_signal,
    .set_limit = store_pg_set_limit,
    .set_rate = store_pg_set_rate,
    .list_limits = store_pg_list_limits,
};
