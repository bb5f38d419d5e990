/* SPDX-License-Identifier: MIT */
/*
 * latency.c — nearest-rank percentiles (the p-th percentile is the smallest sample with at
 * least p% of the samples at or below it), so every figure is a latency that was measured.
 */
#include "latency.h"

#include <stdlib.h>

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define PERCENT 100

static double percentile(const double *sorted, size_t n, size_t p)
{
    size_t rank = (p * n + PERCENT - 1) / PERCENT; /* ceil(p/100 * n) */
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

void latency_summarize(double *samples, size_t n, struct latency_summary *out)
{
    *out = (struct latency_summary){.n = n};
    if (n == 0)
        return;
    qsort(samples, n, sizeof *samples, compare_double);
    out->p50 = percentile(samples, n, 50);
    out->p90 = percentile(samples, n, 90);
    out->p99 = percentile(samples, n, 99);
    out->max = samples[n - 1];
}
