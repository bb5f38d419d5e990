/* SPDX-License-Identifier: MIT */
/*
 * schema.c — JSON Schema lint, validation with coercion, and request shaping (see schema.h).
 * Recursion is bounded by SCHEMA_MAX_DEPTH so a schema with a $ref cycle, or a deeply nested
 * answer, ends in a clear error instead of a stack overflow.
 */
#include "schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH 64
#define PATH_MAX_LEN 256
#define WRAP_MEMBER "value"
/* Integers beyond 2^53 are not exact in a double, so a real that large is not read as one. */
#define MAX_EXACT_INTEGER 9007199254740992.0

static const char *const json_types[] = {"string", "integer", "number", "boolean",
                                         "null",   "array",   "object", NULL};

typedef struct checker {
    json_t *root; /* for $ref */
    char *why;
    size_t why_len;
} checker;

/* Records "at PATH: <message>" as the reason for failing. */
static void record(checker *c, const char *path, const char *fmt, va_list ap)
{
    int n = snprintf(c->why, c->why_len, "at %s: ", path);
    if (n >= 0 && (size_t)n < c->why_len)
        vsnprintf(c->why + n, c->why_len - (size_t)n, fmt, ap);
}

/* For checks that answer a status: records why and returns -1. */
static int failf(checker *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(checker *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(c, path, fmt, ap);
    va_end(ap);
    return -1;
}

/* For checks that answer a value: records why and returns NULL. */
static json_t *reject(checker *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *reject(checker *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(c, path, fmt, ap);
    va_end(ap);
    return NULL;
}

static const char *value_type_name(json_t *v)
{
    switch (json_typeof(v)) {
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

static bool is_known_type(const char *t)
{
    for (const char *const *k = json_types; *k; k++)
        if (strcmp(*k, t) == 0)
            return true;
    return false;
}

/* Resolves "#/$defs/Name" (or "#/definitions/Name", any depth of plain segments). */
static json_t *resolve_ref(json_t *root, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0)
        return strcmp(ref, "#") == 0 ? root : NULL;
    json_t *node = root;
    char seg[PATH_MAX_LEN];
    for (const char *p = ref + 2; node && *p;) {
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && p[1] == '1')
                seg[n++] = '/', p += 2;
            else if (p[0] == '~' && p[1] == '0')
                seg[n++] = '~', p += 2;
            else
                seg[n++] = *p++;
        }
        seg[n] = '\0';
        if (*p == '/')
            p++;
        node = json_is_object(node) ? json_object_get(node, seg) : NULL;
    }
    return node;
}

/* ---- lint ---------------------------------------------------------------------------- */

static int lint(checker *c, json_t *s, const char *path, int depth)
{
    if (json_is_boolean(s))
        return 0;
    if (!json_is_object(s))
        return failf(c, path, "a schema must be an object, got %s", value_type_name(s));
    if (depth > SCHEMA_MAX_DEPTH)
        return failf(c, path, "nested deeper than %d", SCHEMA_MAX_DEPTH);
    char sub[PATH_MAX_LEN];

    json_t *type = json_object_get(s, "type");
    if (type) {
        if (json_is_string(type)) {
            if (!is_known_type(json_string_value(type)))
                return failf(c, path, "unknown type '%s'", json_string_value(type));
        } else if (json_is_array(type)) {
            size_t i;
            json_t *t;
            json_array_foreach(type, i, t)
            {
                if (!json_is_string(t) || !is_known_type(json_string_value(t)))
                    return failf(c, path, "\"type\" lists something that is not a JSON type");
            }
        } else {
            return failf(c, path, "\"type\" must be a string or an array of strings");
        }
    }
    json_t *props = json_object_get(s, "properties");
    if (props) {
        if (!json_is_object(props))
            return failf(c, path, "\"properties\" must be an object");
        const char *key;
        json_t *ps;
        json_object_foreach(props, key, ps)
        {
            snprintf(sub, sizeof sub, "%s.properties.%s", path, key);
            if (lint(c, ps, sub, depth + 1) != 0)
                return -1;
        }
    }
    json_t *req = json_object_get(s, "required");
    if (req) {
        size_t i;
        json_t *r;
        if (!json_is_array(req))
            return failf(c, path, "\"required\" must be an array of property names");
        json_array_foreach(req, i, r)
        {
            if (!json_is_string(r))
                return failf(c, path, "\"required\" must be an array of property names");
        }
    }
    json_t *enm = json_object_get(s, "enum");
    if (enm && (!json_is_array(enm) || json_array_size(enm) == 0))
        return failf(c, path, "\"enum\" must be a non-empty array");
    static const char *const sub_schemas[] = {"items", "additionalProperties", NULL};
    for (const char *const *k = sub_schemas; *k; k++) {
        json_t *v = json_object_get(s, *k);
        snprintf(sub, sizeof sub, "%s.%s", path, *k);
        if (v && lint(c, v, sub, depth + 1) != 0)
            return -1;
    }
    static const char *const lists[] = {"anyOf", "oneOf", "allOf", NULL};
    for (const char *const *k = lists; *k; k++) {
        json_t *v = json_object_get(s, *k);
        if (!v)
            continue;
        if (!json_is_array(v) || json_array_size(v) == 0)
            return failf(c, path, "\"%s\" must be a non-empty array of schemas", *k);
        size_t i;
        json_t *alt;
        json_array_foreach(v, i, alt)
        {
            snprintf(sub, sizeof sub, "%s.%s[%zu]", path, *k, i);
            if (lint(c, alt, sub, depth + 1) != 0)
                return -1;
        }
    }
    json_t *ref = json_object_get(s, "$ref");
    if (ref && (!json_is_string(ref) || !resolve_ref(c->root, json_string_value(ref))))
        return failf(c, path, "\"$ref\" must point inside this schema (\"#/$defs/Name\")");
    static const char *const def_keys[] = {"$defs", "definitions", NULL};
    for (const char *const *k = def_keys; *k; k++) {
        json_t *defs = json_object_get(s, *k);
        if (!defs)
            continue;
        if (!json_is_object(defs))
            return failf(c, path, "\"%s\" must be an object of schemas", *k);
        const char *key;
        json_t *d;
        json_object_foreach(defs, key, d)
        {
            snprintf(sub, sizeof sub, "%s.%s.%s", path, *k, key);
            if (lint(c, d, sub, depth + 1) != 0)
                return -1;
        }
    }
    return 0;
}

int schema_lint(json_t *schema, char *why, size_t why_len)
{
    checker c = {.root = schema, .why = why, .why_len = why_len};
    if (!json_is_object(schema)) {
        snprintf(why, why_len, "a JSON Schema must be an object, got %s", value_type_name(schema));
        return -1;
    }
    return lint(&c, schema, "$", 0);
}

/* ---- validation ---------------------------------------------------------------------- */

static json_t *check(checker *c, json_t *v, json_t *s, const char *path, int depth);

static bool type_matches(json_t *v, const char *t)
{
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v) || (json_is_real(v) && isfinite(json_real_value(v)) &&
                                      json_real_value(v) == floor(json_real_value(v)) &&
                                      fabs(json_real_value(v)) <= MAX_EXACT_INTEGER);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    return false;
}

/* The value read as type t: 3 as "number" is 3.0, 3.0 as "integer" is 3. New reference. */
static json_t *coerce(json_t *v, const char *t)
{
    if (strcmp(t, "number") == 0 && json_is_integer(v))
        return json_real((double)json_integer_value(v));
    if (strcmp(t, "integer") == 0 && json_is_real(v))
        return json_integer((json_int_t)json_real_value(v));
    return json_incref(v);
}

/* Checks "type"; returns the coerced value (new reference) or NULL. */
static json_t *check_type(checker *c, json_t *v, json_t *type, const char *path)
{
    if (!type)
        return json_incref(v);
    if (json_is_string(type)) {
        if (type_matches(v, json_string_value(type)))
            return coerce(v, json_string_value(type));
        failf(c, path, "expected %s, got %s", json_string_value(type), value_type_name(v));
        return NULL;
    }
    size_t i;
    json_t *t;
    /* A union: an exact JSON type wins over a coercion (["integer","number"] keeps 3). */
    json_array_foreach(type, i, t)
    {
        if (strcmp(json_string_value(t), value_type_name(v)) == 0)
            return json_incref(v);
    }
    json_array_foreach(type, i, t)
    {
        if (type_matches(v, json_string_value(t)))
            return coerce(v, json_string_value(t));
    }
    char *list = json_dumps(type, JSON_COMPACT);
    failf(c, path, "expected one of %s, got %s", list ? list : "the listed types",
          value_type_name(v));
    free(list);
    return NULL;
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) /* not a continuation byte */
            n++;
    return n;
}

static int check_bounds(checker *c, json_t *v, json_t *s, const char *path)
{
    json_t *k;
    if (json_is_string(v)) {
        size_t len = utf8_length(json_string_value(v));
        if ((k = json_object_get(s, "minLength")) && json_is_integer(k) &&
            len < (size_t)json_integer_value(k))
            return failf(c, path, "string shorter than %" JSON_INTEGER_FORMAT " characters",
                         json_integer_value(k));
        if ((k = json_object_get(s, "maxLength")) && json_is_integer(k) &&
            len > (size_t)json_integer_value(k))
            return failf(c, path, "string longer than %" JSON_INTEGER_FORMAT " characters",
                         json_integer_value(k));
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if ((k = json_object_get(s, "minimum")) && json_is_number(k) && x < json_number_value(k))
            return failf(c, path, "%g is below the minimum %g", x, json_number_value(k));
        if ((k = json_object_get(s, "maximum")) && json_is_number(k) && x > json_number_value(k))
            return failf(c, path, "%g is above the maximum %g", x, json_number_value(k));
        if ((k = json_object_get(s, "exclusiveMinimum")) && json_is_number(k) &&
            x <= json_number_value(k))
            return failf(c, path, "%g is not above %g", x, json_number_value(k));
        if ((k = json_object_get(s, "exclusiveMaximum")) && json_is_number(k) &&
            x >= json_number_value(k))
            return failf(c, path, "%g is not below %g", x, json_number_value(k));
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if ((k = json_object_get(s, "minItems")) && json_is_integer(k) &&
            n < (size_t)json_integer_value(k))
            return failf(c, path, "fewer than %" JSON_INTEGER_FORMAT " items",
                         json_integer_value(k));
        if ((k = json_object_get(s, "maxItems")) && json_is_integer(k) &&
            n > (size_t)json_integer_value(k))
            return failf(c, path, "more than %" JSON_INTEGER_FORMAT " items",
                         json_integer_value(k));
    }
    return 0;
}

static json_t *check_array(checker *c, json_t *v, json_t *s, const char *path, int depth)
{
    json_t *items = json_object_get(s, "items");
    if (!items)
        return json_incref(v);
    json_t *out = json_array();
    size_t i;
    json_t *item;
    char sub[PATH_MAX_LEN];
    json_array_foreach(v, i, item)
    {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        json_t *checked = check(c, item, items, sub, depth + 1);
        if (!checked) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, checked);
    }
    return out;
}

static json_t *check_object(checker *c, json_t *v, json_t *s, const char *path, int depth)
{
    json_t *props = json_object_get(s, "properties");
    json_t *extra = json_object_get(s, "additionalProperties");
    json_t *req = json_object_get(s, "required");
    char sub[PATH_MAX_LEN];
    size_t i;
    json_t *name;
    json_array_foreach(req, i, name)
    {
        if (json_is_string(name) && !json_object_get(v, json_string_value(name)))
            return reject(c, path, "missing required property '%s'", json_string_value(name));
    }
    json_t *out = json_object();
    const char *key;
    json_t *member;
    json_object_foreach(v, key, member)
    {
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        json_t *ps = props ? json_object_get(props, key) : NULL;
        if (!ps && json_is_false(extra)) {
            failf(c, path, "unexpected property '%s'", key);
            json_decref(out);
            return NULL;
        }
        if (!ps)
            ps = extra; /* a schema for the other members, or NULL (anything) */
        json_t *checked = ps ? check(c, member, ps, sub, depth + 1) : json_incref(member);
        if (!checked) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, key, checked);
    }
    return out;
}

/* anyOf/oneOf: the first alternative that accepts the value; allOf: each in turn. */
static json_t *check_combinators(checker *c, json_t *v, json_t *s, const char *path, int depth)
{
    json_t *value = json_incref(v);
    static const char *const any_keys[] = {"anyOf", "oneOf", NULL};
    for (const char *const *k = any_keys; *k && value; k++) {
        json_t *alts = json_object_get(s, *k);
        if (!json_is_array(alts))
            continue;
        json_t *match = NULL;
        size_t i;
        json_t *alt;
        json_array_foreach(alts, i, alt)
        {
            if ((match = check(c, value, alt, path, depth + 1)))
                break;
        }
        json_decref(value);
        if (!match)
            failf(c, path, "matches none of the %s alternatives", *k);
        value = match;
    }
    json_t *all = json_object_get(s, "allOf");
    if (value && json_is_array(all)) {
        size_t i;
        json_t *part;
        json_array_foreach(all, i, part)
        {
            json_t *next = check(c, value, part, path, depth + 1);
            json_decref(value);
            if (!(value = next))
                break;
        }
    }
    return value;
}

static json_t *check(checker *c, json_t *v, json_t *s, const char *path, int depth)
{
    if (depth > SCHEMA_MAX_DEPTH)
        return reject(c, path, "nested deeper than %d", SCHEMA_MAX_DEPTH);
    if (json_is_true(s))
        return json_incref(v);
    if (json_is_false(s) || !json_is_object(s))
        return reject(c, path, "no value is allowed here");

    json_t *ref = json_object_get(s, "$ref");
    if (json_is_string(ref)) {
        json_t *target = resolve_ref(c->root, json_string_value(ref));
        if (!target)
            return reject(c, path, "unresolvable $ref '%s'", json_string_value(ref));
        return check(c, v, target, path, depth + 1);
    }
    json_t *cnst = json_object_get(s, "const");
    if (cnst && !json_equal(v, cnst))
        return reject(c, path, "not the constant the schema requires");
    json_t *enm = json_object_get(s, "enum");
    if (json_is_array(enm)) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(enm, i, e)
        {
            found = found || json_equal(v, e);
        }
        if (!found) {
            char *list = json_dumps(enm, JSON_COMPACT);
            failf(c, path, "not one of %s", list ? list : "the allowed values");
            free(list);
            return NULL;
        }
    }
    json_t *value = check_type(c, v, json_object_get(s, "type"), path);
    if (!value)
        return NULL;
    if (check_bounds(c, value, s, path) != 0) {
        json_decref(value);
        return NULL;
    }
    json_t *next = json_is_array(value)    ? check_array(c, value, s, path, depth)
                   : json_is_object(value) ? check_object(c, value, s, path, depth)
                                           : json_incref(value);
    json_decref(value);
    if (!next)
        return NULL;
    value = check_combinators(c, next, s, path, depth);
    json_decref(next);
    return value;
}

json_t *schema_check(json_t *value, json_t *schema, char *why, size_t why_len)
{
    checker c = {.root = schema, .why = why, .why_len = why_len};
    return check(&c, value, schema, "$", 0);
}

/* ---- request shaping ----------------------------------------------------------------- */

static bool is_object_schema(json_t *s)
{
    json_t *type = json_object_get(s, "type");
    return json_is_string(type) && strcmp(json_string_value(type), "object") == 0;
}

json_t *schema_for_request(json_t *schema, bool *wrapped)
{
    if (is_object_schema(schema)) {
        *wrapped = false;
        return json_incref(schema);
    }
    *wrapped = true;
    /* Definitions stay at the root, where "#/$defs/..." references look for them. */
    json_t *inner = json_deep_copy(schema);
    json_t *root =
        json_pack("{s:s, s:{s:o}, s:[s], s:b}", "type", "object", "properties", WRAP_MEMBER, inner,
                  "required", WRAP_MEMBER, "additionalProperties", 0);
    static const char *const def_keys[] = {"$defs", "definitions", NULL};
    for (const char *const *k = def_keys; root && *k; k++) {
        json_t *defs = json_object_get(inner, *k);
        if (defs) {
            json_object_set(root, *k, defs);
            json_object_del(inner, *k);
        }
    }
    return root;
}

static bool strict_ok(json_t *s, int depth)
{
    if (!json_is_object(s))
        return true; /* true/false schemas */
    if (depth > SCHEMA_MAX_DEPTH)
        return false;
    json_t *props = json_object_get(s, "properties");
    if (is_object_schema(s)) {
        json_t *req = json_object_get(s, "required");
        if (!json_is_object(props) || !json_is_false(json_object_get(s, "additionalProperties")))
            return false;
        if (!json_is_array(req) || json_array_size(req) != json_object_size(props))
            return false;
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r)
        {
            if (!json_is_string(r) || !json_object_get(props, json_string_value(r)))
                return false;
        }
    }
    json_t *type = json_object_get(s, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "array") == 0 &&
        !json_object_get(s, "items"))
        return false;
    const char *key;
    json_t *sub;
    if (json_is_object(props)) {
        json_object_foreach(props, key, sub)
        {
            if (!strict_ok(sub, depth + 1))
                return false;
        }
    }
    if ((sub = json_object_get(s, "items")) && !strict_ok(sub, depth + 1))
        return false;
    static const char *const lists[] = {"anyOf", "allOf", NULL};
    for (const char *const *k = lists; *k; k++) {
        size_t i;
        json_t *alt;
        json_array_foreach(json_object_get(s, *k), i, alt)
        {
            if (!strict_ok(alt, depth + 1))
                return false;
        }
    }
    static const char *const def_keys[] = {"$defs", "definitions", NULL};
    for (const char *const *k = def_keys; *k; k++) {
        json_t *defs = json_object_get(s, *k);
        if (!json_is_object(defs))
            continue;
        json_object_foreach(defs, key, sub)
        {
            if (!strict_ok(sub, depth + 1))
                return false;
        }
    }
    return true;
}

bool schema_is_strict(json_t *schema)
{
    return strict_ok(schema, 0);
}
