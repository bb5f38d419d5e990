/* SPDX-License-Identifier: MIT */
/*
 * pg_deps.c — dependencies between runs in the PostgreSQL store (pg_deps.h). The model is
 * store/run_deps.h's; the SQLite store does the same in sqlite_deps.c.
 *
 * When: a run's final state is queued in a batch of transitions and written later
 * (pg_transition.c), so pg_transition_queue only notes an ending run that has dependants
 * (c->ended); store_pg_commit settles the noted runs once the op's batches are written,
 * before COMMIT, in the same transaction — whatever ended them: a report, a cancel, an
 * expired lease. Settling is a walk, not a recursion: a dependant that an upstream's
 * failure ends goes through pg_transition_queue like any end (history, counters, failure
 * group, feed, NOTIFY) and, if it has dependants of its own, is noted in turn and settled by
 * the same loop (a chain of a thousand runs).
 *
 * Several servers share one database, so two races need closing with row locks:
 *
 *  (a) Two upstream runs of one dependant end at once, on two servers. Each settles the
 *      dependant by reading upstream_pending and writing it back one lower; read without a
 *      lock, both would read 2 and write 1, and the run would wait for ever. So a settle
 *      reads its dependants FOR UPDATE: the second waits for the first's commit and then
 *      reads (READ COMMITTED) the row as the first left it. The dependants of one upstream
 *      are locked in one statement in id order, so two settles that share dependants take
 *      them in the same order; what remains (dependants of different upstreams, locked by a
 *      cascade) may deadlock in rare shapes, which PostgreSQL detects and the transaction
 *      is run again (store_pg_write).
 *
 *  (b) A run is submitted with wait_for naming a run that is ending at that moment on
 *      another server. The submit reads the upstream's state; if it is not final, it adds an
 *      edge and counts the upstream's dependants one up. The upstream's final transaction
 *      locks the run FOR UPDATE before reading it (every final transition path does: the
 *      report, the cancel, the heartbeat, the sweep), and settles only when it reads
 *      dependants > 0. Read without a lock, the submit could see the upstream not final
 *      while the ending transaction read dependants = 0 before the submit committed: no one
 *      would ever release the new run. So the submit locks its upstream runs while reading
 *      them (pg_deps_plan, in id order), and holds the locks to its commit. Either the
 *      submit locks first, and the ending transaction's FOR UPDATE waits for the submit's
 *      commit and then reads the row with dependants counted (and finds the committed edge);
 *      or the ending transaction locks first, and the submit waits for its commit and reads
 *      the upstream final, applying its end at once.
 *      The lock is FOR NO KEY UPDATE rather than FOR SHARE: the submit goes on to update the
 *      row (dependants + 1), and two submits that both held FOR SHARE on one upstream would
 *      each wait for the other to upgrade — a deadlock for every concurrent fan-out. FOR NO
 *      KEY UPDATE makes them queue instead; it conflicts with FOR UPDATE as FOR SHARE does,
 *      and not with the FOR KEY SHARE a cache lookup takes.
 *
 * Lock order: a final transition holds its run (an upstream) and then locks its dependants;
 * a submit locks upstream runs only. Edges always run from an earlier run to a later one, so
 * these orders agree but for the rare cycle of waits that (a) leaves to deadlock detection.
 */
#include "store/postgres/pg_deps.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "store/postgres/store_pg.h"

/* The row of r (id in column 0) for id, or -1. */
static int row_of(const PGresult *r, const char *id)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(pg_get_text(r, i, 0), id) == 0)
            return i;
    return -1;
}

/* Locks and reads the plan's upstream runs (race (b) at the top). */
static PGresult *lock_upstream(struct pg_conn *c, const struct run_deps_plan *plan,
                               errand_error *err)
{
    static const char sql[] =
        "SELECT id, state_type, result, result_ref FROM task_runs WHERE id = ANY($1::text[]) "
        "ORDER BY id COLLATE \"C\" FOR NO KEY UPDATE";
    struct pg_array ids = {0};
    for (size_t i = 0; i < plan->n_upstream; i++)
        pg_array_text(&ids, plan->upstream_ids[i]);
    PGresult *r = NULL;
    if (pg_array_check(&ids, err) == 0) {
        struct pg_params p = {0};
        pg_p_array(&p, &ids);
        r = pg_query(c, sql, &p, "locking the upstream runs", err);
    }
    pg_array_free(&ids);
    return r;
}

int pg_deps_plan(struct pg_conn *c, const struct run_spec *spec, const char *const *ids,
                 size_t n_ids, struct run_deps_plan *out, errand_error *err)
{
    int rc = run_deps_plan_begin(spec, ids, n_ids, out, err);
    if (rc < 0)
        return rc;
    size_t n = out->n_upstream;
    struct run_deps_upstream *ups = mem_calloc(n ? n : 1, sizeof *ups);
    PGresult *r = NULL;
    if (!ups)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    else if (!(r = lock_upstream(c, out, err)))
        rc = ERRAND_ESTORE;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int row = row_of(r, out->upstream_ids[i]);
        if ((ups[i].found = row >= 0)) {
            ups[i].state = (errand_state)pg_get_int(r, row, 1);
            ups[i].result = pg_get_text(r, row, 2);
            ups[i].result_ref = pg_get_text(r, row, 3);
        }
    }
    if (rc == 0)
        rc = run_deps_plan_apply(spec, ups, out, err);
    PQclear(r);
    mem_free(ups);
    if (rc < 0)
        run_deps_plan_clear(out);
    return rc;
}

int pg_deps_register(struct pg_conn *c, const char *id, const struct run_deps_plan *p,
                     errand_error *err)
{
    static const char sql_edges[] = "INSERT INTO task_run_edges (upstream, downstream) "
                                    "SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING";
    static const char sql_count[] =
        "UPDATE task_runs SET dependants = dependants + 1 WHERE id = ANY($1::text[])";
    if (p->pending <= 0)
        return 0;
    struct pg_array edges = {0};
    for (int i = 0; i < p->pending; i++)
        pg_array_text(&edges, p->edges[i]);
    int rc = pg_array_check(&edges, err);
    struct pg_params q = {0};
    pg_p_array(&q, &edges);
    pg_p_text(&q, id);
    if (rc == 0)
        rc = pg_command(c, sql_edges, &q, "recording a run's upstream runs", NULL, err);
    struct pg_params u = {0};
    pg_p_array(&u, &edges);
    if (rc == 0)
        rc = pg_command(c, sql_count, &u, "counting dependants", NULL, err);
    pg_array_free(&edges);
    return rc;
}

int pg_deps_ended(struct pg_conn *c, const char *id, int64_t now_ms, errand_error *err)
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
    if (now_ms > c->ended.at_ms)
        c->ended.at_ms = now_ms;
    return 0;
}

/* --- settling ------------------------------------------------------------------------- */

/* What settling one upstream's dependants needs besides the connection. */
struct settle {
    struct pg_transitions *batch; /* the dependants it ends */
    struct run_count_delta counts;
    int64_t now_ms;
};

/* The columns read of a dependant: PG_LEASE_COLUMNS, then these. */
enum {
    DC_PARAMETERS = PG_LEASE_COLUMN_COUNT,
    DC_RESULT_REFS,
    DC_PENDING,
    DC_ALLOW,
};

/* An upstream run as its dependants see it (strings owned by r). */
struct upstream {
    const char *id;
    errand_state state;
    const char *result;
    const char *result_ref;
};

static int still_waiting(struct pg_conn *c, const char *id, const struct run_deps_step *step,
                         errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET upstream_pending = $2, parameters = coalesce($3, parameters), "
        "state_message = $4 WHERE id = $1";
    struct pg_params p = {0};
    pg_p_text(&p, id);
    pg_p_int(&p, step->pending);
    pg_p_text(&p, step->parameters);
    pg_p_text(&p, step->message);
    return pg_command(c, sql, &p, "counting a run's upstream runs down", NULL, err);
}

/* Puts a run whose last upstream completed into the ready queue (or the delayed set), and
 * wakes the claims of its task, here and on the other servers. */
static int release(struct pg_conn *c, struct settle *st, const struct run_current *cur,
                   const char *parameters, errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET upstream_pending = 0, parameters = coalesce($2, parameters), "
        "state_name = $3, state_message = '', state_timestamp = $4, n_states = $5, "
        "delayed = (scheduled_at > $4) WHERE id = $1";
    int seq = cur->n_states + 1;
    struct pg_params p = {0};
    pg_p_text(&p, cur->id);
    pg_p_text(&p, parameters);
    pg_p_text(&p, STATE_NAME_SCHEDULED);
    pg_p_i64(&p, st->now_ms);
    pg_p_int(&p, seq);
    int rc = pg_command(c, sql, &p, "releasing a run", NULL, err);
    if (rc < 0 || (rc = pg_state_append(c, cur->id, cur->task, seq, ERRAND_STATE_SCHEDULED,
                                        STATE_NAME_SCHEDULED, st->now_ms, "", err)) < 0)
        return rc;
    if (run_is_delayed(ERRAND_STATE_SCHEDULED, cur->scheduled_at, st->now_ms))
        return 0; /* stays counted as delayed; a claim or the sweeper promotes it when due */
    run_wakeups_task(&c->wakeups, cur->task);
    pg_signal_due(c, cur->task);
    return pg_count_delayed(c, &st->counts, cur->task, -1, st->now_ms, err);
}

/* Ends a dependant: CANCELLED/"UpstreamFailed" or FAILED, through the one transition path
 * (history, counters, failure group, NOTIFY; noted in turn when it has dependants). */
static int end_dependant(struct pg_conn *c, struct settle *st, const struct run_current *cur,
                         const struct run_deps_step *step, errand_error *err)
{
    bool cancel = step->outcome == RUN_DEPS_CANCEL;
    struct state_decision d = {
        .allowed = true,
        .next = cancel ? ERRAND_STATE_CANCELLED : ERRAND_STATE_FAILED,
        .name = cancel ? RUN_DEPS_NAME_UPSTREAM_FAILED : state_default_name(ERRAND_STATE_FAILED),
    };
    struct run_update u;
    run_transition_plan(cur, &d, st->now_ms, &u);
    u.message = step->message;
    run_wakeups_run(&c->wakeups, cur->id);
    return pg_transition_queue(c, st->batch, cur, &u, st->now_ms, &st->counts, err);
}

/* Settles dependant `row` of r (locked) for the end of up. */
static int settle_one(struct pg_conn *c, struct settle *st, const struct upstream *up,
                      const PGresult *r, int row, errand_error *err)
{
    struct run_current cur;
    int rc = pg_run_current_read(r, row, &cur, false, err);
    int pending = pg_get_int(r, row, DC_PENDING);
    if (rc < 0 || cur.state != ERRAND_STATE_SCHEDULED || pending <= 0)
        return rc; /* cancelled while it waited */
    struct run_deps_step step;
    rc =
        run_deps_upstream_ended(pg_get_text(r, row, DC_PARAMETERS),
                                pg_get_text(r, row, DC_RESULT_REFS), pg_get_bool(r, row, DC_ALLOW),
                                pending, up->id, up->state, up->result, up->result_ref, &step, err);
    if (rc < 0)
        return rc;
    switch (step.outcome) {
    case RUN_DEPS_WAIT:
        rc = still_waiting(c, cur.id, &step, err);
        break;
    case RUN_DEPS_RELEASE:
        rc = release(c, st, &cur, step.parameters, err);
        break;
    case RUN_DEPS_CANCEL:
    case RUN_DEPS_FAIL:
        rc = end_dependant(c, st, &cur, &step, err);
        break;
    }
    mem_free(step.parameters);
    return rc;
}

/* Takes the edges from upstream id (deleted) and locks the runs at their other end, in id
 * order (race (a) at the top); *out NULL when there are none. */
static int lock_dependants(struct pg_conn *c, const char *id, PGresult **out, errand_error *err)
{
    static const char sql[] =
        "WITH e AS (DELETE FROM task_run_edges WHERE upstream = $1 RETURNING downstream) "
        "SELECT " PG_LEASE_COLUMNS ", parameters, result_refs, upstream_pending, "
        "allow_upstream_failure FROM task_runs WHERE id IN (SELECT downstream FROM e) "
        "ORDER BY id COLLATE \"C\" FOR UPDATE";
    struct pg_params p = {0};
    pg_p_text(&p, id);
    *out = pg_query(c, sql, &p, "locking the runs waiting for one that ended", err);
    return *out ? 0 : ERRAND_ESTORE;
}

/* Settles every run waiting for upstream id. */
static int settle(struct pg_conn *c, struct settle *st, const char *id, errand_error *err)
{
    static const char sql[] = "SELECT state_type, result, result_ref FROM task_runs WHERE id = $1";
    struct pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *ur = pg_query(c, sql, &p, "reading a run that ended", err);
    if (!ur)
        return ERRAND_ESTORE;
    PGresult *dr = NULL;
    int rc = PQntuples(ur) == 1 ? lock_dependants(c, id, &dr, err) : 0;
    if (dr) {
        struct upstream up = {id, (errand_state)pg_get_int(ur, 0, 0), pg_get_text(ur, 0, 1),
                              pg_get_text(ur, 0, 2)};
        for (int i = 0; rc == 0 && i < PQntuples(dr); i++)
            rc = settle_one(c, st, &up, dr, i, err);
        if (rc == 0) /* before the next upstream reads these runs again */
            rc = pg_transitions_flush(c, st->batch, err);
    }
    PQclear(dr);
    PQclear(ur);
    return rc;
}

int pg_deps_settle(struct pg_conn *c, errand_error *err)
{
    if (c->ended.n == 0)
        return 0;
    struct settle st = {.batch = pg_transitions_new(), .now_ms = c->ended.at_ms};
    if (!st.batch)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = 0;
    /* Oldest first, so a chain's failure is told down the chain in order; settling may grow
       the list (and move it). */
    for (size_t i = 0; rc == 0 && i < c->ended.n; i++) {
        char id[UUID_STR_LEN];
        memcpy(id, c->ended.ids[i], sizeof id);
        rc = settle(c, &st, id, err);
    }
    pg_transitions_free(st.batch);
    c->ended.n = 0;
    c->ended.at_ms = 0;
    return rc < 0 ? rc : pg_counts_apply(c, &st.counts, st.now_ms, err);
}
