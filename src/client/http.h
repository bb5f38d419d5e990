/* SPDX-License-Identifier: MIT */
/*
 * http.h — liberrand's HTTP transport to the errand server: one libcurl handle per connection
 * (keep-alive reuse, TCP_NODELAY, no "Expect: 100-continue" round trip), the bearer API key,
 * JSON bodies, and requests that can be abandoned early when a file descriptor becomes
 * readable (the worker's stop pipe, so a long-poll claim never delays shutdown).
 *
 * Used by the client (one connection per errand_client) and by the worker's poller and
 * reporter threads (one connection each). A connection is used by one thread at a time.
 */
#ifndef ERRAND_CLIENT_HTTP_H
#define ERRAND_CLIENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "errand/errand.h"

/* A response body larger than this is refused (a listing of 1000 runs with large results
 * stays well below it). */
#define HTTP_RESPONSE_MAX_BYTES (256L * 1024 * 1024)
/* Per-request timeout when the caller gives 0. */
#define HTTP_DEFAULT_TIMEOUT_MS 30000L
/* Connecting never takes longer than this, whatever the request timeout. */
#define HTTP_CONNECT_TIMEOUT_MS 10000L

typedef struct http_conn http_conn;

struct http_response {
    long status; /* HTTP status */
    char *body;  /* NUL-terminated, mem_alloc'd; "" when the answer had no body */
    size_t len;
};

/* Servers one connection may be given. */
#define HTTP_MAX_SERVERS 16

/* base_url: "http://127.0.0.1:4200/api" (a trailing slash is ignored), or a comma-separated
 * list of such URLs, servers sharing one store: the connection starts at one drawn at random
 * (so that clients and workers spread over them) and moves to the next when one cannot be
 * reached or answers 503 (see http_perform); api_key: NULL or "" for none; timeout_ms: per
 * request, 0 = HTTP_DEFAULT_TIMEOUT_MS. */
int http_conn_new(const char *base_url, const char *api_key, long timeout_ms, http_conn **out,
                  errand_error *err);
void http_conn_free(http_conn *c);
/* The URL of the server requests go to now. */
const char *http_conn_base_url(const http_conn *c);

/* Performs METHOD base_url+path with an optional JSON body (NULL = none). extra_ms is added
 * to the timeout (long polls). When cancel_fd >= 0 and becomes readable before any byte of
 * the answer arrived, the request is abandoned and ERRAND_ECANCELLED returned (an answer
 * already arriving is read to the end, so a claim the server made is never dropped here).
 * Returns 0 when the server answered, whatever the status; ERRAND_EUNAVAILABLE with
 * "cannot reach errand server at URL: reason" when it could not be reached or timed out.
 * With several servers, a server that cannot be reached or answers 503 sends this request
 * and the next ones to the next server: at once when nothing reached it (no connection),
 * else from the caller's next attempt — the caller knows whether sending again is safe (a
 * submit with an idempotency key, a claim with a request id, a report batch with its id). */
int http_perform(http_conn *c, const char *method, const char *path, const char *body,
                 long extra_ms, int cancel_fd, struct http_response *resp, errand_error *err);
/* http_perform for a caller that reads no more of a 2xx answer than its status: it asks
 * the server for a minimal answer (Prefer: return=minimal, RFC 7240), which the endpoints
 * that would send much back honour (POST /api/task_runs/batch: the ids alone) and the others
 * ignore. An error answer is whole either way. */
int http_perform_minimal(http_conn *c, const char *method, const char *path, const char *body,
                         long extra_ms, struct http_response *resp, errand_error *err);
void http_response_clear(struct http_response *r);

/* Maps a non-2xx answer to a public code (400 EINVAL, 401 EAUTH, 404 ENOTFOUND,
 * 409 ECONFLICT, 413 ETOOBIG, 503 EUNAVAILABLE, other 5xx ESERVER, other 4xx EINVAL) and
 * fills err with the server's message and field and the status. Returns the code. */
int http_status_error(long status, const char *body, errand_error *err);

/* True when url starts with http:// or https://, or is a comma-separated list of at most
 * HTTP_MAX_SERVERS such URLs. */
bool http_url_is_valid(const char *url);

/* Initialises libcurl and points jansson at the allocation seam, once per process. */
void http_global_init(void);

#endif
