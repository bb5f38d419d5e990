/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_power_loss.c — a power cut loses no acknowledged run with
 * ERRAND_DATABASE_SYNC=full, and does lose some with normal.
 *
 * Why a test of its own: a killed process (test_store_sqlite_faults.c, tests/e2e/test_crash.py)
 * leaves its writes in the operating system's page cache, so it cannot tell a commit that was
 * fsynced from one that was not: full and normal pass it alike. A power cut loses every write
 * not yet synced; power_loss_vfs.h simulates one under the store (its header says what the
 * simulated disk keeps).
 *
 * Each test lives through several power cuts on one database. Per cut: open the store with the
 * shim as the default VFS, run a workload from three threads (single submissions, batches of
 * up to 16, a worker claiming runs, reporting half of them started and completing half of them),
 * and cut the power: at a
 * random I/O call (mid-commit, mid-checkpoint, between a write and its sync), right after a
 * random durable write returned, or once the workload is done (the sync=normal test cuts
 * early: see there). Close the store, put the files back as the disk holds them (all unsynced
 * writes lost, or torn), and reopen with the plain unix VFS. Then PRAGMA integrity_check is
 * ok, run_counts matches the runs, and every acknowledged run is there with its parameters and
 * a state its acknowledged history allows: COMPLETED with its result if its report was
 * acknowledged. A claim is a relaxed commit (sqlite_writer_run_relaxed) and may be lost,
 * unless a durable write that started after the claim returned was acknowledged: that write's
 * fsync covers the claim's frames too (sqlite_writer.c). So is a report that a run started
 * (store_reports_may_be_lost): such a run may be PENDING again after a cut, never SCHEDULED
 * when its claim had to hold, and its outcome, once acknowledged, is there.
 *
 * The cut points, the torn choices and the workload's sizes come from one seed, printed at the
 * start of each test: ERRAND_POWER_LOSS_SEED=<seed> repeats them (the threads' interleaving,
 * and so the exact I/O a cut falls on, still varies).
 */
#include "store_fixture.h"

#include "core/log.h"
#include "core/uuid.h"
#include "power_loss_vfs.h"
#include "store/sqlite/sqlite_checkpointer.h"

#define PL_CUTS_FULL 12          /* power cuts in the sync=full test: a third of them */
#define PL_CUT_IO_MAX 4000       /* at a random I/O call among the first this many, */
#define PL_CUT_ACK_MAX 150       /* a third right after one of this many durable writes, */
#define PL_CUT_KINDS 3           /* the rest once the workload is done */
#define PL_CUTS_NORMAL 4         /* power cuts in the sync=normal test, */
#define PL_EARLY_CUT_MIN 200     /* each at a random I/O call from this one */
#define PL_EARLY_CUT_MAX 800     /* to this one (see normal_sync_loses_...) */
#define PL_SINGLE_SUBMITS 60     /* per cut, one run each */
#define PL_BATCHES 12            /* per cut, */
#define PL_BATCH_MAX 16          /* of 1 to this many runs */
#define PL_WORKER_ROUNDS 50      /* claims per cut */
#define PL_CLAIM_LIMIT 3         /* runs per claim */
#define PL_PAD_MAX 300           /* random filler in the parameters: runs of varied size */
#define PL_LEASE_SECONDS 300     /* longer than the test: a claim stays PENDING */
#define PL_LOG_LEVEL LOG_WARNING /* the store's open and close lines are noise here */
#define PL_SEED_ENV "ERRAND_POWER_LOSS_SEED"
#define PL_TASK "power-loss"

_Static_assert(PL_EARLY_CUT_MAX < SQLITE_CHECKPOINT_FRAMES,
               "an early cut comes before the first checkpoint");

/* --- what the store acknowledged -------------------------------------------------------- */

/* A run the workload submitted: item n of the ledger carries {"n": n} in its parameters. */
struct expect {
    char id[UUID_STR_LEN];
    char *parameters;    /* the JSON text submitted */
    bool acked;          /* the submit returned 0 (and no cut since lost the run) */
    uint64_t claimed_at; /* ledger clock when its last claim returned; 0 = none */
    bool claim_durable;  /* seen PENDING after a cut: its claim is on the disk */
    bool reported;       /* a COMPLETED report for it was sent (maybe not acknowledged) */
    bool completed;      /* COMPLETED acknowledged, or seen after a cut */
};

/* `lock` guards everything but `clock`. */
struct ledger {
    pthread_mutex_t lock;
    struct expect *items;
    size_t n, cap;
    atomic_uint_fast64_t clock;   /* orders acknowledgements and the starts of writes */
    uint64_t durable_started_max; /* latest start of a durable write acknowledged */
    atomic_long acks;             /* durable writes acknowledged in this cut's workload */
    long cut_after_ack;           /* the I/O call after this acknowledgement cuts (0: none) */
};

/* Counts an acknowledged durable write (a submission, a report); the one the plan names has
 * the next I/O call cut the power, so that the cut falls right after that commit returned,
 * before a later commit's fsync could cover for it. */
static void acknowledged(struct ledger *lg)
{
    if (atomic_fetch_add(&lg->acks, 1) + 1 == lg->cut_after_ack)
        pl_cut_at_next_io();
}

/* One workload thread of one power cut's life. */
struct actor {
    pthread_t thread;
    store *st;
    struct ledger *lg;
    int cut;
    uint64_t rng;
    char error[300]; /* the first failure while the power was on */
};

static long ledger_add(struct ledger *lg, int cut, uint64_t *rng)
{
    char pad[PL_PAD_MAX + 1];
    unsigned len = pl_rng_below(rng, PL_PAD_MAX + 1);
    for (unsigned i = 0; i < len; i++)
        pad[i] = (char)('a' + pl_rng_below(rng, 26));
    pad[len] = '\0';
    pthread_mutex_lock(&lg->lock);
    if (lg->n == lg->cap) {
        lg->cap = lg->cap ? 2 * lg->cap : 256;
        lg->items = realloc(lg->items, lg->cap * sizeof *lg->items);
        if (!lg->items)
            abort(); /* a workload thread: cmocka's asserts belong to the main thread */
    }
    long n = (long)lg->n++;
    struct expect *e = &lg->items[n];
    memset(e, 0, sizeof *e);
    e->parameters = mem_printf("{\"n\":%ld,\"cut\":%d,\"pad\":\"%s\"}", n, cut, pad);
    pthread_mutex_unlock(&lg->lock);
    return n;
}

static void actor_fail(struct actor *a, const char *what, const errand_error *err)
{
    if (!pl_is_cut() && !a->error[0])
        snprintf(a->error, sizeof a->error, "%s: %.250s", what, err->message);
}

/* Submits count new runs in one call; false when it failed. */
static bool submit_runs(struct actor *a, size_t count)
{
    struct ledger *lg = a->lg;
    struct run_spec specs[PL_BATCH_MAX];
    struct run_row rows[PL_BATCH_MAX];
    long ns[PL_BATCH_MAX];
    int64_t now = clock_now_ms();
    errand_error err;
    for (size_t i = 0; i < count; i++) {
        ns[i] = ledger_add(lg, a->cut, &a->rng);
        pthread_mutex_lock(&lg->lock);
        char *text =
            mem_printf("{\"task\":\"" PL_TASK "\",\"parameters\":%s}", lg->items[ns[i]].parameters);
        pthread_mutex_unlock(&lg->lock);
        json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
        mem_free(text);
        if (!obj || run_spec_parse(obj, NULL, now, &specs[i], &err) != 0)
            abort(); /* the test built a bad run */
        json_decref(obj);
    }
    uint64_t started = atomic_fetch_add(&lg->clock, 1) + 1;
    int rc = store_submit(a->st, specs, count, now, rows, NULL, &err);
    for (size_t i = 0; i < count; i++)
        run_spec_clear(&specs[i]);
    if (rc != 0) {
        actor_fail(a, "store_submit", &err);
        return false;
    }
    pthread_mutex_lock(&lg->lock);
    for (size_t i = 0; i < count; i++) {
        snprintf(lg->items[ns[i]].id, UUID_STR_LEN, "%s", rows[i].id);
        lg->items[ns[i]].acked = true;
        run_row_clear(&rows[i]);
    }
    if (started > lg->durable_started_max)
        lg->durable_started_max = started;
    pthread_mutex_unlock(&lg->lock);
    acknowledged(lg);
    return true;
}

static void *single_submitter(void *p)
{
    struct actor *a = p;
    for (int i = 0; i < PL_SINGLE_SUBMITS && !pl_is_cut(); i++)
        if (!submit_runs(a, 1))
            break;
    return NULL;
}

static void *batch_submitter(void *p)
{
    struct actor *a = p;
    for (int i = 0; i < PL_BATCHES && !pl_is_cut(); i++)
        if (!submit_runs(a, 1 + pl_rng_below(&a->rng, PL_BATCH_MAX)))
            break;
    return NULL;
}

static long param_n(const char *parameters)
{
    json_t *obj = json_loads(parameters, 0, NULL);
    long n = obj ? (long)json_integer_value(json_object_get(obj, "n")) : -1;
    json_decref(obj);
    return n;
}

/* Reports one claimed run started (RUNNING): a relaxed commit. False when the call failed. */
static bool start_run_n(struct actor *a, const struct run_row *r, long n)
{
    struct run_report rep = {
        .id = r->id, .lease_token = r->lease_token, .state = ERRAND_STATE_RUNNING};
    struct lease_answer answer;
    errand_error err;
    if (store_report(a->st, "pl-worker", NULL, &rep, 1, NULL, 0, clock_now_ms(), &answer, &err) !=
        0) {
        actor_fail(a, "store_report (RUNNING)", &err);
        return false;
    }
    if (answer.status != LEASE_APPLIED && !a->error[0])
        snprintf(a->error, sizeof a->error, "start of run n=%ld refused (%s)", n,
                 answer.reason ? answer.reason : "?");
    return true;
}

/* Reports one claimed run COMPLETED with {"n": n}; false when the call failed. */
static bool complete_run_n(struct actor *a, const struct run_row *r, long n)
{
    struct ledger *lg = a->lg;
    char result[64];
    snprintf(result, sizeof result, "{\"n\":%ld}", n);
    struct run_report rep = {.id = r->id,
                             .lease_token = r->lease_token,
                             .state = ERRAND_STATE_COMPLETED,
                             .result = result};
    struct lease_answer answer;
    errand_error err;
    pthread_mutex_lock(&lg->lock);
    lg->items[n].reported = true;
    pthread_mutex_unlock(&lg->lock);
    uint64_t started = atomic_fetch_add(&lg->clock, 1) + 1;
    if (store_report(a->st, "pl-worker", NULL, &rep, 1, NULL, 0, clock_now_ms(), &answer, &err) !=
        0) {
        actor_fail(a, "store_report", &err);
        return false;
    }
    pthread_mutex_lock(&lg->lock);
    if (answer.status == LEASE_APPLIED)
        lg->items[n].completed = true;
    else if (!a->error[0])
        snprintf(a->error, sizeof a->error, "report of run n=%ld refused (%s)", n,
                 answer.reason ? answer.reason : "?");
    if (started > lg->durable_started_max)
        lg->durable_started_max = started;
    pthread_mutex_unlock(&lg->lock);
    acknowledged(lg);
    return true;
}

static void *worker(void *p)
{
    struct actor *a = p;
    struct ledger *lg = a->lg;
    const char *tasks[] = {PL_TASK};
    struct claim_request req = {.worker = "pl-worker",
                                .tasks = tasks,
                                .n_tasks = 1,
                                .limit = PL_CLAIM_LIMIT,
                                .lease_seconds = PL_LEASE_SECONDS};
    for (int round = 0; round < PL_WORKER_ROUNDS && !pl_is_cut(); round++) {
        struct run_list claimed;
        errand_error err;
        if (store_claim(a->st, &req, clock_now_ms(), &claimed, &err) != 0) {
            actor_fail(a, "store_claim", &err);
            return NULL;
        }
        uint64_t at = atomic_fetch_add(&lg->clock, 1) + 1;
        long ns[PL_CLAIM_LIMIT];
        for (size_t i = 0; i < claimed.n; i++) {
            if ((ns[i] = param_n(claimed.rows[i].parameters)) < 0)
                abort(); /* not a run of this test */
            pthread_mutex_lock(&lg->lock);
            lg->items[ns[i]].claimed_at = at;
            lg->items[ns[i]].claim_durable = false;
            lg->items[ns[i]].reported = false;
            pthread_mutex_unlock(&lg->lock);
        }
        bool ok = true;
        for (size_t i = 0; i < claimed.n && ok; i++) {
            if (pl_rng_below(&a->rng, 2))
                ok = start_run_n(a, &claimed.rows[i], ns[i]);
            if (ok && pl_rng_below(&a->rng, 2))
                ok = complete_run_n(a, &claimed.rows[i], ns[i]);
        }
        run_list_clear(&claimed);
        if (!ok)
            return NULL;
    }
    return NULL;
}

/* --- checking the database after a cut ---------------------------------------------------- */

struct cut_result {
    long acked;         /* acknowledged runs expected before the cut */
    long lost;          /* acknowledged runs missing */
    long lost_outcomes; /* acknowledged COMPLETED reports missing */
    long lost_claims;   /* claims followed by an acknowledged durable write, missing */
    long wrong;         /* runs with other parameters, or a state no history allows */
    char first[300];    /* what the first of those was */
};

static void note(struct cut_result *r, long *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct cut_result *r, long *counter, const char *fmt, ...)
{
    (*counter)++;
    if (r->first[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first, sizeof r->first, fmt, ap);
    va_end(ap);
}

static bool json_text_equal(const char *a, const char *b)
{
    json_t *ja = a ? json_loads(a, JSON_DECODE_ANY, NULL) : NULL;
    json_t *jb = b ? json_loads(b, JSON_DECODE_ANY, NULL) : NULL;
    bool eq = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void sql_one_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(s) != SQLITE_ROW)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

/* The database as SQLite recovers it: not corrupt, and the per-state counts committed with
 * the rows they count. Missing altogether (created and never synced) is allowed here; the
 * runs then count as lost. */
static void check_database(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char text[256];
    sql_one_text(db, "PRAGMA integrity_check", text, sizeof text);
    if (strcmp(text, "ok") != 0)
        fail_msg("integrity_check after the power cut: %s", text);
    sql_one_text(db,
                 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'run_counts'",
                 text, sizeof text);
    if (strcmp(text, "1") == 0) {
        sql_one_text(db,
                     "SELECT count(*) FROM run_counts c WHERE c.n != (SELECT count(*) FROM "
                     "task_runs r WHERE r.state_type = c.state_type)",
                     text, sizeof text);
        if (strcmp(text, "0") != 0)
            fail_msg("after the power cut, run_counts disagrees with task_runs for %s states",
                     text);
    }
    sql_one_text(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'task_counts'", text,
                 sizeof text);
    if (strcmp(text, "1") == 0) { /* per task too, both ways */
        sql_one_text(db,
                     "SELECT (SELECT count(*) FROM task_counts c WHERE c.n != (SELECT count(*) "
                     "FROM task_runs r WHERE r.task = c.task AND r.state_type = c.state_type)) + "
                     "(SELECT count(*) FROM (SELECT DISTINCT task, state_type FROM task_runs) r "
                     "WHERE NOT EXISTS (SELECT 1 FROM task_counts c WHERE c.task = r.task AND "
                     "c.state_type = r.state_type))",
                     text, sizeof text);
        if (strcmp(text, "0") != 0)
            fail_msg("after the power cut, task_counts disagrees with task_runs for %s (task, "
                     "state) pairs",
                     text);
    }
    sqlite3_close(db);
}

/* Checks every acknowledged run against the reopened store, and takes what survived as the
 * new expectation (a run lost with sync=normal is forgotten, a report that was in flight and
 * survived counts as done). */
static void check_runs(store *st, struct ledger *lg, bool durable, struct cut_result *r)
{
    for (size_t i = 0; i < lg->n; i++) {
        struct expect *e = &lg->items[i];
        if (!e->acked)
            continue;
        r->acked++;
        struct run_row row;
        errand_error err;
        int rc = store_get_run(st, e->id, &row, &err);
        if (rc == ERRAND_ENOTFOUND) {
            note(r, &r->lost, "acknowledged run %s (n=%zu) is gone", e->id, i);
            e->acked = false;
            continue;
        }
        if (rc != 0)
            fail_msg("store_get_run(%s) after the power cut: %s", e->id, err.message);
        if (strcmp(row.task, PL_TASK) != 0 || !json_text_equal(row.parameters, e->parameters))
            note(r, &r->wrong, "run %s has parameters %s, submitted %s", e->id, row.parameters,
                 e->parameters);
        bool claim_must_hold =
            durable &&
            (e->claim_durable || (e->claimed_at && lg->durable_started_max > e->claimed_at));
        char result[64];
        snprintf(result, sizeof result, "{\"n\":%zu}", i);
        switch (row.state) {
        case ERRAND_STATE_COMPLETED:
            if (!e->completed && !e->reported)
                note(r, &r->wrong, "run %s is COMPLETED, never reported", e->id);
            else if (!json_text_equal(row.result, result))
                note(r, &r->wrong, "run %s has result %s, reported %s", e->id,
                     row.result ? row.result : "null", result);
            e->completed = true;
            break;
        case ERRAND_STATE_PENDING:
        case ERRAND_STATE_RUNNING: /* its start, relaxed, may or may not have held */
        case ERRAND_STATE_SCHEDULED:
            if (e->completed)
                note(r, &r->lost_outcomes, "run %s is %s, its COMPLETED report was acknowledged",
                     e->id, state_type_name(row.state));
            else if (row.state == ERRAND_STATE_SCHEDULED && claim_must_hold)
                note(r, &r->lost_claims,
                     "run %s is SCHEDULED: its claim was lost, though a durable write started "
                     "after the claim was acknowledged",
                     e->id);
            e->completed = false;
            e->claim_durable = row.state != ERRAND_STATE_SCHEDULED;
            if (row.state == ERRAND_STATE_SCHEDULED) {
                e->claimed_at = 0;
                e->reported = false;
            }
            break;
        default:
            note(r, &r->wrong, "run %s is %s", e->id, state_type_name(row.state));
        }
        run_row_clear(&row);
    }
}

/* --- one life through several power cuts ---------------------------------------------------- */

struct life {
    char dir[64];
    char path[128];
    char url[160];
    const char *sync;
    struct ledger lg;
};

/* When a power cut comes and what it leaves. */
struct cut_plan {
    long cut_at;        /* at this I/O call of the workload, */
    long cut_after_ack; /* or at the first after this durable write returned (0 for both: once
                           the workload is done) */
    bool torn;          /* unsynced writes torn, else all lost */
    uint64_t rng;       /* the workload's and the tearing's random stream */
};

/* Runs the workload until the power goes, restores the disk, checks it; *r says what. */
static void live_one_cut(struct life *lf, int cut, struct cut_plan plan, struct cut_result *r)
{
    memset(r, 0, sizeof *r);
    uint64_t rng = plan.rng;
    lf->lg.cut_after_ack = plan.cut_after_ack;
    atomic_store(&lf->lg.acks, 0);

    pl_begin();
    struct store_options opt = {.sync = lf->sync, .default_lease_seconds = 30};
    store *st = NULL;
    errand_error err;
    if (store_open(lf->url, &opt, &st, &err) != 0)
        fail_msg("store_open(%s) under the shim: %s", lf->url, err.message);
    pl_arm(plan.cut_at);

    struct actor actors[3];
    void *(*mains[3])(void *) = {single_submitter, batch_submitter, worker};
    for (int i = 0; i < 3; i++) {
        memset(&actors[i], 0, sizeof actors[i]);
        actors[i].st = st;
        actors[i].lg = &lf->lg;
        actors[i].cut = cut;
        actors[i].rng = pl_rng_next(&rng);
        assert_int_equal(pthread_create(&actors[i].thread, NULL, mains[i], &actors[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(actors[i].thread, NULL);
    struct pl_cut_info info;
    pl_cut(&info);

    store_close(st); /* every write fails now: this is the dead machine's last moment */
    log_set_level(PL_LOG_LEVEL);
    pl_restore(plan.torn, &rng);
    for (int i = 0; i < 3; i++)
        if (actors[i].error[0])
            fail_msg("with the power on: %s", actors[i].error);

    check_database(lf->path);
    if (store_open(lf->url, &opt, &st, &err) != 0)
        fail_msg("store_open(%s) after the power cut: %s", lf->url, err.message);
    check_runs(st, &lf->lg, strcmp(lf->sync, "full") == 0, r);
    store_close(st);
    char when[96];
    if (!info.in_io)
        snprintf(when, sizeof when, "once the workload was done");
    else if (plan.cut_after_ack)
        snprintf(when, sizeof when, "right after durable write %ld", plan.cut_after_ack);
    else
        snprintf(when, sizeof when, "at a random I/O call");
    print_message("power cut %d (sync=%s): %s, I/O call %ld, %ld checkpoint syncs before; "
                  "unsynced writes %s; %ld acknowledged runs: %ld lost, %ld outcomes lost, %ld "
                  "claims lost\n",
                  cut + 1, lf->sync, when, info.io_calls, info.db_syncs,
                  plan.torn ? "torn" : "lost", r->acked, r->lost, r->lost_outcomes, r->lost_claims);
}

static uint64_t test_seed(void)
{
    const char *env = getenv(PL_SEED_ENV);
    uint64_t seed = env && *env ? strtoull(env, NULL, 0)
                                : (uint64_t)clock_now_ms() ^ ((uint64_t)getpid() << 32);
    print_message("power-loss seed %" PRIu64 " (repeat with %s=%" PRIu64 ")\n", seed, PL_SEED_ENV,
                  seed);
    return seed;
}

/* Temporary directory: tmpfs when there is one, as the real fsyncs are only passed on (the
 * shim decides what survives), and on a disk they would only cost time. */
static int life_setup(void **state)
{
    struct life *lf = calloc(1, sizeof *lf);
    const char *bases[] = {"/dev/shm", "/tmp"};
    for (size_t i = 0; i < 2 && !lf->dir[0]; i++) {
        snprintf(lf->dir, sizeof lf->dir, "%s/errand-power-loss-XXXXXX", bases[i]);
        if (!mkdtemp(lf->dir))
            lf->dir[0] = '\0';
    }
    if (!lf->dir[0])
        return -1;
    snprintf(lf->path, sizeof lf->path, "%s/errand.db", lf->dir);
    snprintf(lf->url, sizeof lf->url, "sqlite://%s", lf->path);
    pthread_mutex_init(&lf->lg.lock, NULL);
    *state = lf;
    return 0;
}

static int life_teardown(void **state)
{
    struct life *lf = *state;
    char p[200];
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", lf->path, suffixes[i]);
        unlink(p);
    }
    rmdir(lf->dir);
    for (size_t i = 0; i < lf->lg.n; i++)
        mem_free(lf->lg.items[i].parameters);
    free(lf->lg.items);
    pthread_mutex_destroy(&lf->lg.lock);
    free(lf);
    return 0;
}

static void full_sync_keeps_every_acknowledged_run_through_power_cuts(void **state)
{
    struct life *lf = *state;
    lf->sync = "full";
    uint64_t seed = test_seed();
    long acked = 0;
    uint64_t rng = seed;
    for (int cut = 0; cut < PL_CUTS_FULL; cut++) {
        struct cut_plan plan = {0};
        unsigned kind = pl_rng_below(&rng, PL_CUT_KINDS);
        if (kind == 0)
            plan.cut_at = 1 + (long)pl_rng_below(&rng, PL_CUT_IO_MAX);
        else if (kind == 1)
            plan.cut_after_ack = 1 + (long)pl_rng_below(&rng, PL_CUT_ACK_MAX);
        plan.torn = pl_rng_below(&rng, 2) == 1;
        plan.rng = pl_rng_next(&rng);
        struct cut_result r;
        live_one_cut(lf, cut, plan, &r);
        if (r.lost || r.lost_outcomes || r.lost_claims || r.wrong)
            fail_msg("power cut %d (seed %" PRIu64 "): %ld runs lost, %ld outcomes lost, %ld "
                     "claims lost, %ld wrong; first: %s",
                     cut + 1, seed, r.lost, r.lost_outcomes, r.lost_claims, r.wrong, r.first);
        acked = r.acked;
    }
    print_message("sync=full: %d power cuts, %ld acknowledged runs before the last, none lost\n",
                  PL_CUTS_FULL, acked);
    assert_true(acked > 0);
}

/* The same cuts with sync=normal lose acknowledged runs: what the fsync of every commit buys.
 * With normal the WAL is fsynced only by a checkpoint, and the checkpointer starts at
 * SQLITE_CHECKPOINT_FRAMES frames. These cuts come early, after the first acknowledgements and
 * before the WAL can hold that many frames (each frame is at least one I/O call), so nothing
 * written since the store opened was synced — not even the new WAL's directory entry — and each cut
 * must lose runs: deterministic, not a matter of luck. Later, checkpoints sync the WAL often, and a
 * cut may lose only the last few commits, or none. */
static void normal_sync_loses_acknowledged_runs_at_a_power_cut(void **state)
{
    struct life *lf = *state;
    lf->sync = "normal";
    uint64_t rng = test_seed();
    long lost = 0;
    for (int cut = 0; cut < PL_CUTS_NORMAL; cut++) {
        struct cut_plan plan = {0};
        plan.cut_at =
            PL_EARLY_CUT_MIN + (long)pl_rng_below(&rng, PL_EARLY_CUT_MAX - PL_EARLY_CUT_MIN + 1);
        plan.torn = pl_rng_below(&rng, 2) == 1;
        plan.rng = pl_rng_next(&rng);
        struct cut_result r;
        live_one_cut(lf, cut, plan, &r);
        if (r.wrong)
            fail_msg("power cut %d: %ld runs wrong; first: %s", cut + 1, r.wrong, r.first);
        if (r.lost == 0)
            fail_msg("power cut %d at I/O call %ld lost no acknowledged run with sync=normal: "
                     "the simulated disk keeps unsynced writes",
                     cut + 1, plan.cut_at);
        lost += r.lost;
    }
    print_message("sync=normal: each of %d power cuts lost acknowledged runs, %ld in all\n",
                  PL_CUTS_NORMAL, lost);
}

int main(void)
{
    mem_install_json();
    log_set_level(PL_LOG_LEVEL);
    pl_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(full_sync_keeps_every_acknowledged_run_through_power_cuts,
                                        life_setup, life_teardown),
        cmocka_unit_test_setup_teardown(normal_sync_loses_acknowledged_runs_at_a_power_cut,
                                        life_setup, life_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pl_fini();
    return failed;
}
