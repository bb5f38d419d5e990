/* SPDX-License-Identifier: MIT */
/*
 * error.h — filling an errand_error (the public error struct) from inside the library.
 * Every module reports failures through these, so messages have one shape.
 */
#ifndef ERRAND_CORE_ERROR_H
#define ERRAND_CORE_ERROR_H

#include "errand/errand.h"

/* Finer codes used inside the server for the wire "code" of 4xx answers (docs/api.md).
 * They never reach users of liberrand: a client maps HTTP statuses to the public codes. */
enum {
    ERR_INVALID_JSON = -101,      /* 400 invalid_json */
    ERR_MISSING_FIELD = -102,     /* 400 missing_field */
    ERR_UNKNOWN_FIELD = -103,     /* 400 unknown_field */
    ERR_INVALID_PARAMETER = -104, /* 400 invalid_parameter (query string, path) */
    ERR_STALE_LEASE = -105,       /* 409 stale_lease */
    ERR_UNAUTHORIZED = -106,      /* 401 unauthorized */
    ERR_METHOD = -107,            /* 405 method_not_allowed */
    ERR_OVERLOADED = -108,        /* 503 overloaded: past the memory budget, retry later */
    ERR_NO_SPACE = -109,          /* 507 insufficient_storage: the store's disk is full */
    ERR_FORBIDDEN = -110,         /* 403 forbidden: the API key's scope does not allow it */
};

/* Sets err (if not NULL) to code, field (NULL = none) and a printf-style message (NULL =
 * errand_strerror(code)); resets http_status to 0 (a caller that got an HTTP answer sets it
 * afterwards). The arguments may point into err itself. Returns code, so
 * `return error_set(err, ERRAND_EINVAL, "task", "...")` reads naturally. */
int error_set(errand_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Clears err to ERRAND_OK with empty message and field. */
void error_clear(errand_error *err);

/* The wire name of a code ("not_found" for ERRAND_ENOTFOUND, "invalid_field" for
 * ERRAND_EINVAL, "conflict", "body_too_large", "store_error", "unavailable", ...) and the HTTP
 * status it maps to (docs/api.md, Errors). */
const char *error_code_name(int code);
int error_http_status(int code);

#endif
