/* SPDX-License-Identifier: MIT */
/*
 * field.h — range-checked access to the fields of a JSON request body. core/json.h checks
 * types; these add what the wire contract (docs/api.md) says about values: required or not,
 * string lengths, numeric ranges, array sizes. Every failure names the field in err->field
 * and in the message, in the words of core/json.h ("field 'runs[3].priority' must be ...").
 *
 * Naming rule: err->field is always a field of the documented field tables, prefixed with
 * the index of the object it sits in when that object is an element of an array of objects
 * ("runs[3].task", "reports[0].state"). An element of an array of plain values is not a
 * field of its own: err->field names the array ("tags") and the message the element
 * ("field 'tags[1]' must be a string, got null"), so clients can map errors to fields.
 *
 * Absent and null fields are the same thing (as in core/json.h): both leave *out untouched
 * and set *present = false, or fail with ERR_MISSING_FIELD when the field is required.
 */
#ifndef ERRAND_SERVER_FIELD_H
#define ERRAND_SERVER_FIELD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errand/errand.h"

/* "prefix.name", or "name" when prefix is NULL or empty; truncated to the field size. */
void field_path(char out[ERRAND_ERROR_FIELD_MAX], const char *prefix, const char *name);

/* The number of characters (UTF-8 code points) of s. */
size_t field_utf8_len(const char *s);

/* A string of 1..max_chars characters. */
int field_string(const json_t *obj, const char *prefix, const char *name, bool required,
                 size_t max_chars, const char **out, bool *present, errand_error *err);

/* An integer in [min, max]. */
int field_int(const json_t *obj, const char *prefix, const char *name, bool required, long long min,
              long long max, long long *out, bool *present, errand_error *err);

/* A finite number (integer or real) in [min, max], or (min, max] when min_exclusive. */
int field_number(const json_t *obj, const char *prefix, const char *name, bool required, double min,
                 bool min_exclusive, double max, double *out, bool *present, errand_error *err);

/* Checks that the number v (already known to be a JSON number) lies in range; err->field is
 * path, the message names label (the element, such as "retry_delay_seconds[2]", or path
 * again). Shared by field_number and array elements. */
int field_check_number(double v, const char *path, const char *label, double min,
                       bool min_exclusive, double max, errand_error *err);

/* An array of min..max elements (*out borrowed from obj). */
int field_array(const json_t *obj, const char *prefix, const char *name, bool required, size_t min,
                size_t max, const json_t **out, bool *present, errand_error *err);

/* An object (*out borrowed from obj). */
int field_object(const json_t *obj, const char *prefix, const char *name, bool required,
                 const json_t **out, bool *present, errand_error *err);

/* Fails with ERR_INVALID_JSON (prefix NULL: the body) or ERRAND_EINVAL (prefix names an array
 * element) unless v is an object. */
int field_require_object(const json_t *v, const char *prefix, errand_error *err);

#endif
