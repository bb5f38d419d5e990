/* SPDX-License-Identifier: MIT */
/*
 * test_event_feed.c — the server's ring of recent events (server/event_feed.h) over a real
 * store: events of every size (task names up to the wire's limit) go through a small ring
 * that wraps and evicts many times, and every reader still gets exactly the events after its
 * cursor that pass its filter, in order, or a reset when the cursor fell out of the window; a
 * reader with nothing to read is held and woken by the next commit.
 */
#include "store_fixture.h"

#include <pthread.h>

#include "core/wire_limits.h"
#include "server/event_feed.h"

#define CAPACITY 16
#define RUNS 300
#define BUF_BYTES (64 * 1024)
#define WAKE_TIMEOUT_MS 5000

struct hold_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holds, wakes;
};

static void on_hold(void *arg)
{
    struct hold_state *h = arg;
    h->holds++; /* called under the feed's lock, from the reading thread */
}

static void on_wake(void *arg)
{
    struct hold_state *h = arg;
    pthread_mutex_lock(&h->mu);
    h->wakes++;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* A task name of n characters (1..WIRE_TASK_NAME_MAX) made of one repeated letter. */
static void task_name(char *out, int i)
{
    int n = 1 + (i * 37) % WIRE_TASK_NAME_MAX;
    memset(out, 'a' + i % 3, (size_t)n);
    out[n] = '\0';
}

static void submit_task(struct fixture *fx, int64_t t, const char *task)
{
    char text[WIRE_TASK_NAME_MAX + 64];
    snprintf(text, sizeof text, "{\"task\": \"%s\"}", task);
    json_decref(submit(fx, t, text, NULL));
}

/* Reads every event the subscriber gets now: their seqs and, for each, whether its text
 * names the expected task. Returns how many; *reset when a reset event came first. */
static int read_all(event_feed *f, event_sub *s, int64_t *seqs, int max, bool *reset,
                    struct hold_state *h)
{
    const struct event_sub_hooks hooks = {on_hold, on_wake, h};
    char *buf = malloc(BUF_BYTES + 1);
    int n = 0;
    *reset = false;
    for (;;) {
        ssize_t got = event_feed_read(f, s, buf, BUF_BYTES, &hooks);
        assert_true(got >= 0);
        if (got == 0)
            break;
        buf[got] = '\0';
        for (char *p = buf; (p = strstr(p, "id: ")) != NULL; p += 4) {
            long long seq = atoll(p + 4);
            char *type = strstr(p, "\nevent: ");
            assert_non_null(type);
            if (strncmp(type, "\nevent: reset", 13) == 0) {
                assert_int_equal(n, 0);
                *reset = true;
                continue;
            }
            assert_true(n < max);
            seqs[n++] = seq;
        }
    }
    free(buf);
    return n;
}

static void reads_exactly_what_follows_the_cursor_through_a_wrapping_ring(void **state)
{
    struct fixture *fx = *state;
    char task[WIRE_TASK_NAME_MAX + 1];
    for (int i = 0; i < RUNS; i++) {
        task_name(task, i);
        submit_task(fx, fx->t0 + i, task);
    }
    event_feed *f = NULL;
    errand_error err;
    struct event_feed_options opt = {.capacity = CAPACITY, .poll_ms = 60000};
    assert_int_equal(event_feed_start(fx->st, &opt, &f, &err), 0);
    assert_int_equal(event_feed_newest(f), RUNS);
    struct hold_state h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    int64_t seqs[RUNS];
    bool reset;

    /* A cursor well inside the window: exactly the events after it, in order. */
    struct event_filter any = {0};
    event_sub *s = event_feed_subscribe(f, &any, RUNS - 5);
    assert_int_equal(read_all(f, s, seqs, RUNS, &reset, &h), 5);
    assert_false(reset);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seqs[i], RUNS - 4 + i);
    event_feed_unsubscribe(f, s);

    /* Far behind the window: a reset, then nothing more until new events. */
    s = event_feed_subscribe(f, &any, 3);
    assert_int_equal(read_all(f, s, seqs, RUNS, &reset, &h), 0);
    assert_true(reset);
    event_feed_unsubscribe(f, s);

    /* A filter on one task name (the longest ones fill the byte ring fastest): only its
       events. Names repeat every 3 runs by letter but differ in length; pick the last one. */
    struct event_filter one = {0};
    task_name(one.task, RUNS - 1);
    s = event_feed_subscribe(f, &one, RUNS - 10);
    int n = read_all(f, s, seqs, RUNS, &reset, &h);
    assert_false(reset);
    assert_int_equal(n, 1);
    assert_int_equal(seqs[0], RUNS);
    event_feed_unsubscribe(f, s);

    /* Held with nothing to read, woken by the next commit, which it then reads. More runs,
       of long names, wrap the ring many times meanwhile. */
    s = event_feed_subscribe(f, &any, -1);
    int holds = h.holds;
    assert_int_equal(read_all(f, s, seqs, RUNS, &reset, &h), 0);
    assert_int_equal(h.holds, holds + 1);
    for (int i = 0; i < 3; i++) {
        memset(task, 'z', WIRE_TASK_NAME_MAX);
        task[WIRE_TASK_NAME_MAX - i] = '\0';
        submit_task(fx, fx->t0 + RUNS + i, task);
    }
    pthread_mutex_lock(&h.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAKE_TIMEOUT_MS / 1000;
    while (h.wakes == 0)
        assert_int_equal(pthread_cond_timedwait(&h.cv, &h.mu, &until), 0);
    pthread_mutex_unlock(&h.mu);
    int64_t total = 0;
    for (int tries = 0; total < 3 && tries < 100; tries++) {
        total += read_all(f, s, seqs + total, RUNS, &reset, &h);
        if (total < 3)
            clock_sleep_ms(20);
    }
    assert_int_equal(total, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seqs[i], RUNS + 1 + i);
    event_feed_unsubscribe(f, s);

    /* Shutdown ends every stream. */
    s = event_feed_subscribe(f, &any, -1);
    event_feed_shutdown(f);
    char buf[64];
    const struct event_sub_hooks hooks = {on_hold, on_wake, &h};
    assert_true(event_feed_read(f, s, buf, sizeof buf, &hooks) < 0);
    event_feed_unsubscribe(f, s);
    assert_null(event_feed_subscribe(f, &any, -1));
    event_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            reads_exactly_what_follows_the_cursor_through_a_wrapping_ring, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
