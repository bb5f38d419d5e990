/* SPDX-License-Identifier: MIT */
/*
 * test_choice.c — errand_choice (core/choice.h): ERRAND_DEFAULT, the zero, leaves the answer
 * to the level below whichever way that goes; ERRAND_YES and ERRAND_NO override it; values
 * outside the enum (a stale -1 above all) are refused with the field named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/choice.h"

static void the_zero_leaves_the_answer_to_the_level_below(void **state)
{
    (void)state;
    assert_int_equal(ERRAND_DEFAULT, 0);
    assert_true(choice_resolve(ERRAND_DEFAULT, true));
    assert_false(choice_resolve(ERRAND_DEFAULT, false));
    assert_true(choice_resolve(ERRAND_YES, false));
    assert_false(choice_resolve(ERRAND_NO, true));
    assert_int_equal(choice_tristate(ERRAND_DEFAULT), -1);
    assert_int_equal(choice_tristate(ERRAND_YES), 1);
    assert_int_equal(choice_tristate(ERRAND_NO), 0);
}

static void values_outside_the_enum_are_refused(void **state)
{
    (void)state;
    errand_error err;
    assert_int_equal(choice_check(ERRAND_DEFAULT, "log_prints", &err), 0);
    assert_int_equal(choice_check(ERRAND_YES, "log_prints", &err), 0);
    assert_int_equal(choice_check(ERRAND_NO, "log_prints", &err), 0);
    assert_int_equal(choice_check((errand_choice)-1, "log_prints", &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "log_prints");
    assert_string_equal(err.message, "log_prints must be ERRAND_DEFAULT (0), ERRAND_YES or "
                                     "ERRAND_NO, got -1 (for the default, leave it 0)");
    assert_int_equal(choice_check((errand_choice)3, "persist_result", &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_result");
    assert_null(strstr(err.message, "leave it 0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_zero_leaves_the_answer_to_the_level_below),
        cmocka_unit_test(values_outside_the_enum_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
