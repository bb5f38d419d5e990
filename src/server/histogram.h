/* SPDX-License-Identifier: MIT */
/*
 * histogram.h — a Prometheus histogram kept with C11 atomics: one relaxed increment per
 * observation on its bucket and one on its sum, no lock, so any thread (handlers, the
 * store's writer) may observe. Buckets are counted apart and made cumulative when written
 * out, so an observation touches one bucket, not all above it. A scrape reads the counts one
 * by one while others observe: a bucket may be a few observations ahead of another, never
 * behind what an earlier scrape showed, which is all Prometheus asks of counters.
 */
#ifndef ERRAND_SERVER_HISTOGRAM_H
#define ERRAND_SERVER_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_BUCKETS_MAX 16

/* A bucket set: upper bounds in ns, ascending, and the same as Prometheus "le" text. */
struct histogram_bounds {
    size_t n;
    int64_t ns[HISTOGRAM_BUCKETS_MAX];
    const char *le[HISTOGRAM_BUCKETS_MAX];
};

/* Latencies of the server's own work (HTTP requests, claims, commits): 100 µs to 10 s. */
extern const struct histogram_bounds histogram_latency;
/* Times in the life of a run (queue wait, run duration): 5 ms to a day. */
extern const struct histogram_bounds histogram_run_times;

struct histogram {
    _Atomic uint64_t bucket[HISTOGRAM_BUCKETS_MAX + 1]; /* the last: above every bound */
    _Atomic uint64_t sum_ns;
};

/* Zeroed memory is an empty histogram. A negative ns counts as 0. */
void histogram_observe(struct histogram *h, const struct histogram_bounds *b, int64_t ns);

/* The count of observations (all buckets). */
uint64_t histogram_count(struct histogram *h, const struct histogram_bounds *b);

/* Writes the _bucket, _sum and _count lines of h for metric name with the label text
 * labels ("" or 'task="x"', without braces) through put (printf-like into the caller's
 * buffer). */
void histogram_write(struct histogram *h, const struct histogram_bounds *b, const char *name,
                     const char *labels,
                     void (*put)(void *arg, const char *fmt, ...)
                         __attribute__((format(printf, 2, 3))),
                     void *arg);

#endif
