/* SPDX-License-Identifier: MIT */
/*
 * http.h — the server's HTTP layer over libmicrohttpd: one daemon, the request and reply
 * types handlers see, and query/body access. Everything specific to MHD stays in http.c
 * (and the connection pointer inside http_request), so handlers read like plain functions:
 * request in, reply (or an errand_error) out.
 *
 * Threading: libmicrohttpd's few event threads (epoll, one per core) read requests and write
 * replies; they never run a handler. Once a request's body is in, its connection is
 * suspended and its handler runs on a handler thread (work_pool.h, ERRAND_HANDLER_THREADS),
 * where it may block briefly — a store write waits for its group commit. A long-poll must
 * not hold a thread while it waits: it parks (http_park), and its handler is called again,
 * with the state it kept, when it is woken. So connections cost memory, not threads:
 * ERRAND_MAX_CONNECTIONS may be tens of thousands.
 */
#ifndef ERRAND_SERVER_HTTP_H
#define ERRAND_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/uuid.h"
#include "server/notify.h"
#include "errand/errand.h"

/* libmicrohttpd's own timeout for a connection it is reading or writing (suspended ones, whose
 * long-poll is parked, never time out); conn_guard.h closes idle ones much sooner. */
#define HTTP_CONNECTION_TIMEOUT_S 330

#define HTTP_API_VERSION "1"
#define HTTP_CONTENT_JSON "application/json"
#define HTTP_CONTENT_PROMETHEUS "text/plain; version=0.0.4"

/* What a handler returns when it parked its request (http_park). */
#define HTTP_PARKED 1

struct MHD_Connection;
struct handler_ctx;

/* A long-poll's own state, kept between the calls of its handler: the handler sets it on its
 * first call; free_state(state) is called when the request ends, however it ends. */
struct http_longpoll {
    void *state;
    void (*free_state)(void *state);
};

struct http_request {
    const char *method;
    const char *path;
    char id[UUID_STR_LEN]; /* the {id} path segment (a valid UUID) or "" */
    const char *body;      /* NUL-terminated, body_len bytes; "" when none */
    size_t body_len;
    struct MHD_Connection *conn;
    struct http_longpoll *longpoll; /* the request's, for a handler that parks */
    unsigned granted;               /* the scopes it carries (auth.h); AUTH_ALL without keys */
    bool via_session;               /* ... from the dashboard's session cookie, not a key */
};

/* A stream's connection, as its read callback sees it. */
typedef struct http_stream_conn http_stream_conn;

/* A reply written as it goes, for as long as the connection lasts (server-sent events).
 * read(state, conn, buf, max) is called on an event thread whenever the connection can take
 * more: it copies up to max bytes into buf and returns how many; or it calls
 * http_stream_hold(conn) and returns 0 — the connection then waits, costing no thread, until
 * http_stream_wake(conn) — or returns -1 to end the reply. free(state) is called once, when
 * the connection is done with it (or the reply was never sent). */
struct http_stream {
    ssize_t (*read)(void *state, http_stream_conn *conn, char *buf, size_t max);
    void (*free)(void *state);
    void *state;
};
/* Pauses a stream's connection; only from within its read callback, which then returns 0. */
void http_stream_hold(http_stream_conn *conn);
/* Resumes a held stream's connection: from any thread, exactly once per hold. */
void http_stream_wake(http_stream_conn *conn);

/* What a handler answers: a JSON body (json, stolen by the reply), text (mem_alloc'd,
 * stolen), a file's content (fd, stolen: sent straight from the file, never held in
 * memory) or a stream (stream.read set; its state is the reply's). http.c sends it and frees
 * it. */
struct http_reply {
    int status;
    json_t *json;
    char *text;
    size_t text_len;          /* 0: strlen(text) */
    const char *content_type; /* NULL = application/json */
    int fd;                   /* > 0: send file_size bytes from this file */
    uint64_t file_size;
    const char *retry_after; /* the Retry-After header, or NULL */
    /* the Preference-Applied header (RFC 7240) of a text reply, or NULL */
    const char *preference_applied;
    struct http_stream stream;
    char *set_cookie; /* a Set-Cookie header (mem_alloc'd, taken), or NULL */
};

/* Sets the reply to status + body; body may be NULL when allocating it failed, in which case
 * the reply becomes a 500. */
void http_reply_json(struct http_reply *r, int status, json_t *body);
void http_reply_text(struct http_reply *r, int status, char *text, const char *content_type);
/* Sets the reply to status + the size bytes of the open file fd (which it takes). */
void http_reply_file(struct http_reply *r, int status, int fd, uint64_t size,
                     const char *content_type);

/* Sets the reply to status + a stream (which it takes). */
void http_reply_stream(struct http_reply *r, int status, const struct http_stream *stream,
                       const char *content_type);

/* The dashboard's session (auth.h), for its login handlers: whether the server has keys at
 * all, and a session token for key (0 scopes, nothing written, for an unknown key). */
bool http_auth_required(const struct http_request *req);
unsigned http_session_issue(const struct http_request *req, const char *key, long long expires_s,
                            char *out, size_t out_size);

/* The value of request header name (case-insensitive), NULL if absent. */
const char *http_header(const struct http_request *req, const char *name);

/* Whether the request's Prefer header (RFC 7240) asks for preference, e.g. "return=minimal":
 * one of its comma-separated preferences, parameters after ';' aside, has that name and
 * value without regard to case or spaces around them and the '='. */
bool http_prefers(const struct http_request *req, const char *preference);

/* The first value of query parameter name, NULL if absent ("" for "?name"). */
const char *http_query(const struct http_request *req, const char *name);

/* Calls fn(ud, name, value) for each query parameter in order (value "" when none); stops at
 * the first negative return and returns it, else 0. */
typedef int (*http_query_fn)(void *ud, const char *name, const char *value);
int http_query_each(const struct http_request *req, http_query_fn fn, void *ud);

/* Parks the request of a long-poll handler on w (notify_waiter_park): the handler returns
 * what this returns. HTTP_PARKED: no thread holds the request now; the handler is called
 * again (same req, same req->longpoll) when w is signalled or at until_mono_ms. 0: a signal
 * came since w last woke (or the server is stopping): the handler checks again at once. */
int http_park(const struct http_request *req, notify *n, notify_waiter *w, int64_t until_mono_ms);

/* For a handler that runs on the event thread (route.on_event_thread) and waits for the
 * store without blocking: suspends the request and returns HTTP_PARKED, which the handler
 * returns; once http_resume(req) is called (from any thread, exactly once), the handler is
 * called again on the event thread, with the same req and req->longpoll. Suspend before
 * starting what will resume it. */
int http_suspend(const struct http_request *req);
void http_resume(const struct http_request *req);

/* True when the client has closed its side of the connection: a long-poll checks this
 * before it claims, so runs are not handed to a worker that has already gone away. */
bool http_client_gone(const struct http_request *req);

/* Parses the body as a JSON object (ERR_INVALID_JSON otherwise, with line and column);
 * *out is a new reference. */
int http_request_json(const struct http_request *req, json_t **out, errand_error *err);

struct http_server_options {
    const char *host;          /* "127.0.0.1", "::", "0.0.0.0", a name ... */
    int port;                  /* 0 = any free port */
    int max_connections;       /* ERRAND_MAX_CONNECTIONS */
    size_t max_body_bytes;     /* ERRAND_MAX_BODY_BYTES */
    size_t max_inflight_bytes; /* ERRAND_MAX_INFLIGHT_BYTES: the memory budget (budget.h) */
    const char *api_key;       /* ERRAND_API_KEY, the admin key; "" = none */
    /* The scoped keys (auth.h), comma-separated; NULL or "" = none. No key at all: no
       authentication. */
    const char *submit_keys, *worker_keys, *read_keys;
    int64_t idle_timeout_ms; /* ERRAND_HTTP_IDLE_TIMEOUT_MS (conn_guard.h); 0 = 10 s */
    int unauth_per_address;  /* ERRAND_HTTP_UNAUTH_PER_ADDRESS (conn_guard.h); 0 = no cap */
    int handler_threads;     /* ERRAND_HANDLER_THREADS */
    int event_threads;       /* libmicrohttpd's; 0 = one per core, at most 8 */
};

typedef struct http_server http_server;

/* Binds and starts serving; *port_out receives the real port. ctx must outlive the server. */
int http_server_start(const struct http_server_options *opt, const struct handler_ctx *ctx,
                      http_server **out, int *port_out, errand_error *err);

/* The request work reserved now, and the most reserved at once since the last call (then
 * reset): what the server's housekeeping looks at before it gives memory back. */
size_t http_server_work_peak(http_server *srv);
size_t http_server_work_now(http_server *srv);

/* From now on every request answers 503 unavailable (connections are still accepted until
 * http_server_stop closes the listening socket). */
void http_server_quiesce(http_server *srv);

/* Waits (bounded) for requests in flight to be answered — wake long-polls first — then
 * closes every connection and frees the server. NULL is fine. */
void http_server_stop(http_server *srv);

#endif
