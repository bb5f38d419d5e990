/* SPDX-License-Identifier: MIT */
/*
 * query.c — query-parameter parsing (see query.h). Numbers must be plain decimal text:
 * strtoll/strtod alone would accept leading spaces, "0x10", "inf" or "nan".
 */
#include "server/query.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/state.h"
#include "core/uuid.h"
#include "server/field.h"

#define STATE_NAME_MAX 16 /* longest state type name ("CANCELLING") + room */
#define DECIMAL_CHARS "0123456789"
#define NUMBER_CHARS "0123456789.eE+-"

struct check_walk {
    const struct query_param *params;
    unsigned seen; /* bit i: params[i] was given (the lists are far shorter than 32) */
    errand_error *err;
};

static int check_one(void *ud, const char *name, const char *value)
{
    struct check_walk *w = ud;
    for (unsigned i = 0; w->params[i].name; i++) {
        if (strcmp(w->params[i].name, name) != 0)
            continue;
        if (!w->params[i].repeatable && (w->seen & (1u << i)))
            return error_set(w->err, ERR_INVALID_PARAMETER, name,
                             "query parameter '%s' may be given only once", name);
        w->seen |= 1u << i;
        return 0;
    }
    return error_set(w->err, ERR_INVALID_PARAMETER, name, "unknown query parameter '%s'", name);
}

int query_check(const struct http_request *req, const struct query_param *params, errand_error *err)
{
    struct check_walk w = {params, 0, err};
    return http_query_each(req, check_one, &w);
}

int query_none(const struct http_request *req, errand_error *err)
{
    static const struct query_param none[] = {{NULL, false}};
    return query_check(req, none, err);
}

static bool only(const char *s, const char *chars)
{
    return *s && strspn(s, chars) == strlen(s);
}

int query_int(const struct http_request *req, const char *name, long long min, long long max,
              long long fallback, long long *out, errand_error *err)
{
    const char *v = http_query(req, name);
    if (!v) {
        *out = fallback;
        return 0;
    }
    const char *digits = v[0] == '-' ? v + 1 : v;
    errno = 0;
    long long n = only(digits, DECIMAL_CHARS) ? strtoll(v, NULL, 10) : 0;
    if (!only(digits, DECIMAL_CHARS) || errno == ERANGE || n < min || n > max)
        return error_set(err, ERR_INVALID_PARAMETER, name,
                         "query parameter '%s' must be an integer between %lld and %lld, got "
                         "'%.32s'",
                         name, min, max, v);
    *out = n;
    return 0;
}

int query_number(const struct http_request *req, const char *name, double min, double max,
                 double fallback, double *out, errand_error *err)
{
    const char *v = http_query(req, name);
    if (!v) {
        *out = fallback;
        return 0;
    }
    char *end = NULL;
    double d = only(v, NUMBER_CHARS) ? strtod(v, &end) : NAN;
    if (!end || *end || !isfinite(d) || d < min || d > max)
        return error_set(err, ERR_INVALID_PARAMETER, name,
                         "query parameter '%s' must be a number between %g and %g, got '%.32s'",
                         name, min, max, v);
    *out = d;
    return 0;
}

int query_string(const struct http_request *req, const char *name, size_t max_chars,
                 const char **out, errand_error *err)
{
    const char *v = http_query(req, name);
    *out = NULL;
    if (!v)
        return 0;
    size_t len = field_utf8_len(v);
    if (len == 0 || len > max_chars)
        return error_set(err, ERR_INVALID_PARAMETER, name,
                         "query parameter '%s' must be between 1 and %zu characters, got %zu", name,
                         max_chars, len);
    *out = v;
    return 0;
}

int query_uuid(const struct http_request *req, const char *name, const char **out,
               errand_error *err)
{
    const char *v = http_query(req, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!uuid_is_valid(v))
        return error_set(err, ERR_INVALID_PARAMETER, name,
                         "query parameter '%s' must be a task-run UUID, got '%.40s'", name, v);
    *out = v;
    return 0;
}

int query_time(const struct http_request *req, const char *name, int64_t *out, errand_error *err)
{
    const char *v = http_query(req, name);
    if (!v)
        return 0;
    if (!clock_parse_rfc3339(v, out))
        return error_set(err, ERR_INVALID_PARAMETER, name,
                         "query parameter '%s' must be an RFC 3339 time such as "
                         "2026-12-02T10:00:00Z, got '%.40s'",
                         name, v);
    return 0;
}

struct state_walk {
    const char *name;
    unsigned mask;
    errand_error *err;
};

static int add_states(void *ud, const char *name, const char *value)
{
    struct state_walk *w = ud;
    if (strcmp(name, w->name) != 0)
        return 0;
    const char *p = value;
    do {
        size_t len = strcspn(p, ",");
        char one[STATE_NAME_MAX];
        errand_state s;
        if (len == 0 || len >= sizeof one)
            return error_set(w->err, ERR_INVALID_PARAMETER, w->name,
                             "query parameter '%s' must list state types such as "
                             "SCHEDULED,RUNNING, got '%.64s'",
                             w->name, value);
        memcpy(one, p, len);
        one[len] = '\0';
        if (!state_parse(one, &s))
            return error_set(w->err, ERR_INVALID_PARAMETER, w->name,
                             "unknown state '%s' in query parameter '%s'; use SCHEDULED, "
                             "PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLING or "
                             "CANCELLED",
                             one, w->name);
        w->mask |= 1u << s;
        p += len;
    } while (*p++ == ',');
    return 0;
}

int query_states(const struct http_request *req, const char *name, unsigned *mask,
                 errand_error *err)
{
    struct state_walk w = {name, 0, err};
    int rc = http_query_each(req, add_states, &w);
    if (rc < 0)
        return rc;
    *mask = w.mask;
    return 0;
}
