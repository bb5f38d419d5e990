/* SPDX-License-Identifier: MIT */
/*
 * field.c — value checks on top of core/json.h's typed getters (see field.h). Messages use
 * the bare field name, err->field the full path, like core/json.h does.
 */
#include "server/field.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

void field_path(char out[ERRAND_ERROR_FIELD_MAX], const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf(out, ERRAND_ERROR_FIELD_MAX, "%s.%s", prefix, name);
    else
        snprintf(out, ERRAND_ERROR_FIELD_MAX, "%s", name);
}

size_t field_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) /* count every byte that is not a continuation byte */
            n++;
    return n;
}

static int missing(const char *prefix, const char *name, errand_error *err)
{
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, name);
    return error_set(err, ERR_MISSING_FIELD, path, "field '%s' is required", path);
}

int field_string(const json_t *obj, const char *prefix, const char *name, bool required,
                 size_t max_chars, const char **out, bool *present, errand_error *err)
{
    bool have = false;
    const char *s = NULL;
    int rc = json_get_string(obj, prefix, name, &s, &have, err);
    if (rc < 0)
        return rc;
    if (present)
        *present = have;
    if (!have)
        return required ? missing(prefix, name, err) : 0;
    size_t len = field_utf8_len(s);
    if (len == 0 || len > max_chars) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, name);
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be between 1 and %zu characters, got %zu", path,
                         max_chars, len);
    }
    *out = s;
    return 0;
}

int field_int(const json_t *obj, const char *prefix, const char *name, bool required, long long min,
              long long max, long long *out, bool *present, errand_error *err)
{
    bool have = false;
    long long v = 0;
    int rc = json_get_int(obj, prefix, name, &v, &have, err);
    if (rc < 0)
        return rc;
    if (present)
        *present = have;
    if (!have)
        return required ? missing(prefix, name, err) : 0;
    if (v < min || v > max) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, name);
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must be between %lld and %lld, got %lld", path, min, max, v);
    }
    *out = v;
    return 0;
}

int field_check_number(double v, const char *path, const char *label, double min,
                       bool min_exclusive, double max, errand_error *err)
{
    if (!isfinite(v))
        return error_set(err, ERRAND_EINVAL, path, "field '%s' must be a finite number", label);
    if (min_exclusive ? !(v > min) : !(v >= min))
        return error_set(err, ERRAND_EINVAL, path, "field '%s' must be %s %g, got %g", label,
                         min_exclusive ? ">" : ">=", min, v);
    if (v > max)
        return error_set(err, ERRAND_EINVAL, path, "field '%s' must be <= %g, got %g", label, max,
                         v);
    return 0;
}

int field_number(const json_t *obj, const char *prefix, const char *name, bool required, double min,
                 bool min_exclusive, double max, double *out, bool *present, errand_error *err)
{
    bool have = false;
    double v = 0;
    int rc = json_get_number(obj, prefix, name, &v, &have, err);
    if (rc < 0)
        return rc;
    if (present)
        *present = have;
    if (!have)
        return required ? missing(prefix, name, err) : 0;
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, name);
    rc = field_check_number(v, path, path, min, min_exclusive, max, err);
    if (rc < 0)
        return rc;
    *out = v;
    return 0;
}

/* The value of a field, with null read as absent (the json.h convention). */
static const json_t *member(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

static int wrong_type(const json_t *v, const char *prefix, const char *name, const char *want,
                      errand_error *err)
{
    char path[ERRAND_ERROR_FIELD_MAX];
    field_path(path, prefix, name);
    return error_set(err, ERRAND_EINVAL, path, "field '%s' must be %s, got %s", path, want,
                     json_type_label(v));
}

int field_array(const json_t *obj, const char *prefix, const char *name, bool required, size_t min,
                size_t max, const json_t **out, bool *present, errand_error *err)
{
    const json_t *v = member(obj, name);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? missing(prefix, name, err) : 0;
    if (!json_is_array(v))
        return wrong_type(v, prefix, name, "an array", err);
    size_t n = json_array_size(v);
    if (n < min || n > max) {
        char path[ERRAND_ERROR_FIELD_MAX];
        field_path(path, prefix, name);
        return error_set(err, ERRAND_EINVAL, path,
                         "field '%s' must have between %zu and %zu items, got %zu", path, min, max,
                         n);
    }
    *out = v;
    return 0;
}

int field_object(const json_t *obj, const char *prefix, const char *name, bool required,
                 const json_t **out, bool *present, errand_error *err)
{
    const json_t *v = member(obj, name);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? missing(prefix, name, err) : 0;
    if (!json_is_object(v))
        return wrong_type(v, prefix, name, "an object", err);
    *out = v;
    return 0;
}

int field_require_object(const json_t *v, const char *prefix, errand_error *err)
{
    if (json_is_object(v))
        return 0;
    if (prefix && *prefix)
        return error_set(err, ERRAND_EINVAL, prefix, "field '%s' must be an object, got %s", prefix,
                         json_type_label(v));
    return error_set(err, ERR_INVALID_JSON, NULL, "the request body must be a JSON object, got %s",
                     json_type_label(v));
}
