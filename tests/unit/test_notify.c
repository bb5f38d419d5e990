/* SPDX-License-Identifier: MIT */
/*
 * test_notify.c — keyed wake-ups of parked waiters (server/notify.h): a signal wakes the
 * waiters of its key and no others, a whole-topic signal wakes them all, a signal between
 * listening and parking is not lost (the park is refused), a waiter with several keys wakes
 * for any of them, parked waiters wake at their times in order, an unlistened waiter is never
 * called, and shutdown wakes every parked waiter and refuses later parks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "server/notify.h"

/* Waits that must time out are given this long: long enough to see a wrong wake-up. */
#define SHORT_WAIT_MS 50

/* A wake-up as a parked long-poll sees it. */
struct wake {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls;
    bool signalled;
    int64_t at_ms;
};

static void on_wake(void *arg, bool signalled)
{
    struct wake *k = arg;
    pthread_mutex_lock(&k->mu);
    k->calls++;
    k->signalled = signalled;
    k->at_ms = clock_mono_ms();
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->mu);
}

static void wake_init(struct wake *k)
{
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cond, NULL);
    k->calls = 0;
}

static void wake_wait(struct wake *k)
{
    pthread_mutex_lock(&k->mu);
    while (k->calls == 0)
        pthread_cond_wait(&k->cond, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

/* Parks w for ms: whether a signal (not the time) ended it. */
static bool signalled_within(notify *n, notify_waiter *w, int64_t ms)
{
    struct wake k;
    wake_init(&k);
    if (!notify_waiter_park(n, w, clock_mono_ms() + ms, on_wake, &k))
        return true; /* signalled before the park */
    wake_wait(&k);
    assert_int_equal(k.calls, 1);
    return k.signalled;
}

static void a_signal_wakes_only_its_key(void **state)
{
    (void)state;
    notify *n = notify_new();
    assert_non_null(n);
    const char *a[] = {"task.a"}, *b[] = {"task.b"}, *both[] = {"task.b", "task.a"};
    notify_waiter *wa = notify_listen(n, NOTIFY_RUNS_DUE, a, 1);
    notify_waiter *wb = notify_listen(n, NOTIFY_RUNS_DUE, b, 1);
    notify_waiter *wab = notify_listen(n, NOTIFY_RUNS_DUE, both, 2);
    notify_waiter *final_a = notify_listen(n, NOTIFY_RUN_FINAL, a, 1);
    assert_non_null(wa);
    assert_non_null(wb);
    assert_non_null(wab);
    assert_non_null(final_a);

    /* Signalled before the wait: not lost. */
    notify_signal_key(n, NOTIFY_RUNS_DUE, "task.a");
    assert_true(signalled_within(n, wa, SHORT_WAIT_MS));
    assert_true(signalled_within(n, wab, SHORT_WAIT_MS));
    assert_false(signalled_within(n, wb, SHORT_WAIT_MS));
    assert_false(signalled_within(n, final_a, SHORT_WAIT_MS)); /* another topic */
    /* Consumed by the wait that saw it. */
    assert_false(signalled_within(n, wa, SHORT_WAIT_MS));

    notify_signal_key(n, NOTIFY_RUNS_DUE, "task.b");
    assert_false(signalled_within(n, wa, SHORT_WAIT_MS));
    assert_true(signalled_within(n, wb, SHORT_WAIT_MS));
    assert_true(signalled_within(n, wab, SHORT_WAIT_MS));

    /* A key nobody listens for, and a prefix of one, wake nobody. */
    notify_signal_key(n, NOTIFY_RUNS_DUE, "task");
    assert_false(signalled_within(n, wa, SHORT_WAIT_MS));

    /* The whole topic. */
    notify_signal(n, NOTIFY_RUNS_DUE);
    assert_true(signalled_within(n, wa, SHORT_WAIT_MS));
    assert_true(signalled_within(n, wb, SHORT_WAIT_MS));
    assert_true(signalled_within(n, wab, SHORT_WAIT_MS));
    assert_false(signalled_within(n, final_a, SHORT_WAIT_MS));

    /* A waiter gone is no longer signalled (and nothing touches its memory). */
    notify_unlisten(n, wb);
    notify_signal_key(n, NOTIFY_RUNS_DUE, "task.b");
    assert_true(signalled_within(n, wab, SHORT_WAIT_MS));

    /* Shutdown wakes a parked waiter at once (not after the minute it asked for), as a
     * signal, and refuses later parks. */
    struct wake k;
    wake_init(&k);
    int64_t before = clock_mono_ms();
    assert_true(notify_waiter_park(n, wa, before + 60 * 1000, on_wake, &k));
    assert_int_equal(notify_parked(n), 1);
    notify_shutdown(n);
    wake_wait(&k);
    assert_true(k.signalled);
    assert_true(k.at_ms - before < 30 * 1000);
    assert_true(notify_is_shutdown(n));
    assert_false(notify_waiter_park(n, wa, clock_mono_ms() + 60 * 1000, on_wake, &k));
    assert_int_equal(notify_parked(n), 0);

    notify_unlisten(n, wa);
    notify_unlisten(n, wab);
    notify_unlisten(n, final_a);
    notify_free(n);
}

/* Many waiters on colliding buckets: each signal still reaches exactly its own. */
static void many_waiters_each_woken_by_its_own_key(void **state)
{
    (void)state;
    enum { WAITERS = 600 };
    notify *n = notify_new();
    static char names[WAITERS][16];
    notify_waiter *w[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        snprintf(names[i], sizeof names[i], "run-%d", i);
        const char *keys[] = {names[i]};
        w[i] = notify_listen(n, NOTIFY_RUN_FINAL, keys, 1);
        assert_non_null(w[i]);
    }
    for (int i = 0; i < WAITERS; i += 7)
        notify_signal_key(n, NOTIFY_RUN_FINAL, names[i]);
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(signalled_within(n, w[i], 0), i % 7 == 0);
    for (int i = 0; i < WAITERS; i++)
        notify_unlisten(n, w[i]);
    notify_free(n);
}

/* Parked waiters wake at their own times, earliest first, never before; a waiter that stops
 * listening while parked is never called. */
static void parked_waiters_wake_at_their_times_in_order(void **state)
{
    (void)state;
    enum { WAITERS = 300, SPREAD_MS = 400 };
    notify *n = notify_new();
    static char names[WAITERS][16];
    static struct wake k[WAITERS];
    static int64_t until[WAITERS];
    notify_waiter *w[WAITERS];
    srand(7);
    int64_t start = clock_mono_ms();
    for (int i = 0; i < WAITERS; i++) {
        snprintf(names[i], sizeof names[i], "run-%d", i);
        const char *keys[] = {names[i]};
        w[i] = notify_listen(n, NOTIFY_RUN_FINAL, keys, 1);
        assert_non_null(w[i]);
        wake_init(&k[i]);
        until[i] = start + 50 + rand() % SPREAD_MS;
        assert_true(notify_waiter_park(n, w[i], until[i], on_wake, &k[i]));
    }
    /* Every tenth stops listening while parked. */
    for (int i = 0; i < WAITERS; i += 10) {
        notify_unlisten(n, w[i]);
        w[i] = NULL;
    }
    assert_int_equal(notify_parked(n), WAITERS - WAITERS / 10);
    for (int i = 0; i < WAITERS; i++)
        if (w[i])
            wake_wait(&k[i]);
    assert_int_equal(notify_parked(n), 0);
    for (int i = 0; i < WAITERS; i++) {
        if (!w[i]) {
            assert_int_equal(k[i].calls, 0);
            continue;
        }
        assert_int_equal(k[i].calls, 1);
        assert_false(k[i].signalled);
        assert_true(k[i].at_ms >= until[i]);
        for (int j = 0; j < WAITERS; j++) /* woken in the order of their times */
            if (w[j] && until[j] < until[i])
                assert_true(k[j].at_ms <= k[i].at_ms);
    }
    for (int i = 0; i < WAITERS; i++)
        notify_unlisten(n, w[i]);
    notify_free(n);
}

/* A signal wakes a parked waiter once, and only once: a second signal before it parks again
 * marks it instead (its next park is refused). */
static void a_parked_waiter_wakes_once(void **state)
{
    (void)state;
    notify *n = notify_new();
    const char *a[] = {"task.a"};
    notify_waiter *w = notify_listen(n, NOTIFY_RUNS_DUE, a, 1);
    struct wake k;
    wake_init(&k);
    assert_true(notify_waiter_park(n, w, clock_mono_ms() + 60 * 1000, on_wake, &k));
    notify_signal_key(n, NOTIFY_RUNS_DUE, "task.a");
    notify_signal(n, NOTIFY_RUNS_DUE);
    wake_wait(&k);
    assert_int_equal(k.calls, 1);
    assert_true(k.signalled);
    assert_false(notify_waiter_park(n, w, clock_mono_ms() + 60 * 1000, on_wake, &k));
    assert_int_equal(k.calls, 1);
    notify_unlisten(n, w);
    notify_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parked_waiters_wake_at_their_times_in_order),
        cmocka_unit_test(a_parked_waiter_wakes_once),
        cmocka_unit_test(a_signal_wakes_only_its_key),
        cmocka_unit_test(many_waiters_each_woken_by_its_own_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
