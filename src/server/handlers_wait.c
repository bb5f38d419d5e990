/*
 * handlers_wait.c — GET /api/task_runs/{id}/wait: the long-poll that answers as soon as the
 * run is final, or after timeout_seconds with its current state.
 *
 * It listens on NOTIFY_RUN_FINAL for its run id before it first reads the run's state
 * (store_get_state, cheap), so a run finishing between the check and the wait still wakes
 * it; only a change of this run (or a sweep) wakes it. Besides notifications it re-checks
 * every ERRAND_POLL_RECHECK_MS: a run finished through another server sharing the store
 * sends no notification here. On shutdown it answers at once with the current state.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/state.h"
#include "core/uuid.h"
#include "server/handlers.h"
#include "server/query.h"

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 300

int handle_wait_run(const struct handler_ctx *ctx, const struct http_request *req,
                    struct http_reply *reply, errand_error *err)
{
    static const struct query_param params[] = {{"timeout_seconds", false}, {NULL, false}};
    double timeout_s = 0;
    int rc;
    if ((rc = query_check(req, params, err)) < 0 ||
        (rc = query_number(req, "timeout_seconds", 0, WAIT_MAX_S, WAIT_DEFAULT_S, &timeout_s,
                           err)) < 0)
        return rc;
    /* The key is the id as the store writes it (lower case), whatever case it came in. */
    char key[UUID_STR_LEN];
    snprintf(key, sizeof key, "%s", req->id);
    for (char *p = key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *keys[] = {key};
    notify_waiter *w = notify_listen(ctx->notify, NOTIFY_RUN_FINAL, keys, 1);
    if (!w)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int64_t deadline = clock_mono_ms() + (int64_t)(timeout_s * MS_PER_S);
    for (;;) {
        errand_state state;
        if ((rc = store_get_state(ctx->st, req->id, &state, err)) < 0)
            break;
        int64_t now = clock_mono_ms();
        if (state_is_final(state) || now >= deadline || notify_is_shutdown(ctx->notify) ||
            http_client_gone(req))
            break;
        int64_t until =
            now + ctx->poll_recheck_ms < deadline ? now + ctx->poll_recheck_ms : deadline;
        notify_waiter_wait(ctx->notify, w, until);
    }
    notify_unlisten(ctx->notify, w);
    if (rc < 0)
        return rc;
    struct run_row run;
    if ((rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    rc = reply_run(reply, HTTP_OK, &run, err);
    run_row_clear(&run);
    return rc;
}
