/* SPDX-License-Identifier: MIT */
/*
 * test_worker_watchdog.c — the worker's deadlines (worker/watchdog.h) and the arbitration of
 * a run's outcome (worker/wrun.h): a deadline fires once, after its time and not before, for
 * its kind; a removed run's deadlines never fire; many threads racing to report one run
 * (executor, watchdog, shutdown) get exactly one winner, and the first stop reason sticks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "worker/watchdog.h"
#include "worker/wrun.h"

#define FIRE_AFTER_MS 100
#define WAIT_LIMIT_MS 5000
#define RACERS 8
#define RACE_ROUNDS 200

struct fired {
    atomic_int count;
    _Atomic(struct wrun *) run;
    atomic_int kind;
    _Atomic int64_t at_ms;
};

static void on_expire(struct wrun *run, enum watch_kind kind, void *ctx)
{
    struct fired *f = ctx;
    atomic_store(&f->run, run);
    atomic_store(&f->kind, (int)kind);
    atomic_store(&f->at_ms, clock_mono_ms());
    atomic_fetch_add(&f->count, 1);
}

static struct wrun *make_run(const char *id)
{
    json_t *claim = json_pack("{s:s, s:s, s:s, s:{}}", "id", id, "task", "t", "lease_token", "00",
                              "parameters");
    struct wrun *r = NULL;
    errand_error err;
    assert_int_equal(wrun_from_claim(claim, &r, &err), 0);
    json_decref(claim);
    return r;
}

static void a_deadline_fires_once_after_its_time(void **state)
{
    (void)state;
    struct fired f = {0};
    watchdog *w = NULL;
    errand_error err;
    assert_int_equal(watchdog_new(on_expire, &f, &w, &err), 0);
    assert_int_equal(watchdog_start(w, &err), 0);
    struct wrun *kept = make_run("01a00000-0000-7000-8000-000000000001");
    struct wrun *removed = make_run("01a00000-0000-7000-8000-000000000002");
    int64_t t0 = clock_mono_ms();
    watchdog_add(w, removed, t0 + FIRE_AFTER_MS / 2, WATCH_TIMEOUT);
    watchdog_add(w, kept, t0 + FIRE_AFTER_MS, WATCH_CANCEL);
    watchdog_remove(w, removed); /* it finished first: its deadline must never fire */
    while (atomic_load(&f.count) == 0 && clock_mono_ms() - t0 < WAIT_LIMIT_MS)
        usleep(5 * 1000);
    usleep(3 * FIRE_AFTER_MS * 1000); /* room for a wrong second call */
    assert_int_equal(atomic_load(&f.count), 1);
    assert_ptr_equal(atomic_load(&f.run), kept);
    assert_int_equal(atomic_load(&f.kind), WATCH_CANCEL);
    assert_true(atomic_load(&f.at_ms) >= t0 + FIRE_AFTER_MS);
    watchdog_stop(w);
    watchdog_free(w);
    wrun_unref(kept);
    wrun_unref(removed);
}

struct race {
    struct wrun *run;
    pthread_barrier_t go;
    atomic_int winners;
    atomic_int stop_setters;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->go);
    if (wrun_request_stop(r->run, STOP_TIMEOUT))
        atomic_fetch_add(&r->stop_setters, 1);
    if (wrun_take_outcome(r->run))
        atomic_fetch_add(&r->winners, 1);
    return NULL;
}

static void exactly_one_reporter_wins_an_outcome(void **state)
{
    (void)state;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        struct race r = {.run = make_run("01a00000-0000-7000-8000-000000000003")};
        pthread_barrier_init(&r.go, NULL, RACERS);
        pthread_t t[RACERS];
        for (int i = 0; i < RACERS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
        for (int i = 0; i < RACERS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&r.go);
        assert_int_equal(atomic_load(&r.winners), 1);
        assert_int_equal(atomic_load(&r.stop_setters), 1);
        assert_int_equal(wrun_stop_reason(r.run), STOP_TIMEOUT);
        assert_false(wrun_take_outcome(r.run)); /* and never again */
        wrun_unref(r.run);
    }
    /* The first reason sticks: a cancel after a timeout does not change why it stopped. */
    struct wrun *run = make_run("01a00000-0000-7000-8000-000000000004");
    assert_true(wrun_request_stop(run, STOP_TIMEOUT));
    assert_false(wrun_request_stop(run, STOP_CANCEL));
    assert_int_equal(wrun_stop_reason(run), STOP_TIMEOUT);
    wrun_unref(run);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_deadline_fires_once_after_its_time),
        cmocka_unit_test(exactly_one_reporter_wins_an_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
