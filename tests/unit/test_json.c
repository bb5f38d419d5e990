/* SPDX-License-Identifier: MIT */
/*
 * test_json.c — the jansson helpers: canonical text, parse errors (line/column, duplicate
 * keys, nesting limit), typed getters (types, null = absent, field paths) and
 * json_check_fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

#define DEEP 200

static json_t *parse(const char *text)
{
    errand_error err;
    json_t *v = json_parse_text(text, strlen(text), &err);
    if (!v)
        fail_msg("could not parse %s: %s", text, err.message);
    return v;
}

static void canonical_sorts_keys_and_is_compact(void **state)
{
    (void)state;
    json_t *v = parse("{ \"b\": [1, 2, {\"z\": 1, \"a\": null}], \"a\": \"x\" }");
    char *c = json_canonical(v);
    assert_string_equal(c, "{\"a\":\"x\",\"b\":[1,2,{\"a\":null,\"z\":1}]}");
    mem_free(c);
    c = json_compact(v);
    assert_string_equal(c, "{\"b\":[1,2,{\"z\":1,\"a\":null}],\"a\":\"x\"}");
    mem_free(c);
    json_decref(v);
    json_t *n = json_integer(42);
    c = json_canonical(n); /* any value, not only containers */
    assert_string_equal(c, "42");
    mem_free(c);
    json_decref(n);
}

static void parse_error_names_line_and_column(void **state)
{
    (void)state;
    errand_error err;
    const char *text = "{\n  \"a\": 1,\n  \"b\": }";
    assert_null(json_parse_text(text, strlen(text), &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
    assert_non_null(strstr(err.message, "body is not valid JSON: "));
    assert_non_null(strstr(err.message, "at line 3 column"));
    assert_string_equal(err.field, "");
    assert_null(json_parse_text(NULL, 0, &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
    assert_null(json_parse_text("", 0, &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
    /* err may be NULL */
    assert_null(json_parse_text("nope", 4, NULL));
}

static void parse_accepts_any_value_and_respects_length(void **state)
{
    (void)state;
    json_t *v = parse("42");
    assert_true(json_is_integer(v));
    json_decref(v);
    errand_error err;
    v = json_parse_text("[1]garbage", 3, &err);
    assert_non_null(v);
    json_decref(v);
}

static void parse_rejects_duplicate_keys(void **state)
{
    (void)state;
    errand_error err;
    const char *text = "{\"a\": 1, \"a\": 2}";
    assert_null(json_parse_text(text, strlen(text), &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
    assert_non_null(strstr(err.message, "duplicate"));
}

static void parse_limits_nesting_depth(void **state)
{
    (void)state;
    char deep[2 * DEEP + 1];
    for (int i = 0; i < DEEP; i++) {
        deep[i] = '[';
        deep[2 * DEEP - 1 - i] = ']';
    }
    deep[2 * DEEP] = '\0';
    errand_error err;
    assert_null(json_parse_text(deep, strlen(deep), &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
    assert_non_null(strstr(err.message, "nested deeper than 64"));

    /* 64 levels are fine, 65 are not. */
    char ok[2 * 64 + 1], over[2 * 65 + 1];
    for (int i = 0; i < 64; i++) {
        ok[i] = '[';
        ok[2 * 64 - 1 - i] = ']';
    }
    ok[2 * 64] = '\0';
    for (int i = 0; i < 65; i++) {
        over[i] = '[';
        over[2 * 65 - 1 - i] = ']';
    }
    over[2 * 65] = '\0';
    json_t *v = json_parse_text(ok, strlen(ok), &err);
    assert_non_null(v);
    json_decref(v);
    assert_null(json_parse_text(over, strlen(over), &err));
    const char *objs = "{\"a\":{\"a\":{\"a\":1}}}";
    v = json_parse_text(objs, strlen(objs), &err);
    assert_non_null(v);
    json_decref(v);
}

static void parse_reports_out_of_memory(void **state)
{
    (void)state;
    errand_error err;
    mem_install_json();
    mem_fail_after(0);
    json_t *v = json_parse_text("{\"a\": [1, 2, 3]}", 16, &err);
    mem_fail_after(-1);
    assert_null(v);
    assert_int_equal(err.code, ERRAND_ENOMEM);
}

static void type_labels(void **state)
{
    (void)state;
    json_t *v = parse("[{}, [], \"s\", 1, 1.5, true, false, null]");
    const char *want[] = {"object", "array",   "string",  "integer",
                          "number", "boolean", "boolean", "null"};
    for (size_t i = 0; i < json_array_size(v); i++)
        assert_string_equal(json_type_label(json_array_get(v, i)), want[i]);
    json_decref(v);
    assert_string_equal(json_type_label(NULL), "null");
}

static void getters_read_present_fields(void **state)
{
    (void)state;
    json_t *o = parse("{\"s\": \"hi\", \"i\": -7, \"n\": 2.5, \"ni\": 3, \"b\": true}");
    errand_error err;
    const char *s = NULL;
    long long i = 0;
    double n = 0;
    bool b = false, present = false;
    assert_int_equal(json_get_string(o, NULL, "s", &s, &present, &err), 0);
    assert_true(present);
    assert_string_equal(s, "hi");
    assert_int_equal(json_get_int(o, NULL, "i", &i, &present, &err), 0);
    assert_true(present);
    assert_int_equal(i, -7);
    assert_int_equal(json_get_number(o, NULL, "n", &n, &present, &err), 0);
    assert_true(n == 2.5);
    assert_int_equal(json_get_number(o, NULL, "ni", &n, &present, &err), 0);
    assert_true(n == 3.0);
    assert_int_equal(json_get_bool(o, NULL, "b", &b, NULL, &err), 0);
    assert_true(b);
    json_decref(o);
}

static void getters_treat_absent_and_null_alike(void **state)
{
    (void)state;
    json_t *o = parse("{\"s\": null}");
    errand_error err;
    const char *s = "untouched";
    long long i = 99;
    double n = 9.5;
    bool b = true, present = true;
    assert_int_equal(json_get_string(o, NULL, "s", &s, &present, &err), 0);
    assert_false(present);
    assert_string_equal(s, "untouched");
    present = true;
    assert_int_equal(json_get_int(o, NULL, "missing", &i, &present, &err), 0);
    assert_false(present);
    assert_int_equal(i, 99);
    assert_int_equal(json_get_number(o, NULL, "missing", &n, NULL, &err), 0);
    assert_true(n == 9.5);
    assert_int_equal(json_get_bool(o, NULL, "s", &b, NULL, &err), 0);
    assert_true(b);
    json_decref(o);
}

static void getters_refuse_wrong_types_naming_the_field(void **state)
{
    (void)state;
    json_t *o = parse("{\"priority\": \"high\", \"retries\": 1.0, \"big\": 1e300, "
                      "\"flag\": 1, \"name\": 5, \"delay\": \"5\"}");
    errand_error err;
    long long i = 0;
    double n = 0;
    bool b;
    const char *s;
    assert_int_equal(json_get_int(o, NULL, "priority", &i, NULL, &err), ERRAND_EINVAL);
    assert_int_equal(err.code, ERRAND_EINVAL);
    assert_string_equal(err.field, "priority");
    assert_string_equal(err.message, "field 'priority' must be an integer, got string");

    assert_int_equal(json_get_int(o, "runs[3]", "retries", &i, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[3].retries");
    assert_string_equal(err.message, "field 'runs[3].retries' must be an integer, got number");
    assert_int_equal(json_get_int(o, NULL, "big", &i, NULL, &err), ERRAND_EINVAL);

    assert_int_equal(json_get_bool(o, NULL, "flag", &b, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "field 'flag' must be a boolean, got integer");
    assert_int_equal(json_get_string(o, NULL, "name", &s, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "field 'name' must be a string, got integer");
    assert_int_equal(json_get_number(o, NULL, "delay", &n, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "field 'delay' must be a number, got string");
    json_decref(o);

    /* Out of range integers never reach the getter: the parser refuses them. */
    const char *huge = "{\"i\": 99999999999999999999999}";
    assert_null(json_parse_text(huge, strlen(huge), &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
}

static void getters_refuse_a_non_object(void **state)
{
    (void)state;
    json_t *a = parse("[1]");
    errand_error err;
    long long i;
    assert_int_equal(json_get_int(a, NULL, "x", &i, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "body must be a JSON object, got array");
    assert_int_equal(json_get_int(a, "runs[0]", "x", &i, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[0]");
    json_decref(a);
}

static void check_fields_names_the_first_unknown(void **state)
{
    (void)state;
    static const char *const allowed[] = {"task", "parameters", "priority", NULL};
    json_t *o = parse("{\"task\": \"t\", \"priorty\": 1, \"other\": 2}");
    errand_error err;
    assert_int_equal(json_check_fields(o, NULL, allowed, &err), ERR_UNKNOWN_FIELD);
    assert_int_equal(err.code, ERR_UNKNOWN_FIELD);
    assert_string_equal(err.field, "priorty");
    assert_string_equal(err.message, "unknown field 'priorty'");
    assert_int_equal(json_check_fields(o, "runs[3]", allowed, &err), ERR_UNKNOWN_FIELD);
    assert_string_equal(err.field, "runs[3].priorty");
    json_decref(o);

    o = parse("{\"task\": \"t\", \"priority\": 1}");
    assert_int_equal(json_check_fields(o, NULL, allowed, &err), 0);
    json_decref(o);
    o = parse("{}");
    assert_int_equal(json_check_fields(o, NULL, allowed, &err), 0);
    json_decref(o);
}

/* Reals print with the fewest digits that read back exactly: 49.99 stays 49.99, and a value
 * that needs 17 digits keeps them. */
static void reals_print_shortest_exact_text(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:f,s:[f]}", "price", 49.99, "xs", 0.1);
    char *text = json_compact(v);
    assert_string_equal(text, "{\"price\":49.99,\"xs\":[0.1]}");
    mem_free(text);
    json_decref(v);

    v = json_real(0.1 + 0.2);
    text = json_compact(v);
    assert_true(strtod(text, NULL) == 0.1 + 0.2);
    assert_string_equal(text, "0.30000000000000004");
    mem_free(text);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reals_print_shortest_exact_text),
        cmocka_unit_test(canonical_sorts_keys_and_is_compact),
        cmocka_unit_test(parse_error_names_line_and_column),
        cmocka_unit_test(parse_accepts_any_value_and_respects_length),
        cmocka_unit_test(parse_rejects_duplicate_keys),
        cmocka_unit_test(parse_limits_nesting_depth),
        cmocka_unit_test(parse_reports_out_of_memory),
        cmocka_unit_test(type_labels),
        cmocka_unit_test(getters_read_present_fields),
        cmocka_unit_test(getters_treat_absent_and_null_alike),
        cmocka_unit_test(getters_refuse_wrong_types_naming_the_field),
        cmocka_unit_test(getters_refuse_a_non_object),
        cmocka_unit_test(check_fields_names_the_first_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
