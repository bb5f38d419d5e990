/* SPDX-License-Identifier: MIT */
/*
 * task_main.c — structured-output-task: the task worker (the seed's `python src/foo/task.py`,
 * which calls serve(create_structured_output)). Serves the task until SIGTERM/SIGINT, then
 * lets running calls finish within liberrand's grace period.
 *
 *   structured-output-task [--concurrency N] [--name NAME]
 *
 * Reads OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL, OPENAI_TIMEOUT_SECONDS, and errand's
 * own ERRAND_API_URL, ERRAND_API_KEY, ERRAND_LOCAL_STORAGE_PATH, ... through liberrand.
 * Print capture (log prints) is on unless ERRAND_LOGGING_LOG_PRINTS says otherwise, as the
 * seed's compose.yaml sets PREFECT_LOGGING_LOG_PRINTS=true.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applog.h"
#include "errand/errand.h"
#include "openai.h"
#include "structured.h"
#include "task_def.h"

#define EXIT_USAGE 2
#define MAX_CONCURRENCY 1000
#define WHY_MAX 512

static const char usage[] =
    "usage: structured-output-task [--concurrency N] [--name NAME]\n"
    "Serves the create_structured_output task for an errand server.\n"
    "  --concurrency N  runs at once (default: liberrand's, 10)\n"
    "  --name NAME      worker name shown by the server (default: <hostname>-<pid>)\n"
    "Environment: ERRAND_API_URL, ERRAND_API_KEY, ERRAND_LOCAL_STORAGE_PATH,\n"
    "  OPENAI_BASE_URL (default " OPENAI_DEFAULT_BASE_URL "), OPENAI_API_KEY,\n"
    "  OPENAI_MODEL (default " OPENAI_DEFAULT_MODEL "), OPENAI_TIMEOUT_SECONDS.\n";

typedef struct task_args {
    int concurrency; /* 0 = liberrand's default */
    const char *name;
} task_args;

static int parse_args(int argc, char **argv, task_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (i + 1 >= argc || (strcmp(arg, "--concurrency") != 0 && strcmp(arg, "--name") != 0)) {
            fprintf(stderr, "structured-output-task: unknown or incomplete option '%s'\n%s", arg,
                    usage);
            return -1;
        }
        const char *value = argv[++i];
        if (strcmp(arg, "--name") == 0) {
            a->name = value;
            continue;
        }
        char *end;
        errno = 0;
        long n = strtol(value, &end, 10);
        if (errno || *end || n < 1 || n > MAX_CONCURRENCY) {
            fprintf(stderr,
                    "structured-output-task: --concurrency must be a whole number from 1 to %d, "
                    "got '%s'\n",
                    MAX_CONCURRENCY, value);
            return -1;
        }
        a->concurrency = (int)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    task_args args;
    if (parse_args(argc, argv, &args) != 0)
        return EXIT_USAGE;

    static openai_config cfg; /* shared read-only by every task thread */
    char why[WHY_MAX];
    if (openai_config_from_env(&cfg, why, sizeof why) != 0) {
        applog_error("bad configuration", "error=\"%s\"", why);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error to report, not a death */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        applog_error("could not initialise libcurl", NULL);
        return EXIT_FAILURE;
    }

    static so_task task;
    int rc = so_task_init(&task, structured_output_run, &cfg);
    if (rc != ERRAND_OK) {
        applog_error("bad task definition", "error=\"%s\"", errand_strerror(rc));
        return EXIT_FAILURE;
    }

    errand_worker_options opt;
    errand_worker_options_init(&opt);
    opt.concurrency = args.concurrency;
    opt.name = args.name;
    opt.handle_signals = true;
    if (!getenv("ERRAND_LOGGING_LOG_PRINTS"))
        opt.log_prints = ERRAND_YES;

    applog_info("serving", "task=%s version=%s openai_base_url=%s model=%s", SO_TASK_NAME,
                SO_TASK_VERSION, cfg.base_url, cfg.model);
    if (!openai_config_usable(&cfg))
        applog_warn("no chat-completions endpoint configured; every run will fail", "hint=\"%s\"",
                    OPENAI_NOT_CONFIGURED_MESSAGE);

    errand_error err = {0};
    rc = errand_serve(&task.def, 1, &opt, &err);
    curl_global_cleanup();
    if (rc != ERRAND_OK) {
        applog_error("worker stopped with an error", "code=\"%s\" error=\"%s\"",
                     errand_strerror(rc), err.message);
        return EXIT_FAILURE;
    }
    applog_info("stopped", "task=%s", SO_TASK_NAME);
    return 0;
}
