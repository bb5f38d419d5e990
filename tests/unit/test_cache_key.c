/* SPDX-License-Identifier: MIT */
/*
 * test_cache_key.c — cache keys of the INPUTS + VERSION policy: stable across key order and
 * spacing, sensitive to task, version and parameters, with the documented defaults, plus
 * the public errand_cache_key_inputs() and errand_exponential_backoff().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/cache_key.h"
#include "core/error.h"
#include "core/json.h"

static void key_of(const char *task, const char *version, const char *params, char out[65])
{
    errand_error err;
    if (errand_cache_key_inputs(task, version, params, out, &err) != 0)
        fail_msg("cache key failed: %s", err.message);
}

static void key_is_64_lower_hex(void **state)
{
    (void)state;
    char k[65];
    key_of("t", "1", "{\"a\": 1}", k);
    assert_int_equal(strlen(k), 64);
    for (int i = 0; i < 64; i++)
        assert_true(isxdigit((unsigned char)k[i]) && !isupper((unsigned char)k[i]));
}

static void key_ignores_key_order_and_spacing(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of("create_structured_output", "2", "{\"b\": [1, {\"y\": 2, \"x\": 1}], \"a\": \"s\"}", a);
    key_of("create_structured_output", "2", "{\"a\":\"s\",\"b\":[1,{\"x\":1,\"y\":2}]}", b);
    assert_string_equal(a, b);
}

static void key_changes_with_each_input(void **state)
{
    (void)state;
    char base[65], other[65];
    key_of("t", "1", "{\"a\": 1}", base);
    key_of("t", "2", "{\"a\": 1}", other);
    assert_string_not_equal(base, other);
    key_of("u", "1", "{\"a\": 1}", other);
    assert_string_not_equal(base, other);
    key_of("t", "1", "{\"a\": 2}", other);
    assert_string_not_equal(base, other);
    key_of("t", "1", "{\"a\": [1]}", other);
    assert_string_not_equal(base, other);
}

static void key_parts_are_length_prefixed(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of("ab", "c", NULL, a);
    key_of("a", "bc", NULL, b);
    assert_string_not_equal(a, b);
}

static void key_defaults_version_one_and_empty_params(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of("t", NULL, NULL, a);
    key_of("t", "1", "{}", b);
    assert_string_equal(a, b);
    /* The internal form gives the same key as the public one. */
    errand_error err;
    json_t *p = json_object();
    char c[CACHE_KEY_LEN];
    assert_int_equal(cache_key_inputs("t", NULL, p, c, &err), 0);
    assert_string_equal(a, c);
    json_decref(p);
}

static void key_is_stable_across_releases(void **state)
{
    (void)state;
    /* A stored cache key must keep matching: this pins the byte layout of the hash input
       (8-byte big-endian length + bytes, for task, version, canonical parameters); the
       expected value was computed independently with Python hashlib. */
    char k[65];
    key_of("t", "1", "{}", k);
    assert_string_equal(k, "18df5a1d346b4fe77943b721293200f682bd42a4981323394fed42307bcf2cd6");
}

static void key_refuses_bad_inputs(void **state)
{
    (void)state;
    char k[65];
    errand_error err;
    assert_int_equal(errand_cache_key_inputs(NULL, "1", NULL, k, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "task");
    assert_int_equal(errand_cache_key_inputs("", "1", NULL, k, &err), ERRAND_EINVAL);
    assert_int_equal(errand_cache_key_inputs("t", "1", "[1, 2]", k, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "parameters");
    assert_int_equal(errand_cache_key_inputs("t", "1", "{bad", k, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "params_json");
    assert_non_null(strstr(err.message, "not valid JSON"));
    assert_int_equal(errand_cache_key_inputs("t", "1", "{\"a\":1,\"a\":2}", k, NULL),
                     ERRAND_EINVAL);
}

static void exponential_backoff_doubles(void **state)
{
    (void)state;
    double d[5];
    assert_int_equal(errand_exponential_backoff(1.5, 5, d), 0);
    const double want[] = {1.5, 3, 6, 12, 24};
    for (int i = 0; i < 5; i++)
        assert_true(d[i] == want[i]);
    assert_int_equal(errand_exponential_backoff(0, 2, d), 0);
    assert_true(d[0] == 0 && d[1] == 0);
    assert_int_equal(errand_exponential_backoff(1, 0, NULL), 0);
}

static void exponential_backoff_refuses_bad_arguments(void **state)
{
    (void)state;
    double d[3] = {7, 7, 7};
    assert_int_equal(errand_exponential_backoff(-1, 3, d), ERRAND_EINVAL);
    assert_int_equal(errand_exponential_backoff(NAN, 3, d), ERRAND_EINVAL);
    assert_int_equal(errand_exponential_backoff(INFINITY, 3, d), ERRAND_EINVAL);
    assert_int_equal(errand_exponential_backoff(1, 3, NULL), ERRAND_EINVAL);
    double big[2000];
    assert_int_equal(errand_exponential_backoff(1, 2000, big), ERRAND_EINVAL); /* 2^1999 */
    assert_true(d[0] == 7 && d[1] == 7 && d[2] == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_is_64_lower_hex),
        cmocka_unit_test(key_ignores_key_order_and_spacing),
        cmocka_unit_test(key_changes_with_each_input),
        cmocka_unit_test(key_parts_are_length_prefixed),
        cmocka_unit_test(key_defaults_version_one_and_empty_params),
        cmocka_unit_test(key_is_stable_across_releases),
        cmocka_unit_test(key_refuses_bad_inputs),
        cmocka_unit_test(exponential_backoff_doubles),
        cmocka_unit_test(exponential_backoff_refuses_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
