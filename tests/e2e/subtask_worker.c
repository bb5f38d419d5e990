/* SPDX-License-Identifier: MIT */
/*
 * subtask_worker.c — subtask-worker: a user's program on liberrand (through errand.h only)
 * whose task waits for subtasks of its own task, for tests/e2e/test_subtasks.py.
 *
 *   sub.node {"children": N, "value": V, "sleep_ms": S, "child_task": T, "child_timeout": W}
 *     with N = 0 (the default): sleeps S ms (checking errand_task_should_stop), returns
 *     {"sum": V};
 *     with N > 0: submits N runs of T (default sub.node) with {"value": V * 100 + i}, one at
 *     a time, waits for each with errand_task_wait (timeout W, default none) and returns
 *     {"sum": the sum of their sums, "children": their ids}; a failed wait or child fails
 *     the run with the error.
 *
 *   subtask-worker [--isolate] [--concurrency N] [--max-waiting N]   (N >= 0; 0: no lending)
 *     (ERRAND_API_URL and ERRAND_API_KEY from the environment)
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errand/errand.h"

#define SLEEP_STEP_MS 10

static void sleep_ms(errand_task_ctx *ctx, long ms)
{
    for (long slept = 0; slept < ms && !errand_task_should_stop(ctx); slept += SLEEP_STEP_MS) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = SLEEP_STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The "sum" of a finished child's inline result; false when it did not complete. */
static bool child_sum(const errand_run *run, json_int_t *sum)
{
    if (errand_run_state(run) != ERRAND_STATE_COMPLETED)
        return false;
    json_t *obj = json_loads(errand_run_json(run), 0, NULL);
    json_t *v = json_object_get(json_object_get(obj, "result"), "sum");
    bool ok = json_is_integer(v);
    if (ok)
        *sum = json_integer_value(v);
    json_decref(obj);
    return ok;
}

static int node_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    (void)userdata;
    json_t *params = json_loads(params_json ? params_json : "{}", 0, NULL);
    json_int_t children = json_integer_value(json_object_get(params, "children"));
    json_int_t value = json_integer_value(json_object_get(params, "value"));
    json_int_t sleep = json_integer_value(json_object_get(params, "sleep_ms"));
    double wait_s = json_number_value(json_object_get(params, "child_timeout"));
    const char *child_task = json_string_value(json_object_get(params, "child_task"));
    if (!child_task)
        child_task = "sub.node";
    /* child_tag: a tag the subtasks carry (the parent's own, in the limits test). */
    const char *child_tag = json_string_value(json_object_get(params, "child_tag"));
    errand_submit_options child_opt;
    errand_submit_options_init(&child_opt);
    if (child_tag) {
        child_opt.tags = &child_tag;
        child_opt.n_tags = 1;
    }
    json_t *out = json_object();
    json_t *ids = json_array();
    json_int_t sum = children == 0 ? value : 0;
    int rc = 0;
    if (children == 0)
        sleep_ms(ctx, (long)sleep);
    for (json_int_t i = 0; i < children && rc == 0; i++) {
        char child_params[64];
        snprintf(child_params, sizeof child_params, "{\"value\": %lld}",
                 (long long)(value * 100 + i));
        errand_run *run = NULL, *done = NULL;
        errand_error err = {0};
        json_int_t s = 0;
        if (errand_task_submit(ctx, child_task, child_params, &child_opt, &run, &err) != 0) {
            errand_task_fail(ctx, true, "submitting subtask %lld: %s", (long long)i, err.message);
            rc = 1;
        } else if (json_array_append_new(ids, json_string(errand_run_id(run))),
                   errand_task_wait(ctx, errand_run_id(run), wait_s, &done, &err) != 0) {
            errand_task_fail(ctx, true, "waiting for subtask %s: %s (%s)", errand_run_id(run),
                             err.message, errand_strerror(err.code));
            rc = 1;
        } else if (!child_sum(done, &s)) {
            errand_task_fail(ctx, true, "subtask %s ended %s", errand_run_id(run),
                             errand_run_state_name(done));
            rc = 1;
        }
        sum += s;
        errand_run_free(run);
        errand_run_free(done);
    }
    json_object_set_new(out, "sum", json_integer(sum));
    json_object_set_new(out, "children", ids);
    json_decref(params);
    *result_json = rc == 0 ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    return rc == 0 && *result_json ? 0 : 1;
}

static const errand_task_def subtask_tasks[] = {
    {.name = "sub.node", .fn = node_task},
};

int main(int argc, char **argv)
{
    errand_worker_options opt;
    errand_worker_options_init(&opt);
    int max_waiting = -1; /* -1: not given, ERRAND_WORKER_MAX_WAITING */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isolate") == 0) {
            opt.isolate = true;
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            opt.concurrency = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--max-waiting") == 0 && i + 1 < argc) {
            max_waiting = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: subtask-worker [--isolate] [--concurrency N] [--max-waiting N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    opt.handle_signals = true;
    errand_error err = {0};
    errand_worker *w = NULL;
    int rc = errand_worker_new(&opt, &w, &err);
    for (size_t i = 0; rc == 0 && i < sizeof subtask_tasks / sizeof *subtask_tasks; i++)
        rc = errand_worker_add_task(w, &subtask_tasks[i], &err);
    if (rc == 0 && max_waiting >= 0)
        rc = errand_worker_set_max_waiting(w, max_waiting, &err);
    if (rc == 0)
        rc = errand_worker_serve(w, &err);
    errand_worker_free(w);
    if (rc != ERRAND_OK) {
        fprintf(stderr, "subtask-worker: %s: %s\n", errand_strerror(rc), err.message);
        return EXIT_FAILURE;
    }
    return 0;
}
