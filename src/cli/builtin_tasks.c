/* SPDX-License-Identifier: MIT */
/*
 * builtin_tasks.c — errand.noop and errand.sleep (builtin_tasks.h). errand.sleep sleeps in
 * short steps and checks errand_task_should_stop() between them, so a cancel or a timeout
 * ends it within one step rather than after the whole sleep.
 */
#include "builtin_tasks.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

#define SLEEP_STEP_MS 20
#define SLEEP_FIELD "seconds"

static int noop_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    *result_json = strdup(params_json ? params_json : "{}");
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory copying the parameters");
        return 1;
    }
    return 0;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * MS_PER_S + (double)ts.tv_nsec / NS_PER_MS;
}

/* Reads params["seconds"]; false after errand_task_fail() naming the field. */
static bool sleep_seconds(errand_task_ctx *ctx, const char *params_json, double *out)
{
    json_error_t jerr;
    json_t *params = json_loads(params_json ? params_json : "{}", 0, &jerr);
    json_t *v = json_object_get(params, SLEEP_FIELD);
    bool ok = false;
    if (!json_is_object(params))
        errand_task_fail(ctx, false, "parameters must be a JSON object like {\"%s\": 1.5}",
                         SLEEP_FIELD);
    else if (!v)
        errand_task_fail(ctx, false, "field '%s' is required: the number of seconds to sleep",
                         SLEEP_FIELD);
    else if (!json_is_number(v))
        errand_task_fail(ctx, false, "field '%s' must be a number of seconds, got %s", SLEEP_FIELD,
                         json_is_string(v)    ? "string"
                         : json_is_boolean(v) ? "boolean"
                         : json_is_null(v)    ? "null"
                         : json_is_array(v)   ? "array"
                                              : "object");
    else if (!(json_number_value(v) >= 0) || !isfinite(json_number_value(v)))
        errand_task_fail(ctx, false, "field '%s' must be >= 0, got %g", SLEEP_FIELD,
                         json_number_value(v));
    else {
        *out = json_number_value(v);
        ok = true;
    }
    json_decref(params);
    return ok;
}

static int sleep_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                      void *userdata)
{
    double seconds;
    if (!sleep_seconds(ctx, params_json, &seconds))
        return 1;
    double start = mono_ms();
    double end = start + seconds * MS_PER_S;
    for (double now = start; now < end; now = mono_ms()) {
        if (errand_task_should_stop(ctx)) {
            errand_task_fail(ctx, false, "stopped after %.3f of %g seconds",
                             (now - start) / MS_PER_S, seconds);
            return 1;
        }
        double left = end - now;
        double step = left < SLEEP_STEP_MS ? left : SLEEP_STEP_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * NS_PER_MS)};
        nanosleep(&ts, NULL);
    }
    json_t *result = json_pack("{s:f}", "slept", seconds);
    *result_json = result ? json_dumps(result, JSON_COMPACT) : NULL;
    json_decref(result);
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory building the result");
        return 1;
    }
    return 0;
}

int builtin_tasks_add(errand_worker *w, errand_error *err)
{
    errand_task_def noop = {.name = BUILTIN_TASK_NOOP, .fn = noop_task};
    errand_task_def sleep_def = {.name = BUILTIN_TASK_SLEEP, .fn = sleep_task};
    int rc = errand_worker_add_task(w, &noop, err);
    if (rc == 0)
        rc = errand_worker_add_task(w, &sleep_def, err);
    return rc;
}
