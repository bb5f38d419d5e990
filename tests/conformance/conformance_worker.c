/* SPDX-License-Identifier: MIT */
/*
 * conformance_worker.c — conformance-worker: liberrand's worker runtime serving the
 * conformance tasks, the C runtime under test of the worker-protocol conformance suite
 * (tests/conformance/). tests/conformance/README.md defines what each task does; every
 * runtime serves the same five. Uses liberrand only through errand.h, as a user's program
 * would.
 *
 *   conformance-worker --api-url URL --name NAME [--concurrency N] [--prefetch N]
 *                      [--lease-seconds S] [--grace-seconds S]
 *
 * Serves until SIGTERM/SIGINT (liberrand's handlers), then stops as errand_worker_serve()
 * does: exit 0 after a clean stop.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errand/errand.h"

#define EXIT_USAGE 2
#define MAX_CONCURRENCY 10000
#define MAX_PREFETCH 10000
#define MAX_LEASE_SECONDS 3600.0
#define MAX_GRACE_SECONDS 3600.0
/* conformance.sleep checks for a stop this often: well under the suite's cancel bound. */
#define SLEEP_STEP_MS 20
#define MS_PER_S 1000.0
#define NS_PER_MS 1000000.0
/* conformance.deep refuses depths past this (its result is built in memory). */
#define DEEP_MAX 100000

static const char usage[] =
    "usage: conformance-worker --api-url URL --name NAME [--concurrency N] [--prefetch N]\n"
    "                          [--lease-seconds S] [--grace-seconds S]\n"
    "Serves the worker-protocol conformance tasks (tests/conformance/README.md) with\n"
    "liberrand's worker runtime until SIGTERM/SIGINT.\n";

/* ---- parameters ----------------------------------------------------------------------- */

/* The run's parameters as a JSON object; NULL after errand_task_fail() saying why. */
static json_t *params_object(errand_task_ctx *ctx, const char *params_json)
{
    json_error_t jerr;
    json_t *p = json_loads(params_json ? params_json : "{}", 0, &jerr);
    if (!json_is_object(p)) {
        errand_task_fail(ctx, false, "parameters must be a JSON object");
        json_decref(p);
        return NULL;
    }
    return p;
}

static char *dump(json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return text;
}

/* ---- the tasks ------------------------------------------------------------------------ */

/* conformance.echo: returns its parameters unchanged. */
static int echo_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    *result_json = strdup(params_json ? params_json : "{}");
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory copying the parameters");
        return 1;
    }
    return 0;
}

/* conformance.log {"lines": [text, ...]}: writes each as a log line of the run, in order,
 * then returns {"logged": N}. */
static int log_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                    void *userdata)
{
    json_t *p = params_object(ctx, params_json);
    if (!p)
        return 1;
    json_t *lines = json_object_get(p, "lines");
    if (!json_is_array(lines)) {
        errand_task_fail(ctx, false, "field 'lines' must be an array of strings");
        json_decref(p);
        return 1;
    }
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line)
    {
        if (!json_is_string(line)) {
            errand_task_fail(ctx, false, "lines[%zu] must be a string", i);
            json_decref(p);
            return 1;
        }
        errand_task_log(ctx, ERRAND_LOG_INFO, "%s", json_string_value(line));
    }
    *result_json = dump(json_pack("{s:I}", "logged", (json_int_t)json_array_size(lines)));
    json_decref(p);
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory building the result");
        return 1;
    }
    return 0;
}

/* conformance.fail {"message": text, "retryable": bool}: fails with "<message> (attempt N)",
 * retryable unless told otherwise. */
static int fail_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    json_t *p = params_object(ctx, params_json);
    if (!p)
        return 1;
    const char *message = json_string_value(json_object_get(p, "message"));
    json_t *retryable = json_object_get(p, "retryable");
    errand_task_fail(ctx, !json_is_false(retryable), "%s (attempt %d)",
                     message ? message : "failed on purpose", errand_task_attempt(ctx));
    json_decref(p);
    return 1;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * MS_PER_S + (double)ts.tv_nsec / NS_PER_MS;
}

/* conformance.sleep {"seconds": x}: sleeps x seconds and returns {"slept": x}; when the
 * runtime says stop (a cancel, a timeout, a stop past the grace period) it writes the log
 * line "stopped after S seconds" and fails at once. */
static int sleep_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                      void *userdata)
{
    json_t *p = params_object(ctx, params_json);
    if (!p)
        return 1;
    json_t *v = json_object_get(p, "seconds");
    bool number = json_is_number(v);
    double seconds = json_number_value(v);
    json_decref(p);
    if (!number || !(seconds >= 0) || !isfinite(seconds)) {
        errand_task_fail(ctx, false, "field 'seconds' must be a number >= 0");
        return 1;
    }
    double start = mono_ms();
    double end = start + seconds * MS_PER_S;
    for (double now = start; now < end; now = mono_ms()) {
        if (errand_task_should_stop(ctx)) {
            errand_task_log(ctx, ERRAND_LOG_INFO, "stopped after %.3f seconds",
                            (now - start) / MS_PER_S);
            errand_task_fail(ctx, false, "stopped after %.3f of %g seconds",
                             (now - start) / MS_PER_S, seconds);
            return 1;
        }
        double left = end - now;
        double step = left < SLEEP_STEP_MS ? left : SLEEP_STEP_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * NS_PER_MS)};
        nanosleep(&ts, NULL);
    }
    *result_json = dump(json_pack("{s:f}", "slept", seconds));
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory building the result");
        return 1;
    }
    return 0;
}

/* conformance.deep {"depth": n}: returns 0 inside n nested arrays ([[0]] for 2). */
static int deep_task(errand_task_ctx *ctx, const char *params_json, char **result_json,
                     void *userdata)
{
    json_t *p = params_object(ctx, params_json);
    if (!p)
        return 1;
    json_t *v = json_object_get(p, "depth");
    bool integer = json_is_integer(v);
    json_int_t depth = json_integer_value(v);
    json_decref(p);
    if (!integer || depth < 0 || depth > DEEP_MAX) {
        errand_task_fail(ctx, false, "field 'depth' must be a whole number from 0 to %d", DEEP_MAX);
        return 1;
    }
    size_t n = (size_t)depth;
    char *text = malloc(2 * n + 2);
    if (!text) {
        errand_task_fail(ctx, true, "out of memory building the result");
        return 1;
    }
    memset(text, '[', n);
    text[n] = '0';
    memset(text + n + 1, ']', n);
    text[2 * n + 1] = '\0';
    *result_json = text;
    return 0;
}

static const errand_task_def conformance_tasks[] = {
    {.name = "conformance.echo", .fn = echo_task}, {.name = "conformance.log", .fn = log_task},
    {.name = "conformance.fail", .fn = fail_task}, {.name = "conformance.sleep", .fn = sleep_task},
    {.name = "conformance.deep", .fn = deep_task},
};

/* ---- the command line ----------------------------------------------------------------- */

/* A number from min to max, or -1 after saying what was wrong. */
static int parse_number(const char *option, const char *text, double min, double max, bool whole,
                        double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v >= min && v <= max) || (whole && v != floor(v))) {
        fprintf(stderr, "conformance-worker: --%s must be a %s from %g to %g, got '%s'\n", option,
                whole ? "whole number" : "number", min, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, errand_worker_options *opt)
{
    static const struct option longopts[] = {
        {"api-url", required_argument, NULL, 'u'},
        {"name", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"prefetch", required_argument, NULL, 'p'},
        {"lease-seconds", required_argument, NULL, 'l'},
        {"grace-seconds", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            opt->api_url = optarg;
            break;
        case 'n':
            opt->name = optarg;
            break;
        case 'c':
            if (parse_number("concurrency", optarg, 1, MAX_CONCURRENCY, true, &v))
                return -1;
            opt->concurrency = (int)v;
            break;
        case 'p':
            if (parse_number("prefetch", optarg, 0, MAX_PREFETCH, true, &v))
                return -1;
            opt->prefetch = (int)v;
            break;
        case 'l':
            if (parse_number("lease-seconds", optarg, 1, MAX_LEASE_SECONDS, false, &v))
                return -1;
            opt->lease_seconds = v;
            break;
        case 'g':
            if (parse_number("grace-seconds", optarg, 0.001, MAX_GRACE_SECONDS, false, &v))
                return -1;
            opt->grace_seconds = v;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc || !opt->api_url || !opt->name) {
        fprintf(stderr,
                "conformance-worker: --api-url and --name are required, and nothing "
                "else\n%s",
                usage);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    errand_worker_options opt;
    errand_worker_options_init(&opt);
    if (parse_args(argc, argv, &opt) != 0)
        return EXIT_USAGE;
    opt.handle_signals = true;
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error to report, not a death */

    errand_error err = {0};
    int rc = errand_serve(conformance_tasks, sizeof conformance_tasks / sizeof *conformance_tasks,
                          &opt, &err);
    if (rc != ERRAND_OK) {
        fprintf(stderr, "conformance-worker: %s: %s\n", errand_strerror(rc), err.message);
        return EXIT_FAILURE;
    }
    return 0;
}
