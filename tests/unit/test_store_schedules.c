/* SPDX-License-Identifier: MIT */
/*
 * test_store_schedules.c — schedules in the SQLite store (store.h) and the scheduler's plan
 * (server/schedule_plan.h): a put creates, then replaces keeping created and bumping the
 * generation; the due read returns only schedules not paused whose next tick has come,
 * soonest first; the advance is a compare-and-set that only the first of two servers planning
 * from the same tick wins, and that a replacement in between defeats; the plan fires on-time
 * ticks, and for missed ones fires nothing (skip) or the first missed tick (once), jumping to
 * the first tick on time.
 */
#include "store_fixture.h"

#include "server/schedule_plan.h"

static struct schedule_row interval_schedule(const char *name, int64_t every_ms, int64_t next)
{
    struct schedule_row s = {0};
    s.name = (char *)name;
    s.task = (char *)"t";
    s.run_options = (char *)"{}";
    s.time_zone = (char *)"UTC";
    s.every_ms = every_ms;
    s.next_tick = next;
    return s;
}

static void a_put_creates_then_replaces_keeping_created(void **state)
{
    struct fixture *fx = *state;
    errand_error err;
    struct schedule_row s = interval_schedule("a", 1000, fx->t0 + 1000), out;
    bool created = false;
    assert_int_equal(store_schedule_put(fx->st, &s, fx->t0, &out, &created, &err), 0);
    assert_true(created);
    assert_int_equal(out.generation, 1);
    assert_int_equal(out.created, fx->t0);
    schedule_row_clear(&out);
    s.cron = (char *)"*/5 * * * *";
    s.every_ms = 0;
    s.catch_up = SCHEDULE_CATCH_UP_ONCE;
    assert_int_equal(store_schedule_put(fx->st, &s, fx->t0 + 5, &out, &created, &err), 0);
    assert_false(created);
    assert_int_equal(out.generation, 2);
    assert_int_equal(out.created, fx->t0);
    assert_int_equal(out.updated, fx->t0 + 5);
    assert_string_equal(out.cron, "*/5 * * * *");
    assert_int_equal(out.every_ms, 0);
    assert_int_equal(out.catch_up, SCHEDULE_CATCH_UP_ONCE);
    schedule_row_clear(&out);
    assert_int_equal(store_schedule_delete(fx->st, "a", &err), 0);
    assert_int_equal(store_schedule_delete(fx->st, "a", &err), ERRAND_ENOTFOUND);
    assert_int_equal(store_schedule_get(fx->st, "a", &out, &err), ERRAND_ENOTFOUND);
}

static void due_holds_the_unpaused_schedules_whose_tick_came(void **state)
{
    struct fixture *fx = *state;
    errand_error err;
    int64_t t = fx->t0;
    struct schedule_row a = interval_schedule("a", 1000, t + 30),
                        b = interval_schedule("b", 1000, t + 10),
                        c = interval_schedule("c", 1000, t + 5),
                        d = interval_schedule("d", 1000, t + 99);
    c.paused = true;
    assert_int_equal(store_schedule_put(fx->st, &a, t, NULL, NULL, &err), 0);
    assert_int_equal(store_schedule_put(fx->st, &b, t, NULL, NULL, &err), 0);
    assert_int_equal(store_schedule_put(fx->st, &c, t, NULL, NULL, &err), 0);
    assert_int_equal(store_schedule_put(fx->st, &d, t, NULL, NULL, &err), 0);
    struct schedule_list l;
    assert_int_equal(store_schedule_due(fx->st, t + 50, 10, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].name, "b");
    assert_string_equal(l.items[1].name, "a");
    schedule_list_clear(&l);
    assert_int_equal(store_schedule_list(fx->st, &l, &err), 0);
    assert_int_equal(l.n, 4);
    schedule_list_clear(&l);
}

static void the_advance_is_won_once_and_not_past_a_replacement(void **state)
{
    struct fixture *fx = *state;
    errand_error err;
    int64_t t = fx->t0;
    struct schedule_row s = interval_schedule("a", 1000, t), out;
    assert_int_equal(store_schedule_put(fx->st, &s, t, NULL, NULL, &err), 0);
    bool won = false;
    /* two servers planned from tick t: the first moves it, the second finds it moved */
    assert_int_equal(store_schedule_advance(fx->st, "a", 1, t, t + 1000, t, "run-1", t, &won, &err),
                     0);
    assert_true(won);
    assert_int_equal(store_schedule_advance(fx->st, "a", 1, t, t + 1000, t, "run-1", t, &won, &err),
                     0);
    assert_false(won);
    assert_int_equal(store_schedule_get(fx->st, "a", &out, &err), 0);
    assert_int_equal(out.next_tick, t + 1000);
    assert_int_equal(out.last_tick, t);
    assert_string_equal(out.last_run_id, "run-1");
    schedule_row_clear(&out);
    /* replaced meanwhile (generation 2): an advance planned from generation 1 changes nothing */
    s.next_tick = t + 1000;
    assert_int_equal(store_schedule_put(fx->st, &s, t, NULL, NULL, &err), 0);
    assert_int_equal(
        store_schedule_advance(fx->st, "a", 1, t + 1000, t + 2000, 0, NULL, t, &won, &err), 0);
    assert_false(won);
    /* a skip (no run) moves next_tick and keeps the last run */
    assert_int_equal(
        store_schedule_advance(fx->st, "a", 2, t + 1000, t + 5000, 0, NULL, t, &won, &err), 0);
    assert_true(won);
    assert_int_equal(store_schedule_get(fx->st, "a", &out, &err), 0);
    assert_int_equal(out.next_tick, t + 5000);
    assert_string_equal(out.last_run_id, "run-1");
    schedule_row_clear(&out);
    /* paused: not due; resumed with a new next tick */
    assert_int_equal(store_schedule_set_paused(fx->st, "a", true, 0, t, &err), 0);
    struct schedule_list l;
    assert_int_equal(store_schedule_due(fx->st, t + 99999, 10, &l, &err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_schedule_set_paused(fx->st, "a", false, t + 7000, t, &err), 0);
    assert_int_equal(store_schedule_get(fx->st, "a", &out, &err), 0);
    assert_int_equal(out.next_tick, t + 7000);
    assert_false(out.paused);
    schedule_row_clear(&out);
    assert_int_equal(store_schedule_set_paused(fx->st, "nope", true, 0, t, &err), ERRAND_ENOTFOUND);
}

static void the_plan_fires_on_time_and_catches_up_by_policy(void **state)
{
    (void)state;
    errand_error err;
    struct schedule_plan p;
    const int64_t late = 60 * SEC;
    /* tick 100 s, now 130 s: 30 s late, on time: fire it, then the next one */
    struct schedule_row s = interval_schedule("a", 10 * SEC, 100 * SEC);
    assert_int_equal(schedule_plan(&s, 130 * SEC, late, &p, &err), 0);
    assert_true(p.fire);
    assert_false(p.caught_up);
    assert_int_equal(p.tick, 100 * SEC);
    assert_int_equal(p.next_tick, 110 * SEC);
    /* now 1000 s: ticks 100..930 missed; skip fires none and goes to 940 (the first tick
       not older than late) */
    assert_int_equal(schedule_plan(&s, 1000 * SEC, late, &p, &err), 0);
    assert_false(p.fire);
    assert_int_equal(p.next_tick, 940 * SEC);
    /* once fires the first missed tick, then goes on the same way */
    s.catch_up = SCHEDULE_CATCH_UP_ONCE;
    assert_int_equal(schedule_plan(&s, 1000 * SEC, late, &p, &err), 0);
    assert_true(p.fire);
    assert_true(p.caught_up);
    assert_int_equal(p.tick, 100 * SEC);
    assert_int_equal(p.next_tick, 940 * SEC);
    /* exactly at the limit: on time */
    assert_int_equal(schedule_plan(&s, 160 * SEC, late, &p, &err), 0);
    assert_true(p.fire);
    assert_false(p.caught_up);
    char key[SCHEDULE_KEY_MAX];
    schedule_run_key("nightly", INT64_C(1796265126000), key);
    assert_string_equal(key, "schedule:nightly:2026-12-03T02:32:06.000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_put_creates_then_replaces_keeping_created, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(due_holds_the_unpaused_schedules_whose_tick_came, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_advance_is_won_once_and_not_past_a_replacement, setup,
                                        teardown),
        cmocka_unit_test(the_plan_fires_on_time_and_catches_up_by_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
