/* SPDX-License-Identifier: MIT */
/*
 * test_budget.c — the memory budget (server/budget.h): reservations fit under the limit or
 * are refused, a request larger than the whole budget passes alone, concurrent takers never
 * overshoot together, and the peak is remembered until read.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/budget.h"

#define LIMIT 1000
#define THREADS 4
#define ROUNDS 20000
#define PIECE 300

static void fits_or_is_refused(void **state)
{
    budget *b = budget_new(LIMIT);
    assert_non_null(b);
    assert_true(budget_take(b, 600));
    assert_true(budget_take(b, 400)); /* exactly at the limit */
    assert_false(budget_take(b, 1));
    assert_int_equal(budget_used(b), LIMIT);
    budget_give(b, 400);
    assert_true(budget_take(b, 300));
    assert_false(budget_take(b, 101));
    budget_give(b, 600);
    budget_give(b, 300);
    assert_int_equal(budget_used(b), 0);
    budget_free(b);
}

static void larger_than_the_budget_passes_alone(void **state)
{
    budget *b = budget_new(LIMIT);
    assert_true(budget_take(b, 10 * LIMIT)); /* nothing else reserved */
    assert_false(budget_take(b, 1));         /* but nothing beside it */
    budget_give(b, 10 * LIMIT);
    assert_true(budget_take(b, 1));
    assert_false(budget_take(b, 10 * LIMIT)); /* not beside another */
    budget_give(b, 1);
    budget_free(b);
}

static void the_peak_is_kept_until_read(void **state)
{
    budget *b = budget_new(LIMIT);
    assert_true(budget_take(b, 700));
    budget_give(b, 700);
    assert_true(budget_take(b, 100));
    assert_int_equal(budget_peak_reset(b), 700);
    assert_int_equal(budget_peak_reset(b), 100); /* reset to what is held now */
    budget_give(b, 100);
    budget_free(b);
}

static void cost_grows_with_the_body_and_saturates(void **state)
{
    assert_int_equal(budget_cost(0), BUDGET_PER_REQUEST);
    assert_int_equal(budget_cost(1000), BUDGET_PER_REQUEST + 1000 * BUDGET_PER_BODY_BYTE);
    assert_int_equal(budget_cost(SIZE_MAX / 2), SIZE_MAX);
}

struct taker {
    budget *b;
    int over; /* times the sum held passed the limit */
};

static void *taker_main(void *p)
{
    struct taker *t = p;
    for (int i = 0; i < ROUNDS; i++) {
        if (!budget_take(t->b, PIECE))
            continue;
        if (budget_used(t->b) > LIMIT)
            t->over++;
        budget_give(t->b, PIECE);
    }
    return NULL;
}

static void concurrent_takers_never_overshoot(void **state)
{
    budget *b = budget_new(LIMIT);
    struct taker t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct taker){b, 0};
        pthread_create(&th[i], NULL, taker_main, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].over, 0);
    }
    assert_int_equal(budget_used(b), 0);
    assert_true(budget_peak_reset(b) <= LIMIT);
    budget_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fits_or_is_refused),
        cmocka_unit_test(larger_than_the_budget_passes_alone),
        cmocka_unit_test(the_peak_is_kept_until_read),
        cmocka_unit_test(cost_grows_with_the_body_and_saturates),
        cmocka_unit_test(concurrent_takers_never_overshoot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
