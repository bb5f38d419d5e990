/* SPDX-License-Identifier: MIT */
/*
 * http.c — libmicrohttpd daemon and request lifecycle (see http.h).
 *
 * Daemon: MHD_USE_INTERNAL_POLLING_THREAD with MHD_USE_EPOLL (poll() where epoll is missing;
 * never select(), which breaks once descriptors pass FD_SETSIZE) and a pool of event threads,
 * one per core (MHD_OPTION_THREAD_POOL_SIZE); MHD_ALLOW_SUSPEND_RESUME, so a connection waits
 * suspended while its handler runs on a handler thread (work_pool.h) or its long-poll is
 * parked. The address comes from getaddrinfo(host)
 * passed as MHD_OPTION_SOCK_ADDR, so the host setting is honoured (IPv6 with MHD_USE_IPv6, "::" as
 * a dual-stack socket); port 0 binds any free port and MHD_DAEMON_INFO_BIND_PORT reads it back.
 * MHD's own messages go to the errand logger (MHD_OPTION_EXTERNAL_LOGGER).
 *
 * A request is handled in two steps, because MHD calls the access handler first with the
 * headers and then with the body in pieces:
 *  1. headers: count it, refuse at once when shutting down (503), unknown path (404), wrong
 *     method (405), bad {id} (400), missing key (401), a Content-Length over
 *     ERRAND_MAX_BODY_BYTES (413), or work past the memory budget (503 overloaded, with
 *     Retry-After; budget.h) — all without reading the body;
 *  2. body pieces are accumulated up to the limit (chunked bodies that pass it are read and
 *     discarded, then refused with 413, since MHD only lets a reply be queued before the body
 *     or after all of it; a chunked body reserves budget as it grows); then the connection is
 *     suspended and the handler runs on a handler thread (run_handler), which serialises its
 *     reply or error and resumes the connection; MHD calls the access handler once more and
 *     the answer is queued. A long-poll handler may park instead (http_park): the connection
 *     stays suspended, and the handler runs again when woken. The reserved work is given
 *     back when the reply is out.
 * Replies are sent by http_reply.c; every one carries Content-Type, Errand-Api-Version and the
 * security headers.
 *
 * Stopping: MHD_stop_daemon closes connections whether or not their reply has gone out, so
 * http_server_stop first waits (up to DRAIN_TIMEOUT_MS) for the requests in flight — counted
 * from their headers to MHD's "completed" notification — to be answered (notify_shutdown has
 * woken every parked long-poll by then), then ends the handler threads, then the daemon.
 */
#include "server/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/auth.h"
#include "server/budget.h"
#include "server/conn_guard.h"
#include "server/handlers.h"
#include "server/http_reply.h"
#include "server/router.h"
#include "server/work_pool.h"

#define BODY_INITIAL_CAP 4096
#define MHD_MESSAGE_MAX 256
#define PORT_TEXT_MAX 8
#define IDLE_TIMEOUT_DEFAULT_MS 10000
/* Unauthenticated waiting connections kept: this fraction of ERRAND_MAX_CONNECTIONS. */
#define UNAUTH_SHARE_DEN 4
/* Connections kept free for workers: this fraction of ERRAND_MAX_CONNECTIONS. */
#define WORKER_RESERVE_DEN 8
/* The same libmicrohttpd message is logged at most this often (a flood of refused
 * connections writes a line a second, with how many it stood for). */
#define MHD_LOG_REPEAT_MS 1000
/* How long http_server_stop waits for requests in flight to finish before closing their
 * connections anyway (long-polls answer at once once woken; this bounds a stuck store). */
#define DRAIN_TIMEOUT_MS 10000
/* How often the stop looks whether the store has resumed every request waiting for it. */
#define STOP_POLL_NS (10 * 1000 * 1000)
/* Most event threads chosen from the number of cores. */
#define EVENT_THREADS_MAX 8

struct http_server {
    struct MHD_Daemon *daemon;
    work_pool *pool; /* the handler threads */
    const struct handler_ctx *ctx;
    size_t max_body;
    budget *work; /* the memory budget of requests in flight */
    auth_keys *keys;
    conn_guard *guard;                 /* idle, slow and unauthenticated connections */
    pthread_mutex_t log_mu;            /* guards the two below */
    char last_logged[MHD_MESSAGE_MAX]; /* libmicrohttpd's last message logged ... */
    int64_t last_logged_ms;            /* ... when */
    unsigned repeats;                  /* the same message since, not logged */
    atomic_bool stopping;
    atomic_int suspended_for_store;         /* requests waiting for the store (http_suspend) */
    char last_mhd_message[MHD_MESSAGE_MAX]; /* written during start only, for its error */
    pthread_mutex_t lock;                   /* guards in_flight */
    pthread_cond_t idle;                    /* signalled when in_flight drops to 0 */
    int in_flight; /* requests between their headers and their reply being sent */
};

/* Per-request state, from the headers call to MHD's "completed" notification. */
struct request_state {
    struct work_item job; /* runs the handler on the pool */
    http_server *srv;
    const struct route *route;
    struct http_request req;
    struct http_longpoll longpoll; /* req.longpoll points here */
    /* The handler's answer: written on the handler thread before it resumes the
     * connection (MHD_resume_connection orders it before the event thread reads it). */
    struct http_reply reply;
    bool answered;
    char *body;
    size_t len, cap;
    size_t reserved; /* work reserved in the budget, given back when the request ends */
    bool refused;    /* a reply went out at the headers step */
    bool too_large;  /* the body passed the limit */
    bool overloaded; /* a chunked body grew past the budget */
    bool oom;
    bool authenticated; /* the request carried a valid key (or none is needed) */
    bool worker;        /* ... one with the worker scope */
    int64_t started_ns; /* when its headers came (clock_mono_ns), for the latency metric */
};

/* --- request access ------------------------------------------------------------------- */

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* The text from p up to its first delimiter in `stop` (or the end), spaces around trimmed:
 * *len its length; returns its start. */
static const char *trimmed_span(const char *p, const char *stop, size_t *len)
{
    p += strspn(p, " \t");
    size_t n = strcspn(p, stop);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *len = n;
    return p;
}

bool http_prefers(const struct http_request *req, const char *preference)
{
    const char *eq = strchr(preference, '=');
    size_t want_name = eq ? (size_t)(eq - preference) : strlen(preference);
    const char *want_value = eq ? eq + 1 : "";
    const char *p = http_header(req, "Prefer");
    while (p && *p) {
        /* preference = token [ BWS "=" BWS word ] *( OWS ";" [ OWS parameter ] ) */
        size_t name_len, value_len = 0;
        const char *name = trimmed_span(p, "=,;", &name_len), *value = "";
        p = name + strcspn(name, "=,;");
        if (*p == '=') {
            value = trimmed_span(p + 1, ",;", &value_len);
            p = value + strcspn(value, ",;");
        }
        if (name_len == want_name && strncasecmp(name, preference, want_name) == 0 &&
            value_len == strlen(want_value) && strncasecmp(value, want_value, value_len) == 0)
            return true;
        p += strcspn(p, ","); /* past this preference's parameters */
        if (*p == ',')
            p++;
    }
    return false;
}

const char *http_query(const struct http_request *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (v)
        return v;
    /* "?name" without a value is stored with a NULL value; tell it apart from absence. */
    return MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), NULL,
                                         NULL) == MHD_YES
               ? ""
               : NULL;
}

struct query_walk {
    http_query_fn fn;
    void *ud;
    int rc;
};

static enum MHD_Result query_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct query_walk *w = cls;
    w->rc = w->fn(w->ud, key, value ? value : "");
    return w->rc < 0 ? MHD_NO : MHD_YES;
}

int http_query_each(const struct http_request *req, http_query_fn fn, void *ud)
{
    struct query_walk w = {fn, ud, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_visit, &w);
    return w.rc < 0 ? w.rc : 0;
}

bool http_client_gone(const struct http_request *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return false;
    struct pollfd pfd = {.fd = info->connect_fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int http_request_json(const struct http_request *req, json_t **out, errand_error *err)
{
    *out = NULL;
    if (req->body_len == 0)
        return error_set(err, ERR_INVALID_JSON, NULL,
                         "the request body is empty; expected a JSON object");
    json_t *v = json_parse_text(req->body, req->body_len, err);
    if (!v)
        return err && err->code ? err->code : ERR_INVALID_JSON;
    if (!json_is_object(v)) {
        int rc = error_set(err, ERR_INVALID_JSON, NULL,
                           "the request body must be a JSON object, got %s", json_type_label(v));
        json_decref(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* --- request lifecycle ---------------------------------------------------------------- */

static int overloaded(errand_error *err)
{
    return error_set(err, ERR_OVERLOADED, NULL,
                     "the server is at its memory budget for requests in flight "
                     "(ERRAND_MAX_INFLIGHT_BYTES); retry after a second");
}

/* The dashboard's session token in the request's Cookie header, copied into out; false when
 * there is none. */
static bool session_cookie(struct MHD_Connection *conn, char *out, size_t size)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, AUTH_SESSION_COOKIE);
    if (!v || !*v || strlen(v) >= size)
        return false;
    snprintf(out, size, "%s", v);
    return true;
}

/* The scopes a request carries: its Authorization header's key, else its session cookie
 * (*via_session says so); AUTH_ALL when the server has no key. */
static unsigned request_scopes(http_server *srv, struct MHD_Connection *conn, bool *via_session)
{
    *via_session = false;
    if (!auth_enabled(srv->keys))
        return AUTH_ALL;
    const char *authz =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz)
        return auth_granted(srv->keys, authz);
    char token[AUTH_SESSION_MAX];
    if (!session_cookie(conn, token, sizeof token))
        return 0;
    unsigned granted = auth_session_granted(srv->keys, token, clock_now_ms() / MS_PER_S);
    *via_session = granted != 0;
    return granted;
}

bool http_auth_required(const struct http_request *req)
{
    const struct request_state *rs =
        (const struct request_state *)((const char *)req - offsetof(struct request_state, req));
    return auth_enabled(rs->srv->keys);
}

unsigned http_session_issue(const struct http_request *req, const char *key, long long expires_s,
                            char *out, size_t out_size)
{
    const struct request_state *rs =
        (const struct request_state *)((const char *)req - offsetof(struct request_state, req));
    char token[AUTH_SESSION_MAX];
    unsigned scopes = auth_session_issue(rs->srv->keys, key, expires_s, token);
    if (!scopes || strlen(token) >= out_size)
        return 0;
    snprintf(out, out_size, "%s", token);
    return scopes;
}

/* The headers step: everything that can be refused before reading the body. */
static int admit(http_server *srv, struct MHD_Connection *conn, struct request_state *rs,
                 errand_error *err)
{
    if (atomic_load(&srv->stopping))
        return error_set(err, ERRAND_EUNAVAILABLE, NULL,
                         "the server is shutting down; retry against another server or later");
    /* The key first: a caller without one learns nothing of the routes. */
    unsigned granted = request_scopes(srv, conn, &rs->req.via_session);
    rs->req.granted = granted;
    if (!granted && !router_is_public(rs->req.method, rs->req.path))
        return error_set(err, ERR_UNAUTHORIZED, NULL,
                         "missing or wrong API key: send 'Authorization: Bearer <key>' "
                         "with one of the server's keys (ERRAND_API_KEY, "
                         "ERRAND_API_KEYS_SUBMIT, _WORKER or _READ), or log in to the "
                         "dashboard");
    int rc = router_match(rs->req.method, rs->req.path, &rs->route, rs->req.id, err);
    if (rc < 0)
        return rc;
    if (rs->req.via_session && strcmp(rs->req.method, "GET") != 0 &&
        !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, AUTH_CSRF_HEADER))
        return error_set(err, ERR_FORBIDDEN, AUTH_CSRF_HEADER,
                         "a request authenticated by the dashboard's session must carry the "
                         "%s header to change anything (cross-site requests cannot)",
                         AUTH_CSRF_HEADER);
    /* The connection guard counts a public route's caller as authenticated, as before keys
       were looked at for it. */
    unsigned counted = granted || rs->route->scope != AUTH_PUBLIC ? granted : AUTH_ALL;
    rs->authenticated = counted != 0;
    rs->worker = (counted & AUTH_WORK) != 0;
    if (rs->route->scope != AUTH_PUBLIC && !(granted & rs->route->scope))
        return error_set(err, ERR_FORBIDDEN, NULL,
                         "this API key may not %s %s: it needs a key with the %s scope",
                         rs->req.method, rs->req.path, auth_scope_name(rs->route->scope));
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long body = cl ? strtoull(cl, NULL, 10) : 0;
    if (body > srv->max_body)
        return error_set(err, ERRAND_ETOOBIG, NULL,
                         "the request body has %s bytes, more than the limit of %zu "
                         "(ERRAND_MAX_BODY_BYTES)",
                         cl, srv->max_body);
    size_t cost = budget_cost((size_t)body);
    if (!budget_take(srv->work, cost))
        return overloaded(err);
    rs->reserved = cost;
    return 0;
}

static void append_body(http_server *srv, struct request_state *rs, const char *data, size_t n)
{
    if (rs->too_large || rs->oom || rs->overloaded)
        return;
    if (n > srv->max_body - rs->len) {
        rs->too_large = true;
        return;
    }
    /* A chunked body (no Content-Length) reserves its work as it grows. */
    size_t cost = budget_cost(rs->len + n);
    if (cost > rs->reserved) {
        if (!budget_take(srv->work, cost - rs->reserved)) {
            rs->overloaded = true;
            return;
        }
        rs->reserved = cost;
    }
    if (rs->len + n + 1 > rs->cap) {
        size_t cap = rs->cap ? rs->cap : BODY_INITIAL_CAP;
        while (cap < rs->len + n + 1)
            cap *= 2;
        char *grown = mem_realloc(rs->body, cap);
        if (!grown) {
            rs->oom = true;
            return;
        }
        rs->body = grown;
        rs->cap = cap;
    }
    memcpy(rs->body + rs->len, data, n);
    rs->len += n;
    rs->body[rs->len] = '\0';
}

/* The refusals found while the body came in; 0 when there are none. */
static int body_refusal(http_server *srv, const struct request_state *rs, errand_error *err)
{
    if (rs->too_large)
        return error_set(err, ERRAND_ETOOBIG, NULL,
                         "the request body is larger than the limit of %zu bytes "
                         "(ERRAND_MAX_BODY_BYTES)",
                         srv->max_body);
    if (rs->oom)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory reading the request body");
    if (rs->overloaded)
        return overloaded(err);
    return 0;
}

/* Makes reply the error a handler failed with (logged when it is the server's fault). */
static void handler_error_reply(const struct request_state *rs, int rc, errand_error *err,
                                struct http_reply *reply)
{
    http_reply_clear(reply);
    if (err->code == 0)
        error_set(err, rc, NULL, "%s", errand_strerror(rc));
    if (error_http_status(err->code) >= MHD_HTTP_INTERNAL_SERVER_ERROR)
        log_error("request failed", "method=%s path=%s code=%s error=\"%s\"", rs->req.method,
                  rs->req.path, error_code_name(err->code), err->message);
    http_reply_error(reply, err);
}

/* A handler thread runs the request's handler (work_pool.h): again each time a parked
 * long-poll wakes. Its answer, serialised here, is sent by the event thread once the
 * connection is resumed. */
static void run_handler(struct work_item *item)
{
    struct request_state *rs =
        (struct request_state *)((char *)item - offsetof(struct request_state, job));
    http_server *srv = rs->srv;
    errand_error err;
    error_clear(&err);
    struct http_reply reply = {0};
    int rc = rs->route->fn(srv->ctx, &rs->req, &reply, &err);
    if (rc == HTTP_PARKED)
        return; /* queued again when woken; rs may already be in another thread's hands */
    if (rc < 0)
        handler_error_reply(rs, rc, &err, &reply);
    http_reply_serialise(&reply);
    rs->reply = reply;
    rs->answered = true;
    MHD_resume_connection(rs->req.conn);
}

/* Runs the handler of an on_event_thread route here, on the event thread — again once it
 * is resumed — and queues its answer, unless it suspended its request. */
static enum MHD_Result run_on_event_thread(http_server *srv, struct MHD_Connection *conn,
                                           struct request_state *rs)
{
    errand_error err;
    error_clear(&err);
    struct http_reply reply = {0};
    int rc = rs->route->fn(srv->ctx, &rs->req, &reply, &err);
    if (rc == HTTP_PARKED)
        return MHD_YES;
    if (rc < 0)
        handler_error_reply(rs, rc, &err, &reply);
    return http_reply_send(conn, &reply);
}

int http_suspend(const struct http_request *req)
{
    struct request_state *rs =
        (struct request_state *)((char *)req - offsetof(struct request_state, req));
    atomic_fetch_add(&rs->srv->suspended_for_store, 1);
    MHD_suspend_connection(req->conn);
    return HTTP_PARKED;
}

void http_resume(const struct http_request *req)
{
    struct request_state *rs =
        (struct request_state *)((char *)req - offsetof(struct request_state, req));
    http_server *srv = rs->srv; /* rs may be gone once the connection is resumed */
    MHD_resume_connection(req->conn);
    atomic_fetch_sub(&srv->suspended_for_store, 1);
}

/* A parked long-poll woke (notify.h): its handler runs again, on a handler thread. */
static void wake_parked(void *arg, bool signalled)
{
    (void)signalled; /* the handler checks the store either way */
    struct request_state *rs = arg;
    work_pool_submit(rs->srv->pool, &rs->job);
}

int http_park(const struct http_request *req, notify *n, notify_waiter *w, int64_t until_mono_ms)
{
    struct request_state *rs =
        (struct request_state *)((char *)req - offsetof(struct request_state, req));
    return notify_waiter_park(n, w, until_mono_ms, wake_parked, rs) ? HTTP_PARKED : 0;
}

/* The guard's entry of conn (NULL when it has none). */
static guarded_conn *guarded(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* The headers are in: count the request, refuse it now or get ready for its body. */
static enum MHD_Result on_headers(http_server *srv, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **req_cls)
{
    guarded_conn *gc = guarded(conn);
    conn_guard_waiting(srv->guard, gc, clock_mono_ms());
    metrics_add(srv->ctx->metrics, METRIC_HTTP_REQUESTS, 1);
    struct request_state *rs = mem_calloc(1, sizeof *rs);
    if (!rs)
        return MHD_NO;
    *req_cls = rs;
    pthread_mutex_lock(&srv->lock);
    srv->in_flight++;
    pthread_mutex_unlock(&srv->lock);
    rs->srv = srv;
    rs->started_ns = clock_mono_ns();
    rs->job.fn = run_handler;
    rs->req.method = method;
    rs->req.path = url;
    rs->req.conn = conn;
    rs->req.longpoll = &rs->longpoll;
    errand_error err;
    error_clear(&err);
    int admitted = admit(srv, conn, rs, &err);
    if (rs->authenticated)
        conn_guard_authenticated(srv->guard, gc, rs->worker);
    if (admitted < 0) {
        rs->refused = true;
        conn_guard_busy(srv->guard, gc);
        return http_reply_send_error(conn, &err);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    http_server *srv = cls;
    struct request_state *rs = *req_cls;
    if (!rs)
        return on_headers(srv, conn, url, method, req_cls);
    if (*upload_data_size > 0) { /* a piece of the body: waiting for the next one */
        conn_guard_waiting(srv->guard, guarded(conn), clock_mono_ms());
        if (!rs->refused)
            append_body(srv, rs, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rs->refused)
        return MHD_YES;
    if (rs->answered) { /* resumed: the handler's answer is ready, and MHD takes it */
        struct http_reply reply = rs->reply;
        rs->reply = (struct http_reply){0};
        return http_reply_send(conn, &reply);
    }
    conn_guard_busy(srv->guard, guarded(conn));
    errand_error err;
    error_clear(&err);
    if (body_refusal(srv, rs, &err) < 0)
        return http_reply_send_error(conn, &err);
    rs->req.body = rs->body ? rs->body : "";
    rs->req.body_len = rs->len;
    if (rs->route->on_event_thread)
        return run_on_event_thread(srv, conn, rs);
    /* The handler runs on a handler thread; this connection waits, suspended, costing no
     * event-thread time, until run_handler resumes it. */
    MHD_suspend_connection(conn);
    work_pool_submit(srv->pool, &rs->job);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    struct request_state *rs = *req_cls;
    if (!rs)
        return;
    metrics_observe_http(srv->ctx->metrics, rs->route, rs->req.method,
                         clock_mono_ns() - rs->started_ns);
    if (rs->longpoll.free_state)
        rs->longpoll.free_state(rs->longpoll.state);
    http_reply_clear(&rs->reply); /* an answer the connection closed before it was sent */
    budget_give(srv->work, rs->reserved);
    mem_free(rs->body);
    mem_free(rs);
    *req_cls = NULL;
    /* Answered: a kept-alive connection now waits for its next request. */
    conn_guard_waiting(srv->guard, guarded(conn), clock_mono_ms());
    pthread_mutex_lock(&srv->lock);
    if (--srv->in_flight == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context =
            fd ? conn_guard_open(srv->guard, fd->connect_fd,
                                 conn_guard_address_key(addr ? addr->client_addr : NULL),
                                 clock_mono_ms())
               : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_guard_close(srv->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* Whether msg is the message logged last, within MHD_LOG_REPEAT_MS (then counted, not
 * logged); *repeats: how many such were not logged before this one. */
static bool log_repeat(http_server *srv, const char *msg, unsigned *repeats)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&srv->log_mu);
    bool repeat =
        strcmp(msg, srv->last_logged) == 0 && now - srv->last_logged_ms < MHD_LOG_REPEAT_MS;
    if (repeat) {
        srv->repeats++;
    } else {
        *repeats = srv->repeats;
        srv->repeats = 0;
        snprintf(srv->last_logged, sizeof srv->last_logged, "%s", msg);
        srv->last_logged_ms = now;
    }
    pthread_mutex_unlock(&srv->log_mu);
    return repeat;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_server *srv = cls;
    char msg[MHD_MESSAGE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == ' ' || msg[len - 1] == '\n'))
        msg[--len] = '\0';
    for (char *p = msg; *p; p++) /* keep the logfmt value on one line, in one quote pair */
        if (*p == '"' || *p == '\n' || *p == '\r')
            *p = *p == '"' ? '\'' : ' ';
    memcpy(srv->last_mhd_message, msg, sizeof msg);
    unsigned repeats = 0;
    if (!log_repeat(srv, msg, &repeats))
        log_warn("libmicrohttpd", "detail=\"%s\" repeated_before=%u", msg, repeats);
}

/* --- daemon --------------------------------------------------------------------------- */

size_t http_server_work_peak(http_server *srv)
{
    return budget_peak_reset(srv->work);
}

size_t http_server_work_now(http_server *srv)
{
    return budget_used(srv->work);
}

static void free_server(http_server *srv)
{
    work_pool_stop(srv->pool);
    conn_guard_stop(srv->guard);
    pthread_mutex_destroy(&srv->log_mu);
    budget_free(srv->work);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    auth_keys_free(srv->keys);
    mem_free(srv);
}

/* Waits until no request is in flight, or DRAIN_TIMEOUT_MS; the number still in flight. */
static int drain(http_server *srv)
{
    int64_t until_ms = clock_mono_ms() + DRAIN_TIMEOUT_MS;
    struct timespec until = {.tv_sec = until_ms / MS_PER_S,
                             .tv_nsec = (until_ms % MS_PER_S) * NS_PER_MS};
    pthread_mutex_lock(&srv->lock);
    while (srv->in_flight > 0)
        if (pthread_cond_timedwait(&srv->idle, &srv->lock, &until) == ETIMEDOUT)
            break;
    int left = srv->in_flight;
    pthread_mutex_unlock(&srv->lock);
    return left;
}

/* libmicrohttpd's event threads: one per core (they only read, parse and write). */
static int event_threads(const struct http_server_options *opt)
{
    if (opt->event_threads > 0)
        return opt->event_threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > EVENT_THREADS_MAX ? EVENT_THREADS_MAX : (int)cores;
}

static unsigned int daemon_flags(const struct addrinfo *ai, const char *host)
{
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | MHD_USE_ITC;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (ai->ai_family == AF_INET6)
        flags |= strcmp(host, "::") == 0 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    return flags;
}

int http_server_start(const struct http_server_options *opt, const struct handler_ctx *ctx,
                      http_server **out, int *port_out, errand_error *err)
{
    *out = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port_text[PORT_TEXT_MAX];
    snprintf(port_text, sizeof port_text, "%d", opt->port);
    int gai = getaddrinfo(opt->host, port_text, &hints, &ai);
    if (gai != 0)
        return error_set(err, ERRAND_EINVAL, "host",
                         "cannot resolve ERRAND_SERVER_API_HOST '%s': %s; use an IP address "
                         "such as 127.0.0.1, 0.0.0.0 or ::",
                         opt->host, gai_strerror(gai));
    http_server *srv = mem_calloc(1, sizeof *srv);
    if (!srv || !(srv->work = budget_new(opt->max_inflight_bytes))) {
        freeaddrinfo(ai);
        mem_free(srv);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int krc = auth_keys_new(opt->api_key, opt->submit_keys, opt->worker_keys, opt->read_keys,
                            &srv->keys, err);
    if (krc < 0) {
        freeaddrinfo(ai);
        budget_free(srv->work);
        mem_free(srv);
        return krc;
    }
    struct conn_guard_limits limits = {
        .idle_ms = opt->idle_timeout_ms > 0 ? opt->idle_timeout_ms : IDLE_TIMEOUT_DEFAULT_MS,
        .max_connections = opt->max_connections,
        .worker_reserve = opt->max_connections / WORKER_RESERVE_DEN,
        .unauth_cap = opt->max_connections / UNAUTH_SHARE_DEN,
        .unauth_per_address = opt->unauth_per_address,
    };
    krc = conn_guard_start(&limits, &srv->guard, err);
    if (krc < 0) {
        freeaddrinfo(ai);
        auth_keys_free(srv->keys);
        budget_free(srv->work);
        mem_free(srv);
        return krc;
    }
    if ((krc = work_pool_start(opt->handler_threads, &srv->pool, err)) < 0) {
        freeaddrinfo(ai);
        conn_guard_stop(srv->guard);
        auth_keys_free(srv->keys);
        budget_free(srv->work);
        mem_free(srv);
        return krc;
    }
    srv->ctx = ctx;
    srv->max_body = opt->max_body_bytes;
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->suspended_for_store, 0);
    pthread_mutex_init(&srv->log_mu, NULL);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->idle, &attr);
    pthread_condattr_destroy(&attr);
    srv->daemon = MHD_start_daemon(
        daemon_flags(ai, opt->host), (uint16_t)opt->port, NULL, NULL, on_request, srv,
        /* The logger comes first so that MHD reports problems with later options there. */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)opt->max_connections,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)event_threads(opt),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_CONNECTION_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        srv, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) {
        int rc = error_set(err, ERRAND_EIO, "port",
                           "cannot listen on %s port %d (%s); is another server using it? Stop "
                           "it or choose another port with --port or ERRAND_SERVER_API_PORT",
                           opt->host, opt->port,
                           srv->last_mhd_message[0] ? srv->last_mhd_message : "bind failed");
        free_server(srv);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? (int)info->port : opt->port;
    *out = srv;
    return 0;
}

void http_server_quiesce(http_server *srv)
{
    if (!srv)
        return;
    /* Every request from now on is answered 503 (admit). The listening socket stays open
     * until http_server_stop: MHD_quiesce_daemon races with the event threads of an epoll
     * thread pool in libmicrohttpd 0.9.75 (a thread that sees the daemon quiesced removes the
     * socket from its epoll set a second time and aborts: "Failed to remove listen FD from
     * epoll set"). */
    atomic_store(&srv->stopping, true);
}

void http_server_stop(http_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    int left = drain(srv);
    if (left > 0)
        log_warn("closing connections with requests in flight", "count=%d waited_ms=%d", left,
                 DRAIN_TIMEOUT_MS);
    /* The handler threads end first: a handler still running resumes its connection, which
     * must not have been freed under it. */
    work_pool_stop(srv->pool);
    srv->pool = NULL;
    while (atomic_load(&srv->suspended_for_store) > 0) /* the store resumes them: wait */
        nanosleep(&(struct timespec){.tv_nsec = STOP_POLL_NS}, NULL);
    MHD_stop_daemon(srv->daemon);
    free_server(srv);
}
