/*
 * http.h — the server's HTTP layer over libmicrohttpd: one daemon, the request and reply
 * types handlers see, and query/body access. Everything specific to MHD stays in http.c
 * (and the connection pointer inside http_request), so handlers read like plain functions:
 * request in, reply (or an errand_error) out.
 *
 * Threading: libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION),
 * so a handler may block — a long-poll waits on a condition variable, a store write waits
 * for its group commit — without holding up other connections. The number of connections
 * (hence threads) is capped by ERRAND_MAX_CONNECTIONS.
 */
#ifndef ERRAND_SERVER_HTTP_H
#define ERRAND_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "errand/errand.h"

/* An idle connection is closed after this long. It must be longer than the longest
 * long-poll (GET /wait, up to 300 s) so a client waiting on a keep-alive connection is
 * never cut off by the server. */
#define HTTP_CONNECTION_TIMEOUT_S 330

#define HTTP_API_VERSION "1"
#define HTTP_CONTENT_JSON "application/json"
#define HTTP_CONTENT_PROMETHEUS "text/plain; version=0.0.4"

struct MHD_Connection;
struct handler_ctx;

struct http_request {
    const char *method;
    const char *path;
    char id[UUID_STR_LEN]; /* the {id} path segment (a valid UUID) or "" */
    const char *body;      /* NUL-terminated, body_len bytes; "" when none */
    size_t body_len;
    struct MHD_Connection *conn;
};

/* What a handler answers: a JSON body (json, stolen by the reply), text (mem_alloc'd,
 * stolen) or a file's content (fd, stolen: sent straight from the file, never held in
 * memory). http.c sends it and frees it. */
struct http_reply {
    int status;
    json_t *json;
    char *text;
    const char *content_type; /* NULL = application/json */
    int fd;                   /* > 0: send file_size bytes from this file */
    uint64_t file_size;
};

/* Sets the reply to status + body; body may be NULL when allocating it failed, in which case
 * the reply becomes a 500. */
void http_reply_json(struct http_reply *r, int status, json_t *body);
void http_reply_text(struct http_reply *r, int status, char *text, const char *content_type);
/* Sets the reply to status + the size bytes of the open file fd (which it takes). */
void http_reply_file(struct http_reply *r, int status, int fd, uint64_t size,
                     const char *content_type);

/* The first value of query parameter name, NULL if absent ("" for "?name"). */
const char *http_query(const struct http_request *req, const char *name);

/* Calls fn(ud, name, value) for each query parameter in order (value "" when none); stops at
 * the first negative return and returns it, else 0. */
typedef int (*http_query_fn)(void *ud, const char *name, const char *value);
int http_query_each(const struct http_request *req, http_query_fn fn, void *ud);

/* True when the client has closed its side of the connection: a long-poll checks this
 * before it claims, so runs are not handed to a worker that has already gone away. */
bool http_client_gone(const struct http_request *req);

/* Parses the body as a JSON object (ERR_INVALID_JSON otherwise, with line and column);
 * *out is a new reference. */
int http_request_json(const struct http_request *req, json_t **out, errand_error *err);

struct http_server_options {
    const char *host;      /* "127.0.0.1", "::", "0.0.0.0", a name ... */
    int port;              /* 0 = any free port */
    int max_connections;   /* ERRAND_MAX_CONNECTIONS */
    size_t max_body_bytes; /* ERRAND_MAX_BODY_BYTES */
    size_t max_inflight_bytes; /* ERRAND_MAX_INFLIGHT_BYTES: the memory budget (budget.h) */
    const char *api_key;       /* ERRAND_API_KEY, the admin key; "" = none */
    /* The scoped keys (auth.h), comma-separated; NULL or "" = none. No key at all: no
       authentication. */
    const char *submit_keys, *worker_keys, *read_keys;
    int64_t idle_timeout_ms; /* ERRAND_HTTP_IDLE_TIMEOUT_MS (conn_guard.h); 0 = 10 s */
};

typedef struct http_server http_server;

/* Binds and starts serving; *port_out receives the real port. ctx must outlive the server. */
int http_server_start(const struct http_server_options *opt, const struct handler_ctx *ctx,
                      http_server **out, int *port_out, errand_error *err);

/* The request work reserved now, and the most reserved at once since the last call (then
 * reset): what the server's housekeeping looks at before it gives memory back. */
size_t http_server_work_peak(http_server *srv);
size_t http_server_work_now(http_server *srv);

/* Stops accepting connections; requests that still arrive on open connections answer 503. */
void http_server_quiesce(http_server *srv);

/* Waits (bounded) for requests in flight to be answered — wake long-polls first — then
 * closes every connection and frees the server. NULL is fine. */
void http_server_stop(http_server *srv);

#endif
