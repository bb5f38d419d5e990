/* SPDX-License-Identifier: MIT */
/*
 * conn_guard.h — keeps idle, slow and unauthenticated clients from holding the server's
 * connections. The HTTP server counts every connection against ERRAND_MAX_CONNECTIONS, so a
 * client that opens connections and then says nothing, trickles
 * its headers a byte at a time, or keeps them open after a 401, could lock everyone else out.
 *
 * Every connection is tracked from accept to close with its state: *waiting* (for a
 * request's headers, the next piece of its body, or the next request on a kept-alive
 * connection) since some time, or *busy* (a handler runs — a long-poll may last minutes —
 * or its reply is being sent); and whether any request on it carried a valid key. A guard
 * thread closes (shutdown(2) of the socket: libmicrohttpd sees the end and closes the connection):
 *  - a connection waiting for longer than the idle timeout (ERRAND_HTTP_IDLE_TIMEOUT_MS);
 *  - the oldest unauthenticated waiting connections beyond a cap (a quarter of the
 *    connections), at once: the other slots stay free for clients that send a request
 *    right away — so a new client, or a worker, is served within a tick even while one
 *    address holds hundreds of slow connections;
 *  - the oldest unauthenticated waiting connections of one client address beyond its own
 *    cap (ERRAND_HTTP_UNAUTH_PER_ADDRESS), so one address cannot take the whole
 *    unauthenticated share. Authenticated clients are never capped by address (tests and
 *    dashboards all come from 127.0.0.1);
 *  - when the open connections pass the limit less a reserve (an eighth), the oldest waiting
 *    connections of clients that are not workers (no key with the worker scope), so a
 *    worker can always connect: web apps and dashboards that hold every connection idle
 *    cannot keep the workers out.
 * What it closes is logged as one line per kind and interval, not one per connection.
 *
 * The entry of a connection must be removed (conn_guard_close) before its socket is closed:
 * libmicrohttpd notifies the close before it closes the socket, so a socket the guard shuts
 * down is always the connection's own.
 */
#ifndef ERRAND_SERVER_CONN_GUARD_H
#define ERRAND_SERVER_CONN_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"

struct sockaddr;

/* How often the guard looks. */
#define CONN_GUARD_TICK_MS 200

typedef struct conn_guard conn_guard;
typedef struct guarded_conn guarded_conn;

struct conn_guard_limits {
    int64_t idle_ms;        /* the idle timeout */
    int max_connections;    /* ERRAND_MAX_CONNECTIONS */
    int worker_reserve;     /* connections kept free for workers; 0 = none */
    int unauth_cap;         /* most unauthenticated waiting connections kept, in all */
    int unauth_per_address; /* ... and from one client address; 0 = no such cap */
};

int conn_guard_start(const struct conn_guard_limits *limits, conn_guard **out, errand_error *err);
/* Stops the thread and frees everything (no connection may be tracked any more). */
void conn_guard_stop(conn_guard *g);

/* What identifies a client address (its IP, not its port), for the per-address cap; 0 for
 * NULL or an unknown family. */
uint64_t conn_guard_address_key(const struct sockaddr *addr);

/* A connection from address_key (conn_guard_address_key) was accepted on socket fd: waiting
 * for its first request. NULL when out of memory (the connection is then not guarded). */
guarded_conn *conn_guard_open(conn_guard *g, int fd, uint64_t address_key, int64_t now_ms);
/* Its entry goes (before the socket is closed). */
void conn_guard_close(conn_guard *g, guarded_conn *c);
/* Waiting (for headers, body or the next request) since now, or busy. */
void conn_guard_waiting(conn_guard *g, guarded_conn *c, int64_t now_ms);
void conn_guard_busy(conn_guard *g, guarded_conn *c);
/* A request on it carried a valid key; worker: one with the worker scope. */
void conn_guard_authenticated(conn_guard *g, guarded_conn *c, bool worker);

/* What the guard closed so far: idle (past the timeout) and over the unauthenticated cap. */
struct conn_guard_counts {
    uint64_t idle;
    uint64_t over_cap;         /* over the cap in all */
    uint64_t over_address_cap; /* over the cap of their address */
    uint64_t for_workers;      /* closed to keep the workers' reserve free */
};
void conn_guard_counts(conn_guard *g, struct conn_guard_counts *out);

/* One guard pass at now_ms, as the thread does every tick (for tests). */
void conn_guard_sweep(conn_guard *g, int64_t now_ms);

#endif
