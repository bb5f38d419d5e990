/* SPDX-License-Identifier: MIT */
/*
 * target_type.c — type expressions and inline schemas to JSON Schema (see target_type.h).
 *
 * The grammar is a small recursive descent over
 *     type := name [ '[' type { ',' type } ']' ]
 *     name := identifier { '.' identifier }      ("builtins." and "typing." are dropped)
 * with str/int/float/bool, list[T] (also List, Sequence) and dict[str, T] (also Dict,
 * Mapping). dict keys must be str: JSON object keys are strings.
 */
#include "target_type.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"

#define NAME_MAX_LEN 64
#define CANON_MAX 512
#define SUPPORTED_TYPES "str, int, float, bool, list[T], dict[str, T], or a JSON Schema object"

typedef struct parser {
    const char *text; /* the whole expression, for messages */
    const char *p;
    char canon[CANON_MAX];
    size_t canon_len;
    char *why;
} parser;

static void skip_space(parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static int fail(parser *ps, const char *what)
{
    snprintf(ps->why, TARGET_WHY_MAX, "unsupported target_type '%s': %s; use " SUPPORTED_TYPES,
             ps->text, what);
    return -1;
}

static int emit(parser *ps, const char *s)
{
    size_t n = strlen(s);
    if (ps->canon_len + n >= sizeof ps->canon)
        return fail(ps, "too long");
    memcpy(ps->canon + ps->canon_len, s, n + 1);
    ps->canon_len += n;
    return 0;
}

static int read_name(parser *ps, char name[NAME_MAX_LEN])
{
    skip_space(ps);
    size_t n = 0;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '.') {
        if (n + 1 >= NAME_MAX_LEN)
            return fail(ps, "a type name is too long");
        name[n++] = *ps->p++;
    }
    name[n] = '\0';
    if (n == 0)
        return fail(ps, *ps->p ? "expected a type name" : "expected a type name at the end");
    static const char *const prefixes[] = {"builtins.", "typing.", "collections.abc."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t len = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], len) == 0) {
            memmove(name, name + len, n - len + 1);
            break;
        }
    }
    return 0;
}

static bool name_is(const char *name, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(name, *names) == 0)
            return true;
    return false;
}

static json_t *parse_type(parser *ps, int depth);

/* Parses "[T]" or "[str, T]" after list/dict; returns the element schema. */
static json_t *parse_args(parser *ps, int depth, bool is_dict)
{
    ps->p++; /* '[' */
    if (emit(ps, "[") != 0)
        return NULL;
    if (is_dict) {
        char key[NAME_MAX_LEN];
        if (read_name(ps, key) != 0)
            return NULL;
        if (strcmp(key, "str") != 0) {
            fail(ps, "dict keys must be str (JSON object keys are strings)");
            return NULL;
        }
        skip_space(ps);
        if (*ps->p != ',') {
            fail(ps, "dict takes two arguments, dict[str, T]");
            return NULL;
        }
        ps->p++;
        if (emit(ps, "str, ") != 0)
            return NULL;
    }
    json_t *item = parse_type(ps, depth + 1);
    if (!item)
        return NULL;
    skip_space(ps);
    if (*ps->p != ']') {
        json_decref(item);
        fail(ps, is_dict ? "expected ']' after dict[str, T]" : "expected ']' after list[T]");
        return NULL;
    }
    ps->p++;
    if (emit(ps, "]") != 0) {
        json_decref(item);
        return NULL;
    }
    return item;
}

static json_t *parse_type(parser *ps, int depth)
{
    if (depth > TARGET_MAX_DEPTH) {
        fail(ps, "nested too deeply");
        return NULL;
    }
    char name[NAME_MAX_LEN];
    if (read_name(ps, name) != 0)
        return NULL;
    static const char *const str_names[] = {"str", "string", NULL};
    static const char *const int_names[] = {"int", "integer", NULL};
    static const char *const float_names[] = {"float", "number", NULL};
    static const char *const bool_names[] = {"bool", "boolean", NULL};
    static const char *const list_names[] = {"list", "List", "Sequence", NULL};
    static const char *const dict_names[] = {"dict", "Dict", "Mapping", NULL};

    const char *scalar = NULL, *canon = NULL;
    if (name_is(name, str_names))
        scalar = "string", canon = "str";
    else if (name_is(name, int_names))
        scalar = "integer", canon = "int";
    else if (name_is(name, float_names))
        scalar = "number", canon = "float";
    else if (name_is(name, bool_names))
        scalar = "boolean", canon = "bool";
    if (scalar) {
        if (emit(ps, canon) != 0)
            return NULL;
        return json_pack("{s:s}", "type", scalar);
    }

    bool is_list = name_is(name, list_names), is_dict = name_is(name, dict_names);
    if (!is_list && !is_dict) {
        char what[NAME_MAX_LEN + 32];
        snprintf(what, sizeof what, "unknown type '%s'", name);
        fail(ps, what);
        return NULL;
    }
    if (emit(ps, is_list ? "list" : "dict") != 0)
        return NULL;
    skip_space(ps);
    if (*ps->p != '[') /* a bare list or dict: any elements */
        return json_pack("{s:s}", "type", is_list ? "array" : "object");
    json_t *item = parse_args(ps, depth, is_dict);
    if (!item)
        return NULL;
    return is_list ? json_pack("{s:s, s:o}", "type", "array", "items", item)
                   : json_pack("{s:s, s:o}", "type", "object", "additionalProperties", item);
}

static int parse_expression(const char *text, target_type *out, char *why)
{
    parser ps = {.text = text, .p = text, .why = why};
    json_t *schema = parse_type(&ps, 0);
    if (!schema)
        return -1;
    skip_space(&ps);
    if (*ps.p) {
        json_decref(schema);
        return fail(&ps, "unexpected text after the type");
    }
    out->schema = schema;
    out->canonical = json_string(ps.canon);
    return 0;
}

static int adopt_schema(json_t *schema, target_type *out, char *why)
{
    char problem[TARGET_WHY_MAX / 2];
    if (schema_lint(schema, problem, sizeof problem) != 0) {
        snprintf(why, TARGET_WHY_MAX, "target_type is not a usable JSON Schema: %s", problem);
        return -1;
    }
    out->schema = json_incref(schema);
    out->canonical = json_incref(schema);
    return 0;
}

int target_type_parse_text(const char *text, target_type *out, char why[TARGET_WHY_MAX])
{
    out->schema = out->canonical = NULL;
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '\0') {
        snprintf(why, TARGET_WHY_MAX, "target_type is empty; use " SUPPORTED_TYPES);
        return -1;
    }
    if (*text != '{')
        return parse_expression(text, out, why);
    json_error_t jerr;
    json_t *schema = json_loads(text, 0, &jerr);
    if (!schema) {
        snprintf(why, TARGET_WHY_MAX,
                 "target_type looks like a JSON Schema but is not valid JSON: %s (line %d, "
                 "column %d)",
                 jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = adopt_schema(schema, out, why);
    json_decref(schema);
    return rc;
}

int target_type_parse_json(json_t *target, target_type *out, char why[TARGET_WHY_MAX])
{
    out->schema = out->canonical = NULL;
    if (json_is_string(target))
        return target_type_parse_text(json_string_value(target), out, why);
    if (json_is_object(target))
        return adopt_schema(target, out, why);
    snprintf(why, TARGET_WHY_MAX,
             "target_type must be a type name such as \"list[str]\" or a JSON Schema object");
    return -1;
}

void target_type_clear(target_type *t)
{
    json_decref(t->schema);
    json_decref(t->canonical);
    t->schema = t->canonical = NULL;
}
