/* SPDX-License-Identifier: MIT */
/*
 * refusing_port.h — a loopback URL that refuses connections, for tests of unreachable
 * servers: a socket bound to a free port that never listens (no fixed port, no race; it
 * refuses until closed). Header-only, like the other test helpers.
 */
#ifndef ERRAND_TESTS_REFUSING_PORT_H
#define ERRAND_TESTS_REFUSING_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

/* Writes "http://127.0.0.1:<port>/api" into url; returns the socket to close afterwards. */
static inline int refusing_port(char *url, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    snprintf(url, n, "http://127.0.0.1:%d/api", ntohs(addr.sin_port));
    return fd;
}

#endif
