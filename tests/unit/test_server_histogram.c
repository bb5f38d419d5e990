/* SPDX-License-Identifier: MIT */
/*
 * test_server_histogram.c — the lock-free histograms of /metrics (server/histogram.h): an
 * observation lands in the first bucket whose bound it does not exceed (a value on a bound
 * counts in that bucket, as Prometheus' "le" says), the text is cumulative, ends with +Inf
 * equal to _count, and the sum is exact in seconds; threads observing at once lose nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/histogram.h"

#define NS_PER_MS INT64_C(1000000)
#define THREADS 4
#define PER_THREAD 100000
#define TEXT_MAX 4096

struct text {
    char buf[TEXT_MAX];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(void *arg, const char *fmt, ...)
{
    struct text *t = arg;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof t->buf - t->len);
    t->len += (size_t)n;
}

static void observations_land_in_their_bucket_and_the_text_is_cumulative(void **state)
{
    (void)state;
    struct histogram h = {0};
    histogram_observe(&h, &histogram_latency, -5);                      /* counts as 0 */
    histogram_observe(&h, &histogram_latency, NS_PER_MS);               /* on the 0.001 bound */
    histogram_observe(&h, &histogram_latency, NS_PER_MS + 1);           /* above: 0.0025 */
    histogram_observe(&h, &histogram_latency, 3600 * 1000 * NS_PER_MS); /* past 10 s */
    assert_int_equal(histogram_count(&h, &histogram_latency), 4);
    struct text t = {0};
    histogram_write(&h, &histogram_latency, "x_seconds", "task=\"a\"", put, &t);
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"0.001\"} 2\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"0.0025\"} 3\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"10\"} 3\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{task=\"a\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t.buf, "x_seconds_count{task=\"a\"} 4\n"));
    assert_non_null(strstr(t.buf, "x_seconds_sum{task=\"a\"} 3600.002000001\n"));

    struct text bare = {0};
    histogram_write(&h, &histogram_run_times, "y_seconds", "", put, &bare);
    assert_non_null(strstr(bare.buf, "y_seconds_bucket{le=\"0.005\"} "));
    assert_non_null(strstr(bare.buf, "\ny_seconds_count 4\n"));
}

static void *observe_many(void *arg)
{
    for (int i = 0; i < PER_THREAD; i++)
        histogram_observe(arg, &histogram_run_times, (int64_t)(i % 7) * NS_PER_MS);
    return NULL;
}

static void concurrent_observations_are_all_counted(void **state)
{
    (void)state;
    struct histogram h = {0};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observe_many, &h), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(histogram_count(&h, &histogram_run_times), THREADS * PER_THREAD);
    uint64_t want = 0;
    for (int i = 0; i < PER_THREAD; i++)
        want += (uint64_t)(i % 7) * NS_PER_MS;
    assert_int_equal(atomic_load(&h.sum_ns), THREADS * want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(observations_land_in_their_bucket_and_the_text_is_cumulative),
        cmocka_unit_test(concurrent_observations_are_all_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
