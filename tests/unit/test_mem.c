/* SPDX-License-Identifier: MIT */
/*
 * test_mem.c — the allocation seam: mem_fail_after makes allocations fail from the N-th on,
 * every wrapper honours it, and jansson allocates through it once mem_install_json() ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "core/mem.h"

static int disarm(void **state)
{
    (void)state;
    mem_fail_after(-1);
    return 0;
}

static void allocations_succeed_when_not_armed(void **state)
{
    (void)state;
    void *p = mem_alloc(16);
    assert_non_null(p);
    mem_free(p);
    char *s = mem_strdup("errand");
    assert_string_equal(s, "errand");
    mem_free(s);
}

static void fail_after_n_lets_n_succeed_then_fails_all(void **state)
{
    (void)state;
    mem_fail_after(2);
    void *a = mem_alloc(8);
    void *b = mem_calloc(2, 8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(mem_alloc(8));
    assert_null(mem_calloc(1, 1));
    assert_null(mem_strdup("x"));
    assert_null(mem_strndup("xyz", 2));
    assert_null(mem_printf("%d", 42));
    void *r = mem_realloc(a, 64);
    assert_null(r); /* a is still valid and owned by us */
    mem_fail_after(-1);
    mem_free(a);
    mem_free(b);
    assert_non_null(r = mem_alloc(1));
    mem_free(r);
}

static void fail_after_zero_fails_the_next_allocation(void **state)
{
    (void)state;
    mem_fail_after(0);
    assert_null(mem_alloc(1));
    mem_fail_after(-1);
    void *p = mem_alloc(1);
    assert_non_null(p);
    mem_free(p);
}

static void strndup_and_printf(void **state)
{
    (void)state;
    char *s = mem_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    mem_free(s);
    s = mem_strndup("ab", 10);
    assert_string_equal(s, "ab");
    mem_free(s);
    s = mem_printf("%s-%d", "run", 7);
    assert_string_equal(s, "run-7");
    mem_free(s);
    assert_null(mem_strdup(NULL));
    mem_free(NULL);
}

static void zero_sized_allocations_are_not_null(void **state)
{
    (void)state;
    void *p = mem_alloc(0);
    void *q = mem_calloc(0, 4);
    assert_non_null(p);
    assert_non_null(q);
    mem_free(p);
    mem_free(q);
}

static void jansson_allocates_through_the_seam(void **state)
{
    (void)state;
    mem_install_json();
    mem_install_json(); /* idempotent */
    mem_fail_after(0);
    assert_null(json_object());
    assert_null(json_string("x"));
    mem_fail_after(-1);
    json_t *o = json_object();
    assert_non_null(o);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(allocations_succeed_when_not_armed, disarm),
        cmocka_unit_test_teardown(fail_after_n_lets_n_succeed_then_fails_all, disarm),
        cmocka_unit_test_teardown(fail_after_zero_fails_the_next_allocation, disarm),
        cmocka_unit_test_teardown(strndup_and_printf, disarm),
        cmocka_unit_test_teardown(zero_sized_allocations_are_not_null, disarm),
        cmocka_unit_test_teardown(jansson_allocates_through_the_seam, disarm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
