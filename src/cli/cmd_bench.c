/* SPDX-License-Identifier: MIT */
/*
 * cmd_bench.c — `errand bench`: throughput and latency of a running errand server, in the
 * spirit of redis-benchmark. It serves the bench task with an in-process errand_worker (or
 * relies on workers already running, with --workers 0), then:
 *
 *  1. Throughput: K submitter threads submit N no-op runs, in batches of B
 *     (errand_submit_batch) or one request each (B = 1, errand_submit).
 *       submit/s   = N / (first submit sent -> last submit acknowledged)
 *       e2e runs/s = N / (first submit sent -> the server reports all N runs final)
 *     "All final" is checked on the server, not guessed from the worker: every run carries a
 *     tag unique to this bench, and the bench polls GET /task_runs?tag=T&state=<non-final>
 *     &limit=1 until it is empty: back to back once the in-process worker has executed N
 *     runs, every POLL_BACKGROUND_MS before that (POLL_EXTERNAL_MS with --workers 0). The
 *     end time is when the empty answer arrived, so e2e includes the last report's commit
 *     and at most one poll of slack.
 *
 *  2. Latency under load, two honest figures for the runs of phase 1:
 *       submit -> task start: each run's parameters carry the monotonic time just before
 *       its submit request; the bench task (same process, same clock) records how long
 *       after that it started. Exact, but only for runs this process executed.
 *       created -> finished: the server's own timestamps of each run (millisecond
 *       resolution, one clock), read back after the phase: the time from the run being
 *       stored to its COMPLETED state being committed.
 *
 *  3. Latency at light load: R runs one at a time, each errand_submit() followed by
 *     errand_wait() (a long-poll that answers when the run is final): submit -> result as
 *     a client sees it, with nothing else queued. These are the p50/p90/p99 headline figures.
 *
 * A bench whose runs do not all complete measured something else than the platform (a task
 * that fails, workers that crash): the bench then says how many runs ended in which state,
 * with a sample run and its message each, skips phase 3 and exits 1 after its summary.
 *
 * The bench's runs stay in the server's store afterwards (like redis-benchmark's keys).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "connect.h"
#include "core/clock.h"
#include "core/log.h"
#include "latency.h"
#include "output.h"
#include "progress.h"

#define BENCH_DEFAULT_RUNS 20000
#define BENCH_DEFAULT_BATCH 500
#define BENCH_DEFAULT_SUBMITTERS 4
/* With one request per run, throughput comes from concurrency (like a web app's request
 * threads): the server commits concurrent submissions together. */
#define BENCH_DEFAULT_SUBMITTERS_SINGLE 32
/* A worker claims only as many runs as it has free slots, so no-op throughput needs many
 * slots to make each claim and report carry a useful batch. */
#define BENCH_DEFAULT_WORKERS 128
#define BENCH_DEFAULT_LATENCY_RUNS 200
#define BENCH_DEFAULT_TASK "errand.noop"
#define BENCH_DEFAULT_TIMEOUT_S 600.0
#define BENCH_MAX_RUNS 10000000LL
#define BENCH_MAX_BATCH 10000 /* docs/api.md: a batch holds 1-10,000 runs */
#define BENCH_MAX_SUBMITTERS 256
#define BENCH_MAX_WORKERS 4096
#define BENCH_PARAMS_MAX 96 /* {"b":<id>,"i":<index>,"t":<ns>} */
#define BENCH_TAG_MAX 64
#define BENCH_LIST_PAGE "1000" /* runs per listing page when reading back timestamps */
#define POLL_BACKGROUND_MS 100 /* server polls while the in-process worker is not done */
#define POLL_EXTERNAL_MS 20    /* server polls with --workers 0 */
#define POLL_FINAL_MS 1        /* the loop's step, and the gap between polls at the end */
#define MONITOR_STEP_MS 20     /* progress refresh while submitting */
#define WORKER_READY_TIMEOUT_MS 10000
#define WORKER_READY_POLL_MS 10
#define LIGHT_WAIT_TIMEOUT_S 60.0
#define NON_FINAL_STATES "SCHEDULED,PENDING,RUNNING,CANCELLING"
#define CELL_MAX 64
#define LATENCY_LABEL_WIDTH 40
#define BENCH_HTTP_OK 200
#define BENCH_JSON_INDENT 2
#define BENCH_JSON_DIGITS 9 /* significant digits of figures in --json: ns resolution at 1 s */
#define BENCH_STATE_KINDS 8 /* state types (docs/api.md): room for every one a run may end in */
#define BENCH_STATE_TYPE_MAX 16
#define BENCH_RUN_ID_MAX 64
#define BENCH_SAMPLE_MESSAGE_MAX 256 /* of a sample run's state message, in the explanation */

struct bench {
    /* configuration */
    long long runs, batch, submitters, workers, prefetch, latency_runs;
    double timeout_s;
    const char *task;
    bool as_json;
    struct settings s;
    errand_client_options client_opt;
    char tag[BENCH_TAG_MAX];
    unsigned bench_id; /* in every run's parameters, so the task ignores foreign runs */
    const char *tags[1];
    errand_submit_options submit_opt;

    /* phase 1, shared by the submitter threads */
    atomic_llong next_batch;
    atomic_llong submitted;
    atomic_int submitters_done;
    atomic_bool abort;
    pthread_mutex_t err_lock; /* guards first_err */
    errand_error first_err;
    int64_t t0_ns;
    atomic_llong submit_end_ns; /* the latest submitter finish */

    /* written by the bench task (one slot per run index, each written once) */
    atomic_llong *start_delay_ns; /* -1 until the run started in this process */
    atomic_llong executed;

    errand_worker *worker;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / MS_PER_S, .tv_nsec = (ms % MS_PER_S) * NS_PER_MS};
    nanosleep(&ts, NULL);
}

/* ---- the bench task ------------------------------------------------------------------- */

/* Records how long after its submit request the run started; returns JSON null. The
 * parameters are read with sscanf, not a JSON parser, because the bench wrote them itself
 * (keys in this order; the spaces in the format accept any spacing a server might add). */
static int bench_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                      void *userdata)
{
    int64_t now = mono_ns();
    struct bench *b = userdata;
    unsigned id = 0;
    long long i = -1, t = 0;
    if (params_json &&
        sscanf(params_json, " { \"b\" : %u , \"i\" : %lld , \"t\" : %lld", &id, &i, &t) == 3 &&
        id == b->bench_id && i >= 0 && i < b->runs)
        atomic_store_explicit(&b->start_delay_ns[i], now - t, memory_order_relaxed);
    atomic_fetch_add(&b->executed, 1);
    *result_json = NULL;
    return 0;
}

static void *serve_thread(void *arg)
{
    struct bench *b = arg;
    errand_error err = {0};
    if (errand_worker_serve(b->worker, &err) != 0)
        log_error("bench worker stopped", "error=\"%s\"", err.message);
    return NULL;
}

/* ---- phase 1: submitting ---------------------------------------------------------------- */

static void record_error(struct bench *b, const errand_error *err)
{
    pthread_mutex_lock(&b->err_lock);
    if (!b->first_err.code)
        b->first_err = *err;
    pthread_mutex_unlock(&b->err_lock);
    atomic_store(&b->abort, true);
}

static void *submit_thread(void *arg)
{
    struct bench *b = arg;
    errand_error err = {0};
    errand_client *c = NULL;
    char *params = malloc((size_t)b->batch * BENCH_PARAMS_MAX);
    errand_submission *subs = calloc((size_t)b->batch, sizeof *subs);
    if (!params || !subs) {
        err.code = ERRAND_ENOMEM;
        snprintf(err.message, sizeof err.message, "out of memory for a batch of %lld", b->batch);
        record_error(b, &err);
    } else if (errand_client_new(&b->client_opt, &c, &err) != 0) {
        record_error(b, &err);
    }
    while (c && !atomic_load(&b->abort)) {
        long long first = atomic_fetch_add(&b->next_batch, 1) * b->batch;
        if (first >= b->runs)
            break;
        long long n = b->runs - first < b->batch ? b->runs - first : b->batch;
        int64_t now = mono_ns();
        for (long long k = 0; k < n; k++) {
            char *p = params + k * BENCH_PARAMS_MAX;
            snprintf(p, BENCH_PARAMS_MAX, "{\"b\":%u,\"i\":%lld,\"t\":%lld}", b->bench_id,
                     first + k, (long long)now);
            subs[k] = (errand_submission){b->task, p, &b->submit_opt};
        }
        int rc = n == 1 ? errand_submit(c, b->task, params, &b->submit_opt, NULL, &err)
                        : errand_submit_batch(c, subs, (size_t)n, NULL, &err);
        if (rc != 0) {
            record_error(b, &err);
            break;
        }
        atomic_fetch_add(&b->submitted, n);
    }
    int64_t end = mono_ns();
    long long prev = atomic_load(&b->submit_end_ns);
    while (end > prev && !atomic_compare_exchange_weak(&b->submit_end_ns, &prev, end))
        ;
    atomic_fetch_add(&b->submitters_done, 1);
    errand_client_free(c);
    free(params);
    free(subs);
    return NULL;
}

/* ---- phase 1: waiting for the server to have every run final ---------------------------- */

/* Asks the server whether any run of this bench is not final; 1 = some are, 0 = none,
 * negative = the request failed (err filled). */
static int any_unfinished(const struct bench *b, errand_client *c, errand_error *err)
{
    char *path = strdup("/task_runs?limit=1&state=" NON_FINAL_STATES);
    if (!path || !connect_add_query(&path, "tag", b->tag)) {
        free(path);
        err->code = ERRAND_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return ERRAND_ENOMEM;
    }
    int status = 0;
    char *body = NULL;
    int rc = errand_request(c, "GET", path, NULL, &status, &body, err);
    free(path);
    if (rc != 0)
        return rc;
    if (status != BENCH_HTTP_OK) {
        errand_error_from_response(status, body, err);
        errand_free(body);
        return err->code;
    }
    json_t *page = json_loads(body, 0, NULL);
    errand_free(body);
    int some = json_array_size(json_object_get(page, "runs")) > 0;
    json_decref(page);
    return some;
}

static int wait_all_final(struct bench *b, errand_client *c, struct progress *pr, int64_t *end_ns,
                          errand_error *err)
{
    int64_t deadline = b->t0_ns + (int64_t)(b->timeout_s * NS_PER_S);
    int64_t next_poll = 0;
    for (;;) {
        long long done = atomic_load(&b->executed);
        if (b->workers > 0)
            progress_draw(pr, "completing", done < b->runs ? done : b->runs, b->runs, NULL, false);
        else
            progress_draw(pr, "waiting", 0, b->runs, "(for the workers already running)", false);
        /* Polls cost the server a query over the bench's runs, so they stay rare until the
           in-process worker has executed every run; from then on they follow each other. */
        bool local_done = b->workers > 0 && done >= b->runs;
        int64_t now = mono_ns();
        if (local_done || now >= next_poll) {
            int rc = any_unfinished(b, c, err);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                *end_ns = mono_ns();
                return 0;
            }
            int64_t gap_ms = b->workers > 0 ? POLL_BACKGROUND_MS : POLL_EXTERNAL_MS;
            next_poll = mono_ns() + gap_ms * NS_PER_MS;
        }
        if (now > deadline) {
            err->code = ERRAND_ETIMEDOUT;
            snprintf(err->message, sizeof err->message,
                     "runs of %s still not finished after %g s: is a worker serving it? "
                     "(--workers 0 relies on workers already running)",
                     b->task, b->timeout_s);
            return ERRAND_ETIMEDOUT;
        }
        sleep_ms(POLL_FINAL_MS);
    }
}

/* ---- phase 2: the server's timestamps ---------------------------------------------------- */

/* The runs that ended in one state other than COMPLETED, and the first of them seen. */
struct state_tally {
    char type[BENCH_STATE_TYPE_MAX];
    long long n;
    char sample_id[BENCH_RUN_ID_MAX];
    char sample_message[BENCH_SAMPLE_MESSAGE_MAX];
};

struct server_figures {
    long long completed, failed; /* failed: FAILED, CRASHED or CANCELLED */
    struct state_tally *tally;   /* BENCH_STATE_KINDS entries, n_tally used */
    size_t n_tally;
    double *created_to_finished_ms;
    size_t n;
};

static void tally_run(struct server_figures *f, const char *type, const json_t *run)
{
    size_t k = 0;
    while (k < f->n_tally && strcmp(f->tally[k].type, type) != 0)
        k++;
    if (k == f->n_tally) {
        if (f->n_tally == BENCH_STATE_KINDS)
            return; /* more kinds than the server has states: counted in failed alone */
        struct state_tally *t = &f->tally[f->n_tally++];
        const char *id = json_string_value(json_object_get(run, "id"));
        const char *msg =
            json_string_value(json_object_get(json_object_get(run, "state"), "message"));
        snprintf(t->type, sizeof t->type, "%s", type);
        snprintf(t->sample_id, sizeof t->sample_id, "%s", id ? id : "?");
        snprintf(t->sample_message, sizeof t->sample_message, "%s", msg ? msg : "");
    }
    f->tally[k].n++;
}

static void add_page_figures(const json_t *runs, struct server_figures *f, size_t cap)
{
    size_t i;
    const json_t *run;
    json_array_foreach(runs, i, run)
    {
        const char *type =
            json_string_value(json_object_get(json_object_get(run, "state"), "type"));
        if (!type || strcmp(type, "COMPLETED") != 0) {
            f->failed++;
            tally_run(f, type ? type : "(no state)", run);
            continue;
        }
        f->completed++;
        int64_t created, finished;
        const char *c = json_string_value(json_object_get(run, "created"));
        const char *fin = json_string_value(json_object_get(run, "finished"));
        if (f->n < cap && c && fin && clock_parse_rfc3339(c, &created) &&
            clock_parse_rfc3339(fin, &finished))
            f->created_to_finished_ms[f->n++] = (double)(finished - created);
    }
}

/* Reads back every run of this bench (pages of BENCH_LIST_PAGE) for phase 2. */
static int read_server_figures(const struct bench *b, errand_client *c, struct server_figures *f,
                               errand_error *err)
{
    size_t cap = (size_t)b->runs;
    f->created_to_finished_ms = calloc(cap, sizeof *f->created_to_finished_ms);
    if (!f->created_to_finished_ms)
        return ERRAND_ENOMEM;
    char *cursor = NULL;
    int rc = 0;
    for (;;) {
        char *path = strdup("/task_runs?limit=" BENCH_LIST_PAGE);
        if (!path || !connect_add_query(&path, "tag", b->tag) ||
            (cursor && !connect_add_query(&path, "cursor", cursor))) {
            free(path);
            rc = ERRAND_ENOMEM;
            break;
        }
        int status = 0;
        char *body = NULL;
        rc = errand_request(c, "GET", path, NULL, &status, &body, err);
        free(path);
        if (rc == 0 && status != BENCH_HTTP_OK) {
            errand_error_from_response(status, body, err);
            rc = err->code;
        }
        json_t *page = rc == 0 ? json_loads(body, 0, NULL) : NULL;
        errand_free(body);
        if (rc != 0)
            break;
        add_page_figures(json_object_get(page, "runs"), f, cap);
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        free(cursor);
        cursor = next && json_array_size(json_object_get(page, "runs")) > 0 ? strdup(next) : NULL;
        json_decref(page);
        if (!cursor)
            break;
    }
    free(cursor);
    return rc;
}

/* ---- phase 3: light load ---------------------------------------------------------------- */

static int light_latency(struct bench *b, errand_client *c, double *samples, size_t *n,
                         errand_error *err, struct progress *pr)
{
    *n = 0;
    for (long long i = 0; i < b->latency_runs; i++) {
        char params[BENCH_PARAMS_MAX];
        int64_t start = mono_ns();
        snprintf(params, sizeof params, "{\"b\":%u,\"i\":-1,\"t\":%lld}", b->bench_id,
                 (long long)start);
        errand_run *submitted = NULL, *done = NULL;
        int rc = errand_submit(c, b->task, params, &b->submit_opt, &submitted, err);
        if (rc == 0)
            rc = errand_wait(c, errand_run_id(submitted), LIGHT_WAIT_TIMEOUT_S, &done, err);
        int64_t end = mono_ns();
        bool completed = rc == 0 && errand_run_state(done) == ERRAND_STATE_COMPLETED;
        if (rc == 0 && !completed) {
            err->code = ERRAND_EFAILED;
            snprintf(err->message, sizeof err->message, "light-load run %s ended %s: %s",
                     errand_run_id(done), errand_state_type_name(errand_run_state(done)),
                     errand_run_message(done));
            rc = ERRAND_EFAILED;
        }
        errand_run_free(submitted);
        errand_run_free(done);
        if (rc != 0)
            return rc;
        samples[(*n)++] = (double)(end - start) / NS_PER_MS;
        progress_draw(pr, "latency", i + 1, b->latency_runs, NULL, false);
    }
    return 0;
}

/* ---- the command -------------------------------------------------------------------------- */

struct bench_results {
    double submit_s, e2e_s;
    struct latency_summary start_delay, server, light;
    long long completed, failed;
    struct state_tally not_completed[BENCH_STATE_KINDS]; /* what the failed runs ended as */
    size_t n_not_completed;
};

static void json_latency(json_t *o, const char *prefix, const struct latency_summary *l)
{
    static const char *const names[] = {"p50_ms", "p90_ms", "p99_ms"};
    const double values[] = {l->p50, l->p90, l->p99};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[CELL_MAX];
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        json_object_set_new(o, key, l->n ? json_real(values[i]) : json_null());
    }
}

static void print_json(const struct bench *b, const struct bench_results *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "runs", json_integer(b->runs));
    json_object_set_new(o, "batch", json_integer(b->batch));
    json_object_set_new(o, "submitters", json_integer(b->submitters));
    json_object_set_new(o, "workers", json_integer(b->workers));
    json_object_set_new(o, "prefetch", json_integer(b->prefetch));
    json_object_set_new(o, "task", json_string(b->task));
    json_object_set_new(o, "completed", json_integer(r->completed));
    json_object_set_new(o, "failed", json_integer(r->failed));
    json_t *nc = json_object();
    for (size_t i = 0; i < r->n_not_completed; i++) {
        const struct state_tally *t = &r->not_completed[i];
        json_object_set_new(nc, t->type,
                            json_pack("{s:I, s:s, s:s}", "runs", (json_int_t)t->n, "sample_run",
                                      t->sample_id, "sample_message", t->sample_message));
    }
    json_object_set_new(o, "not_completed", nc);
    json_object_set_new(o, "submit_seconds", json_real(r->submit_s));
    json_object_set_new(o, "submit_per_s", json_real((double)b->runs / r->submit_s));
    json_object_set_new(o, "e2e_seconds", json_real(r->e2e_s));
    json_object_set_new(o, "e2e_per_s", json_real((double)b->runs / r->e2e_s));
    json_object_set_new(o, "latency_runs", json_integer((long long)r->light.n));
    json_latency(o, "", &r->light);
    json_object_set_new(o, "start_delay_samples", json_integer((long long)r->start_delay.n));
    json_latency(o, "load_start_", &r->start_delay);
    json_object_set_new(o, "server_samples", json_integer((long long)r->server.n));
    json_latency(o, "load_server_", &r->server);
    json_dumpf(o, stdout,
               JSON_INDENT(BENCH_JSON_INDENT) | JSON_PRESERVE_ORDER |
                   JSON_REAL_PRECISION(BENCH_JSON_DIGITS));
    fputc('\n', stdout);
    json_decref(o);
}

static void print_latency_line(const char *label, const struct latency_summary *l)
{
    if (l->n == 0)
        printf("  %-*s %s\n", LATENCY_LABEL_WIDTH, label, "(no samples)");
    else
        printf("  %-*s %9.3f %9.3f %9.3f %9.3f  (%zu run%s)\n", LATENCY_LABEL_WIDTH, label, l->p50,
               l->p90, l->p99, l->max, l->n, l->n == 1 ? "" : "s");
}

static void print_summary(const struct bench *b, const struct bench_results *r)
{
    printf("====== errand bench: %lld runs of %s ======\n", b->runs, b->task);
    printf("  server:      %s\n", b->client_opt.api_url);
    if (b->batch == 1)
        printf("  submission:  one request per run, %lld submitter threads\n", b->submitters);
    else
        printf("  submission:  batches of %lld, %lld submitter threads\n", b->batch, b->submitters);
    if (b->workers > 0)
        printf("  workers:     one in-process worker, %lld task threads\n", b->workers);
    else
        printf("  workers:     the ones already serving %s\n", b->task);
    printf("\n  submit:      %lld runs in %.3f s  %12.0f runs/s\n", b->runs, r->submit_s,
           (double)b->runs / r->submit_s);
    printf("  end-to-end:  %lld runs in %.3f s  %12.0f runs/s  (first submit -> all final in "
           "the server)\n",
           b->runs, r->e2e_s, (double)b->runs / r->e2e_s);
    printf("  outcome:     %lld completed, %lld failed\n", r->completed, r->failed);
    printf("\n  %-*s %9s %9s %9s %9s\n", LATENCY_LABEL_WIDTH, "latency (ms)", "p50", "p90", "p99",
           "max");
    print_latency_line("under load: submit -> task start", &r->start_delay);
    print_latency_line("under load: created -> finished (server)", &r->server);
    if (r->failed)
        printf("  %-*s %s\n", LATENCY_LABEL_WIDTH, "light load: submit -> result (client)",
               "(skipped: bench runs did not complete)");
    else
        print_latency_line("light load: submit -> result (client)", &r->light);
}

/* On stderr: how many bench runs ended in which state, with a sample run and message each. */
static void explain_not_completed(const struct bench *b, const struct bench_results *r)
{
    fprintf(stderr, "errand bench: %lld of %lld bench runs of %s did not complete:", r->failed,
            b->runs, b->task);
    for (size_t i = 0; i < r->n_not_completed; i++) {
        const struct state_tally *t = &r->not_completed[i];
        fprintf(stderr, "%s %lld %s (e.g. run %s: %s)", i ? "," : "", t->n, t->type, t->sample_id,
                t->sample_message[0] ? t->sample_message : "no message");
    }
    fprintf(stderr, "\nhint: 'errand runs show ID' and 'errand runs logs ID' tell more of a run; "
                    "the figures above measured failing runs, not the platform.\n");
}

static int parse_bench(const struct args *a, struct bench *b)
{
    b->runs = BENCH_DEFAULT_RUNS;
    b->batch = BENCH_DEFAULT_BATCH;
    b->submitters = BENCH_DEFAULT_SUBMITTERS;
    b->workers = BENCH_DEFAULT_WORKERS;
    b->prefetch = 0;
    b->latency_runs = BENCH_DEFAULT_LATENCY_RUNS;
    b->timeout_s = BENCH_DEFAULT_TIMEOUT_S;
    int st;
    if ((st = args_get_int(a, "runs", 1, BENCH_MAX_RUNS, &b->runs)) ||
        (st = args_get_int(a, "batch", 1, BENCH_MAX_BATCH, &b->batch)) ||
        (st = args_get_int(a, "submitters", 1, BENCH_MAX_SUBMITTERS, &b->submitters)) ||
        (st = args_get_int(a, "workers", 0, BENCH_MAX_WORKERS, &b->workers)) ||
        (st = args_get_int(a, "prefetch", 0, BENCH_MAX_WORKERS, &b->prefetch)) ||
        (st = args_get_int(a, "latency-runs", 0, BENCH_MAX_RUNS, &b->latency_runs)) ||
        (st = args_get_double(a, "timeout", 0, 1e9, &b->timeout_s)))
        return st;
    if (b->batch == 1 && !args_get(a, "submitters"))
        b->submitters = BENCH_DEFAULT_SUBMITTERS_SINGLE;
    b->task = args_get(a, "task") ? args_get(a, "task") : BENCH_DEFAULT_TASK;
    if (!b->task[0])
        return args_usage_error(a->cmd, "--task must not be empty");
    b->as_json = args_has(a, "json");
    if ((st = args_load_settings(a, &b->s)) != CLI_EXIT_OK)
        return st;
    /* The worker's info lines would tear the progress bar; keep them unless asked for. */
    if (b->s.source[SET_LOG_LEVEL] == SETTING_DEFAULT)
        log_set_level(LOG_WARNING);
    b->client_opt.api_url = settings_str(&b->s, SET_API_URL);
    b->client_opt.api_key = settings_str(&b->s, SET_API_KEY);
    return CLI_EXIT_OK;
}

/* Waits until the server lists our worker, so its start-up is not timed. */
static int wait_worker_ready(const struct bench *b, errand_client *c, const char *name,
                             errand_error *err)
{
    int64_t deadline = mono_ns() + (int64_t)WORKER_READY_TIMEOUT_MS * NS_PER_MS;
    while (mono_ns() < deadline) {
        int status = 0;
        char *body = NULL;
        int rc = errand_request(c, "GET", "/workers", NULL, &status, &body, err);
        if (rc != 0)
            return rc;
        bool found = false;
        json_t *root = status == BENCH_HTTP_OK ? json_loads(body, 0, NULL) : NULL;
        errand_free(body);
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(root, "workers"), i, w)
        {
            const char *n = json_string_value(json_object_get(w, "name"));
            found = found || (n && strcmp(n, name) == 0);
        }
        json_decref(root);
        if (found)
            return 0;
        sleep_ms(WORKER_READY_POLL_MS);
    }
    return 0; /* not listed yet: measure anyway, the first claims will just come late */
}

static int start_worker(struct bench *b, errand_client *c, errand_error *err, pthread_t *thread)
{
    char name[CELL_MAX];
    snprintf(name, sizeof name, "errand-bench-%ld", (long)getpid());
    errand_worker_options opt;
    errand_worker_options_init(&opt);
    opt.api_url = b->client_opt.api_url;
    opt.api_key = b->client_opt.api_key;
    opt.name = name;
    opt.concurrency = (int)b->workers;
    opt.prefetch = (int)b->prefetch;
    opt.persist_by_default = ERRAND_NO;
    opt.log_prints = ERRAND_NO;
    opt.handle_signals = false;
    errand_task_def def = {
        .name = b->task, .persist_result = ERRAND_NO, .fn = bench_task, .userdata = b};
    int rc = errand_worker_new(&opt, &b->worker, err);
    if (rc == 0)
        rc = errand_worker_add_task(b->worker, &def, err);
    if (rc == 0 && pthread_create(thread, NULL, serve_thread, b) != 0) {
        err->code = rc = ERRAND_ENOMEM;
        snprintf(err->message, sizeof err->message, "cannot start the worker thread");
    }
    if (rc != 0) {
        errand_worker_free(b->worker);
        b->worker = NULL;
        return rc;
    }
    return wait_worker_ready(b, c, name, err);
}

/* Phase 1; fills the submit and e2e times. */
static int throughput_phase(struct bench *b, errand_client *c, struct progress *pr,
                            struct bench_results *r, errand_error *err)
{
    pthread_t *threads = calloc((size_t)b->submitters, sizeof *threads);
    if (!threads)
        return ERRAND_ENOMEM;
    b->t0_ns = mono_ns();
    long long started = 0;
    for (; started < b->submitters; started++)
        if (pthread_create(&threads[started], NULL, submit_thread, b) != 0)
            break;
    if (started < b->submitters) {
        err->code = ERRAND_ENOMEM;
        snprintf(err->message, sizeof err->message, "cannot start submitter threads");
        atomic_store(&b->abort, true);
    }
    while (atomic_load(&b->submitters_done) < started) {
        progress_draw(pr, "submitting", atomic_load(&b->submitted), b->runs, NULL, false);
        sleep_ms(MONITOR_STEP_MS);
    }
    for (long long i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    if (b->first_err.code) {
        *err = b->first_err;
        return err->code;
    }
    if (started < b->submitters)
        return err->code;
    r->submit_s = (double)(atomic_load(&b->submit_end_ns) - b->t0_ns) / NS_PER_S;
    int64_t end_ns = 0;
    int rc = wait_all_final(b, c, pr, &end_ns, err);
    if (rc == 0)
        r->e2e_s = (double)(end_ns - b->t0_ns) / NS_PER_S;
    return rc;
}

static int measure(struct bench *b, errand_client *c, struct bench_results *r, errand_error *err)
{
    struct progress pr;
    progress_init(&pr);
    int rc = throughput_phase(b, c, &pr, r, err);
    progress_clear(&pr);
    if (rc != 0)
        return rc;

    /* Phase 2: latency under load, from this process and from the server. */
    double *delays = calloc((size_t)b->runs, sizeof *delays);
    struct server_figures f = {.tally = r->not_completed};
    if (!delays)
        return ERRAND_ENOMEM;
    size_t n = 0;
    for (long long i = 0; i < b->runs; i++) {
        long long d = atomic_load_explicit(&b->start_delay_ns[i], memory_order_relaxed);
        if (d >= 0)
            delays[n++] = (double)d / NS_PER_MS;
    }
    latency_summarize(delays, n, &r->start_delay);
    free(delays);
    rc = read_server_figures(b, c, &f, err);
    if (rc == 0) {
        latency_summarize(f.created_to_finished_ms, f.n, &r->server);
        r->completed = f.completed;
        r->failed = f.failed;
        r->n_not_completed = f.n_tally;
    }
    free(f.created_to_finished_ms);
    if (rc != 0 || r->failed)
        return rc; /* runs that did not complete: run_bench says why; phase 3 would not help */

    /* Phase 3: light load. */
    double *light = calloc(b->latency_runs ? (size_t)b->latency_runs : 1, sizeof *light);
    if (!light)
        return ERRAND_ENOMEM;
    size_t n_light = 0;
    rc = light_latency(b, c, light, &n_light, err, &pr);
    progress_clear(&pr);
    latency_summarize(light, n_light, &r->light);
    free(light);
    return rc;
}

static int run_bench(const struct args *a)
{
    struct bench *b = calloc(1, sizeof *b);
    if (!b)
        return CLI_EXIT_FAILURE;
    int status = parse_bench(a, b);
    if (status != CLI_EXIT_OK) {
        free(b);
        return status;
    }
    pthread_mutex_init(&b->err_lock, NULL);
    b->bench_id = (unsigned)getpid() ^ (unsigned)clock_now_ms();
    snprintf(b->tag, sizeof b->tag, "errand-bench-%u", b->bench_id);
    b->tags[0] = b->tag;
    errand_submit_options_init(&b->submit_opt);
    b->submit_opt.tags = b->tags;
    b->submit_opt.n_tags = 1;
    b->submit_opt.persist_result = ERRAND_NO;
    b->start_delay_ns = malloc((size_t)b->runs * sizeof *b->start_delay_ns);
    errand_error err = {0};
    errand_client *c = NULL;
    pthread_t worker_thread;
    struct bench_results r = {0};
    int http_status = 0;
    char *answer = NULL;
    if (!b->start_delay_ns) {
        fprintf(stderr, "errand bench: out of memory for %lld runs\n", b->runs);
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    for (long long i = 0; i < b->runs; i++)
        atomic_init(&b->start_delay_ns[i], -1);

    /* One authenticated request first, so an unreachable server or a wrong key is one clear
       message rather than a worker retrying in the background. */
    if (errand_client_new(&b->client_opt, &c, &err) != 0 ||
        errand_request(c, "GET", "/workers", NULL, &http_status, &answer, &err) != 0) {
        status = out_error(a->cmd, &err);
        goto done;
    }
    if (http_status != BENCH_HTTP_OK) {
        errand_error_from_response(http_status, answer, &err);
        errand_free(answer);
        status = out_error(a->cmd, &err);
        goto done;
    }
    errand_free(answer);
    if (b->workers > 0 && start_worker(b, c, &err, &worker_thread) != 0) {
        status = out_error(a->cmd, &err);
        goto done;
    }
    if (measure(b, c, &r, &err) != 0) {
        status = out_error(a->cmd, &err);
    } else {
        if (b->as_json)
            print_json(b, &r);
        else
            print_summary(b, &r);
        status = CLI_EXIT_OK;
        if (r.failed) {
            explain_not_completed(b, &r);
            status = CLI_EXIT_FAILURE;
        }
    }
    if (b->worker) {
        errand_worker_stop(b->worker);
        pthread_join(worker_thread, NULL);
        errand_worker_free(b->worker);
    }
done:
    errand_client_free(c);
    free(b->start_delay_ns);
    pthread_mutex_destroy(&b->err_lock);
    free(b);
    return status;
}

static const struct cli_option bench_options[] = {
    {"runs", "N", false, "runs to submit in the throughput phase (default 20000)"},
    {"batch", "B", false, "runs per submit request (default 500; 1 = errand_submit per run)"},
    {"submitters", "K", false,
     "submitting threads, one client each (default 4; 32 with --batch 1)"},
    {"workers", "M", false,
     "task threads of the in-process worker (default 128); 0 = use workers already running"},
    {"prefetch", "P", false,
     "runs the in-process worker claims beyond its task threads (default 0)"},
    {"task", "NAME", false, "task name of the bench runs (default errand.noop)"},
    {"latency-runs", "R", false, "runs of the light-load latency phase (default 200; 0 = skip)"},
    {"timeout", "S", false, "give up when runs are not final after S seconds (default 600)"},
    {"json", NULL, false, "print one JSON object instead of the summary"},
    {NULL, NULL, false, NULL},
};

static const enum setting_id bench_settings[] = {SET_API_URL, SET_API_KEY, SET_LOG_LEVEL,
                                                 SET_LOG_FORMAT};

const struct cli_command cmd_bench = {
    .group = NULL,
    .name = "bench",
    .summary = "Benchmark a running server: submit/s, end-to-end runs/s, latency",
    .usage = "[--runs N] [--batch B] [--submitters K] [--workers M] [--json] [options]",
    .options = bench_options,
    .settings = bench_settings,
    .n_settings = sizeof bench_settings / sizeof bench_settings[0],
    .details =
        "Runs against a server that is already running (errand server start). An in-process\n"
        "worker serves the task with a no-op that returns null.\n"
        "\n"
        "What is measured:\n"
        "  submit/s      N / time from the first submit request to the last answer\n"
        "  e2e runs/s    N / time from the first submit request until the server lists none\n"
        "                of the bench's runs as unfinished (runs carry a tag unique to this\n"
        "                bench; polled back to back once the in-process worker ran all N)\n"
        "  latency under load, over the N runs:\n"
        "    submit -> task start   each run's parameters carry its submit time; the task,\n"
        "                           in this process, notes when it starts (same clock)\n"
        "    created -> finished    the server's own timestamps of each run (ms resolution)\n"
        "  latency at light load (p50_ms, p90_ms, p99_ms in --json):\n"
        "    submit -> result       R runs one at a time: errand_submit, then errand_wait\n"
        "                           until final, timed by the client\n"
        "\n"
        "--json keys: runs, batch, submitters, workers, task, completed, failed,\n"
        "not_completed ({STATE: {runs, sample_run, sample_message}}), submit_seconds,\n"
        "submit_per_s, e2e_seconds, e2e_per_s, latency_runs, p50_ms, p90_ms, p99_ms,\n"
        "load_start_p50_ms ... load_start_p99_ms, load_server_p50_ms ... load_server_p99_ms.\n"
        "The runs stay in the server's store afterwards. A progress bar is drawn on stderr\n"
        "when it is a terminal. When any bench run did not complete, the bench says how many\n"
        "ended in which state (with a sample run and its message), skips the light-load\n"
        "phase and exits with status 1.",
    .run = run_bench,
};
