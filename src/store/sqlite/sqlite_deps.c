/* SPDX-License-Identifier: MIT */
/*
 * sqlite_deps.c — dependencies between runs in the SQLite store (sqlite_deps.h).
 *
 * Settling is a walk, not a recursion: a dependant that an upstream's failure cancels may
 * have dependants of its own (a chain of a thousand runs), so the runs that end while
 * dependants are being settled queue on the connection (c->ended) and are settled in turn
 * by the outermost call, in the same transaction.
 */
#include "store/sqlite/sqlite_deps.h"

#include <jansson.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "store/sqlite/sqlite_transition.h"

/* An upstream run as its dependants see it: strings owned (mem_free). */
struct upstream {
    errand_state state;
    char *result;
    char *result_ref;
};

static void upstream_clear(struct upstream *u)
{
    mem_free(u->result);
    mem_free(u->result_ref);
    memset(u, 0, sizeof *u);
}

static int dup_col(sqlite3_stmt *s, int col, char **out, errand_error *err)
{
    const char *text = sqlite_col_text(s, col);
    *out = NULL;
    if (text && !(*out = mem_strdup(text)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

/* *found false when no run has that id. */
static int upstream_read(struct sqlite_conn *c, const char *id, struct upstream *u, bool *found,
                         errand_error *err)
{
    memset(u, 0, sizeof *u);
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_DEPS_UPSTREAM, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, id);
    int step = sqlite3_step(s), rc = 0;
    *found = step == SQLITE_ROW;
    if (step == SQLITE_ROW) {
        u->state = (errand_state)sqlite3_column_int(s, 0);
        if ((rc = dup_col(s, 1, &u->result, err)) == 0)
            rc = dup_col(s, 2, &u->result_ref, err);
    } else if (step != SQLITE_DONE) {
        rc = sqlite_conn_fail(c, "SQL_DEPS_UPSTREAM", err);
    }
    sqlite3_reset(s);
    if (rc < 0)
        upstream_clear(u);
    return rc;
}

int sqlite_deps_plan(struct sqlite_conn *c, const struct run_spec *spec, const char *const *ids,
                     size_t n_ids, struct run_deps_plan *out, errand_error *err)
{
    int rc = run_deps_plan_begin(spec, ids, n_ids, out, err);
    if (rc < 0)
        return rc;
    size_t n = out->n_upstream;
    struct upstream *read = mem_calloc(n ? n : 1, sizeof *read);
    struct run_deps_upstream *ups = mem_calloc(n ? n : 1, sizeof *ups);
    if (!read || !ups)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = upstream_read(c, out->upstream_ids[i], &read[i], &ups[i].found, err);
        ups[i].state = read[i].state;
        ups[i].result = read[i].result;
        ups[i].result_ref = read[i].result_ref;
    }
    if (rc == 0)
        rc = run_deps_plan_apply(spec, ups, out, err);
    for (size_t i = 0; read && i < n; i++)
        upstream_clear(&read[i]);
    mem_free(read);
    mem_free(ups);
    if (rc < 0)
        run_deps_plan_clear(out);
    return rc;
}

int sqlite_deps_register(struct sqlite_conn *c, const char *id, const struct run_deps_plan *p,
                         errand_error *err)
{
    for (int i = 0; i < p->pending; i++) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_EDGE_INSERT, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, p->edges[i]);
        sqlite_bind_text(s, 2, id);
        int rc = sqlite_conn_step_done(c, s, SQL_EDGE_INSERT, err);
        if (rc < 0)
            return rc;
        if (!(s = sqlite_conn_stmt(c, SQL_DEPENDANTS_ADD, err)))
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, p->edges[i]);
        if ((rc = sqlite_conn_step_done(c, s, SQL_DEPENDANTS_ADD, err)) < 0)
            return rc;
    }
    return 0;
}

/* The runs waiting for upstream (their edges are taken: deleted); *ids (mem_free), *n. */
static int take_edges(struct sqlite_conn *c, const char *upstream, char (**ids)[UUID_STR_LEN],
                      size_t *n, errand_error *err)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_EDGES_OF, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, upstream);
    int step, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t grown = cap ? cap * 2 : 8;
            void *p = mem_realloc(*ids, grown * sizeof **ids);
            if (!p) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            *ids = p;
            cap = grown;
        }
        run_copy_fixed((*ids)[(*n)++], UUID_STR_LEN, sqlite_col_text(s, 0));
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, "SQL_EDGES_OF", err);
    sqlite3_reset(s);
    if (rc == 0) {
        if (!(s = sqlite_conn_stmt(c, SQL_EDGES_DELETE, err)))
            rc = ERRAND_ESTORE;
        else {
            sqlite_bind_text(s, 1, upstream);
            rc = sqlite_conn_step_done(c, s, SQL_EDGES_DELETE, err);
        }
    }
    if (rc < 0) {
        mem_free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* A dependant's own dependency columns (strings owned). */
struct downstream {
    char *parameters;
    char *result_refs;
    int pending;
    bool allow;
};

static int downstream_read(struct sqlite_conn *c, const char *id, struct downstream *d,
                           errand_error *err)
{
    memset(d, 0, sizeof *d);
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_DEPS_DOWNSTREAM, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, id);
    int step = sqlite3_step(s), rc = 0;
    if (step == SQLITE_ROW) {
        d->pending = sqlite3_column_int(s, 2);
        d->allow = sqlite3_column_int(s, 3) != 0;
        if ((rc = dup_col(s, 0, &d->parameters, err)) == 0)
            rc = dup_col(s, 1, &d->result_refs, err);
    } else if (step != SQLITE_DONE) {
        rc = sqlite_conn_fail(c, "SQL_DEPS_DOWNSTREAM", err);
    }
    sqlite3_reset(s);
    return rc;
}

static void downstream_clear(struct downstream *d)
{
    mem_free(d->parameters);
    mem_free(d->result_refs);
    memset(d, 0, sizeof *d);
}

/* Puts a run whose last upstream completed into the ready queue (or the delayed set). */
static int release(struct sqlite_conn *c, const struct run_current *cur, const char *parameters,
                   struct run_count_delta *counts, int64_t now_ms, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_DEPS_RELEASE, err);
    if (!s)
        return ERRAND_ESTORE;
    int seq = cur->n_states + 1;
    sqlite3_bind_int64(s, 1, cur->rowid);
    sqlite_bind_text(s, 3, parameters);
    sqlite3_bind_int64(s, 4, now_ms);
    sqlite_bind_text(s, 5, STATE_NAME_SCHEDULED);
    sqlite3_bind_int(s, 6, seq);
    int rc = sqlite_conn_step_done(c, s, SQL_DEPS_RELEASE, err);
    if (rc < 0 || (rc = sqlite_state_append(c, cur->id, cur->task, seq, ERRAND_STATE_SCHEDULED,
                                            STATE_NAME_SCHEDULED, now_ms, "", err)) < 0)
        return rc;
    if (run_is_delayed(ERRAND_STATE_SCHEDULED, cur->scheduled_at, now_ms))
        return 0; /* stays counted as delayed; the sweeper promotes it when due */
    run_wakeups_task(&c->wakeups, cur->task);
    return run_count_delayed(c, counts, cur->task, -1, now_ms, err);
}

/* Ends a dependant: CANCELLED/"UpstreamFailed" or FAILED, through the one transition path
 * (history, counters, its own dependants queued). */
static int end_dependant(struct sqlite_conn *c, const struct run_current *cur,
                         const struct run_deps_step *step, struct run_count_delta *counts,
                         int64_t now_ms, errand_error *err)
{
    bool cancel = step->outcome == RUN_DEPS_CANCEL;
    struct state_decision d = {
        .allowed = true,
        .next = cancel ? ERRAND_STATE_CANCELLED : ERRAND_STATE_FAILED,
        .name = cancel ? RUN_DEPS_NAME_UPSTREAM_FAILED : state_default_name(ERRAND_STATE_FAILED),
    };
    struct run_update u;
    run_transition_plan(cur, &d, now_ms, &u);
    u.message = step->message;
    run_wakeups_run(&c->wakeups, cur->id);
    return sqlite_transition_write(c, cur, &u, now_ms, counts, err);
}

static int settle_one(struct sqlite_conn *c, const char *upstream_id, const struct upstream *up,
                      const char *id, struct run_count_delta *counts, int64_t now_ms,
                      errand_error *err)
{
    struct run_current cur;
    int rc = sqlite_run_current_get(c, id, false, &cur, err);
    if (rc == ERRAND_ENOTFOUND)
        return 0; /* cancelled and deleted while it waited */
    if (rc < 0 || cur.state != ERRAND_STATE_SCHEDULED)
        return rc;
    struct downstream d;
    if ((rc = downstream_read(c, id, &d, err)) < 0 || d.pending <= 0) {
        downstream_clear(&d);
        return rc;
    }
    struct run_deps_step step;
    rc = run_deps_upstream_ended(d.parameters, d.result_refs, d.allow, d.pending, upstream_id,
                                 up->state, up->result, up->result_ref, &step, err);
    if (rc == 0) {
        switch (step.outcome) {
        case RUN_DEPS_WAIT: {
            sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_DEPS_WAIT, err);
            if (!s) {
                rc = ERRAND_ESTORE;
                break;
            }
            sqlite3_bind_int64(s, 1, cur.rowid);
            sqlite3_bind_int(s, 2, step.pending);
            sqlite_bind_text(s, 3, step.parameters);
            sqlite_bind_text(s, 4, step.message);
            rc = sqlite_conn_step_done(c, s, SQL_DEPS_WAIT, err);
            break;
        }
        case RUN_DEPS_RELEASE:
            rc = release(c, &cur, step.parameters, counts, now_ms, err);
            break;
        case RUN_DEPS_CANCEL:
        case RUN_DEPS_FAIL:
            rc = end_dependant(c, &cur, &step, counts, now_ms, err);
            break;
        }
    }
    mem_free(step.parameters);
    downstream_clear(&d);
    return rc;
}

/* Settles every run waiting for upstream id. */
static int settle(struct sqlite_conn *c, const char *id, struct run_count_delta *counts,
                  int64_t now_ms, errand_error *err)
{
    struct upstream up;
    bool found = false;
    int rc = upstream_read(c, id, &up, &found, err);
    if (rc < 0 || !found)
        return rc;
    char(*ids)[UUID_STR_LEN] = NULL;
    size_t n = 0;
    rc = take_edges(c, id, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = settle_one(c, id, &up, ids[i], counts, now_ms, err);
    mem_free(ids);
    upstream_clear(&up);
    return rc;
}

static int queue_ended(struct sqlite_conn *c, const char *id, errand_error *err)
{
    if (c->ended.n == c->ended.cap) {
        size_t grown = c->ended.cap ? c->ended.cap * 2 : 16;
        void *p = mem_realloc(c->ended.ids, grown * sizeof *c->ended.ids);
        if (!p)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        c->ended.ids = p;
        c->ended.cap = grown;
    }
    run_copy_fixed(c->ended.ids[c->ended.n++], UUID_STR_LEN, id);
    return 0;
}

int sqlite_deps_run_ended(struct sqlite_conn *c, const char *id, struct run_count_delta *counts,
                          int64_t now_ms, errand_error *err)
{
    int rc = queue_ended(c, id, err);
    if (rc < 0 || c->ended.busy)
        return rc; /* the outermost call settles it */
    c->ended.busy = true;
    /* Oldest first, so a chain's failure is told down the chain in order. */
    for (size_t i = 0; rc == 0 && i < c->ended.n; i++) {
        char upstream[UUID_STR_LEN];
        memcpy(upstream, c->ended.ids[i], sizeof upstream); /* settling may grow the queue */
        rc = settle(c, upstream, counts, now_ms, err);
    }
    c->ended.n = 0;
    c->ended.busy = false;
    return rc;
}
