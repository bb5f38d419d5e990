/* SPDX-License-Identifier: MIT */
/*
 * router.h — the route table: which handler serves which method and path. Paths are
 * literal segments plus at most one "{id}" segment, which must be a UUID.
 */
#ifndef ERRAND_SERVER_ROUTER_H
#define ERRAND_SERVER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "errand/errand.h"
#include "server/auth.h"
#include "server/handlers.h"

struct route {
    const char *method;
    const char *pattern; /* "/api/task_runs/{id}/wait" */
    handler_fn fn;
    enum auth_scope scope; /* what a key must grant; AUTH_PUBLIC: served without one */
    /* The handler runs on the event thread: it never blocks (it waits for the store with
     * http_suspend/http_resume), so its request skips the hand-off to a handler thread. */
    bool on_event_thread;
};

/* The route table, read-only: its size, its i-th route (NULL past the end) and a route's
 * index. For per-route metrics, and for test_openapi, which holds the table against the
 * API's OpenAPI document. */
size_t router_route_count(void);
const struct route *router_route_at(size_t i);
size_t router_route_index(const struct route *r);

/* Whether method and path name a public route (the health probes, the login, the
 * dashboard's files): the one thing looked at before the API key. */
bool router_is_public(const char *method, const char *path);

/* Finds the route for method and path. Fails with ERRAND_ENOTFOUND (no such path),
 * ERR_METHOD (the path exists, the method does not; the message lists the allowed ones) or
 * ERR_INVALID_PARAMETER naming "id" (the {id} segment is not a UUID). id_out receives the
 * {id} segment, or "". */
int router_match(const char *method, const char *path, const struct route **out,
                 char id_out[UUID_STR_LEN], errand_error *err);

#endif
