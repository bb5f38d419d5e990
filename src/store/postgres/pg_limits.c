/* SPDX-License-Identifier: MIT */
/*
 * pg_limits.c — concurrency and rate limits in the PostgreSQL store (pg_limits.h). The tables
 * are SQLite's (pg_schema.c): limits, one row per task or tag limit (and a task's rate), and
 * limit_holders, one row per (limit, run) holding a slot; a limit's held slots are a count of
 * its rows; task_runs.holds_slots says whether a run has rows to delete (1) or lent its slots
 * while it waits for subtasks (2).
 *
 * What differs from SQLite is that several servers claim at once, each in its own READ
 * COMMITTED transaction, so counting a limit's holders and adding to them must not
 * interleave between two claims (both would see one free slot and both take it). So a claim
 * that meets limits locks their rows FOR UPDATE before it counts: two claims under one limit
 * then run their count-and-admit one after the other, and the second, its lock granted once
 * the first committed, counts in a statement of its own, whose snapshot holds the first
 * one's holders. A count read after the row is locked can be raised by nobody else until the
 * claim commits: only claims add holders, and they wait for the lock. Releases (a lease
 * ending, a run lending its slots) only delete holders, without the lock, which can only
 * leave a claim more cautious than it had to be; they wake the claims on every server.
 *
 * Deadlocks: a claim locks the task limits of the tasks it asks for first (pg_limits_begin),
 * then the tag limits of its candidates' tags (pg_limits_lock_tags), each set in one
 * statement sorted by name, so every claim takes limit rows in one global order (kind, name)
 * and no two wait for each other in a circle. While it waits it holds its candidate runs
 * (taken FOR UPDATE SKIP LOCKED): other claims skip those rather than wait, and nothing that
 * locks a ready run (a cancel, a resumed lease) waits for a limit row.
 *
 * A rate limit's rate_next_at is read and moved on under the same row lock, so two servers
 * never start the same interval's run twice.
 *
 * A run that resumes after waiting for its subtasks takes its slots back without the lock and
 * whatever the counts (as in SQLite, it runs on regardless): a claim that counted just before
 * is the same as that claim coming first, and then the resume, in SQLite.
 */
#include "store/postgres/pg_limits.h"

#include <jansson.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

/* holds_slots: 0 none, 1 held, 2 given back while the run waits for subtasks. */
#define SLOTS_HELD 1
#define SLOTS_LENT 2

enum { HOLD_KIND, HOLD_NAME, HOLD_RUN };

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* The claim's record of limit (kind, name); added (not loaded) when add, else NULL. */
static struct pg_limit_slot *find(struct pg_claim_limits *l, enum limit_kind kind, const char *name,
                                  bool add)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->slots[i].kind == kind && strcmp(l->slots[i].name, name) == 0)
            return &l->slots[i];
    if (!add)
        return NULL;
    if (l->n == l->cap) {
        size_t grown = l->cap ? 2 * l->cap : 16;
        void *p = mem_realloc(l->slots, grown * sizeof *l->slots);
        if (!p) {
            l->oom = true;
            return NULL;
        }
        l->slots = p;
        l->cap = grown;
    }
    struct pg_limit_slot *s = &l->slots[l->n];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    if (!run_copy_fixed(s->name, sizeof s->name, name))
        return NULL; /* too long to be limited */
    l->n++;
    return s;
}

static int check(const struct pg_claim_limits *l, errand_error *err)
{
    return l->oom ? oom(err) : 0;
}

static int read_kinds(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err)
{
    static const char sql[] =
        "SELECT EXISTS (SELECT 1 FROM limits WHERE kind = 0 AND max_running IS NOT NULL), "
        "EXISTS (SELECT 1 FROM limits WHERE kind = 1 AND max_running IS NOT NULL), "
        "EXISTS (SELECT 1 FROM limits WHERE kind = 0 AND rate_max IS NOT NULL)";
    PGresult *r = pg_query(c, sql, NULL, "looking for limits", err);
    if (!r)
        return ERRAND_ESTORE;
    if (PQntuples(r) == 1) {
        l->tasks_limited = pg_get_bool(r, 0, 0);
        l->tags_limited = pg_get_bool(r, 0, 1);
        l->rates = pg_get_bool(r, 0, 2);
    }
    PQclear(r);
    return 0;
}

/* Counts the holders of the limits of kind in names (locked by the caller), into their slots.
 * A statement of its own: its snapshot comes after the locks were granted. */
static int count_holders(struct pg_conn *c, struct pg_claim_limits *l, enum limit_kind kind,
                         const struct pg_array *names, errand_error *err)
{
    static const char sql[] = "SELECT name, count(*) FROM limit_holders "
                              "WHERE kind = $1 AND name = ANY($2::text[]) GROUP BY name";
    if (names->n == 0)
        return 0;
    struct pg_params p = {0};
    pg_p_int(&p, (int)kind);
    pg_p_array(&p, names);
    PGresult *r = pg_query(c, sql, &p, "counting limits' holders", err);
    if (!r)
        return ERRAND_ESTORE;
    for (int i = 0; i < PQntuples(r); i++) {
        struct pg_limit_slot *s = find(l, kind, pg_get_text(r, i, 0), false);
        if (s)
            s->held = pg_get_i64(r, i, 1);
    }
    PQclear(r);
    return 0;
}

int pg_limits_begin(struct pg_conn *c, struct pg_claim_limits *l, const char *const *tasks,
                    size_t n_tasks, int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "SELECT name, coalesce(max_running, 0), coalesce(rate_interval_ms, 0), rate_next_at "
        "FROM limits WHERE kind = 0 AND name = ANY($1::text[]) "
        "ORDER BY name COLLATE \"C\" FOR UPDATE";
    memset(l, 0, sizeof *l);
    l->now_ms = now_ms;
    int rc = read_kinds(c, l, err);
    if (rc < 0 || !(l->tasks_limited || l->rates))
        return rc;
    struct pg_array names = {0}, limited = {0};
    for (size_t t = 0; t < n_tasks; t++) {
        struct pg_limit_slot *s = find(l, LIMIT_TASK, tasks[t], true);
        if (s && !s->loaded) {
            s->loaded = true;
            pg_array_text(&names, s->name);
        }
    }
    if ((rc = check(l, err)) < 0 || (rc = pg_array_check(&names, err)) < 0)
        goto done;
    struct pg_params p = {0};
    pg_p_array(&p, &names);
    PGresult *r = pg_query(c, sql, &p, "locking task limits", err);
    if (!r) {
        rc = ERRAND_ESTORE;
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct pg_limit_slot *s = find(l, LIMIT_TASK, pg_get_text(r, i, 0), false);
        if (!s)
            continue;
        s->max = pg_get_int(r, i, 1);
        s->interval_ms = pg_get_double(r, i, 2);
        s->rated = s->interval_ms > 0;
        s->next_at = s->next_at_locked = pg_get_double(r, i, 3);
        if (s->max > 0)
            pg_array_text(&limited, s->name);
    }
    PQclear(r);
    if ((rc = pg_array_check(&limited, err)) == 0)
        rc = count_holders(c, l, LIMIT_TASK, &limited, err);
done:
    pg_array_free(&names);
    pg_array_free(&limited);
    return rc;
}

void pg_limits_end(struct pg_claim_limits *l)
{
    mem_free(l->slots);
    for (int i = 0; i < 3; i++)
        pg_array_free(&l->hold[i]);
    pg_array_free(&l->holding);
    memset(l, 0, sizeof *l);
}

bool pg_limits_any(const struct pg_claim_limits *l)
{
    return l->tasks_limited || l->tags_limited || l->rates;
}

/* Whether the rate limit lets a run start now; notes when it will if not. */
static bool rate_open(struct pg_claim_limits *l, const struct pg_limit_slot *s)
{
    if (!l->rates || !s->rated || s->next_at <= (double)l->now_ms)
        return true;
    int64_t at = (int64_t)s->next_at + 1;
    if (l->held_until_ms == 0 || at < l->held_until_ms)
        l->held_until_ms = at;
    return false;
}

bool pg_limits_task_full(struct pg_claim_limits *l, const char *task)
{
    struct pg_limit_slot *s = find(l, LIMIT_TASK, task, false);
    if (!s)
        return false;
    if (!rate_open(l, s))
        return true;
    return l->tasks_limited && s->max > 0 && s->held >= s->max;
}

void pg_limits_meet_tags(struct pg_claim_limits *l, const char *tags)
{
    if (!l->tags_limited || !tags || strcmp(tags, "[]") == 0)
        return;
    json_t *arr = json_loads(tags, 0, NULL);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *tag = json_string_value(json_array_get(arr, i));
        if (tag)
            find(l, LIMIT_TAG, tag, true);
    }
    json_decref(arr);
}

int pg_limits_lock_tags(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err)
{
    static const char sql[] =
        "SELECT name, max_running FROM limits WHERE kind = 1 AND name = ANY($1::text[]) "
        "AND max_running IS NOT NULL ORDER BY name COLLATE \"C\" FOR UPDATE";
    struct pg_array names = {0}, limited = {0};
    for (size_t i = 0; i < l->n; i++)
        if (l->slots[i].kind == LIMIT_TAG && !l->slots[i].loaded) {
            l->slots[i].loaded = true;
            pg_array_text(&names, l->slots[i].name);
        }
    int rc = check(l, err);
    if (rc < 0 || names.n == 0 || (rc = pg_array_check(&names, err)) < 0)
        goto done;
    struct pg_params p = {0};
    pg_p_array(&p, &names);
    PGresult *r = pg_query(c, sql, &p, "locking tag limits", err);
    if (!r) {
        rc = ERRAND_ESTORE;
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct pg_limit_slot *s = find(l, LIMIT_TAG, pg_get_text(r, i, 0), false);
        if (s && (s->max = pg_get_int(r, i, 1)) > 0)
            pg_array_text(&limited, s->name);
    }
    PQclear(r);
    if ((rc = pg_array_check(&limited, err)) == 0)
        rc = count_holders(c, l, LIMIT_TAG, &limited, err);
done:
    pg_array_free(&names);
    pg_array_free(&limited);
    return rc;
}

/* Calls fn for each concurrency limit a run of task with tags falls under; stops at fn's
 * non-zero. Only limits loaded (locked) count. */
static void each_limit(struct pg_claim_limits *l, const char *task, const char *tags,
                       int (*fn)(struct pg_limit_slot *, void *), void *arg)
{
    struct pg_limit_slot *s;
    if (l->tasks_limited && (s = find(l, LIMIT_TASK, task, false)) && s->max > 0 && fn(s, arg))
        return;
    if (!l->tags_limited || !tags || strcmp(tags, "[]") == 0)
        return;
    json_t *arr = json_loads(tags, 0, NULL);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *tag = json_string_value(json_array_get(arr, i));
        if (tag && (s = find(l, LIMIT_TAG, tag, false)) && s->loaded && s->max > 0 && fn(s, arg))
            break;
    }
    json_decref(arr);
}

static int is_full(struct pg_limit_slot *s, void *arg)
{
    bool *full = arg;
    *full = s->held >= s->max;
    return *full;
}

static int take(struct pg_limit_slot *s, void *arg)
{
    (void)arg;
    s->held++;
    return 0;
}

bool pg_limits_admit(struct pg_claim_limits *l, const char *task, const char *tags)
{
    bool full = false;
    each_limit(l, task, tags, is_full, &full);
    struct pg_limit_slot *rate = l->rates ? find(l, LIMIT_TASK, task, false) : NULL;
    if (full || (rate && !rate_open(l, rate)))
        return false;
    each_limit(l, task, tags, take, NULL);
    if (rate && rate->rated) { /* the next start one interval on */
        double from = rate->next_at > (double)l->now_ms ? rate->next_at : (double)l->now_ms;
        rate->next_at = from + rate->interval_ms;
        rate_open(l, rate); /* notes when the next may go */
    }
    return true;
}

struct hold {
    struct pg_claim_limits *l;
    const char *run_id;
    bool any;
};

static int record(struct pg_limit_slot *s, void *arg)
{
    struct hold *h = arg;
    pg_array_i64(&h->l->hold[HOLD_KIND], (int)s->kind);
    pg_array_text(&h->l->hold[HOLD_NAME], s->name);
    pg_array_text(&h->l->hold[HOLD_RUN], h->run_id);
    h->any = true;
    return 0;
}

void pg_limits_hold(struct pg_claim_limits *l, const char *run_id, const char *task,
                    const char *tags)
{
    struct hold h = {l, run_id, false};
    each_limit(l, task, tags, record, &h);
    if (h.any)
        pg_array_text(&l->holding, run_id);
    struct pg_limit_slot *rate = l->rates ? find(l, LIMIT_TASK, task, false) : NULL;
    if (rate && rate->rated)
        rate->started++;
}

/* Moves on the rate limits under which this claim started runs. */
static int write_rates(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err)
{
    static const char sql[] =
        "UPDATE limits SET rate_next_at = u.at FROM unnest($1::text[], $2::double precision[]) "
        "AS u(name, at) WHERE limits.kind = 0 AND limits.name = u.name";
    struct pg_array names = {0}, at = {0};
    for (size_t i = 0; i < l->n; i++) {
        const struct pg_limit_slot *s = &l->slots[i];
        if (s->kind != LIMIT_TASK || !s->rated || s->started == 0)
            continue;
        double from = s->next_at_locked > (double)l->now_ms ? s->next_at_locked : (double)l->now_ms;
        pg_array_text(&names, s->name);
        pg_array_double(&at, from + s->interval_ms * s->started);
    }
    int rc = pg_array_check(&names, err);
    if (rc == 0)
        rc = pg_array_check(&at, err);
    if (rc == 0 && names.n > 0) {
        struct pg_params p = {0};
        pg_p_array(&p, &names);
        pg_p_array(&p, &at);
        rc = pg_command(c, sql, &p, "moving rate limits on", NULL, err);
    }
    pg_array_free(&names);
    pg_array_free(&at);
    return rc;
}

int pg_limits_write(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err)
{
    static const char sql[] =
        "WITH held AS (INSERT INTO limit_holders (kind, name, run_id, since) "
        "SELECT u.kind, u.name, u.run_id, $4::bigint FROM unnest($1::integer[], $2::text[], "
        "$3::text[]) AS u(kind, name, run_id) ON CONFLICT DO NOTHING) "
        "UPDATE task_runs SET holds_slots = 1 WHERE id = ANY($5::text[])";
    int rc = 0;
    if (l->holding.n > 0) {
        struct pg_params p = {0};
        for (int i = 0; i < 3; i++) {
            if (rc == 0)
                rc = pg_array_check(&l->hold[i], err);
            pg_p_array(&p, &l->hold[i]);
        }
        pg_p_i64(&p, l->now_ms);
        pg_p_array(&p, &l->holding);
        if (rc == 0 && (rc = pg_array_check(&l->holding, err)) == 0)
            rc = pg_command(c, sql, &p, "taking limits' slots", NULL, err);
    }
    return rc < 0 ? rc : write_rates(c, l, err);
}

/* --- releasing, lending and taking back ------------------------------------------------ */

/* Slots were freed: the claims waiting on this server and on every other one look again. */
static void freed(struct pg_conn *c)
{
    pg_signal_due(c, NULL); /* a tag's slot may be what runs of any task wait for */
    c->wake_here = true;
}

int pg_limits_release(struct pg_conn *c, struct pg_array *ids, errand_error *err)
{
    static const char sql[] =
        "WITH freed AS (DELETE FROM limit_holders WHERE run_id = ANY($1::text[])) "
        "UPDATE task_runs SET holds_slots = 0 WHERE id = ANY($1::text[])";
    if (ids->n == 0)
        return 0;
    int rc = pg_array_check(ids, err);
    struct pg_params p = {0};
    pg_p_array(&p, ids);
    if (rc == 0 && (rc = pg_command(c, sql, &p, "freeing limits' slots", NULL, err)) == 0)
        freed(c);
    return rc;
}

/* Runs (ids, tokens) that wait: their slots lent. */
static int lend(struct pg_conn *c, struct pg_array col[2], errand_error *err)
{
    static const char sql[] =
        "WITH lent AS (UPDATE task_runs SET holds_slots = 2 FROM unnest($1::text[], $2::text[]) "
        "AS u(id, token) WHERE task_runs.id = u.id AND task_runs.lease_token = u.token "
        "AND task_runs.holds_slots = 1 RETURNING task_runs.id), "
        "freed AS (DELETE FROM limit_holders WHERE run_id IN (SELECT id FROM lent)) "
        "SELECT count(*) FROM lent";
    struct pg_params p = {0};
    pg_p_array(&p, &col[0]);
    pg_p_array(&p, &col[1]);
    PGresult *r = pg_query(c, sql, &p, "lending limits' slots", err);
    if (!r)
        return ERRAND_ESTORE;
    if (PQntuples(r) == 1 && pg_get_i64(r, 0, 0) > 0)
        freed(c);
    PQclear(r);
    return 0;
}

/* Runs (ids, tokens) that resumed: the slots of the limits they fall under now, again. */
static int take_back(struct pg_conn *c, struct pg_array col[2], int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "WITH back AS (UPDATE task_runs SET holds_slots = 1 FROM unnest($1::text[], $2::text[]) "
        "AS u(id, token) WHERE task_runs.id = u.id AND task_runs.lease_token = u.token "
        "AND task_runs.holds_slots = 2 RETURNING task_runs.id, task_runs.task, task_runs.tags) "
        "INSERT INTO limit_holders (kind, name, run_id, since) "
        "SELECT l.kind, l.name, back.id, $3 FROM back, limits AS l "
        "WHERE l.max_running IS NOT NULL AND ((l.kind = 0 AND l.name = back.task) "
        "OR (l.kind = 1 AND back.tags::jsonb ? l.name)) ON CONFLICT DO NOTHING";
    struct pg_params p = {0};
    pg_p_array(&p, &col[0]);
    pg_p_array(&p, &col[1]);
    pg_p_i64(&p, now_ms);
    return pg_command(c, sql, &p, "taking limits' slots back", NULL, err);
}

int pg_limits_heartbeat(struct pg_conn *c, const struct lease_ref *leases,
                        const char (*ids)[UUID_STR_LEN], const struct lease_answer *answers,
                        size_t n, int64_t now_ms, errand_error *err)
{
    struct pg_array waits[2] = {{0}}, resumes[2] = {{0}};
    for (size_t i = 0; i < n; i++) {
        if (leases[i].waiting < 0 || answers[i].status != LEASE_APPLIED)
            continue;
        struct pg_array *col = leases[i].waiting ? waits : resumes;
        pg_array_text(&col[0], ids[i]);
        pg_array_text(&col[1], leases[i].lease_token);
    }
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++)
        if ((rc = pg_array_check(&waits[k], err)) == 0)
            rc = pg_array_check(&resumes[k], err);
    if (rc == 0 && waits[0].n > 0)
        rc = lend(c, waits, err);
    if (rc == 0 && resumes[0].n > 0)
        rc = take_back(c, resumes, now_ms, err);
    for (int k = 0; k < 2; k++) {
        pg_array_free(&waits[k]);
        pg_array_free(&resumes[k]);
    }
    return rc;
}

/* --- setting and listing ---------------------------------------------------------------- */

struct set_op {
    enum limit_kind kind;
    const char *name;
    bool rate; /* sets the rate limit, else the concurrency limit */
    int max;
    int64_t period_ms;
};

static int set_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql_limit[] =
        "INSERT INTO limits (kind, name, max_running) VALUES ($1, $2, nullif($3::integer, 0)) "
        "ON CONFLICT (kind, name) DO UPDATE SET max_running = excluded.max_running";
    static const char sql_rate[] =
        "INSERT INTO limits (kind, name, rate_max, rate_period_ms, rate_interval_ms) "
        "VALUES (0, $1, nullif($2::integer, 0), CASE WHEN $2::integer > 0 THEN $3::bigint END, "
        "CASE WHEN $2::integer > 0 THEN $3::bigint::double precision / $2::integer END) "
        "ON CONFLICT (kind, name) DO UPDATE SET rate_max = excluded.rate_max, "
        "rate_period_ms = excluded.rate_period_ms, rate_interval_ms = excluded.rate_interval_ms";
    static const char sql_forget[] = "DELETE FROM limit_holders WHERE kind = $1 AND name = $2";
    static const char sql_delete[] = "DELETE FROM limits WHERE kind = $1 AND name = $2 "
                                     "AND max_running IS NULL AND rate_max IS NULL";
    struct set_op *op = arg;
    struct pg_params p = {0};
    if (!op->rate)
        pg_p_int(&p, (int)op->kind);
    pg_p_text(&p, op->name);
    pg_p_int(&p, op->max);
    if (op->rate)
        pg_p_i64(&p, op->period_ms);
    int rc = pg_command(c, op->rate ? sql_rate : sql_limit, &p, "setting a limit", NULL, err);
    /* A raised or removed limit may let runs go that claims on any server wait for. */
    pg_signal_due(c, NULL);
    if (rc < 0 || op->max > 0)
        return rc;
    /* Removed: its slots are forgotten, and the row goes when it limits nothing. */
    struct pg_params key = {0};
    pg_p_int(&key, (int)op->kind);
    pg_p_text(&key, op->name);
    if (!op->rate && (rc = pg_command(c, sql_forget, &key, "removing a limit", NULL, err)) < 0)
        return rc;
    return pg_command(c, sql_delete, &key, "removing a limit", NULL, err);
}

int store_pg_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                       errand_error *err)
{
    struct set_op op = {.kind = kind, .name = name, .max = max_running};
    return store_pg_write(store_pg_of(st), set_in_tx, &op, err);
}

int store_pg_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                      errand_error *err)
{
    struct set_op op = {
        .kind = LIMIT_TASK, .name = task, .rate = true, .max = max_starts, .period_ms = period_ms};
    return store_pg_write(store_pg_of(st), set_in_tx, &op, err);
}

/* The runs holding r's slots, the oldest first, and how many there are (one statement: the
 * count is taken over all of them before the LIMIT). */
static int read_holders(struct pg_conn *c, struct limit_record *r, errand_error *err)
{
    static const char sql[] =
        "SELECT h.run_id, h.since, t.task, t.worker, count(*) OVER () FROM limit_holders AS h "
        "LEFT JOIN task_runs AS t ON t.id = h.run_id WHERE h.kind = $1 AND h.name = $2 "
        "ORDER BY h.since, h.run_id COLLATE \"C\" LIMIT $3";
    struct pg_params p = {0};
    pg_p_int(&p, (int)r->kind);
    pg_p_text(&p, r->name);
    pg_p_int(&p, STORE_LIMIT_HOLDERS_MAX);
    PGresult *res = pg_query(c, sql, &p, "listing limits' holders", err);
    if (!res)
        return ERRAND_ESTORE;
    int n = PQntuples(res), rc = 0;
    r->held = n > 0 ? pg_get_i64(res, 0, 4) : 0;
    if (n > 0 && !(r->holders = mem_calloc((size_t)n, sizeof *r->holders)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct limit_holder *h = &r->holders[r->n_holders++];
        run_copy_fixed(h->run_id, sizeof h->run_id, pg_get_text(res, i, 0));
        h->since = pg_get_i64(res, i, 1);
        const char *task = pg_get_text(res, i, 2), *worker = pg_get_text(res, i, 3);
        h->task = mem_strdup(task ? task : "");
        h->worker = worker ? mem_strdup(worker) : NULL;
        if (!h->task || (worker && !h->worker))
            rc = oom(err);
    }
    PQclear(res);
    return rc;
}

static int list_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] =
        "SELECT kind, name, coalesce(max_running, 0), coalesce(rate_max, 0), "
        "coalesce(rate_period_ms, 0) FROM limits ORDER BY kind, name COLLATE \"C\" LIMIT $1";
    struct limit_list *out = arg;
    limit_list_clear(out); /* a run again after a retryable failure starts afresh */
    struct pg_params p = {0};
    pg_p_int(&p, STORE_LIMITS_MAX);
    PGresult *r = pg_query(c, sql, &p, "listing limits", err);
    if (!r)
        return ERRAND_ESTORE;
    int n = PQntuples(r), rc = 0;
    if (n > 0 && !(out->items = mem_calloc((size_t)n, sizeof *out->items)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct limit_record *rec = &out->items[out->n++];
        rec->kind = (enum limit_kind)pg_get_int(r, i, 0);
        const char *name = pg_get_text(r, i, 1);
        rec->max_running = pg_get_int(r, i, 2);
        rec->rate_max = pg_get_int(r, i, 3);
        rec->rate_period_ms = pg_get_i64(r, i, 4);
        if (!(rec->name = mem_strdup(name ? name : "")))
            rc = oom(err);
    }
    PQclear(r);
    for (size_t i = 0; rc == 0 && i < out->n; i++)
        rc = read_holders(c, &out->items[i], err);
    return rc;
}

int store_pg_list_limits(store *st, struct limit_list *out, errand_error *err)
{
    int rc = store_pg_read(store_pg_of(st), list_in_tx, out, err);
    if (rc < 0)
        limit_list_clear(out);
    return rc;
}
