/* SPDX-License-Identifier: MIT */
/*
 * error.c — filling errand_error and naming codes: the wire "code" strings and HTTP statuses
 * of docs/api.md (Errors), so the server answers every failure with the same vocabulary.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* HTTP statuses of docs/api.md, Errors. */
enum {
    HTTP_BAD_REQUEST = 400,
    HTTP_UNAUTHORIZED = 401,
    HTTP_FORBIDDEN = 403,
    HTTP_NOT_FOUND = 404,
    HTTP_METHOD_NOT_ALLOWED = 405,
    HTTP_CONFLICT = 409,
    HTTP_PAYLOAD_TOO_LARGE = 413,
    HTTP_INTERNAL_ERROR = 500,
    HTTP_UNAVAILABLE = 503,
    HTTP_GATEWAY_TIMEOUT = 504,
    HTTP_INSUFFICIENT_STORAGE = 507,
};

int error_set(errand_error *err, int code, const char *field, const char *fmt, ...)
{
    if (!err)
        return code;
    /* Format into scratch buffers first: the arguments may point into err itself. */
    char fld[ERRAND_ERROR_FIELD_MAX];
    char msg[ERRAND_ERROR_MESSAGE_MAX];
    snprintf(fld, sizeof fld, "%s", field ? field : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof msg, "%s", errand_strerror(code));
    }
    err->code = code;
    err->http_status = 0;
    memcpy(err->field, fld, sizeof fld);
    memcpy(err->message, msg, sizeof msg);
    return code;
}

void error_clear(errand_error *err)
{
    if (!err)
        return;
    err->code = ERRAND_OK;
    err->http_status = 0;
    err->message[0] = '\0';
    err->field[0] = '\0';
}

const char *error_code_name(int code)
{
    switch (code) {
    case ERRAND_OK:
        return "ok";
    case ERRAND_EINVAL:
        return "invalid_field";
    case ERRAND_ENOMEM:
        return "out_of_memory";
    case ERRAND_EIO:
        return "io_error";
    case ERRAND_ENOTFOUND:
        return "not_found";
    case ERRAND_ECONFLICT:
        return "conflict";
    case ERRAND_EUNAVAILABLE:
        return "unavailable";
    case ERRAND_ETIMEDOUT:
        return "timeout";
    case ERRAND_EAUTH:
        return "unauthorized";
    case ERRAND_ESERVER:
        return "server_error";
    case ERRAND_ESTORE:
        return "store_error";
    case ERRAND_ETOOBIG:
        return "body_too_large";
    case ERRAND_ECANCELLED:
        return "cancelled";
    case ERRAND_EFAILED:
        return "failed";
    case ERR_INVALID_JSON:
        return "invalid_json";
    case ERR_MISSING_FIELD:
        return "missing_field";
    case ERR_UNKNOWN_FIELD:
        return "unknown_field";
    case ERR_INVALID_PARAMETER:
        return "invalid_parameter";
    case ERR_STALE_LEASE:
        return "stale_lease";
    case ERR_UNAUTHORIZED:
        return "unauthorized";
    case ERR_METHOD:
        return "method_not_allowed";
    case ERR_OVERLOADED:
        return "overloaded";
    case ERR_NO_SPACE:
        return "insufficient_storage";
    case ERR_FORBIDDEN:
        return "forbidden";
    default:
        return "internal_error";
    }
}

int error_http_status(int code)
{
    switch (code) {
    case ERRAND_EINVAL:
    case ERR_INVALID_JSON:
    case ERR_MISSING_FIELD:
    case ERR_UNKNOWN_FIELD:
    case ERR_INVALID_PARAMETER:
        return HTTP_BAD_REQUEST;
    case ERRAND_EAUTH:
    case ERR_UNAUTHORIZED:
        return HTTP_UNAUTHORIZED;
    case ERR_FORBIDDEN:
        return HTTP_FORBIDDEN;
    case ERRAND_ENOTFOUND:
        return HTTP_NOT_FOUND;
    case ERR_METHOD:
        return HTTP_METHOD_NOT_ALLOWED;
    case ERRAND_ECONFLICT:
    case ERR_STALE_LEASE:
        return HTTP_CONFLICT;
    case ERRAND_ETOOBIG:
        return HTTP_PAYLOAD_TOO_LARGE;
    case ERRAND_EUNAVAILABLE:
    case ERR_OVERLOADED:
        return HTTP_UNAVAILABLE;
    case ERRAND_ETIMEDOUT:
        return HTTP_GATEWAY_TIMEOUT;
    case ERR_NO_SPACE:
        return HTTP_INSUFFICIENT_STORAGE;
    default: /* store, out of memory, I/O and anything unexpected */
        return HTTP_INTERNAL_ERROR;
    }
}
