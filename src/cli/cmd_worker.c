/* SPDX-License-Identifier: MIT */
/*
 * cmd_worker.c — `errand worker`: a worker process serving programs (--exec NAME=COMMAND,
 * parameters on stdin, result on stdout) and/or the built-in tasks (--builtin), until
 * SIGINT/SIGTERM. The worker runtime itself is liberrand's errand_worker; this file only
 * turns the command line and the settings into its options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin_tasks.h"
#include "commands.h"
#include "core/log.h"
#include "core/wire_limits.h"
#include "output.h"

static const struct cli_option worker_options[] = {
    {"exec", "NAME=COMMAND", true,
     "serve task NAME by running COMMAND with /bin/sh -c: parameters JSON on stdin, "
     "result JSON on stdout; a non-zero exit fails the run with the end of stderr"},
    {"builtin", NULL, false, "serve errand.noop and errand.sleep (see below)"},
    {"name", "NAME", false, "worker name shown by 'errand workers ls' (default host-pid)"},
    {"isolate", NULL, false,
     "run each C task run (the --builtin ones) in a child process: a crash ends that run, "
     "not the worker"},
    {"memory-limit-mb", "MB", false,
     "memory each task process may allocate beyond its start (exec tasks, and C tasks with "
     "--isolate); default none"},
    {"cpu-limit-seconds", "S", false,
     "CPU seconds each task process may use (exec tasks, and C tasks with --isolate); "
     "default none"},
    {"prefetch", "N", false,
     "runs claimed beyond --concurrency, waiting for a free slot (default 0); handed back "
     "on stop"},
    {"grace-seconds", "S", false,
     "on SIGINT/SIGTERM, how long running tasks may finish (default 30)"},
    {NULL, NULL, false, NULL},
};

static const enum setting_id worker_settings[] = {
    SET_API_URL,
    SET_API_KEY,
    SET_LOCAL_STORAGE_PATH,
    SET_RESULT_STORAGE,
    SET_S3_ENDPOINT_URL,
    SET_S3_REGION,
    SET_S3_ACCESS_KEY_ID,
    SET_S3_SECRET_ACCESS_KEY,
    SET_RESULTS_PERSIST,
    SET_LOG_PRINTS,
    SET_LEASE_SECONDS,
    SET_WORKER_CONCURRENCY,
    SET_WORKER_MAX_WAITING,
    SET_LOG_LEVEL,
    SET_LOG_FORMAT,
};

/* Adds each --exec NAME=COMMAND; CLI_EXIT_OK or the exit status after saying why. */
static int add_exec_tasks(const struct args *a, errand_worker *w)
{
    for (int i = 0; i < args_count(a, "exec"); i++) {
        const char *spec = args_nth(a, "exec", i);
        const char *eq = strchr(spec, '=');
        if (!eq || eq == spec || !eq[1])
            return args_usage_error(a->cmd, "--exec must be NAME=COMMAND, got '%s'", spec);
        char *name = strndup(spec, (size_t)(eq - spec));
        if (!name) {
            fprintf(stderr, "errand worker: out of memory\n");
            return CLI_EXIT_FAILURE;
        }
        errand_error err = {0};
        int rc = errand_worker_add_exec(w, name, eq + 1, &err);
        free(name);
        if (rc != 0)
            return out_error(a->cmd, &err);
    }
    return CLI_EXIT_OK;
}

static int run_worker(const struct args *a)
{
    if (args_count(a, "exec") == 0 && !args_has(a, "builtin"))
        return args_usage_error(a->cmd, "no tasks to serve: give --exec NAME=COMMAND "
                                        "(repeatable) and/or --builtin");
    struct settings s;
    int status = args_load_settings(a, &s);
    if (status != CLI_EXIT_OK)
        return status;
    errand_error err = {0};
    double grace = 0;
    if ((status = args_get_double(a, "grace-seconds", 0, 1e9, &grace)) != CLI_EXIT_OK)
        return status;
    long long prefetch = 0, memory_mb = 0;
    double cpu_limit = 0;
    if ((status = args_get_int(a, "prefetch", 0, 10000, &prefetch)) != CLI_EXIT_OK ||
        (status = args_get_int(a, "memory-limit-mb", 0, 1LL << 30, &memory_mb)) != CLI_EXIT_OK ||
        (status = args_get_double(a, "cpu-limit-seconds", 0, 365.0 * 24 * 3600, &cpu_limit)) !=
            CLI_EXIT_OK)
        return status;
    const char *name = args_get(a, "name");
    if (name && (!name[0] || strlen(name) > WIRE_WORKER_NAME_MAX))
        return args_usage_error(a->cmd, "--name must be 1 to %d characters", WIRE_WORKER_NAME_MAX);

    errand_worker_options opt;
    errand_worker_options_init(&opt);
    opt.api_url = settings_str(&s, SET_API_URL);
    opt.api_key = settings_str(&s, SET_API_KEY);
    opt.name = name;
    opt.concurrency = (int)settings_int(&s, SET_WORKER_CONCURRENCY);
    /* Left at 0 unless configured, so the server's own default lease applies. */
    if (s.source[SET_LEASE_SECONDS] != SETTING_DEFAULT)
        opt.lease_seconds = (double)settings_int(&s, SET_LEASE_SECONDS);
    opt.local_storage_path = settings_str(&s, SET_LOCAL_STORAGE_PATH);
    opt.result_storage = settings_str(&s, SET_RESULT_STORAGE);
    opt.s3_endpoint_url = settings_str(&s, SET_S3_ENDPOINT_URL);
    opt.s3_region = settings_str(&s, SET_S3_REGION);
    opt.s3_access_key_id = settings_str(&s, SET_S3_ACCESS_KEY_ID);
    opt.s3_secret_access_key = settings_str(&s, SET_S3_SECRET_ACCESS_KEY);
    /* Said either way: the flags are settings that liberrand's own reading of the
       environment would not see. */
    opt.persist_by_default = settings_bool(&s, SET_RESULTS_PERSIST) ? ERRAND_YES : ERRAND_NO;
    opt.log_prints = settings_bool(&s, SET_LOG_PRINTS) ? ERRAND_YES : ERRAND_NO;
    opt.grace_seconds = grace;
    opt.prefetch = (int)prefetch;
    opt.isolate = args_has(a, "isolate");
    opt.memory_limit_bytes = (size_t)memory_mb * 1024 * 1024;
    opt.cpu_limit_seconds = cpu_limit;
    opt.handle_signals = true;

    errand_worker *w = NULL;
    if (errand_worker_new(&opt, &w, &err) != 0)
        return out_error(a->cmd, &err);
    /* Said either way: --max-waiting is a setting liberrand's own reading would not see. */
    if (errand_worker_set_max_waiting(w, (int)settings_int(&s, SET_WORKER_MAX_WAITING), &err) !=
        0) {
        errand_worker_free(w);
        return out_error(a->cmd, &err);
    }
    status = add_exec_tasks(a, w);
    if (status == CLI_EXIT_OK && args_has(a, "builtin") && builtin_tasks_add(w, &err) != 0)
        status = out_error(a->cmd, &err);
    if (status == CLI_EXIT_OK && errand_worker_serve(w, &err) != 0)
        status = out_error(a->cmd, &err);
    errand_worker_free(w);
    return status;
}

const struct cli_command cmd_worker = {
    .group = NULL,
    .name = "worker",
    .summary = "Serve tasks: programs (--exec) or the built-in tasks (--builtin)",
    .usage = "[--exec NAME=COMMAND ...] [--builtin] [--concurrency N] [--name NAME] [options]",
    .min_positional = 0,
    .max_positional = 0,
    .options = worker_options,
    .settings = worker_settings,
    .n_settings = sizeof worker_settings / sizeof worker_settings[0],
    .details =
        "Built-in tasks (--builtin):\n"
        "  errand.noop    returns its parameters unchanged\n"
        "  errand.sleep   {\"seconds\": x}: sleeps x seconds, returns {\"slept\": x}; stops\n"
        "                 early when the run is cancelled or times out\n"
        "\n"
        "Claims runs of the served tasks from the server, runs up to --concurrency at once,\n"
        "keeps their leases alive and reports results. SIGINT/SIGTERM stop claiming, let\n"
        "running tasks finish within --grace-seconds and hand unstarted runs back.\n"
        "\n"
        "Examples:\n"
        "  errand worker --builtin\n"
        "  errand worker --exec shout='jq \"{shout: (.text | ascii_upcase)}\"' --concurrency 4\n"
        "  errand worker --exec echo=cat --name echo-1",
    .run = run_worker,
};
