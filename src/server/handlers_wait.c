/* SPDX-License-Identifier: MIT */
/*
 * handlers_wait.c — GET /api/task_runs/{id}/wait: the long-poll that answers as soon as the
 * run is final, or after timeout_seconds with its current state.
 *
 * It listens on NOTIFY_RUN_FINAL for its run id before it first reads the run's state
 * (store_get_state, cheap), so a run finishing between the check and the park still wakes
 * it; only a change of this run (or a sweep) wakes it. While it waits it is parked
 * (http_park): no thread is held, so thousands of waiting clients cost memory only. Besides
 * notifications it re-checks every ERRAND_POLL_RECHECK_MS: a run finished through another
 * server sharing the store sends no notification here. On shutdown it answers at once with
 * the current state.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "server/handlers.h"
#include "server/query.h"

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 300

/* What a wait keeps between the calls of its handler. */
struct wait_poll {
    notify *notify;
    notify_waiter *w;
    int64_t deadline_ms;
    char key[UUID_STR_LEN]; /* the run id as the store writes it (lower case) */
};

const struct query_param wait_params[] = {{"timeout_seconds", false}, {NULL, false}};

static void wait_poll_free(void *state)
{
    struct wait_poll *p = state;
    notify_unlisten(p->notify, p->w);
    mem_free(p);
}

/* The first call: parses the request and starts listening. */
static int wait_begin(const struct handler_ctx *ctx, const struct http_request *req,
                      errand_error *err)
{
    double timeout_s = 0;
    int rc;
    if ((rc = query_check(req, wait_params, err)) < 0 ||
        (rc = query_number(req, "timeout_seconds", 0, WAIT_MAX_S, WAIT_DEFAULT_S, &timeout_s,
                           err)) < 0)
        return rc;
    struct wait_poll *p = mem_calloc(1, sizeof *p);
    if (!p)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    snprintf(p->key, sizeof p->key, "%s", req->id);
    for (char *c = p->key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *keys[] = {p->key};
    p->notify = ctx->notify;
    if (!(p->w = notify_listen(ctx->notify, NOTIFY_RUN_FINAL, keys, 1))) {
        mem_free(p);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    p->deadline_ms = clock_mono_ms() + (int64_t)(timeout_s * MS_PER_S);
    req->longpoll->state = p;
    req->longpoll->free_state = wait_poll_free;
    return 0;
}

int handle_wait_run(const struct handler_ctx *ctx, const struct http_request *req,
                    struct http_reply *reply, errand_error *err)
{
    int rc;
    if (!req->longpoll->state && (rc = wait_begin(ctx, req, err)) < 0)
        return rc;
    struct wait_poll *p = req->longpoll->state;
    for (;;) {
        errand_state state;
        if ((rc = store_get_state(ctx->st, req->id, &state, err)) < 0)
            return rc;
        int64_t now = clock_mono_ms();
        if (state_is_final(state) || now >= p->deadline_ms || notify_is_shutdown(ctx->notify) ||
            http_client_gone(req))
            break;
        if ((rc = handler_park(ctx, req, p->w, now, p->deadline_ms)) == HTTP_PARKED)
            return rc;
    }
    struct run_row run;
    if ((rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    rc = reply_run(reply, HTTP_OK, &run, err);
    run_row_clear(&run);
    return rc;
}
