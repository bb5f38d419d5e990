/* SPDX-License-Identifier: MIT */
/*
 * test_worker_run_queue.c — slot lending (run_queue.h): a run that waits for a subtask gives
 * its slot back, so a worker with concurrency 1 claims and starts another run; at most
 * max_waiting runs lend at once (the first refusal is flagged, once); a wait that ends takes
 * a slot back at once, even past concurrency, and nothing more is claimed until the worker
 * is below it again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/mem.h"
#include "worker/run_queue.h"

#define RUNS 3

static void a_waiting_run_lends_its_slot_up_to_max_waiting(void **state)
{
    (void)state;
    struct run_queue q;
    assert_int_equal(run_queue_init(&q, 1, 0, 2), 0);
    struct wrun *runs[RUNS];
    for (int i = 0; i < RUNS; i++) {
        runs[i] = mem_calloc(1, sizeof *runs[i]);
        atomic_init(&runs[i]->refs, 1);
    }
    bool first = false;
    run_queue_push_many(&q, &runs[0], 1);
    assert_ptr_equal(run_queue_next(&q, false), runs[0]);
    assert_int_equal(q.active, 1);

    /* runs[0] waits: its slot is free for a claim and for an executor thread. */
    assert_true(run_queue_lend(&q, &first));
    assert_false(first);
    assert_int_equal(run_queue_wait_free(&q), 1);
    run_queue_push_many(&q, &runs[1], 1);
    assert_ptr_equal(run_queue_next(&q, false), runs[1]); /* does not block */

    /* runs[1] waits too: the second and last slot that may be lent. */
    assert_true(run_queue_lend(&q, &first));
    run_queue_push_many(&q, &runs[2], 1);
    assert_ptr_equal(run_queue_next(&q, false), runs[2]);

    /* runs[2] would be the third waiting: refused, flagged the first time only. */
    assert_false(run_queue_lend(&q, &first));
    assert_true(first);
    assert_false(run_queue_lend(&q, &first));
    assert_false(first);
    assert_int_equal(q.waiting, 2);
    assert_int_equal(q.active, 1);

    /* runs[0]'s wait ends: it goes on at once, over concurrency; nothing to claim. */
    run_queue_reclaim(&q);
    assert_int_equal(q.waiting, 1);
    assert_int_equal(q.active, 2);
    assert_true(q.queued + q.active >= q.capacity);
    assert_int_equal(q.inflight, 3);

    assert_null(run_queue_close(&q));
    for (int i = 0; i < RUNS; i++)
        mem_free(runs[i]);
    run_queue_destroy(&q);
}

static void max_waiting_0_never_lends(void **state)
{
    (void)state;
    struct run_queue q;
    assert_int_equal(run_queue_init(&q, 1, 0, 0), 0);
    struct wrun *run = mem_calloc(1, sizeof *run);
    atomic_init(&run->refs, 1);
    run_queue_push_many(&q, &run, 1);
    assert_ptr_equal(run_queue_next(&q, false), run);
    bool first = false;
    assert_false(run_queue_lend(&q, &first));
    assert_true(first);
    assert_int_equal(q.active, 1);
    assert_null(run_queue_close(&q));
    mem_free(run);
    run_queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_waiting_run_lends_its_slot_up_to_max_waiting),
        cmocka_unit_test(max_waiting_0_never_lends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
