/* SPDX-License-Identifier: MIT */
/*
 * json.c — jansson helpers: canonical and compact text, parsing with clear errors and a
 * nesting limit, and typed field getters whose errors all read the same way
 * ("field 'runs[3].priority' must be an integer, got string"; err->field = the same path).
 *
 * Text returned by json_dumps() is allocated by jansson's allocator; every helper here calls
 * mem_install_json() first, so that allocator is mem_alloc and callers free with mem_free.
 */
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/wire_limits.h"

/* Deepest nesting of arrays/objects accepted by json_parse_text (the top level is 1). */
/* Room for "prefix.name" paths; longer ones are cut when copied into err->field. */
#define JSON_PATH_MAX (2 * ERRAND_ERROR_FIELD_MAX)

/* Significant digits tried for reals, shortest first. jansson prints every real with 17
 * digits, which round-trips but shows 49.99 as 49.990000000000002; 15 or 16 digits give the
 * text a person wrote whenever they still read back as the same double. jansson takes one
 * precision per dump, so a value mixing such reals with one that needs 17 digits prints all
 * of them with 17 (still exact). */
#define REAL_DIGITS_MIN 15
#define REAL_DIGITS_MAX 17
/* Whole numbers up to 2^53 are exact in a double, so they print as integers. */
#define JSON_EXACT_INT_MAX 9007199254740992.0

/* True when every real in v reads back unchanged from `digits` significant digits. */
static bool reals_round_trip(const json_t *v, int digits)
{
    if (json_is_real(v)) {
        char buf[64];
        double d = json_real_value(v);
        snprintf(buf, sizeof buf, "%.*g", digits, d);
        return strtod(buf, NULL) == d;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (!reals_round_trip(item, digits))
                return false;
        }
    } else if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item)
        {
            if (!reals_round_trip(item, digits))
                return false;
        }
    }
    return true;
}

size_t json_real_flags(const json_t *v)
{
    for (int digits = REAL_DIGITS_MIN; digits < REAL_DIGITS_MAX; digits++)
        if (reals_round_trip(v, digits))
            return JSON_REAL_PRECISION(digits);
    return JSON_REAL_PRECISION(REAL_DIGITS_MAX);
}

char *json_canonical(const json_t *v)
{
    mem_install_json();
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | json_real_flags(v));
}

json_t *json_number_exact(double v)
{
    if (v >= -JSON_EXACT_INT_MAX && v <= JSON_EXACT_INT_MAX && v == (double)(int64_t)v)
        return json_integer((json_int_t)v);
    return json_real(v);
}

char *json_compact(const json_t *v)
{
    mem_install_json();
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | json_real_flags(v));
}

/* True when v nests no deeper than `left` levels of arrays/objects. */
static bool depth_ok(const json_t *v, int left);

bool json_depth_within(const json_t *v, int levels)
{
    return depth_ok(v, levels);
}

static bool depth_ok(const json_t *v, int left)
{
    if (!json_is_object(v) && !json_is_array(v))
        return true;
    if (left <= 0)
        return false;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            if (!depth_ok(child, left - 1))
                return false;
        }
    } else {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (!depth_ok(child, left - 1))
                return false;
        }
    }
    return true;
}

json_t *json_parse_text(const char *text, size_t len, errand_error *err)
{
    mem_install_json();
    if (!text) {
        error_set(err, ERR_INVALID_JSON, NULL, "body is not valid JSON: no text");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        /* jansson does not always say "out of memory": a failed allocation in its lexer
           leaves an empty error text (and occasionally a misleading syntax error). */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')
            error_set(err, ERRAND_ENOMEM, NULL, "out of memory while parsing JSON");
        else if (json_error_code(&jerr) == json_error_null_character)
            error_set(err, ERR_INVALID_JSON, NULL,
                      "body is not accepted: strings must not contain \\u0000 (line %d column %d)",
                      jerr.line, jerr.column);
        else
            error_set(err, ERR_INVALID_JSON, NULL,
                      "body is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
                      jerr.column);
        return NULL;
    }
    if (!depth_ok(v, WIRE_JSON_DEPTH_MAX)) {
        json_decref(v);
        error_set(err, ERR_INVALID_JSON, NULL,
                  "body is not valid JSON: nested deeper than %d levels", WIRE_JSON_DEPTH_MAX);
        return NULL;
    }
    return v;
}

const char *json_type_label(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* "prefix.name", or name alone when there is no prefix. */
static void field_path(char *out, size_t cap, const char *prefix, const char *name)
{
    int n;
    if (prefix && prefix[0])
        n = snprintf(out, cap, "%s.%s", prefix, name);
    else
        n = snprintf(out, cap, "%s", name);
    if (n < 0)
        out[0] = '\0';
}

/* Finds obj[name]; NULL for absent or null. Fails when obj itself is not an object. */
static int lookup(const json_t *obj, const char *prefix, const char *name, json_t **value,
                  errand_error *err)
{
    *value = NULL;
    if (!json_is_object(obj)) {
        if (prefix && prefix[0])
            return error_set(err, ERRAND_EINVAL, prefix, "field '%s' must be an object, got %s",
                             prefix, json_type_label(obj));
        return error_set(err, ERRAND_EINVAL, NULL, "body must be a JSON object, got %s",
                         json_type_label(obj));
    }
    json_t *v = json_object_get(obj, name);
    if (v && !json_is_null(v))
        *value = v;
    return 0;
}

static void set_present(bool *present, bool value)
{
    if (present)
        *present = value;
}

/* The frame of the typed getters: finds obj[name] as lookup() does (NULL in *value when it
 * is absent or null) and checks its type with is_type, failing with "field 'x' must be
 * <want>, got <type>". *present (optional) says whether a value of the right type is there. */
static int lookup_typed(const json_t *obj, const char *prefix, const char *name,
                        bool (*is_type)(const json_t *v), const char *want, json_t **value,
                        bool *present, errand_error *err)
{
    set_present(present, false);
    int rc = lookup(obj, prefix, name, value, err);
    if (rc || !*value)
        return rc;
    if (!is_type(*value)) {
        char path[JSON_PATH_MAX];
        field_path(path, sizeof path, prefix, name);
        return error_set(err, ERRAND_EINVAL, path, "field '%s' must be %s, got %s", path, want,
                         json_type_label(*value));
    }
    set_present(present, true);
    return 0;
}

/* jansson's json_is_* are macros; lookup_typed() takes them as functions. */
static bool is_string(const json_t *v)
{
    return json_is_string(v);
}

static bool is_integer(const json_t *v)
{
    return json_is_integer(v);
}

static bool is_number(const json_t *v)
{
    return json_is_number(v);
}

static bool is_boolean(const json_t *v)
{
    return json_is_boolean(v);
}

int json_get_string(const json_t *obj, const char *prefix, const char *name, const char **out,
                    bool *present, errand_error *err)
{
    json_t *v;
    int rc = lookup_typed(obj, prefix, name, is_string, "a string", &v, present, err);
    if (rc == 0 && v)
        *out = json_string_value(v);
    return rc;
}

int json_get_int(const json_t *obj, const char *prefix, const char *name, long long *out,
                 bool *present, errand_error *err)
{
    /* Reals are refused even when whole (2.0): an integer field takes integer text. Values
       beyond long long never get here, jansson refuses them while parsing. */
    json_t *v;
    int rc = lookup_typed(obj, prefix, name, is_integer, "an integer", &v, present, err);
    if (rc == 0 && v)
        *out = (long long)json_integer_value(v);
    return rc;
}

int json_get_number(const json_t *obj, const char *prefix, const char *name, double *out,
                    bool *present, errand_error *err)
{
    json_t *v;
    int rc = lookup_typed(obj, prefix, name, is_number, "a number", &v, present, err);
    if (rc == 0 && v)
        *out = json_number_value(v);
    return rc;
}

int json_get_bool(const json_t *obj, const char *prefix, const char *name, bool *out, bool *present,
                  errand_error *err)
{
    json_t *v;
    int rc = lookup_typed(obj, prefix, name, is_boolean, "a boolean", &v, present, err);
    if (rc == 0 && v)
        *out = json_is_true(v);
    return rc;
}

int json_check_fields(const json_t *obj, const char *prefix, const char *const *allowed,
                      errand_error *err)
{
    json_t *unused;
    int rc = lookup(obj, prefix, "", &unused, err);
    if (rc)
        return rc;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; a && *a; a++) {
            if (strcmp(*a, key) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            char path[JSON_PATH_MAX];
            field_path(path, sizeof path, prefix, key);
            return error_set(err, ERR_UNKNOWN_FIELD, path, "unknown field '%s'", path);
        }
    }
    return 0;
}
