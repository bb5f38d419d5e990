/* SPDX-License-Identifier: MIT */
/*
 * json.h — helpers over jansson used by the server, client and worker: canonical text (the
 * basis of cache keys), and typed field access that produces errand_error messages naming
 * the field, so every validation error has the same words.
 */
#ifndef ERRAND_CORE_JSON_H
#define ERRAND_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"

/* Canonical compact text: keys sorted, no spaces; malloc'd with mem_* (free with mem_free). */
char *json_canonical(const json_t *v);

/* The JSON_REAL_PRECISION flag that prints every real in v with the fewest digits (15-17)
 * that still read back as the same double; add it to any json_dump* of values users see. */
size_t json_real_flags(const json_t *v);

/* A JSON number for v: an integer when v is whole and exact in a double (|v| <= 2^53),
 * else a real. NULL when out of memory. */
json_t *json_number_exact(double v);

/* True when v nests no more than `levels` arrays and objects inside each other. */
bool json_depth_within(const json_t *v, int levels);

/* Compact text of v (not sorted); mem_free it. */
char *json_compact(const json_t *v);

/* Parses text into a value; on failure returns NULL and fills err (ERR_INVALID_JSON)
 * with line and column. max_depth guards against deeply nested input. */
json_t *json_parse_text(const char *text, size_t len, errand_error *err);

/* The JSON type name of v as a user reads it: "object", "string", "integer", ... */
const char *json_type_label(const json_t *v);

/* Typed getters: absent (or null) fields leave *out untouched and return 0 with *present =
 * false (present may be NULL). A wrong type returns ERRAND_EINVAL with err->field = prefix
 * + name (e.g. "runs[3].priority") and a message like
 * "field 'priority' must be an integer, got string". prefix may be NULL. */
int json_get_string(const json_t *obj, const char *prefix, const char *name, const char **out,
                    bool *present, errand_error *err);
int json_get_int(const json_t *obj, const char *prefix, const char *name, long long *out,
                 bool *present, errand_error *err);
int json_get_number(const json_t *obj, const char *prefix, const char *name, double *out,
                    bool *present, errand_error *err);
int json_get_bool(const json_t *obj, const char *prefix, const char *name, bool *out,
                  bool *present, errand_error *err);

/* Checks that every key of obj is in the NULL-terminated list `allowed`; otherwise
 * ERR_UNKNOWN_FIELD naming the first unknown field. */
int json_check_fields(const json_t *obj, const char *prefix, const char *const *allowed,
                      errand_error *err);

#endif
