/* SPDX-License-Identifier: MIT */
/*
 * http_reply.c — JSON answers over libmicrohttpd (see http_reply.h). A body that cannot be
 * serialised (out of memory) becomes a bare 500 rather than a half-written answer.
 */
#include "http_reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTENT_TYPE_JSON "application/json"

/* jansson prints reals with 17 significant digits (49.99 -> 49.990000000000002). Print with
 * the fewest digits, 15 to 17, that still read back as the same double for every real. */
#define REAL_DIGITS_MIN 15
#define REAL_DIGITS_MAX 17

static bool reals_round_trip(json_t *v, int digits)
{
    if (json_is_real(v)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*g", digits, json_real_value(v));
        return strtod(buf, NULL) == json_real_value(v);
    }
    size_t i;
    const char *key;
    json_t *item;
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (!reals_round_trip(item, digits))
                return false;
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            if (!reals_round_trip(item, digits))
                return false;
        }
    }
    return true;
}

static size_t real_precision_flag(json_t *v)
{
    int digits = REAL_DIGITS_MIN;
    while (digits < REAL_DIGITS_MAX && !reals_round_trip(v, digits))
        digits++;
    return JSON_REAL_PRECISION(digits);
}

enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned int status, json_t *body)
{
    char *text =
        body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | real_precision_flag(body)) : NULL;
    json_decref(body);
    struct MHD_Response *resp;
    if (text) {
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    } else {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result reply_detail(struct MHD_Connection *conn, unsigned int status, const char *message)
{
    return reply_json(conn, status, json_pack("{s:s}", "detail", message));
}

enum MHD_Result reply_method_not_allowed(struct MHD_Connection *conn, const char *allow)
{
    char *text = strdup("{\"detail\":\"Method Not Allowed\"}");
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    MHD_destroy_response(resp);
    return ret;
}

void detail_add(json_t *detail, const char *where, const char *field, const char *type,
                const char *msg, json_t *input)
{
    json_t *loc = field ? json_pack("[s, s]", where, field) : json_pack("[s]", where);
    json_array_append_new(detail, json_pack("{s:s, s:o, s:s, s:o}", "type", type, "loc", loc, "msg",
                                            msg, "input", input ? input : json_null()));
}
