/* SPDX-License-Identifier: MIT */
/*
 * query.h — validated query parameters. Unknown parameters and repeats of a parameter that
 * takes one value are refused, like unknown body fields, so "?states=FAILED" (a typo) fails
 * loudly instead of listing every run. Every failure is ERR_INVALID_PARAMETER (400
 * invalid_parameter) naming the parameter.
 */
#ifndef ERRAND_SERVER_QUERY_H
#define ERRAND_SERVER_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"
#include "server/http.h"

struct query_param {
    const char *name;
    bool repeatable;
};

/* Checks every parameter of the request against params (terminated by {NULL, false}). */
int query_check(const struct http_request *req, const struct query_param *params,
                errand_error *err);

/* Refuses any query parameter (endpoints that take none). */
int query_none(const struct http_request *req, errand_error *err);

/* An integer in [min, max]; *out = fallback when absent. */
int query_int(const struct http_request *req, const char *name, long long min, long long max,
              long long fallback, long long *out, errand_error *err);

/* A finite number in [min, max]; *out = fallback when absent. */
int query_number(const struct http_request *req, const char *name, double min, double max,
                 double fallback, double *out, errand_error *err);

/* A string of 1..max_chars characters; *out = NULL when absent. */
int query_string(const struct http_request *req, const char *name, size_t max_chars,
                 const char **out, errand_error *err);

/* An RFC 3339 time (Unix ms into *out); *out untouched when absent. */
int query_time(const struct http_request *req, const char *name, int64_t *out, errand_error *err);

/* A task-run UUID; *out = NULL when absent. */
int query_uuid(const struct http_request *req, const char *name, const char **out,
               errand_error *err);

/* State types: every occurrence of name, each a comma-separated list of SCHEDULED, PENDING,
 * ...; *mask gets bit (1u << state) for each; 0 when absent. */
int query_states(const struct http_request *req, const char *name, unsigned *mask,
                 errand_error *err);

#endif
