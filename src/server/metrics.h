/* SPDX-License-Identifier: MIT */
/*
 * metrics.h — the server's Prometheus counters and the text of GET /metrics. Counters are
 * C11 atomics, so any handler thread or the sweeper may bump them without a lock.
 */
#ifndef ERRAND_SERVER_METRICS_H
#define ERRAND_SERVER_METRICS_H

#include <stdint.h>

#include "errand/errand.h"
#include "store/store.h"

enum metric_counter {
    METRIC_HTTP_REQUESTS = 0, /* errand_http_requests_total */
    METRIC_CLAIMS,            /* errand_claims_total: runs handed to workers */
    METRIC_REPORTS,           /* errand_reports_total: report items received */
    METRIC_LEASE_EXPIRIES,    /* errand_lease_expiries_total */
    METRIC_RUNS_DELETED,      /* errand_runs_deleted_total: removed by retention */
    METRIC_COUNT
};

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);

void metrics_add(metrics *m, enum metric_counter c, uint64_t n);
uint64_t metrics_get(const metrics *m, enum metric_counter c);

/* The Prometheus text exposition (format 0.0.4) of the counters, of the run counts by state
 * from the store and of the long-polls parked now; *text_out is mem_alloc'd. */
int metrics_render(const metrics *m, store *st, size_t parked_long_polls, char **text_out,
                   errand_error *err);

#endif
