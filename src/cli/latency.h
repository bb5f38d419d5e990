/* SPDX-License-Identifier: MIT */
/*
 * latency.h — summaries of latency samples for errand bench: nearest-rank percentiles.
 */
#ifndef ERRAND_CLI_LATENCY_H
#define ERRAND_CLI_LATENCY_H

#include <stddef.h>

struct latency_summary {
    size_t n;                  /* samples; the percentiles are meaningless when 0 */
    double p50, p90, p99, max; /* milliseconds */
};

/* Sorts samples (milliseconds) in place and summarises them. */
void latency_summarize(double *samples, size_t n, struct latency_summary *out);

#endif
