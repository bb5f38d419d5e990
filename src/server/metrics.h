/* SPDX-License-Identifier: MIT */
/*
 * metrics.h — the server's Prometheus metrics and the text of GET /metrics (docs/operations.md,
 * "Metrics", lists every one).
 *
 * Two kinds, told apart by name and by their HELP text:
 *  - this server's own: counters, and histograms of HTTP, claim and commit latency, queue
 *    wait and run duration, and the outcomes of runs — kept in memory with C11 atomics, so
 *    handler threads and the store's threads bump them without a lock; with several servers
 *    on one store, sum them;
 *  - the store's (errand_task_runs, errand_store_*): read from the shared store at scrape
 *    time, from counters and index seeks (never a scan), the same on every server; take the
 *    max across servers.
 *
 * Task labels are bounded (task names are users' words): this server's per-task figures label
 * the first METRICS_TASKS_MAX task names it meets since it started (a counter must keep its
 * series) and sum every later one as task="other"; the store's gauges label the busiest
 * METRICS_TASKS_MAX tasks at each scrape and sum the rest as "other". A task actually named
 * "other" never gets a label of its own: it is always one of the "other" tasks.
 */
#ifndef ERRAND_SERVER_METRICS_H
#define ERRAND_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/store.h"

/* How many task names get a label of their own (per server; per scrape for the store's). */
#define METRICS_TASKS_MAX 50
/* The label of the tasks without one. */
#define METRICS_OTHER_TASK "other"

enum metric_counter {
    METRIC_HTTP_REQUESTS = 0,  /* errand_http_requests_total */
    METRIC_CLAIMS,             /* errand_claims_total: runs handed to workers */
    METRIC_REPORTS,            /* errand_reports_total: report items received */
    METRIC_LEASE_EXPIRIES,     /* errand_lease_expiries_total */
    METRIC_RUNS_DELETED,       /* errand_runs_deleted_total: removed by retention */
    METRIC_WEBHOOK_CALLS,      /* errand_webhook_calls_total: webhook calls made */
    METRIC_WEBHOOK_FAILURES,   /* errand_webhook_failures_total: calls without a 2xx answer */
    METRIC_WEBHOOKS_ABANDONED, /* errand_webhooks_abandoned_total: deliveries given up */
    METRIC_COUNT
};

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

void metrics_add(metrics *m, enum metric_counter c, uint64_t n);
uint64_t metrics_get(const metrics *m, enum metric_counter c);

/* One HTTP request of route (NULL: none matched) and method took ns, from its headers to
 * its reply having been sent. */
struct route;
void metrics_observe_http(metrics *m, const struct route *route, const char *method, int64_t ns);
/* A claim's handler answered after working ns (parking excluded). */
void metrics_observe_claim(metrics *m, int64_t ns);
/* A run of task was claimed wait_ms after it became due. */
void metrics_observe_wait(metrics *m, const char *task, int64_t wait_ms);

/* What the store tells this server (commits, outcomes), as the store's observer. */
void metrics_store_observer(metrics *m, struct store_observer *out);

/* What a scrape reads besides the metrics. */
struct metrics_scrape {
    size_t parked_long_polls;
    int64_t now_ms;
    int64_t worker_alive_ms; /* a worker is alive when seen within this long */
};

/* The Prometheus text exposition (format 0.0.4) of everything; *text_out is mem_alloc'd. */
int metrics_render(metrics *m, store *st, const struct metrics_scrape *scrape, char **text_out,
                   errand_error *err);

#endif
