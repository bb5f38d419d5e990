/* SPDX-License-Identifier: MIT */
/*
 * server.h — `errand server start`: opens the store, starts the HTTP API (libmicrohttpd), the
 * lease sweeper, and serves until SIGINT/SIGTERM, then shuts down in order (stop accepting,
 * finish in-flight requests, stop the sweeper, close the store).
 */
#ifndef ERRAND_SERVER_SERVER_H
#define ERRAND_SERVER_SERVER_H

#include "core/settings.h"

/* Runs the server with these settings; returns the process exit status (0 on a clean stop).
 * Logs "listening" with host= and port= (the real port when the setting is 0) once ready. */
int server_run(const struct settings *s);

#endif
