/*
 * test_server_conn_guard.c — the connection guard (server/conn_guard.h) on real sockets
 * (socket pairs): the oldest unauthenticated waiting connections beyond the cap are shut
 * down first, authenticated and busy ones never for the cap; any waiting longer than the
 * idle timeout is shut down; a shut socket reads as closed on the client's side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
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
    assert_int_equal(conn_guard_start(IDLE_MS, CAP, &g, &err), 0);
    int fds[N][2];
    guarded_conn *c[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        c[i] = conn_guard_open(g, fds[i][0], T0 + i); /* accept order = age */
        assert_non_null(c[i]);
    }
    conn_guard_authenticated(g, c[0]); /* the oldest, but it sent a valid key */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_first_then_idle_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
