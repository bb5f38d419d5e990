/*
 * test_notify.c — keyed wake-ups (server/notify.h): a signal wakes the waiters of its key and
 * no others, a whole-topic signal wakes them all, a signal between listening and waiting is
 * not lost, a waiter with several keys wakes for any of them, and shutdown ends every wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "core/clock.h"
#include "server/notify.h"

/* Waits that must time out are given this long: long enough to see a wrong wake-up. */
#define SHORT_WAIT_MS 50

static bool signalled_within(notify *n, notify_waiter *w, int64_t ms)
{
    return notify_waiter_wait(n, w, clock_mono_ms() + ms);
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

    notify_shutdown(n);
    int64_t before = clock_mono_ms();
    notify_waiter_wait(n, wa, clock_mono_ms() + 60 * 1000);
    assert_true(clock_mono_ms() - before < 30 * 1000); /* not the minute it asked for */
    assert_true(notify_is_shutdown(n));

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
        assert_int_equal(notify_waiter_wait(n, w[i], 0), i % 7 == 0);
    for (int i = 0; i < WAITERS; i++)
        notify_unlisten(n, w[i]);
    notify_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_signal_wakes_only_its_key),
        cmocka_unit_test(many_waiters_each_woken_by_its_own_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
