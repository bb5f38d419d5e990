/* SPDX-License-Identifier: MIT */
/*
 * sqlite_limits.c — concurrency limits in the SQLite store (sqlite_limits.h).
 */
#include "store/sqlite/sqlite_limits.h"

#include <jansson.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/sqlite_pool.h"
#include "store/sqlite/sqlite_writer.h"
#include "store/sqlite/store_sqlite.h"

static int any_of_kind(struct sqlite_conn *c, enum limit_kind kind, bool *out, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LIMITS_ANY, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int(s, 1, (int)kind);
    int step = sqlite3_step(s);
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_LIMITS_ANY", err);
    *out = step == SQLITE_ROW;
    return 0;
}

static int any_rate(struct sqlite_conn *c, bool *out, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RATES_ANY, err);
    if (!s)
        return ERRAND_ESTORE;
    int step = sqlite3_step(s);
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_RATES_ANY", err);
    *out = step == SQLITE_ROW;
    return 0;
}

int sqlite_limits_begin(struct sqlite_conn *c, struct claim_limits *l, int64_t now_ms,
                        errand_error *err)
{
    memset(l, 0, sizeof *l);
    l->now_ms = now_ms;
    int rc = any_of_kind(c, LIMIT_TASK, &l->tasks_limited, err);
    if (rc == 0)
        rc = any_of_kind(c, LIMIT_TAG, &l->tags_limited, err);
    return rc < 0 ? rc : any_rate(c, &l->rates, err);
}

void sqlite_limits_end(struct claim_limits *l)
{
    mem_free(l->slots);
    mem_free(l->rates_v);
    memset(l, 0, sizeof *l);
}

/* The claim's record of task's rate limit, loaded at first sight. */
static int find_rate(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                     struct rate_slot **out, errand_error *err)
{
    for (size_t i = 0; i < l->n_rates; i++)
        if (strcmp(l->rates_v[i].task, task) == 0) {
            *out = &l->rates_v[i];
            return 0;
        }
    if (l->n_rates == l->cap_rates) {
        size_t grown = l->cap_rates ? 2 * l->cap_rates : 8;
        void *p = mem_realloc(l->rates_v, grown * sizeof *l->rates_v);
        if (!p)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        l->rates_v = p;
        l->cap_rates = grown;
    }
    struct rate_slot *r = &l->rates_v[l->n_rates];
    memset(r, 0, sizeof *r);
    *out = r;
    if (!run_copy_fixed(r->task, sizeof r->task, task))
        return 0;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RATE_GET, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, task);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        r->limited = true;
        r->interval_ms = sqlite3_column_double(s, 0);
        r->next_at = sqlite3_column_double(s, 1);
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_RATE_GET", err);
    l->n_rates++;
    return 0;
}

/* Whether the rate limit lets a run start now; notes when it will if not. */
static bool rate_open(struct claim_limits *l, const struct rate_slot *r)
{
    if (!r->limited || r->next_at <= (double)l->now_ms)
        return true;
    int64_t at = (int64_t)r->next_at + 1;
    if (l->held_until_ms == 0 || at < l->held_until_ms)
        l->held_until_ms = at;
    return false;
}

static int int_query(struct sqlite_conn *c, enum sql_id id, enum limit_kind kind, const char *name,
                     int64_t *out, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int(s, 1, (int)kind);
    sqlite_bind_text(s, 2, name);
    int step = sqlite3_step(s);
    *out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : sqlite_conn_fail(c, "limits", err);
}

/* The claim's record of limit (kind, name), loaded at first sight. */
static int find(struct sqlite_conn *c, struct claim_limits *l, enum limit_kind kind,
                const char *name, struct limit_slot **out, errand_error *err)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->slots[i].kind == kind && strcmp(l->slots[i].name, name) == 0) {
            *out = &l->slots[i];
            return 0;
        }
    if (l->n == l->cap) {
        size_t grown = l->cap ? 2 * l->cap : 8;
        void *p = mem_realloc(l->slots, grown * sizeof *l->slots);
        if (!p)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        l->slots = p;
        l->cap = grown;
    }
    struct limit_slot *slot = &l->slots[l->n];
    memset(slot, 0, sizeof *slot);
    slot->kind = kind;
    if (!run_copy_fixed(slot->name, sizeof slot->name, name)) { /* too long to be limited */
        *out = slot;
        return 0;
    }
    int64_t max = 0;
    int rc = int_query(c, SQL_LIMIT_GET, kind, name, &max, err);
    if (rc == 0 && max > 0)
        rc = int_query(c, SQL_LIMIT_HELD, kind, name, &slot->held, err);
    if (rc < 0)
        return rc;
    slot->max = (int)max;
    l->n++;
    *out = slot;
    return 0;
}

int sqlite_limits_task_full(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                            bool *full, errand_error *err)
{
    *full = false;
    int rc = 0;
    if (l->rates) {
        struct rate_slot *r;
        if ((rc = find_rate(c, l, task, &r, err)) < 0)
            return rc;
        if (!rate_open(l, r)) {
            *full = true;
            return 0;
        }
    }
    if (!l->tasks_limited)
        return 0;
    struct limit_slot *slot;
    rc = find(c, l, LIMIT_TASK, task, &slot, err);
    if (rc == 0)
        *full = slot->max > 0 && slot->held >= slot->max;
    return rc;
}

/* Calls fn for each limit a run of task with tags falls under; stops at fn's non-zero. */
static int each_limit(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                      const char *tags, int (*fn)(struct limit_slot *, void *), void *arg,
                      errand_error *err)
{
    struct limit_slot *slot;
    int rc = 0, stop = 0;
    if (l->tasks_limited && (rc = find(c, l, LIMIT_TASK, task, &slot, err)) == 0 && slot->max > 0)
        stop = fn(slot, arg);
    if (rc < 0 || stop || !l->tags_limited || !tags || strcmp(tags, "[]") == 0)
        return rc;
    json_t *arr = json_loads(tags, 0, NULL);
    for (size_t i = 0; rc == 0 && !stop && i < json_array_size(arr); i++) {
        const char *tag = json_string_value(json_array_get(arr, i));
        if (tag && (rc = find(c, l, LIMIT_TAG, tag, &slot, err)) == 0 && slot->max > 0)
            stop = fn(slot, arg);
    }
    json_decref(arr);
    return rc;
}

struct admit {
    bool full;
    bool limited;
};

static int check_slot(struct limit_slot *slot, void *arg)
{
    struct admit *a = arg;
    a->limited = true;
    a->full = slot->held >= slot->max;
    return a->full;
}

int sqlite_limits_admit(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                        const char *tags, bool *ok, bool *limited, errand_error *err)
{
    struct admit a = {0};
    int rc = each_limit(c, l, task, tags, check_slot, &a, err);
    *ok = !a.full;
    *limited = a.limited;
    if (rc == 0 && *ok && l->rates) {
        struct rate_slot *r;
        if ((rc = find_rate(c, l, task, &r, err)) == 0 && r->limited) {
            *limited = true;
            *ok = rate_open(l, r);
        }
    }
    return rc;
}

struct hold {
    struct sqlite_conn *c;
    const char *id;
    int64_t now_ms;
    int rc;
    errand_error *err;
    bool any; /* took a slot */
};

static int take_slot(struct limit_slot *slot, void *arg)
{
    struct hold *h = arg;
    sqlite3_stmt *s = sqlite_conn_stmt(h->c, SQL_LIMIT_HOLD, h->err);
    if (!s) {
        h->rc = ERRAND_ESTORE;
        return 1;
    }
    sqlite3_bind_int(s, 1, (int)slot->kind);
    sqlite_bind_text(s, 2, slot->name);
    sqlite_bind_text(s, 3, h->id);
    sqlite3_bind_int64(s, 4, h->now_ms);
    h->rc = sqlite_conn_step_done(h->c, s, SQL_LIMIT_HOLD, h->err);
    slot->held++;
    h->any = true;
    return h->rc < 0;
}

int sqlite_limits_hold(struct sqlite_conn *c, struct claim_limits *l, int64_t rowid, const char *id,
                       const char *task, const char *tags, int64_t now_ms, errand_error *err)
{
    struct hold h = {c, id, now_ms, 0, err, false};
    int rc = each_limit(c, l, task, tags, take_slot, &h, err);
    if (rc < 0 || h.rc < 0)
        return rc < 0 ? rc : h.rc;
    struct rate_slot *r = NULL;
    if (l->rates && (rc = find_rate(c, l, task, &r, err)) < 0)
        return rc;
    if (r && r->limited) { /* the next start one interval on */
        double from = r->next_at > (double)now_ms ? r->next_at : (double)now_ms;
        r->next_at = from + r->interval_ms;
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RATE_TAKE, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, task);
        sqlite3_bind_double(s, 2, r->next_at);
        if ((rc = sqlite_conn_step_done(c, s, SQL_RATE_TAKE, err)) < 0)
            return rc;
        rate_open(l, r); /* notes when the next may go */
    }
    if (!h.any)
        return 0; /* under a rate limit only: no slot to release */
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_HOLDS_SLOTS, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, rowid);
    sqlite3_bind_int(s, 2, 1);
    return sqlite_conn_step_done(c, s, SQL_RUN_HOLDS_SLOTS, err);
}

int sqlite_limits_release(struct sqlite_conn *c, const struct run_current *cur, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LIMIT_RELEASE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, cur->id);
    int rc = sqlite_conn_step_done(c, s, SQL_LIMIT_RELEASE, err);
    if (rc < 0 || !(s = sqlite_conn_stmt(c, SQL_RUN_HOLDS_SLOTS, err)))
        return rc < 0 ? rc : ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, cur->rowid);
    sqlite3_bind_int(s, 2, 0);
    if ((rc = sqlite_conn_step_done(c, s, SQL_RUN_HOLDS_SLOTS, err)) < 0)
        return rc;
    /* A tag's slot may be what runs of any task wait for. */
    run_wakeups_any_task(&c->wakeups);
    return 0;
}

/* holds_slots: 0 none, 1 held, 2 given back while the run waits for subtasks. */
#define SLOTS_HELD 1
#define SLOTS_LENT 2

static int set_holds(struct sqlite_conn *c, int64_t rowid, int value, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_HOLDS_SLOTS, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, rowid);
    sqlite3_bind_int(s, 2, value);
    return sqlite_conn_step_done(c, s, SQL_RUN_HOLDS_SLOTS, err);
}

int sqlite_limits_waiting(struct sqlite_conn *c, int64_t rowid, const char *id, const char *task,
                          const char *tags, int holds_slots, bool waiting, int64_t now_ms,
                          errand_error *err)
{
    if (waiting && holds_slots == SLOTS_HELD) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LIMIT_RELEASE, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, id);
        int rc = sqlite_conn_step_done(c, s, SQL_LIMIT_RELEASE, err);
        if (rc < 0 || (rc = set_holds(c, rowid, SLOTS_LENT, err)) < 0)
            return rc;
        run_wakeups_any_task(&c->wakeups);
        return 0;
    }
    if (waiting || holds_slots != SLOTS_LENT)
        return 0;
    /* Resumed: the slots again, whatever the limits' counts (it runs on regardless). */
    struct claim_limits l;
    int rc = sqlite_limits_begin(c, &l, now_ms, err);
    struct hold h = {c, id, now_ms, 0, err, false};
    if (rc == 0)
        rc = each_limit(c, &l, task, tags, take_slot, &h, err);
    sqlite_limits_end(&l);
    if (rc < 0 || h.rc < 0)
        return rc < 0 ? rc : h.rc;
    return set_holds(c, rowid, h.any ? SLOTS_HELD : 0, err);
}

/* --- setting and listing ---------------------------------------------------------------- */

struct set_op {
    enum limit_kind kind;
    const char *name;
    bool rate; /* sets the rate limit, else the concurrency limit */
    int max;
    int64_t period_ms;
};

static int step_kind_name(struct sqlite_conn *c, enum sql_id id, const struct set_op *op,
                          errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int(s, 1, (int)op->kind);
    sqlite_bind_text(s, 2, op->name);
    return sqlite_conn_step_done(c, s, id, err);
}

static int set_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct set_op *op = arg;
    enum sql_id id = op->rate ? SQL_RATE_SET : SQL_LIMIT_SET;
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    int col = 1;
    if (!op->rate)
        sqlite3_bind_int(s, col++, (int)op->kind);
    sqlite_bind_text(s, col++, op->name);
    sqlite3_bind_int(s, col++, op->max);
    if (op->rate)
        sqlite3_bind_int64(s, col, op->period_ms);
    int rc = sqlite_conn_step_done(c, s, id, err);
    if (rc < 0 || op->max > 0)
        return rc;
    /* Removed: its slots are forgotten, and the row goes when it limits nothing. */
    if (!op->rate && (rc = step_kind_name(c, SQL_LIMIT_HOLDERS_DELETE, op, err)) < 0)
        return rc;
    return step_kind_name(c, SQL_LIMIT_DELETE, op, err);
}

int store_sqlite_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                           errand_error *err)
{
    struct set_op op = {.kind = kind, .name = name, .max = max_running};
    return sqlite_writer_run(store_sqlite_of(st)->writer, set_in_writer, &op, err);
}

int store_sqlite_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                          errand_error *err)
{
    struct set_op op = {
        .kind = LIMIT_TASK, .name = task, .rate = true, .max = max_starts, .period_ms = period_ms};
    return sqlite_writer_run(store_sqlite_of(st)->writer, set_in_writer, &op, err);
}

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static int read_holders(struct sqlite_conn *c, struct limit_record *r, errand_error *err)
{
    int64_t held = 0;
    int rc = int_query(c, SQL_LIMIT_HELD, r->kind, r->name, &held, err);
    if (rc < 0)
        return rc;
    r->held = held;
    size_t want = held < STORE_LIMIT_HOLDERS_MAX ? (size_t)held : STORE_LIMIT_HOLDERS_MAX;
    if (want == 0)
        return 0;
    if (!(r->holders = mem_calloc(want, sizeof *r->holders)))
        return oom(err);
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LIMIT_HOLDERS, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int(s, 1, (int)r->kind);
    sqlite_bind_text(s, 2, r->name);
    sqlite3_bind_int(s, 3, (int)want);
    int step;
    while (rc == 0 && r->n_holders < want && (step = sqlite3_step(s)) == SQLITE_ROW) {
        struct limit_holder *h = &r->holders[r->n_holders++];
        run_copy_fixed(h->run_id, sizeof h->run_id, sqlite_col_text(s, 0));
        h->since = sqlite3_column_int64(s, 1);
        const char *task = sqlite_col_text(s, 2), *worker = sqlite_col_text(s, 3);
        h->task = mem_strdup(task ? task : "");
        h->worker = worker ? mem_strdup(worker) : NULL;
        if (!h->task || (worker && !h->worker))
            rc = oom(err);
    }
    sqlite3_reset(s);
    return rc;
}

int store_sqlite_list_limits(store *st, struct limit_list *out, errand_error *err)
{
    struct store_sqlite *ss = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(ss->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err);
    sqlite3_stmt *s = rc == 0 ? sqlite_conn_stmt(c, SQL_LIMITS_LIST, err) : NULL;
    if (rc == 0 && !s)
        rc = ERRAND_ESTORE;
    if (rc == 0 && !(out->items = mem_calloc(STORE_LIMITS_MAX, sizeof *out->items)))
        rc = oom(err);
    if (rc == 0) {
        sqlite3_bind_int(s, 1, STORE_LIMITS_MAX);
        int step;
        while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
            struct limit_record *r = &out->items[out->n++];
            r->kind = (enum limit_kind)sqlite3_column_int(s, 0);
            const char *name = sqlite_col_text(s, 1);
            r->max_running = sqlite3_column_int(s, 2);
            r->rate_max = sqlite3_column_int(s, 3);
            r->rate_period_ms = sqlite3_column_int64(s, 4);
            if (!(r->name = mem_strdup(name ? name : "")))
                rc = oom(err);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_LIMITS_LIST", err);
        sqlite3_reset(s);
    }
    for (size_t i = 0; rc == 0 && i < out->n; i++)
        rc = read_holders(c, &out->items[i], err);
    errand_error ignored;
    sqlite_conn_run(c, SQL_COMMIT, &ignored);
    sqlite_pool_release(ss->readers, c);
    if (rc < 0)
        limit_list_clear(out);
    return rc;
}
