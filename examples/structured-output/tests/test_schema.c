/* SPDX-License-Identifier: MIT */
/*
 * test_schema.c — unit tests for the example's pure modules: target types (type expressions
 * and inline schemas to JSON Schema) and the schema checks (validation with coercion, strict
 * mode, the wrapper for non-object targets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "schema.h"
#include "target_type.h"

#define WHY_MAX 256

/* Parses text and checks its schema and canonical form (both as compact JSON). */
static void expect_type(const char *text, const char *schema_json, const char *canonical_json)
{
    target_type t;
    char why[TARGET_WHY_MAX] = "";
    if (target_type_parse_text(text, &t, why) != 0)
        fail_msg("'%s' was refused: %s", text, why);
    json_t *want = json_loads(schema_json, 0, NULL);
    json_t *canon = json_loads(canonical_json, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    assert_non_null(canon);
    if (!json_equal(t.schema, want)) {
        char *got = json_dumps(t.schema, JSON_COMPACT);
        fail_msg("'%s' gave %s", text, got);
    }
    assert_true(json_equal(t.canonical, canon));
    json_decref(want);
    json_decref(canon);
    target_type_clear(&t);
}

static void expect_refused(const char *text, const char *why_part)
{
    target_type t;
    char why[TARGET_WHY_MAX] = "";
    if (target_type_parse_text(text, &t, why) == 0)
        fail_msg("'%s' was accepted", text);
    if (!strstr(why, why_part))
        fail_msg("'%s': '%s' does not say '%s'", text, why, why_part);
}

static void type_expressions(void **state)
{
    expect_type("str", "{\"type\":\"string\"}", "\"str\"");
    expect_type(" builtins.float ", "{\"type\":\"number\"}", "\"float\"");
    expect_type("int", "{\"type\":\"integer\"}", "\"int\"");
    expect_type("bool", "{\"type\":\"boolean\"}", "\"bool\"");
    expect_type("list[str]", "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}",
                "\"list[str]\"");
    expect_type("typing.List[ int ]", "{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}",
                "\"list[int]\"");
    expect_type("dict[str,str]",
                "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
                "\"dict[str, str]\"");
    expect_type("dict[str, list[float]]",
                "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\","
                "\"items\":{\"type\":\"number\"}}}",
                "\"dict[str, list[float]]\"");
    expect_type("list", "{\"type\":\"array\"}", "\"list\"");
    expect_type("{\"type\":\"integer\",\"minimum\":0}", "{\"type\":\"integer\",\"minimum\":0}",
                "{\"type\":\"integer\",\"minimum\":0}");
}

static void bad_targets(void **state)
{
    expect_refused("", "empty");
    expect_refused("banana", "unknown type 'banana'");
    expect_refused("list[", "expected a type name");
    expect_refused("list[str", "expected ']'");
    expect_refused("dict[int, str]", "dict keys must be str");
    expect_refused("dict[str]", "two arguments");
    expect_refused("str str", "unexpected text");
    expect_refused("{oops", "not valid JSON");
    expect_refused("{\"type\": \"nonsense\"}", "unknown type 'nonsense'");
    expect_refused("{\"properties\": []}", "\"properties\" must be an object");
    expect_refused("{\"$ref\": \"#/$defs/Missing\"}", "$ref");
    char deep[512] = "";
    for (int i = 0; i < TARGET_MAX_DEPTH + 2; i++)
        strcat(deep, "list[");
    strcat(deep, "int");
    for (int i = 0; i < TARGET_MAX_DEPTH + 2; i++)
        strcat(deep, "]");
    expect_refused(deep, "nested too deeply");
}

/* Checks value against schema: ok_json is the expected (coerced) value, or NULL with
 * why_part expected in the error. */
static void check_value(const char *schema_json, const char *value_json, const char *ok_json,
                        const char *why_part)
{
    json_t *schema = json_loads(schema_json, 0, NULL);
    json_t *value = json_loads(value_json, JSON_DECODE_ANY, NULL);
    assert_non_null(schema);
    assert_non_null(value);
    char why[WHY_MAX] = "";
    json_t *got = schema_check(value, schema, why, sizeof why);
    if (ok_json) {
        if (!got)
            fail_msg("%s refused %s: %s", schema_json, value_json, why);
        json_t *want = json_loads(ok_json, JSON_DECODE_ANY, NULL);
        assert_true(json_equal(got, want));
        assert_int_equal(json_typeof(got), json_typeof(want));
        json_decref(want);
    } else {
        if (got)
            fail_msg("%s accepted %s", schema_json, value_json);
        if (!strstr(why, why_part))
            fail_msg("'%s' does not say '%s'", why, why_part);
    }
    json_decref(got);
    json_decref(schema);
    json_decref(value);
}

static void validation_and_coercion(void **state)
{
    check_value("{\"type\":\"number\"}", "3", "3.0", NULL);
    check_value("{\"type\":\"integer\"}", "3.0", "3", NULL);
    check_value("{\"type\":\"integer\"}", "3.5", NULL, "at $: expected integer, got number");
    check_value("{\"type\":\"string\"}", "1", NULL, "expected string, got integer");
    check_value("{\"type\":\"array\",\"items\":{\"type\":\"number\"}}", "[1, 2.5]", "[1.0, 2.5]",
                NULL);
    check_value("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1, \"2\"]", NULL,
                "at $[1]: expected integer, got string");
    check_value("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
                "{\"a\":\"x\",\"b\":2}", NULL, "at $.b: expected string");
    check_value("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},"
                "\"required\":[\"n\"],\"additionalProperties\":false}",
                "{}", NULL, "missing required property 'n'");
    check_value("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},"
                "\"additionalProperties\":false}",
                "{\"n\":1,\"m\":2}", NULL, "unexpected property 'm'");
    check_value("{\"enum\":[\"red\",\"green\"]}", "\"blue\"", NULL, "not one of");
    check_value("{\"type\":[\"integer\",\"null\"]}", "null", "null", NULL);
    check_value("{\"type\":[\"integer\",\"number\"]}", "3", "3", NULL);
    check_value("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"number\"}]}", "2", "2.0", NULL);
    check_value("{\"type\":\"string\",\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9\"",
                "\"\xc3\xa9\xc3\xa9\"", NULL);
    check_value("{\"type\":\"string\",\"minLength\":3}", "\"ab\"", NULL, "shorter");
    check_value("{\"type\":\"integer\",\"minimum\":0}", "-1", NULL, "below the minimum");
    check_value("{\"type\":\"array\",\"maxItems\":1}", "[1,2]", NULL, "more than 1 items");
    check_value("{\"$defs\":{\"P\":{\"type\":\"integer\"}},\"type\":\"array\","
                "\"items\":{\"$ref\":\"#/$defs/P\"}}",
                "[1, 2.0]", "[1, 2]", NULL);
    check_value("{}", "{\"any\":[1]}", "{\"any\":[1]}", NULL);
}

static void request_shaping(void **state)
{
    bool wrapped = false;
    json_t *number = json_pack("{s:s}", "type", "number");
    json_t *req = schema_for_request(number, &wrapped);
    assert_true(wrapped);
    json_t *want = json_loads("{\"type\":\"object\",\"properties\":{\"value\":{\"type\":"
                              "\"number\"}},\"required\":[\"value\"],"
                              "\"additionalProperties\":false}",
                              0, NULL);
    assert_true(json_equal(req, want));
    assert_true(schema_is_strict(req));
    json_decref(want);
    json_decref(req);
    json_decref(number);

    json_t *dict = json_loads("{\"type\":\"object\",\"additionalProperties\":{\"type\":"
                              "\"string\"}}",
                              0, NULL);
    req = schema_for_request(dict, &wrapped);
    assert_false(wrapped);
    assert_false(schema_is_strict(req)); /* open keys: strict mode cannot say dict[str, T] */
    json_decref(req);
    json_decref(dict);

    json_t *list_no_items = json_loads("{\"type\":\"array\"}", 0, NULL);
    req = schema_for_request(list_no_items, &wrapped);
    assert_false(schema_is_strict(req));
    json_decref(req);
    json_decref(list_no_items);

    /* Definitions move to the wrapper's root, where their references point. */
    json_t *with_defs = json_loads("{\"$defs\":{\"P\":{\"type\":\"integer\"}},\"type\":"
                                   "\"array\",\"items\":{\"$ref\":\"#/$defs/P\"}}",
                                   0, NULL);
    req = schema_for_request(with_defs, &wrapped);
    assert_true(wrapped);
    assert_non_null(json_object_get(req, "$defs"));
    assert_null(
        json_object_get(json_object_get(json_object_get(req, "properties"), "value"), "$defs"));
    assert_true(schema_is_strict(req));
    json_decref(req);
    json_decref(with_defs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(type_expressions),
        cmocka_unit_test(bad_targets),
        cmocka_unit_test(validation_and_coercion),
        cmocka_unit_test(request_shaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
