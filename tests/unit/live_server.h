/* SPDX-License-Identifier: MIT */
/*
 * live_server.h — a real errand HTTP server, started in the test's own process on a free
 * loopback port over the fixture's store (store_fixture.h), for tests of the worker runtime
 * against the server it talks to. Its result storage is "<fixture dir>/storage", the
 * worker's default there when a test points ERRAND_LOCAL_STORAGE_PATH at it. Header-only,
 * like store_fixture.h.
 */
#ifndef ERRAND_TESTS_LIVE_SERVER_H
#define ERRAND_TESTS_LIVE_SERVER_H

#include "store_fixture.h"

#include "errand/errand.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/notify.h"

struct live_server {
    notify *n;
    metrics *m;
    struct handler_ctx ctx;
    http_server *http;
    result_storage *results;
    char api_url[64];
};

static inline void live_start(struct fixture *fx, struct live_server *ls)
{
    ls->n = notify_new();
    ls->m = metrics_new();
    assert_non_null(ls->n);
    assert_non_null(ls->m);
    char storage[192];
    snprintf(storage, sizeof storage, "%s/storage", fx->dir);
    errand_error serr;
    assert_int_equal(result_storage_new(storage, &ls->results, &serr), 0);
    ls->ctx = (struct handler_ctx){.st = fx->st,
                                   .notify = ls->n,
                                   .metrics = ls->m,
                                   .results = ls->results,
                                   .default_lease_seconds = 30,
                                   .poll_recheck_ms = 1000};
    struct http_server_options opt = {.host = "127.0.0.1",
                                      .port = 0,
                                      .max_connections = 64,
                                      .max_body_bytes = 1024 * 1024,
                                      .max_inflight_bytes = 64 * 1024 * 1024,
                                      .api_key = ""};
    int port = 0;
    errand_error err;
    if (http_server_start(&opt, &ls->ctx, &ls->http, &port, &err) != 0)
        fail_msg("http_server_start: %s", err.message);
    snprintf(ls->api_url, sizeof ls->api_url, "http://127.0.0.1:%d/api", port);
}

static inline void live_stop(struct live_server *ls)
{
    notify_shutdown(ls->n);
    http_server_stop(ls->http);
    notify_free(ls->n);
    metrics_free(ls->m);
    result_storage_free(ls->results);
}

/* A worker of this process serving on a thread of its own (errand_worker_serve). */
struct served {
    errand_worker *w;
    pthread_t thread;
    int rc;
};

static inline void *served_main(void *arg)
{
    struct served *s = arg;
    errand_error err;
    s->rc = errand_worker_serve(s->w, &err);
    return NULL;
}

/* Serves s->w (made and given its tasks by the caller) on a new thread. */
static inline void served_start(struct served *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, served_main, s), 0);
}

/* Stops the worker, waits for serve() to return 0, frees the worker. */
static inline void served_stop(struct served *s)
{
    errand_worker_stop(s->w);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->rc, 0);
    errand_worker_free(s->w);
}

#endif
