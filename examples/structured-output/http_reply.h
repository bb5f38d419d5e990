/* SPDX-License-Identifier: MIT */
/*
 * http_reply.h — the API's answers: JSON bodies, and errors in FastAPI's shapes so that a
 * client written for the seed's FastAPI app reads them unchanged:
 *   {"detail": "Not Found"}                                    (404, 405, 503, ...)
 *   {"detail": [{"type": "missing", "loc": ["body", "payload"],
 *                "msg": "Field required", "input": null}]}   (422 validation errors)
 */
#ifndef SO_HTTP_REPLY_H
#define SO_HTTP_REPLY_H

#include <jansson.h>
#include <microhttpd.h>

#define HTTP_STATUS_UNPROCESSABLE 422

/* Sends body (the reference is stolen) with the given status. */
enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned int status, json_t *body);

/* Sends {"detail": message}. */
enum MHD_Result reply_detail(struct MHD_Connection *conn, unsigned int status, const char *message);

/* Sends {"detail": "Method Not Allowed"} with an Allow header. */
enum MHD_Result reply_method_not_allowed(struct MHD_Connection *conn, const char *allow);

/* Appends one FastAPI validation error to the detail array:
 * {"type": type, "loc": [where, field], "msg": msg, "input": input (stolen; NULL = null)}. */
void detail_add(json_t *detail, const char *where, const char *field, const char *type,
                const char *msg, json_t *input);

#endif
