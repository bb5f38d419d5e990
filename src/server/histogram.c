/* SPDX-License-Identifier: MIT */
/*
 * histogram.c — lock-free Prometheus histograms (see histogram.h).
 */
#include "server/histogram.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

const struct histogram_bounds histogram_latency = {
    16,
    {NS_PER_MS / 10, NS_PER_MS / 4, NS_PER_MS / 2, NS_PER_MS, 5 * NS_PER_MS / 2, 5 * NS_PER_MS,
     10 * NS_PER_MS, 25 * NS_PER_MS, 50 * NS_PER_MS, 100 * NS_PER_MS, 250 * NS_PER_MS,
     500 * NS_PER_MS, NS_PER_S, 5 * NS_PER_S / 2, 5 * NS_PER_S, 10 * NS_PER_S},
    {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
     "0.25", "0.5", "1", "2.5", "5", "10"},
};

const struct histogram_bounds histogram_run_times = {
    16,
    {5 * NS_PER_MS, 10 * NS_PER_MS, 50 * NS_PER_MS, 100 * NS_PER_MS, 500 * NS_PER_MS, NS_PER_S,
     5 * NS_PER_S / 2, 5 * NS_PER_S, 10 * NS_PER_S, 30 * NS_PER_S, 60 * NS_PER_S, 300 * NS_PER_S,
     900 * NS_PER_S, 3600 * NS_PER_S, 21600 * NS_PER_S, 86400 * NS_PER_S},
    {"0.005", "0.01", "0.05", "0.1", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "900", "3600",
     "21600", "86400"},
};

void histogram_observe(struct histogram *h, const struct histogram_bounds *b, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    size_t i = 0;
    while (i < b->n && ns > b->ns[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)ns, memory_order_relaxed);
}

uint64_t histogram_count(struct histogram *h, const struct histogram_bounds *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= b->n; i++)
        n += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return n;
}

void histogram_write(struct histogram *h, const struct histogram_bounds *b, const char *name,
                     const char *labels,
                     void (*put)(void *arg, const char *fmt, ...)
                         __attribute__((format(printf, 2, 3))),
                     void *arg)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cumulative = 0;
    /* the sum first: read before the buckets, it never exceeds what they count */
    uint64_t sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    for (size_t i = 0; i < b->n; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        put(arg, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, b->le[i],
            (unsigned long long)cumulative);
    }
    cumulative += atomic_load_explicit(&h->bucket[b->n], memory_order_relaxed);
    put(arg, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
        (unsigned long long)cumulative);
    put(arg, "%s_sum%s%s%s %llu.%09llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)(sum_ns / NS_PER_S), (unsigned long long)(sum_ns % NS_PER_S));
    put(arg, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)cumulative);
}
