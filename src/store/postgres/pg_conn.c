/* SPDX-License-Identifier: MIT */
/*
 * pg_conn.c — a libpq connection and its statement helpers (see pg_conn.h).
 */
#include "store/postgres/pg_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"

/* What PostgreSQL says of a failure, on one line, bounded. */
static const char *pg_message(const PGconn *pg, const PGresult *r)
{
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !m[0])
        m = pg ? PQerrorMessage(pg) : "no connection";
    return m && m[0] ? m : "unknown error";
}

static int fail(struct pg_conn *c, const PGresult *r, const char *what, errand_error *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
    char msg[400];
    snprintf(msg, sizeof msg, "%s", pg_message(c->pg, r));
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return error_set(err, ERRAND_ESTORE, NULL, "store: %s: %s", what, msg);
}

int pg_conn_open(const char *conninfo, struct pg_conn **out, errand_error *err)
{
    *out = NULL;
    struct pg_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    c->pg = PQconnectdb(conninfo);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        int rc = fail(c, NULL, "cannot connect to PostgreSQL", err);
        pg_conn_close(c);
        return rc;
    }
    /* Times are Unix ms integers and text is UTF-8 whatever the server's defaults. */
    int rc = pg_exec(c, "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'", err);
    if (rc < 0) {
        pg_conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Forgets the held statements from the first `keep` on. */
static void deferred_drop(struct pg_conn *c, int keep)
{
    for (int i = keep; i < c->n_deferred; i++)
        mem_free(c->deferred[i].buf);
    if (c->n_deferred > keep)
        c->n_deferred = keep;
}

void pg_conn_close(struct pg_conn *c)
{
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    feed_page_free(&c->feed);
    for (int i = 0; i < PG_STATE_COLUMNS; i++)
        pg_array_free(&c->states[i]);
    for (int i = 0; i < PG_WEBHOOK_COLUMNS; i++)
        pg_array_free(&c->webhooks[i]);
    run_finals_free(&c->finals);
    mem_free(c->ended.ids);
    deferred_drop(c, 0);
    mem_free(c);
}

int pg_conn_check(struct pg_conn *c, const char *conninfo, errand_error *err)
{
    (void)conninfo;
    bool piped = PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF; /* left in a pipeline: reset */
    if (!piped && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return 0;
    if (!piped && PQstatus(c->pg) == CONNECTION_OK) { /* left inside a transaction: end it */
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
        if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
            return 0;
    }
    PQreset(c->pg);
    memset(c->stmts, 0, sizeof c->stmts);
    if (PQstatus(c->pg) != CONNECTION_OK)
        return fail(c, NULL, "lost the connection to PostgreSQL", err);
    return pg_exec(c, "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'", err);
}

/* --- parameters ----------------------------------------------------------------------- */

static void put(struct pg_params *p, const char *v, int len, int fmt)
{
    if (p->n >= PG_PARAMS_MAX)
        abort(); /* a statement with more parameters than PG_PARAMS_MAX: a programming error */
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    p->n++;
}

void pg_p_text(struct pg_params *p, const char *s)
{
    put(p, s, 0, 0);
}

void pg_p_i64(struct pg_params *p, int64_t v)
{
    snprintf(p->num[p->n < PG_PARAMS_MAX ? p->n : 0], sizeof p->num[0], "%lld", (long long)v);
    put(p, p->num[p->n < PG_PARAMS_MAX ? p->n : 0], 0, 0);
}

void pg_p_int(struct pg_params *p, int v)
{
    pg_p_i64(p, v);
}

void pg_p_ms(struct pg_params *p, int64_t ms)
{
    if (ms == 0)
        put(p, NULL, 0, 0);
    else
        pg_p_i64(p, ms);
}

void pg_p_double(struct pg_params *p, double v)
{
    snprintf(p->num[p->n < PG_PARAMS_MAX ? p->n : 0], sizeof p->num[0], "%.17g", v);
    put(p, p->num[p->n < PG_PARAMS_MAX ? p->n : 0], 0, 0);
}

void pg_p_positive(struct pg_params *p, double v)
{
    if (v > 0)
        pg_p_double(p, v);
    else
        put(p, NULL, 0, 0);
}

void pg_p_opt_int(struct pg_params *p, int v)
{
    if (v < 0)
        put(p, NULL, 0, 0);
    else
        pg_p_i64(p, v);
}

void pg_p_bool(struct pg_params *p, bool v)
{
    put(p, v ? "t" : "f", 0, 0);
}

void pg_p_bytes(struct pg_params *p, const void *data, size_t len)
{
    put(p, data, (int)len, 1);
}

void pg_p_array(struct pg_params *p, const struct pg_array *a)
{
    put(p, pg_array_literal(a), 0, 0);
}

/* --- array literals ------------------------------------------------------------------- */

/* Room for `more` bytes of elements, the closing brace and the terminator. */
static bool array_reserve(struct pg_array *a, size_t more)
{
    if (a->oom)
        return false;
    size_t need = a->len + more + 2 + (a->buf ? 0 : 1); /* a new one starts with its brace */
    if (need <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need)
        cap *= 2;
    char *buf = mem_realloc(a->buf, cap);
    if (!buf) {
        a->oom = true;
        return false;
    }
    if (!a->buf)
        buf[a->len++] = '{';
    a->buf = buf;
    a->cap = cap;
    return true;
}

static void array_close(struct pg_array *a)
{
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
}

/* Appends an element of `len` bytes of s, quoted (and escaped) or as it is. */
static void array_put(struct pg_array *a, const char *s, size_t len, bool quote)
{
    if (!array_reserve(a, 2 * len + 3))
        return;
    if (a->n > 0)
        a->buf[a->len++] = ',';
    if (quote)
        a->buf[a->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (quote && (s[i] == '"' || s[i] == '\\'))
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = s[i];
    }
    if (quote)
        a->buf[a->len++] = '"';
    a->n++;
    array_close(a);
}

void pg_array_text(struct pg_array *a, const char *s)
{
    if (s)
        array_put(a, s, strlen(s), true);
    else
        array_put(a, "NULL", 4, false);
}

void pg_array_i64(struct pg_array *a, int64_t v)
{
    char num[32];
    int len = snprintf(num, sizeof num, "%lld", (long long)v);
    array_put(a, num, (size_t)len, false);
}

void pg_array_ms(struct pg_array *a, int64_t ms)
{
    if (ms == 0)
        pg_array_text(a, NULL);
    else
        pg_array_i64(a, ms);
}

void pg_array_double(struct pg_array *a, double v)
{
    char num[32];
    int len = snprintf(num, sizeof num, "%.17g", v);
    array_put(a, num, (size_t)len, false);
}

void pg_array_positive(struct pg_array *a, double v)
{
    if (v > 0)
        pg_array_double(a, v);
    else
        pg_array_text(a, NULL);
}

void pg_array_bool(struct pg_array *a, bool v)
{
    array_put(a, v ? "t" : "f", 1, false);
}

const char *pg_array_literal(const struct pg_array *a)
{
    return a->buf && !a->oom ? a->buf : "{}";
}

int pg_array_check(const struct pg_array *a, errand_error *err)
{
    return a->oom ? error_set(err, ERRAND_ENOMEM, NULL, "out of memory") : 0;
}

void pg_array_reset(struct pg_array *a)
{
    pg_array_rewind(a, (struct pg_array_mark){0, 0});
    a->oom = false;
}

void pg_array_free(struct pg_array *a)
{
    mem_free(a->buf);
    *a = (struct pg_array){0};
}

struct pg_array_mark pg_array_mark(const struct pg_array *a)
{
    return (struct pg_array_mark){a->len, a->n};
}

void pg_array_rewind(struct pg_array *a, struct pg_array_mark m)
{
    if (!a->buf)
        return;
    a->len = m.len > 0 ? m.len : 1; /* the opening brace stays */
    a->n = m.n;
    array_close(a);
}

/* --- statements ----------------------------------------------------------------------- */

/* The slot of sql on c: found, or free (to prepare it in); NULL when the table is full. */
static struct pg_stmt_slot *slot_of(struct pg_conn *c, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) % PG_STMT_SLOTS;
    for (size_t i = 0; i < PG_STMT_SLOTS; i++) {
        struct pg_stmt_slot *s = &c->stmts[(h + i) % PG_STMT_SLOTS];
        if (!s->sql || s->sql == sql)
            return s;
    }
    return NULL;
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

PGresult *pg_query(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
                   errand_error *err)
{
    static const struct pg_params none = {0};
    if (!p)
        p = &none;
    c->sqlstate[0] = '\0';
    struct pg_stmt_slot *slot = slot_of(c, sql);
    PGresult *r;
    if (!slot) { /* more statements than slots: run it unprepared */
        r = PQexecParams(c->pg, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
    } else {
        if (!slot->sql) {
            char name[16];
            snprintf(name, sizeof name, "e%u", c->next_stmt + 1);
            PGresult *prep = PQprepare(c->pg, name, sql, 0, NULL);
            if (!result_ok(prep)) {
                fail(c, prep, what, err);
                PQclear(prep);
                return NULL;
            }
            PQclear(prep);
            c->next_stmt++;
            slot->sql = sql;
            memcpy(slot->name, name, sizeof name);
        }
        r = PQexecPrepared(c->pg, slot->name, p->n, p->v, p->len, p->fmt, 0);
    }
    if (!result_ok(r)) {
        fail(c, r, what, err);
        PQclear(r);
        return NULL;
    }
    return r;
}

int pg_command(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
               int64_t *affected, errand_error *err)
{
    PGresult *r = pg_query(c, sql, p, what, err);
    if (!r)
        return ERRAND_ESTORE;
    if (affected) {
        const char *n = PQcmdTuples(r);
        *affected = n && n[0] ? strtoll(n, NULL, 10) : 0;
    }
    PQclear(r);
    return 0;
}

/* --- pipelines ------------------------------------------------------------------------ */

void pg_pipeline_begin(struct pg_conn *c)
{
    c->n_pending = 0;
    c->send_failed = PQenterPipelineMode(c->pg) != 1;
}

static void pending_add(struct pg_conn *c, const char *what, struct pg_stmt_slot *prepared)
{
    if (c->n_pending >= PG_PIPELINE_MAX)
        abort(); /* more statements than a pipeline holds: a programming error */
    c->pending[c->n_pending++] = (struct pg_pending){what, prepared};
}

int pg_defer(struct pg_conn *c, const char *sql, const struct pg_params *p, const char *what,
             errand_error *err)
{
    if (c->n_deferred == PG_DEFERRED_MAX)
        return pg_command(c, sql, p, what, NULL, err);
    size_t total = 0;
    for (int i = 0; i < p->n; i++)
        if (p->v[i])
            total += p->fmt[i] ? (size_t)p->len[i] : strlen(p->v[i]) + 1;
    char *at = mem_alloc(total ? total : 1);
    if (!at)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    struct pg_deferred *d = &c->deferred[c->n_deferred++];
    d->sql = sql;
    d->what = what;
    d->buf = at;
    d->p.n = p->n;
    for (int i = 0; i < p->n; i++) {
        d->p.len[i] = p->len[i];
        d->p.fmt[i] = p->fmt[i];
        d->p.v[i] = NULL;
        if (!p->v[i])
            continue;
        size_t len = p->fmt[i] ? (size_t)p->len[i] : strlen(p->v[i]) + 1;
        memcpy(at, p->v[i], len);
        d->p.v[i] = at;
        at += len;
    }
    return 0;
}

void pg_deferred_send(struct pg_conn *c)
{
    for (int i = 0; i < c->n_deferred; i++)
        pg_pipeline_send(c, c->deferred[i].sql, &c->deferred[i].p, c->deferred[i].what);
    deferred_drop(c, 0);
}

void pg_pipeline_send(struct pg_conn *c, const char *sql, const struct pg_params *p,
                      const char *what)
{
    static const struct pg_params none = {0};
    if (!p)
        p = &none;
    if (c->send_failed)
        return;
    struct pg_stmt_slot *slot = slot_of(c, sql);
    bool sent;
    if (!slot) {
        sent = PQsendQueryParams(c->pg, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
    } else {
        if (!slot->sql) { /* taken now; forgotten again if the preparation fails */
            snprintf(slot->name, sizeof slot->name, "e%u", ++c->next_stmt);
            slot->sql = sql;
            if (!PQsendPrepare(c->pg, slot->name, sql, 0, NULL)) {
                slot->sql = NULL;
                c->send_failed = true;
                return;
            }
            pending_add(c, what, slot);
        }
        sent = PQsendQueryPrepared(c->pg, slot->name, p->n, p->v, p->len, p->fmt, 0);
    }
    if (sent)
        pending_add(c, what, NULL);
    else
        c->send_failed = true;
}

void pg_pipeline_send_text(struct pg_conn *c, const char *sql, const char *what)
{
    if (c->send_failed)
        return;
    if (PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        pending_add(c, what, NULL);
    else
        c->send_failed = true;
}

int pg_pipeline_end(struct pg_conn *c, errand_error *err)
{
    c->sqlstate[0] = '\0';
    int rc = 0;
    bool synced = PQpipelineSync(c->pg) == 1; /* flushes what was sent, in any case */
    if (c->send_failed || !synced)
        rc = fail(c, NULL, "sending statements", err);
    for (int i = 0; i < c->n_pending; i++) { /* each reply ends with a NULL */
        PGresult *r;
        while ((r = PQgetResult(c->pg))) {
            if (!result_ok(r)) {
                if (c->pending[i].prepared)
                    c->pending[i].prepared->sql = NULL;
                if (rc == 0)
                    rc = fail(c, r, c->pending[i].what, err);
            }
            PQclear(r);
        }
    }
    PGresult *sync = synced ? PQgetResult(c->pg) : NULL;
    if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC && rc == 0)
        rc = fail(c, sync, "ending a pipeline", err);
    PQclear(sync);
    c->n_pending = 0;
    if (PQexitPipelineMode(c->pg) != 1 && rc == 0)
        rc = fail(c, NULL, "ending a pipeline", err);
    return rc;
}

int pg_exec(struct pg_conn *c, const char *sql, errand_error *err)
{
    c->sqlstate[0] = '\0';
    PGresult *r = PQexec(c->pg, sql);
    int rc = result_ok(r) ? 0 : fail(c, r, "statement", err);
    PQclear(r);
    return rc;
}

/* --- columns -------------------------------------------------------------------------- */

const char *pg_get_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int64_t pg_get_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int pg_get_int(const PGresult *r, int row, int col)
{
    return (int)pg_get_i64(r, row, col);
}

double pg_get_double(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

bool pg_get_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

int pg_get_opt_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? -1 : pg_get_int(r, row, col);
}

bool pg_is_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

bool pg_conn_retryable(const struct pg_conn *c)
{
    return strcmp(c->sqlstate, "40001") == 0 || strcmp(c->sqlstate, "40P01") == 0 ||
           strcmp(c->sqlstate, "23505") == 0;
}

/* --- wake-ups ------------------------------------------------------------------------- */

static void signal_add(struct pg_conn *c, char kind, const char *key)
{
    if (c->signals_all)
        return;
    size_t klen = key ? strlen(key) : 0;
    if ((key && strchr(key, '\n')) || c->signals_len + klen + 3 > sizeof c->signals) {
        c->signals_all = true;
        return;
    }
    char *out = c->signals + c->signals_len;
    out[0] = kind;
    if (key)
        memcpy(out + 1, key, klen);
    out[1 + klen] = '\n';
    c->signals_len += klen + 2;
    c->signals[c->signals_len] = '\0';
}

void pg_signal_due(struct pg_conn *c, const char *task)
{
    signal_add(c, 'd', task);
}

void pg_signal_final(struct pg_conn *c, const char *id)
{
    signal_add(c, 'f', id);
}

void pg_conn_forget(struct pg_conn *c)
{
    feed_page_clear(&c->feed);
    c->signals_len = 0;
    c->signals[0] = '\0';
    c->signals_all = false;
    c->wake_here = false;
    for (int i = 0; i < PG_STATE_COLUMNS; i++) /* freed: a burst's rows are not kept pooled */
        pg_array_free(&c->states[i]);
    for (int i = 0; i < PG_WEBHOOK_COLUMNS; i++)
        pg_array_free(&c->webhooks[i]);
    run_finals_rewind(&c->finals, 0);
    c->ended.n = 0;
    c->wakeups.n_tasks = c->wakeups.n_runs = 0;
    c->wakeups.all_tasks = c->wakeups.all_runs = false;
    deferred_drop(c, 0);
}

struct pg_conn_mark pg_conn_mark(const struct pg_conn *c)
{
    struct pg_conn_mark m = {
        .feed = feed_page_mark(&c->feed),
        .signals_len = c->signals_len,
        .signals_all = c->signals_all,
        .deferred = c->n_deferred,
    };
    for (int i = 0; i < PG_STATE_COLUMNS; i++)
        m.states[i] = pg_array_mark(&c->states[i]);
    for (int i = 0; i < PG_WEBHOOK_COLUMNS; i++)
        m.webhooks[i] = pg_array_mark(&c->webhooks[i]);
    m.finals = c->finals.n;
    m.ended = c->ended.n;
    return m;
}

void pg_conn_rewind(struct pg_conn *c, const struct pg_conn_mark *m)
{
    feed_page_rewind(&c->feed, m->feed);
    c->signals_len = m->signals_len;
    c->signals[m->signals_len] = '\0';
    c->signals_all = m->signals_all;
    for (int i = 0; i < PG_STATE_COLUMNS; i++)
        pg_array_rewind(&c->states[i], m->states[i]);
    for (int i = 0; i < PG_WEBHOOK_COLUMNS; i++)
        pg_array_rewind(&c->webhooks[i], m->webhooks[i]);
    run_finals_rewind(&c->finals, m->finals);
    c->ended.n = m->ended;
    deferred_drop(c, m->deferred);
}
