/* SPDX-License-Identifier: MIT */
/*
 * trace_worker.c — trace-worker: a user's program on liberrand (through errand.h only) serving
 * the task trace.probe, for tests/e2e/test_trace_context.py. What a C task sees of its trace:
 *
 *   trace.probe {"subtask": true?} returns
 *     {"run_traceparent": errand_task_traceparent(ctx), "current": errand_trace_get(),
 *      "subtask": the id of a run of trace.leaf it submitted with errand_submit (when asked)}
 *   trace.leaf returns null.
 *
 *   trace-worker [--isolate]     (ERRAND_API_URL and ERRAND_API_KEY from the environment)
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errand/errand.h"

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int probe_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                      void *userdata)
{
    (void)userdata;
    json_t *params = json_loads(params_json ? params_json : "{}", 0, NULL);
    bool subtask = json_is_true(json_object_get(params, "subtask"));
    json_decref(params);
    json_t *out = json_object();
    json_object_set_new(out, "run_traceparent", text_or_null(errand_task_traceparent(ctx)));
    json_object_set_new(out, "current", text_or_null(errand_trace_get()));
    if (subtask) {
        /* No trace given here: the thread's current context (the task's span) goes along. */
        errand_client *c = NULL;
        errand_run *run = NULL;
        errand_error err = {0};
        if (errand_client_new(NULL, &c, &err) != 0 ||
            errand_submit(c, "trace.leaf", NULL, NULL, &run, &err) != 0) {
            errand_task_fail(ctx, true, "submitting the subtask: %s", err.message);
            errand_client_free(c);
            json_decref(out);
            return 1;
        }
        json_object_set_new(out, "subtask", json_string(errand_run_id(run)));
        errand_run_free(run);
        errand_client_free(c);
    }
    *result_json = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return *result_json ? 0 : 1;
}

static int leaf_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    (void)ctx;
    (void)params_json;
    (void)userdata;
    *result_json = strdup("null");
    return *result_json ? 0 : 1;
}

static const errand_task_def trace_tasks[] = {
    {.name = "trace.probe", .fn = probe_task},
    {.name = "trace.leaf", .fn = leaf_task},
};

int main(int argc, char **argv)
{
    errand_worker_options opt;
    errand_worker_options_init(&opt);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isolate") == 0) {
            opt.isolate = true;
        } else {
            fprintf(stderr, "usage: trace-worker [--isolate]\n");
            return 2;
        }
    }
    opt.handle_signals = true;
    signal(SIGPIPE, SIG_IGN);
    errand_error err = {0};
    int rc = errand_serve(trace_tasks, sizeof trace_tasks / sizeof *trace_tasks, &opt, &err);
    if (rc != ERRAND_OK) {
        fprintf(stderr, "trace-worker: %s: %s\n", errand_strerror(rc), err.message);
        return EXIT_FAILURE;
    }
    return 0;
}
