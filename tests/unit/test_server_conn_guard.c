/* SPDX-License-Identifier: MIT */
/*
 * test_server_conn_guard.c — the connection guard (server/conn_guard.h) on real sockets
 * (socket pairs): the oldest unauthenticated waiting connections beyond the cap are shut
 * down first, authenticated and busy ones never for the cap; so are the oldest of one
 * address beyond its own cap, while other addresses keep theirs; near the limit, the oldest
 * waiting connections of non-workers make room for the workers' reserve; any waiting longer than
 * the idle timeout is shut down; a shut socket reads as closed on the client's side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conn_guard.h"

#define IDLE_MS 1000
#define CAP 2
#define N 6
#define T0 1000000

/* Whether the server side of pair p was shut down, as the client side sees it. */
static bool shut(int client_fd)
{
    char b;
    return recv(client_fd, &b, 1, MSG_DONTWAIT) == 0;
}

static void cap_first_then_idle_timeout(void **state)
{
    (void)state;
    conn_guard *g = NULL;
    errand_error err;
    struct conn_guard_limits limits = {.idle_ms = IDLE_MS, .unauth_cap = CAP};
    assert_int_equal(conn_guard_start(&limits, &g, &err), 0);
    int fds[N][2];
    guarded_conn *c[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        c[i] = conn_guard_open(g, fds[i][0], 1, T0 + i); /* accept order = age */
        assert_non_null(c[i]);
    }
    conn_guard_authenticated(g, c[0], false); /* the oldest, but it sent a valid key */
    conn_guard_busy(g, c[1]);          /* a long-poll being served */
    /* Waiting unauthenticated: 2, 3, 4, 5; the cap keeps 2, the two oldest go. */
    conn_guard_sweep(g, T0 + 10);
    bool want[N] = {false, false, true, true, false, false};
    for (int i = 0; i < N; i++)
        assert_int_equal(shut(fds[i][1]), want[i]);
    struct conn_guard_counts n;
    conn_guard_counts(g, &n);
    assert_int_equal(n.over_cap, 2);
    assert_int_equal(n.idle, 0);
    /* Past the idle timeout every waiting one goes, authenticated or not; busy stays. */
    conn_guard_sweep(g, T0 + IDLE_MS + 100);
    for (int i = 0; i < N; i++)
        assert_int_equal(shut(fds[i][1]), i != 1);
    conn_guard_counts(g, &n);
    assert_int_equal(n.idle, 3); /* 0, 4, 5 (2 and 3 were closing already) */
    for (int i = 0; i < N; i++) {
        conn_guard_close(g, c[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    conn_guard_stop(g);
}

static uint64_t address(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return conn_guard_address_key((const struct sockaddr *)&a);
}

/* One address's unauthenticated waiting connections beyond its cap go, oldest first; another
 * address keeps its own, and authenticated ones from the crowded address stay. */
static void per_address_cap(void **state)
{
    (void)state;
    enum { PER_ADDRESS = 3, CROWD = 8, OTHER = 2, AUTHED = 4, ALL = CROWD + OTHER + AUTHED };
    conn_guard *g = NULL;
    errand_error err;
    struct conn_guard_limits limits = {
        .idle_ms = IDLE_MS, .unauth_cap = 100, .unauth_per_address = PER_ADDRESS};
    assert_int_equal(conn_guard_start(&limits, &g, &err), 0);
    uint64_t crowd = address("10.0.0.1"), other = address("10.0.0.2");
    assert_true(crowd != other);
    struct sockaddr_in a1 = {.sin_family = AF_INET, .sin_port = 1}, a2 = a1;
    a2.sin_port = 2;
    inet_pton(AF_INET, "10.0.0.1", &a1.sin_addr);
    inet_pton(AF_INET, "10.0.0.1", &a2.sin_addr);
    assert_true(conn_guard_address_key((const struct sockaddr *)&a1) ==
                conn_guard_address_key((const struct sockaddr *)&a2)); /* the port is not it */
    int fds[ALL][2];
    guarded_conn *c[ALL];
    for (int i = 0; i < ALL; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        uint64_t key = i >= CROWD && i < CROWD + OTHER ? other : crowd;
        c[i] = conn_guard_open(g, fds[i][0], key, T0 + i);
        if (i >= CROWD + OTHER)
            conn_guard_authenticated(g, c[i], false);
    }
    conn_guard_sweep(g, T0 + ALL);
    for (int i = 0; i < ALL; i++) /* the crowd's oldest five go; the other and the keyed stay */
        assert_int_equal(shut(fds[i][1]), i < CROWD - PER_ADDRESS);
    struct conn_guard_counts n;
    conn_guard_counts(g, &n);
    assert_int_equal(n.over_address_cap, CROWD - PER_ADDRESS);
    assert_int_equal(n.over_cap, 0);
    for (int i = 0; i < ALL; i++) {
        conn_guard_close(g, c[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    conn_guard_stop(g);
}

/* Past the limit less the workers' reserve, the oldest waiting connections of clients that
 * are not workers are closed; workers' connections and busy ones stay. */
static void workers_reserve(void **state)
{
    (void)state;
    enum { MAX = 10, RESERVE = 2 };
    conn_guard *g = NULL;
    errand_error err;
    struct conn_guard_limits limits = {
        .idle_ms = IDLE_MS, .max_connections = MAX, .worker_reserve = RESERVE, .unauth_cap = MAX};
    assert_int_equal(conn_guard_start(&limits, &g, &err), 0);
    int fds[MAX][2];
    guarded_conn *c[MAX];
    for (int i = 0; i < MAX; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        c[i] = conn_guard_open(g, fds[i][0], 1, T0 + i);
        conn_guard_authenticated(g, c[i], i < 3); /* 0-2: workers; the rest: web apps */
    }
    conn_guard_busy(g, c[3]); /* a web app's request being served */
    conn_guard_sweep(g, T0 + MAX);
    for (int i = 0; i < MAX; i++) /* the two oldest waiting web-app connections: 4 and 5 */
        assert_int_equal(shut(fds[i][1]), i == 4 || i == 5);
    struct conn_guard_counts n;
    conn_guard_counts(g, &n);
    assert_int_equal(n.for_workers, RESERVE);
    conn_guard_sweep(g, T0 + MAX + 1); /* room made: nothing more goes */
    conn_guard_counts(g, &n);
    assert_int_equal(n.for_workers, RESERVE);
    for (int i = 0; i < MAX; i++) {
        conn_guard_close(g, c[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    conn_guard_stop(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_first_then_idle_timeout),
        cmocka_unit_test(per_address_cap),
        cmocka_unit_test(workers_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
