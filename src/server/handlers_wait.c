/*
 * handlers_wait.c — GET /api/task_runs/{id}/wait: the long-poll that answers as soon as the
 * run is final, or after timeout_seconds with its current state.
 *
 * The loop reads the NOTIFY_RUN_FINAL generation, then the run's state (store_get_state,
 * cheap), and only then waits for the generation to move, so a run finishing between the
 * check and the wait still wakes it. Besides notifications it re-checks every
 * WAIT_RECHECK_MS: a run finished through another server sharing the store sends no
 * notification here. On shutdown it answers at once with the current state.
 */
#include <stdbool.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/state.h"
#include "server/handlers.h"
#include "server/query.h"

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 300
#define WAIT_RECHECK_MS 1000
#define MS_PER_S 1000.0

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
    int64_t deadline = clock_mono_ms() + (int64_t)(timeout_s * MS_PER_S);
    for (;;) {
        uint64_t gen = notify_generation(ctx->notify, NOTIFY_RUN_FINAL);
        errand_state state;
        if ((rc = store_get_state(ctx->st, req->id, &state, err)) < 0)
            return rc;
        int64_t now = clock_mono_ms();
        if (state_is_final(state) || now >= deadline || notify_is_shutdown(ctx->notify) ||
            http_client_gone(req))
            break;
        int64_t until = now + WAIT_RECHECK_MS < deadline ? now + WAIT_RECHECK_MS : deadline;
        notify_wait(ctx->notify, NOTIFY_RUN_FINAL, gen, until);
    }
    json_t *run = NULL;
    if ((rc = store_get_run(ctx->st, req->id, &run, err)) < 0)
        return rc;
    http_reply_json(reply, HTTP_OK, run);
    return 0;
}
