/* SPDX-License-Identifier: MIT */
/*
 * metrics.c — the server's metrics (atomics) and their Prometheus text (see metrics.h).
 *
 * The store's gauges are read at scrape time from the store's counters (run_counts,
 * task_counts through store_read_stats), one index seek per task and priority for the oldest
 * ready run (store_oldest_ready) and the workers seen lately (a walk of the workers_seen index
 * that stops at the first worker not alive): the work of a scrape grows with the number of
 * tasks and live workers, never with the number of runs stored. A scrape reads on the store's
 * reader connections; it never takes the writer.
 */
#include "server/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "server/histogram.h"
#include "server/router.h"

#define STATE_COUNT 8 /* the errand_state values, as the store counts them */
/* The text grows as needed up to this; far above what METRICS_TASKS_MAX labels produce. */
#define METRICS_TEXT_FIRST 16384
#define METRICS_TEXT_MAX (16u << 20)
#define TASK_NAME_BYTES (WIRE_TASK_NAME_MAX * 4 + 1) /* UTF-8 */
#define LABEL_BYTES (2 * TASK_NAME_BYTES + 64)       /* escaped, with the label's name */
/* Workers read per scrape at most (the live ones: a walk from the most recently seen). */
#define METRICS_WORKERS_MAX 10000
#define NS_PER_MS INT64_C(1000000)

/* The outcomes counted per task: a state name each (a COMPLETED run is "Completed" when it
 * ran, "Cached" when a cache hit made it). */
enum final_kind { FINAL_COMPLETED, FINAL_CACHED, FINAL_FAILED, FINAL_CRASHED, FINAL_CANCELLED };
#define FINAL_KINDS 5
static const char *const final_names[FINAL_KINDS] = {"Completed", "Cached", "Failed", "Crashed",
                                                     "Cancelled"};

/* The methods an unmatched request is labelled with (any other: "other"). */
static const char *const unmatched_methods[] = {"GET",   "POST", "PUT",     "DELETE",
                                                "PATCH", "HEAD", "OPTIONS", "other"};
#define UNMATCHED_METHODS (sizeof unmatched_methods / sizeof unmatched_methods[0])

struct task_slot {
    char name[TASK_NAME_BYTES]; /* written once, before the slot is published */
    struct histogram wait, run;
    _Atomic uint64_t finals[FINAL_KINDS];
};

#define OTHER_KEY METRICS_TASKS_MAX

struct metrics {
    _Atomic uint64_t counter[METRIC_COUNT];
    size_t n_routes;
    struct histogram *http; /* n_routes, then UNMATCHED_METHODS */
    struct histogram claim, commit;
    pthread_mutex_t lock;   /* guards adding task slots (lookups take no lock) */
    _Atomic size_t n_tasks; /* slots published, in order; their names never change */
    struct task_slot tasks[METRICS_TASKS_MAX + 1]; /* [OTHER_KEY]: every other task */
};

static const struct {
    const char *name;
    const char *help;
} counter_info[METRIC_COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"errand_http_requests_total", "This server: HTTP requests received."},
    [METRIC_CLAIMS] = {"errand_claims_total",
                       "This server: task runs handed to workers by claims."},
    [METRIC_REPORTS] = {"errand_reports_total", "This server: report items received from workers."},
    [METRIC_LEASE_EXPIRIES] = {"errand_lease_expiries_total",
                               "This server: leases that ran out before the worker renewed them."},
    [METRIC_RUNS_DELETED] = {"errand_runs_deleted_total",
                             "This server: finished task runs deleted by retention "
                             "(ERRAND_RETENTION_SECONDS)."},
    [METRIC_WEBHOOK_CALLS] = {"errand_webhook_calls_total",
                              "This server: webhook calls made (each attempt counts)."},
    [METRIC_WEBHOOK_FAILURES] = {"errand_webhook_failures_total",
                                 "This server: webhook calls that got no 2xx answer."},
    [METRIC_WEBHOOKS_ABANDONED] = {"errand_webhooks_abandoned_total",
                                   "This server: webhook deliveries given up after "
                                   "ERRAND_WEBHOOK_MAX_ATTEMPTS failed calls."},
};

metrics *metrics_new(void)
{
    metrics *m = mem_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n_routes = router_route_count();
    if (!(m->http = mem_calloc(m->n_routes + UNMATCHED_METHODS, sizeof *m->http))) {
        mem_free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    mem_free(m->http);
    mem_free(m);
}

void metrics_add(metrics *m, enum metric_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&m->counter[c], n, memory_order_relaxed);
}

uint64_t metrics_get(const metrics *m, enum metric_counter c)
{
    return atomic_load_explicit(&((metrics *)m)->counter[c], memory_order_relaxed);
}

/* --- task labels ----------------------------------------------------------------------- */

static bool is_other(const char *task)
{
    return strcmp(task, METRICS_OTHER_TASK) == 0;
}

/* The slot of task: its own while fewer than METRICS_TASKS_MAX names have one, else the
 * "other" slot. Lock-free once the name has its slot. */
static int task_key(metrics *m, const char *task)
{
    if (!task || is_other(task) || strlen(task) >= TASK_NAME_BYTES)
        return OTHER_KEY;
    size_t n = atomic_load_explicit(&m->n_tasks, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->tasks[i].name, task) == 0)
            return (int)i;
    if (n == METRICS_TASKS_MAX)
        return OTHER_KEY;
    pthread_mutex_lock(&m->lock);
    int key = OTHER_KEY;
    size_t now = atomic_load_explicit(&m->n_tasks, memory_order_relaxed);
    for (size_t i = n; i < now && key == OTHER_KEY; i++) /* added while we looked */
        if (strcmp(m->tasks[i].name, task) == 0)
            key = (int)i;
    if (key == OTHER_KEY && now < METRICS_TASKS_MAX) {
        strcpy(m->tasks[now].name, task);
        atomic_store_explicit(&m->n_tasks, now + 1, memory_order_release);
        key = (int)now;
    }
    pthread_mutex_unlock(&m->lock);
    return key;
}

/* --- observations ---------------------------------------------------------------------- */

void metrics_observe_http(metrics *m, const struct route *route, const char *method, int64_t ns)
{
    size_t i;
    if (route) {
        i = router_route_index(route);
    } else {
        size_t k = 0;
        while (k + 1 < UNMATCHED_METHODS && (!method || strcmp(method, unmatched_methods[k]) != 0))
            k++;
        i = m->n_routes + k;
    }
    histogram_observe(&m->http[i], &histogram_latency, ns);
}

void metrics_observe_claim(metrics *m, int64_t ns)
{
    histogram_observe(&m->claim, &histogram_latency, ns);
}

void metrics_observe_wait(metrics *m, const char *task, int64_t wait_ms)
{
    histogram_observe(&m->tasks[task_key(m, task)].wait, &histogram_run_times, wait_ms * NS_PER_MS);
}

static int observer_task_key(void *arg, const char *task)
{
    return task_key(arg, task);
}

static void observer_run_final(void *arg, int key, errand_state type, bool cached, int64_t ran_ms)
{
    metrics *m = arg;
    if (key < 0 || key > OTHER_KEY)
        key = OTHER_KEY;
    struct task_slot *t = &m->tasks[key];
    int kind = type == ERRAND_STATE_COMPLETED ? (cached ? FINAL_CACHED : FINAL_COMPLETED)
               : type == ERRAND_STATE_FAILED  ? FINAL_FAILED
               : type == ERRAND_STATE_CRASHED ? FINAL_CRASHED
                                              : FINAL_CANCELLED;
    atomic_fetch_add_explicit(&t->finals[kind], 1, memory_order_relaxed);
    if (ran_ms >= 0)
        histogram_observe(&t->run, &histogram_run_times, ran_ms * NS_PER_MS);
}

static void observer_commit(void *arg, int64_t ns)
{
    metrics *m = arg;
    histogram_observe(&m->commit, &histogram_latency, ns);
}

void metrics_store_observer(metrics *m, struct store_observer *out)
{
    *out = (struct store_observer){m, observer_task_key, observer_run_final, observer_commit};
}

/* --- the text --------------------------------------------------------------------------- */

struct text {
    char *buf;
    size_t len, cap;
    bool full; /* out of memory or past METRICS_TEXT_MAX */
};

__attribute__((format(printf, 2, 3))) static void put(void *arg, const char *fmt, ...)
{
    struct text *t = arg;
    for (;;) {
        if (t->full)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t want = 2 * t->cap;
        char *more = want <= METRICS_TEXT_MAX ? mem_realloc(t->buf, want) : NULL;
        if (!more) {
            t->full = true;
            t->buf[t->len] = '\0';
            return;
        }
        t->buf = more;
        t->cap = want;
    }
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* 'task="<v>"' with v escaped as the text format asks (backslash, quote, newline). */
static void task_label(char out[LABEL_BYTES], const char *v)
{
    size_t k = (size_t)snprintf(out, LABEL_BYTES, "task=\"");
    for (; *v && k + 4 < LABEL_BYTES; v++) {
        if (*v == '\\' || *v == '"')
            out[k++] = '\\', out[k++] = *v;
        else if (*v == '\n')
            out[k++] = '\\', out[k++] = 'n';
        else
            out[k++] = *v;
    }
    out[k++] = '"';
    out[k] = '\0';
}

static void write_server(metrics *m, const struct metrics_scrape *sc, struct text *t)
{
    for (int c = 0; c < METRIC_COUNT; c++) {
        head(t, counter_info[c].name, "counter", counter_info[c].help);
        put(t, "%s %llu\n", counter_info[c].name,
            (unsigned long long)metrics_get(m, (enum metric_counter)c));
    }
    head(t, "errand_long_polls_parked", "gauge",
         "This server: claims and waits parked now, waiting for runs or a final state (they "
         "hold no thread).");
    put(t, "errand_long_polls_parked %zu\n", sc->parked_long_polls);

    head(t, "errand_http_request_duration_seconds", "histogram",
         "This server: HTTP requests from their headers to their reply sent, by method and "
         "route pattern (long-polls included: their time parked counts); route=\"unmatched\" "
         "for requests that matched no route or were refused before routing.");
    char labels[LABEL_BYTES];
    for (size_t i = 0; i < m->n_routes + UNMATCHED_METHODS; i++) {
        if (histogram_count(&m->http[i], &histogram_latency) == 0)
            continue;
        const struct route *r = i < m->n_routes ? router_route_at(i) : NULL;
        snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"",
                 r ? r->method : unmatched_methods[i - m->n_routes], r ? r->pattern : "unmatched");
        histogram_write(&m->http[i], &histogram_latency, "errand_http_request_duration_seconds",
                        labels, put, t);
    }
    head(t, "errand_claim_duration_seconds", "histogram",
         "This server: the work of answering a claim (POST /api/workers/claim), its time "
         "parked waiting for runs excluded.");
    histogram_write(&m->claim, &histogram_latency, "errand_claim_duration_seconds", "", put, t);
    head(t, "errand_store_commit_duration_seconds", "histogram",
         "This server: durable commits of its write transactions (SQLite: COMMIT with its "
         "fsync, groups of claims, heartbeats and starts alone left out; PostgreSQL: the round "
         "trip ending with COMMIT).");
    histogram_write(&m->commit, &histogram_latency, "errand_store_commit_duration_seconds", "", put,
                    t);

    size_t n = atomic_load_explicit(&m->n_tasks, memory_order_acquire);
    head(t, "errand_queue_wait_seconds", "histogram",
         "This server: task runs claimed, by how long they waited from when they were due "
         "(scheduled time, or the end of a retry delay) to their claim.");
    for (size_t i = 0; i <= n; i++) {
        struct task_slot *s = &m->tasks[i == n ? OTHER_KEY : i];
        task_label(labels, i == n ? METRICS_OTHER_TASK : s->name);
        histogram_write(&s->wait, &histogram_run_times, "errand_queue_wait_seconds", labels, put,
                        t);
    }
    head(t, "errand_run_duration_seconds", "histogram",
         "This server: runs that reached a final state from a worker's attempt, by the time from "
         "the attempt's start (or claim) to that state.");
    for (size_t i = 0; i <= n; i++) {
        struct task_slot *s = &m->tasks[i == n ? OTHER_KEY : i];
        task_label(labels, i == n ? METRICS_OTHER_TASK : s->name);
        histogram_write(&s->run, &histogram_run_times, "errand_run_duration_seconds", labels, put,
                        t);
    }
    head(t, "errand_runs_finished_total", "counter",
         "This server: task runs that reached a final state in a transaction it committed, by "
         "task and state name.");
    for (size_t i = 0; i <= n; i++) {
        struct task_slot *s = &m->tasks[i == n ? OTHER_KEY : i];
        task_label(labels, i == n ? METRICS_OTHER_TASK : s->name);
        for (int k = 0; k < FINAL_KINDS; k++)
            put(t, "errand_runs_finished_total{%s,state=\"%s\"} %llu\n", labels, final_names[k],
                (unsigned long long)atomic_load_explicit(&s->finals[k], memory_order_relaxed));
    }
}

/* --- the store's gauges ------------------------------------------------------------------ */

/* One task of the store, as a scrape sees it. */
struct store_task {
    int64_t queued;  /* SCHEDULED: ready or delayed */
    int64_t delayed; /* of those, the ones waiting for their time */
    int64_t active;  /* SCHEDULED, PENDING, RUNNING or CANCELLING */
    int64_t workers; /* live workers serving it */
    int64_t due;     /* its oldest ready run's due time, 0 = none */
    bool labelled;
};

/* Counts the live workers, and per task those serving it (into tasks[], or *other for a
 * task the stats do not list); *alive: all of them. */
static int count_workers(store *st, const struct metrics_scrape *sc, const struct store_stats *s,
                         struct store_task *tasks, int64_t *other, int64_t *alive,
                         errand_error *err)
{
    int64_t since = sc->now_ms - sc->worker_alive_ms;
    struct worker_cursor cursor = {0, NULL};
    char *cursor_name = NULL;
    bool more = true, done = false;
    int rc = 0;
    while (rc == 0 && more && !done && *alive < METRICS_WORKERS_MAX) {
        struct worker_list page = {0};
        if ((rc = store_list_workers(st, cursor_name ? &cursor : NULL, WIRE_LIST_LIMIT_MAX, &page,
                                     &more, err)) < 0)
            break;
        for (size_t i = 0; i < page.n && !done; i++) {
            struct worker_record *w = &page.items[i];
            if (w->last_seen < since) {
                done = true;
                break;
            }
            (*alive)++;
            json_t *served = w->tasks ? json_loads(w->tasks, 0, NULL) : NULL;
            size_t k;
            json_t *v;
            json_array_foreach(served, k, v)
            {
                const char *name = json_string_value(v);
                size_t j = name ? store_stats_find(s, name) : SIZE_MAX;
                if (j != SIZE_MAX)
                    tasks[j].workers++;
                else if (name)
                    (*other)++;
            }
            json_decref(served);
        }
        if (page.n > 0) {
            mem_free(cursor_name);
            cursor_name = mem_strdup(page.items[page.n - 1].name);
            cursor.last_seen = page.items[page.n - 1].last_seen;
            cursor.name = cursor_name;
            if (!cursor_name)
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        }
        worker_list_clear(&page);
        if (page.n == 0)
            break;
    }
    mem_free(cursor_name);
    return rc;
}

struct ranking {
    const struct store_stats *stats;
    const struct store_task *tasks;
};

/* Busiest first: most active runs, then most live workers, then by name. */
static int rank_cmp(const void *pa, const void *pb, void *arg)
{
    const struct ranking *r = arg;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct store_task *x = &r->tasks[a], *y = &r->tasks[b];
    if (x->active != y->active)
        return x->active > y->active ? -1 : 1;
    if (x->workers != y->workers)
        return x->workers > y->workers ? -1 : 1;
    return strcmp(r->stats->tasks[a].task, r->stats->tasks[b].task);
}

/* Picks the tasks that get a label: the METRICS_TASKS_MAX busiest of those with active runs
 * or live workers ("other" never). */
static int label_busiest(const struct store_stats *s, struct store_task *tasks, errand_error *err)
{
    size_t *order = mem_calloc(s->n_tasks ? s->n_tasks : 1, sizeof *order), n = 0;
    if (!order)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < s->n_tasks; i++)
        if ((tasks[i].active > 0 || tasks[i].workers > 0) && !is_other(s->tasks[i].task))
            order[n++] = i;
    struct ranking r = {s, tasks};
    qsort_r(order, n, sizeof *order, rank_cmp, &r);
    for (size_t i = 0; i < n && i < METRICS_TASKS_MAX; i++)
        tasks[order[i]].labelled = true;
    mem_free(order);
    return 0;
}

/* The oldest ready run of every task with queued runs. */
static int read_oldest(store *st, const struct store_stats *s, struct store_task *tasks,
                       errand_error *err)
{
    const char **names = mem_calloc(s->n_tasks ? s->n_tasks : 1, sizeof *names);
    int64_t *due = mem_calloc(s->n_tasks ? s->n_tasks : 1, sizeof *due);
    size_t *which = mem_calloc(s->n_tasks ? s->n_tasks : 1, sizeof *which), n = 0;
    int rc = 0;
    if (!names || !due || !which)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < s->n_tasks; i++)
        if (tasks[i].queued > 0) {
            names[n] = s->tasks[i].task;
            which[n++] = i;
        }
    if (rc == 0 && (rc = store_oldest_ready(st, names, n, due, err)) == 0)
        for (size_t k = 0; k < n; k++)
            tasks[which[k]].due = due[k];
    mem_free(names);
    mem_free(due);
    mem_free(which);
    return rc;
}

static double age_seconds(int64_t now_ms, int64_t due)
{
    return due > 0 && now_ms > due ? (double)(now_ms - due) / 1000.0 : 0.0;
}

static int write_store(store *st, const struct metrics_scrape *sc, struct text *t,
                       errand_error *err)
{
    struct store_stats s = {0};
    int rc = store_read_stats(st, sc->now_ms, 0, &s, err);
    if (rc < 0)
        return rc;
    struct store_task *tasks = mem_calloc(s.n_tasks ? s.n_tasks : 1, sizeof *tasks);
    int64_t other_workers = 0, alive = 0;
    if (!tasks) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s.n_tasks; i++) {
        const int64_t *c = s.tasks[i].counts;
        tasks[i].queued = c[ERRAND_STATE_SCHEDULED];
        tasks[i].delayed = s.tasks[i].delayed;
        tasks[i].active = c[ERRAND_STATE_SCHEDULED] + c[ERRAND_STATE_PENDING] +
                          c[ERRAND_STATE_RUNNING] + c[ERRAND_STATE_CANCELLING];
    }
    if ((rc = count_workers(st, sc, &s, tasks, &other_workers, &alive, err)) < 0 ||
        (rc = label_busiest(&s, tasks, err)) < 0 || (rc = read_oldest(st, &s, tasks, err)) < 0)
        goto done;

    head(t, "errand_task_runs", "gauge", "Store-wide: task runs stored, by state type.");
    for (int k = 0; k < STATE_COUNT; k++)
        put(t, "errand_task_runs{state=\"%s\"} %lld\n", state_type_name((errand_state)k),
            (long long)s.counts[k]);
    head(t, "errand_store_leases_held", "gauge",
         "Store-wide: task runs held by a worker under a lease (PENDING, RUNNING, CANCELLING).");
    put(t, "errand_store_leases_held %lld\n",
        (long long)(s.counts[ERRAND_STATE_PENDING] + s.counts[ERRAND_STATE_RUNNING] +
                    s.counts[ERRAND_STATE_CANCELLING]));
    head(t, "errand_store_workers_alive", "gauge",
         "Store-wide: workers seen within the alive window (three lease periods).");
    put(t, "errand_store_workers_alive %lld\n", (long long)alive);

    struct store_task other = {0};
    other.workers = other_workers;
    for (size_t i = 0; i < s.n_tasks; i++) {
        if (tasks[i].labelled)
            continue;
        other.queued += tasks[i].queued;
        other.delayed += tasks[i].delayed;
        other.workers += tasks[i].workers;
        if (tasks[i].due && (!other.due || tasks[i].due < other.due))
            other.due = tasks[i].due;
    }
    char labels[LABEL_BYTES];
    head(t, "errand_store_ready_runs", "gauge",
         "Store-wide: task runs ready to be claimed (SCHEDULED and due), by task.");
    for (size_t i = 0; i < s.n_tasks; i++)
        if (tasks[i].labelled) {
            task_label(labels, s.tasks[i].task);
            put(t, "errand_store_ready_runs{%s} %lld\n", labels,
                (long long)(tasks[i].queued - tasks[i].delayed));
        }
    put(t, "errand_store_ready_runs{task=\"" METRICS_OTHER_TASK "\"} %lld\n",
        (long long)(other.queued - other.delayed));
    head(t, "errand_store_delayed_runs", "gauge",
         "Store-wide: task runs waiting for their time (a delay, a retry delay), by task.");
    for (size_t i = 0; i < s.n_tasks; i++)
        if (tasks[i].labelled) {
            task_label(labels, s.tasks[i].task);
            put(t, "errand_store_delayed_runs{%s} %lld\n", labels, (long long)tasks[i].delayed);
        }
    put(t, "errand_store_delayed_runs{task=\"" METRICS_OTHER_TASK "\"} %lld\n",
        (long long)other.delayed);
    head(t, "errand_store_oldest_ready_age_seconds", "gauge",
         "Store-wide: how long the oldest ready run of the task has been due (0: none ready).");
    for (size_t i = 0; i < s.n_tasks; i++)
        if (tasks[i].labelled) {
            task_label(labels, s.tasks[i].task);
            put(t, "errand_store_oldest_ready_age_seconds{%s} %.3f\n", labels,
                age_seconds(sc->now_ms, tasks[i].due));
        }
    put(t, "errand_store_oldest_ready_age_seconds{task=\"" METRICS_OTHER_TASK "\"} %.3f\n",
        age_seconds(sc->now_ms, other.due));
    head(t, "errand_store_task_workers_alive", "gauge",
         "Store-wide: live workers that serve the task (for \"other\": the sum over the tasks "
         "without a label).");
    for (size_t i = 0; i < s.n_tasks; i++)
        if (tasks[i].labelled) {
            task_label(labels, s.tasks[i].task);
            put(t, "errand_store_task_workers_alive{%s} %lld\n", labels,
                (long long)tasks[i].workers);
        }
    put(t, "errand_store_task_workers_alive{task=\"" METRICS_OTHER_TASK "\"} %lld\n",
        (long long)other.workers);
done:
    mem_free(tasks);
    store_stats_clear(&s);
    return rc;
}

int metrics_render(metrics *m, store *st, const struct metrics_scrape *scrape, char **text_out,
                   errand_error *err)
{
    struct text t = {mem_alloc(METRICS_TEXT_FIRST), 0, METRICS_TEXT_FIRST, false};
    if (!t.buf)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    t.buf[0] = '\0';
    int rc = write_store(st, scrape, &t, err);
    if (rc == 0)
        write_server(m, scrape, &t);
    if (rc == 0 && t.full)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory writing the metrics");
    if (rc < 0) {
        mem_free(t.buf);
        return rc;
    }
    *text_out = t.buf;
    return 0;
}
