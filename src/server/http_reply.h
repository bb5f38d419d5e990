/* SPDX-License-Identifier: MIT */
/*
 * http_reply.h — how http.c sends replies (http_reply.c). Handlers build replies with http.h.
 */
#ifndef ERRAND_SERVER_HTTP_REPLY_H
#define ERRAND_SERVER_HTTP_REPLY_H

#include <microhttpd.h>

#include "core/error.h"
#include "server/http.h"

/* Queues r on conn (r's contents pass to libmicrohttpd or are freed). */
enum MHD_Result http_reply_send(struct MHD_Connection *conn, struct http_reply *r);
/* Queues the error body of err. */
enum MHD_Result http_reply_send_error(struct MHD_Connection *conn, const errand_error *err);
/* Makes r the error body of err ({"error": {"code", "message", "field"}}), with Retry-After
 * for overloaded. */
void http_reply_error(struct http_reply *r, const errand_error *err);
/* Serialises a JSON reply into its text, on the handler thread, so that the event thread
 * only queues bytes. A reply that cannot be serialised is left as it is (it is then answered
 * 500 out_of_memory). */
void http_reply_serialise(struct http_reply *r);
/* Frees what a reply holds (one that was never sent). */
void http_reply_clear(struct http_reply *r);

#endif
