/* SPDX-License-Identifier: MIT */
/*
 * task_runs.c — reading and steering one task run: errand_get, errand_wait (long-poll in
 * slices until final or out of time), errand_cancel and errand_retry.
 */
#include <stdio.h>

#include "client/client.h"
#include "client/run.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"

/* One long poll asks the server for at most this long (its limit is 300 s); shorter slices
 * keep idle connections from being cut by proxies. */
#define WAIT_SLICE_MAX_S 60.0

static int run_call(errand_client *c, const char *method, const char *run_id, const char *suffix,
                    long extra_ms, int cancel_fd, errand_run **out, errand_error *err)
{
    if (!c)
        return error_set(err, ERRAND_EINVAL, "client", "a client is required");
    if (!run_id || !*run_id)
        return error_set(err, ERRAND_EINVAL, "id", "a task-run id is required");
    char *path = client_run_path(run_id, suffix);
    if (!path)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_t *answer = NULL;
    int rc = client_call_fd(c, method, path, NULL, extra_ms, cancel_fd, out ? &answer : NULL, err);
    mem_free(path);
    if (!rc && out)
        rc = run_wrap(answer, out, err);
    json_decref(answer);
    return rc;
}

int errand_get(errand_client *c, const char *run_id, errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!out)
        return error_set(err, ERRAND_EINVAL, "out", "errand_get needs an out pointer");
    return run_call(c, "GET", run_id, NULL, 0, -1, out, err);
}

int errand_wait(errand_client *c, const char *run_id, double timeout_seconds, errand_run **out,
                errand_error *err)
{
    return client_wait(c, run_id, timeout_seconds, -1, out, err);
}

int client_wait(errand_client *c, const char *run_id, double timeout_seconds, int cancel_fd,
                errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    errand_run *run = NULL;
    int rc = run_call(c, "GET", run_id, NULL, 0, cancel_fd, &run, err);
    if (rc)
        return rc;
    int64_t deadline = clock_mono_ms() + (int64_t)(timeout_seconds * MS_PER_S);
    while (!state_is_final(run->state)) {
        double left = (double)(deadline - clock_mono_ms()) / MS_PER_S;
        if (left <= 0) {
            if (out)
                *out = run;
            else
                errand_run_free(run);
            return error_set(err, ERRAND_ETIMEDOUT, NULL,
                             "task run %s is still %s after waiting %g s", run_id,
                             state_type_name(run->state), timeout_seconds);
        }
        double slice = left < WAIT_SLICE_MAX_S ? left : WAIT_SLICE_MAX_S;
        char suffix[64];
        snprintf(suffix, sizeof suffix, "/wait?timeout_seconds=%.3f", slice);
        errand_run *next = NULL;
        rc =
            run_call(c, "GET", run_id, suffix, (long)(slice * MS_PER_S) + 1, cancel_fd, &next, err);
        if (rc) {
            errand_run_free(run);
            return rc;
        }
        errand_run_free(run);
        run = next;
    }
    if (out)
        *out = run;
    else
        errand_run_free(run);
    return 0;
}

int errand_cancel(errand_client *c, const char *run_id, errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    return run_call(c, "POST", run_id, "/cancel", 0, -1, out, err);
}

int errand_retry(errand_client *c, const char *run_id, errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    return run_call(c, "POST", run_id, "/retry", 0, -1, out, err);
}
