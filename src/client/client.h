/* SPDX-License-Identifier: MIT */
/*
 * client.h — the errand_client handle shared by the client modules (client.c owns its life,
 * submit.c, task_runs.c and result.c make calls through it), and the one call helper that
 * turns an HTTP answer into either parsed JSON or a public error.
 */
#ifndef ERRAND_CLIENT_CLIENT_H
#define ERRAND_CLIENT_CLIENT_H

#include <jansson.h>

#include "client/http.h"
#include "errand/errand.h"

struct errand_client {
    http_conn *conn;
    long submit_retry_ms; /* 0 = submissions are not retried */
};

/* Calls METHOD path with body (a JSON value, may be NULL); on a 2xx answer *out receives the
 * parsed body (a new reference; NULL when the caller passes out = NULL). Non-2xx answers
 * become errors through http_status_error(). extra_ms lengthens the timeout (long polls). */
int client_call(errand_client *c, const char *method, const char *path, const json_t *body,
                long extra_ms, json_t **out, errand_error *err);
/* client_call that gives up with ERRAND_ECANCELLED as soon as cancel_fd (>= 0) is readable
 * before the answer begins (http_perform). */
int client_call_fd(errand_client *c, const char *method, const char *path, const json_t *body,
                   long extra_ms, int cancel_fd, json_t **out, errand_error *err);

/* errand_wait, abandoned with ERRAND_ECANCELLED as soon as cancel_fd (>= 0) is readable
 * (the worker runtime's errand_task_wait: a stopped run stops waiting at once). */
int client_wait(errand_client *c, const char *run_id, double timeout_seconds, int cancel_fd,
                errand_run **out, errand_error *err);

/* client_call for submissions: while the server cannot be reached or answers 503, tries
 * again with backoff for up to c->submit_retry_ms. body must carry idempotency keys. */
int client_call_retrying(errand_client *c, const char *method, const char *path, const json_t *body,
                         json_t **out, errand_error *err);

/* base + "/" + the URL-escaped id, e.g. "/task_runs/0193...". mem_free the result. */
char *client_run_path(const char *id, const char *suffix);

#endif
