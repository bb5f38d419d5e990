/* SPDX-License-Identifier: MIT */
/*
 * metrics.c — counters (atomics) and their Prometheus text (see metrics.h). The run gauge
 * errand_task_runs{state} is read from the store at scrape time rather than kept in memory,
 * so it stays right when several servers share one store.
 */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"

#define STATE_COUNT 8         /* the errand_state values, as store_count_by_state fills them */
#define METRICS_TEXT_MAX 4096 /* room for every line below with 20-digit values */

struct metrics {
    _Atomic uint64_t counter[METRIC_COUNT];
};

static const struct {
    const char *name;
    const char *help;
} counter_info[METRIC_COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"errand_http_requests_total", "HTTP requests received."},
    [METRIC_CLAIMS] = {"errand_claims_total", "Task runs handed to workers by claims."},
    [METRIC_REPORTS] = {"errand_reports_total", "Report items received from workers."},
    [METRIC_LEASE_EXPIRIES] = {"errand_lease_expiries_total",
                               "Leases that ran out before the worker renewed them."},
    [METRIC_RUNS_DELETED] = {"errand_runs_deleted_total",
                             "Finished task runs deleted by retention (ERRAND_RETENTION_SECONDS)."},
};

metrics *metrics_new(void)
{
    metrics *m = mem_calloc(1, sizeof *m);
    if (m)
        for (int i = 0; i < METRIC_COUNT; i++)
            atomic_init(&m->counter[i], 0);
    return m;
}

void metrics_free(metrics *m)
{
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

/* printf at buf+*len, never past METRICS_TEXT_MAX (the text is sized so it never needs to). */
__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t *len, const char *fmt,
                                                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, METRICS_TEXT_MAX - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < METRICS_TEXT_MAX ? *len + (size_t)n : METRICS_TEXT_MAX - 1;
}

int metrics_render(const metrics *m, store *st, size_t parked_long_polls, char **text_out,
                   errand_error *err)
{
    int64_t counts[STATE_COUNT] = {0};
    int rc = store_count_by_state(st, counts, err);
    if (rc < 0)
        return rc;
    char *buf = mem_alloc(METRICS_TEXT_MAX);
    if (!buf)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    size_t len = 0;
    append(buf, &len,
           "# HELP errand_task_runs Task runs in the store by state type.\n"
           "# TYPE errand_task_runs gauge\n");
    for (int s = 0; s < STATE_COUNT; s++)
        append(buf, &len, "errand_task_runs{state=\"%s\"} %lld\n", state_type_name((errand_state)s),
               (long long)counts[s]);
    append(buf, &len,
           "# HELP errand_long_polls_parked Claims and waits parked now, waiting for runs or a "
           "final state (they hold no thread).\n"
           "# TYPE errand_long_polls_parked gauge\nerrand_long_polls_parked %zu\n",
           parked_long_polls);
    for (int c = 0; c < METRIC_COUNT; c++)
        append(buf, &len, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_info[c].name,
               counter_info[c].help, counter_info[c].name, counter_info[c].name,
               (unsigned long long)metrics_get(m, (enum metric_counter)c));
    *text_out = buf;
    return 0;
}
