/* SPDX-License-Identifier: MIT */
/*
 * cmd_runs.c — the `errand runs` group: ls, show, logs, cancel, retry, wait and result. Typed calls
 * of errand.h where it has them (get, wait, cancel, result); the listings go through
 * errand_request() and are rendered as tables, or passed through as JSON with --json.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "core/clock.h"
#include "core/wire_limits.h"
#include "output.h"
#include "run_view.h"

#define WAIT_TIMEOUT_MAX 1e9
#define CELL_MAX 64
#define STATE_TEXT_MAX 32
#define N_STATE_TYPES (ERRAND_STATE_CANCELLED + 1)

/* The descriptor fields of every `runs` command that acts on one run: `errand runs NAME ID`. */
#define RUNS_BY_ID .group = "runs", .min_positional = 1, .max_positional = 1, CONNECT_SETTINGS

static const char json_help[] = "print JSON instead of a table";

/* ---- runs ls ------------------------------------------------------------------------- */

/* Checks one --state value ("failed" or "FAILED") and writes it upper-cased into out. */
static bool normalize_state(const char *text, char *out, size_t size)
{
    size_t len = strlen(text);
    if (len == 0 || len >= size)
        return false;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)toupper((unsigned char)text[i]);
    for (int s = 0; s < N_STATE_TYPES; s++)
        if (strcmp(out, errand_state_type_name((errand_state)s)) == 0)
            return true;
    return false;
}

/* Adds every --state (each may be "A,B") to *path; CLI_EXIT_OK or the exit status. */
static int add_state_filters(const struct args *a, char **path)
{
    for (int i = 0; i < args_count(a, "state"); i++) {
        char *copy = strdup(args_nth(a, "state", i));
        if (!copy)
            return CLI_EXIT_FAILURE;
        char *rest = copy;
        for (char *tok; (tok = strsep(&rest, ",")) != NULL;) {
            char upper[STATE_TEXT_MAX];
            if (!normalize_state(tok, upper, sizeof upper)) {
                int st = args_usage_error(a->cmd,
                                          "--state must be a state type (SCHEDULED, PENDING, "
                                          "RUNNING, COMPLETED, FAILED, CRASHED, CANCELLING, "
                                          "CANCELLED), got '%s'",
                                          tok);
                free(copy);
                return st;
            }
            if (!connect_add_query(path, "state", upper)) {
                free(copy);
                return CLI_EXIT_FAILURE;
            }
        }
        free(copy);
    }
    return CLI_EXIT_OK;
}

static int build_list_path(const struct args *a, char **path)
{
    long long limit = 0;
    int st = args_get_int(a, "limit", 1, WIRE_LIST_LIMIT_MAX, &limit);
    if (st != CLI_EXIT_OK)
        return st;
    *path = strdup("/task_runs");
    if (!*path)
        return CLI_EXIT_FAILURE;
    if ((st = add_state_filters(a, path)) != CLI_EXIT_OK)
        return st;
    static const char *const options[] = {"task", "tag", "worker", "limit", "cursor"};
    const char *trace = args_get(a, "trace-id");
    return connect_add_options(path, a, options, sizeof options / sizeof options[0]) &&
                   (!trace || connect_add_query(path, "trace_id", trace))
               ? CLI_EXIT_OK
               : CLI_EXIT_FAILURE;
}

/* "1.234s" from the run's started/finished times, "-" when it has not finished. */
static const char *run_duration(const json_t *run, char *buf, size_t size)
{
    int64_t started, finished;
    const char *s = json_string_value(json_object_get(run, "started"));
    const char *f = json_string_value(json_object_get(run, "finished"));
    if (s && f && clock_parse_rfc3339(s, &started) && clock_parse_rfc3339(f, &finished))
        snprintf(buf, size, "%.3fs", (double)(finished - started) / MS_PER_S);
    else
        snprintf(buf, size, "-");
    return buf;
}

static int print_runs_table(const json_t *runs)
{
    static const char *const headers[] = {"ID",      "TASK",     "STATE", "ATTEMPT",
                                          "CREATED", "DURATION", "WORKER"};
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *run;
    json_array_foreach(runs, i, run)
    {
        char attempt[CELL_MAX], created[CELL_MAX], duration[CELL_MAX];
        snprintf(attempt, sizeof attempt, "%lld/%lld",
                 (long long)json_integer_value(json_object_get(run, "attempt")),
                 (long long)json_integer_value(json_object_get(run, "max_attempts")));
        const char *cells[] = {
            json_string_value(json_object_get(run, "id")),
            json_string_value(json_object_get(run, "task")),
            json_string_value(json_object_get(json_object_get(run, "state"), "name")),
            attempt,
            out_time(json_string_value(json_object_get(run, "created")), created, sizeof created),
            run_duration(run, duration, sizeof duration),
            json_string_value(json_object_get(run, "worker")),
        };
        if (!table_add_row(t, cells)) {
            table_free(t);
            return CLI_EXIT_FAILURE;
        }
    }
    table_print(t);
    table_free(t);
    return CLI_EXIT_OK;
}

static int run_runs_ls(const struct args *a)
{
    char *path = NULL;
    int status = build_list_path(a, &path);
    errand_client *c = NULL;
    if (status == CLI_EXIT_OK)
        status = connect_client(a, &c, NULL);
    json_t *page = NULL;
    if (status == CLI_EXIT_OK)
        status = connect_get_json(a->cmd, c, path, &page);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json")) {
            out_json(page);
        } else {
            status = print_runs_table(json_object_get(page, "runs"));
            const char *next = json_string_value(json_object_get(page, "next_cursor"));
            if (next)
                fprintf(stderr, "(more runs: repeat with --cursor %s)\n", next);
        }
    }
    json_decref(page);
    errand_client_free(c);
    free(path);
    return status;
}

static const struct cli_option runs_ls_options[] = {
    {"state", "S", true, "only runs in state type S (e.g. FAILED); also S1,S2"},
    {"task", "T", false, "only runs of task T"},
    {"tag", "T", false, "only runs tagged T"},
    {"worker", "W", false, "only runs the worker named W claimed last"},
    {"trace-id", "ID", false,
     "only runs of the W3C trace ID (32 hex: the runs one web request caused)"},
    {"limit", "N", false, "at most N runs, 1-1000 (default 50)"},
    {"cursor", "C", false,
     "continue a listing after the run with id C (printed when there are more runs)"},
    {"json", NULL, false, json_help},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_runs_ls = {
    .group = "runs",
    .name = "ls",
    .summary = "List task runs, newest first",
    .usage = "[--state S] [--task T] [--tag T] [--worker W] [--trace-id ID] [--limit N] "
             "[--cursor C] [--json]",
    .options = runs_ls_options,
    CONNECT_SETTINGS,
    .details = "With --json prints the server's answer: {\"runs\": [...], \"next_cursor\": ...}.\n"
               "Filters that combine read at most 10,000 runs a request, so a page can hold\n"
               "fewer runs than --limit while more follow: the cursor printed goes on.\n"
               "\n"
               "Examples:\n"
               "  errand runs ls --state FAILED,CRASHED --limit 10\n"
               "  errand runs ls --task send_mail --json | jq -r '.runs[].id'",
    .run = run_runs_ls,
};

/* ---- runs show ------------------------------------------------------------------------ */

static const struct cli_option json_only_options[] = {
    {"json", NULL, false, json_help},
    {NULL, NULL, false, NULL},
};

static int show_run(const struct args *a, errand_client *c)
{
    return run_view_show(a->cmd, c, a->positional[0], args_has(a, "json"));
}

static int run_runs_show(const struct args *a)
{
    return connect_with_client(a, show_run);
}

const struct cli_command cmd_runs_show = {
    RUNS_BY_ID,
    .name = "show",
    .summary = "Show a task run: its fields and state history",
    .usage = "ID [--json]",
    .options = json_only_options,
    .details = "With --json prints the run object with a \"states\" array (oldest first).",
    .run = run_runs_show,
};

/* ---- runs logs ------------------------------------------------------------------------ */

/* Fetches every log line of the run, page by page, into one array. */
static int fetch_logs(const struct args *a, errand_client *c, json_t *all)
{
    char *base = connect_run_path(a->positional[0], "/logs");
    if (!base)
        return CLI_EXIT_FAILURE;
    long long after = -1;
    int status = CLI_EXIT_OK;
    for (;;) {
        char *path = strdup(base);
        char after_text[CELL_MAX];
        snprintf(after_text, sizeof after_text, "%lld", after);
        if (!path || (after >= 0 && !connect_add_query(&path, "after", after_text))) {
            free(path);
            status = CLI_EXIT_FAILURE;
            break;
        }
        json_t *page = NULL;
        status = connect_get_json(a->cmd, c, path, &page);
        free(path);
        if (status != CLI_EXIT_OK)
            break;
        json_t *logs = json_object_get(page, "logs");
        json_t *next = json_object_get(page, "next_after");
        size_t n = json_array_size(logs);
        json_array_extend(all, logs);
        /* Stop on an empty page, or when the server offers no further position. */
        bool more = n > 0 && json_is_integer(next) && json_integer_value(next) > after;
        after = json_integer_value(next);
        json_decref(page);
        if (!more)
            break;
    }
    free(base);
    return status;
}

static int print_logs(const struct args *a, errand_client *c)
{
    json_t *all = json_array();
    int status = all ? fetch_logs(a, c, all) : CLI_EXIT_FAILURE;
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json")) {
            json_t *obj = json_pack("{s:O}", "logs", all);
            out_json(obj);
            json_decref(obj);
        } else if (json_array_size(all) == 0) {
            /* Said on stderr: stdout stays the (empty) list of lines. */
            fprintf(stderr,
                    "run %s has no log lines (a worker captures what tasks print only with "
                    "ERRAND_LOGGING_LOG_PRINTS=true)\n",
                    a->positional[0]);
        } else {
            size_t i;
            const json_t *line;
            json_array_foreach(all, i, line)
            {
                const char *ts = json_string_value(json_object_get(line, "timestamp"));
                const char *level = json_string_value(json_object_get(line, "level"));
                const char *msg = json_string_value(json_object_get(line, "message"));
                printf("%s  %-7s  %s\n", ts ? ts : "-", level ? level : "-", msg ? msg : "");
            }
        }
    }
    json_decref(all);
    return status;
}

static int run_runs_logs(const struct args *a)
{
    return connect_with_client(a, print_logs);
}

const struct cli_command cmd_runs_logs = {
    RUNS_BY_ID,
    .name = "logs",
    .summary = "Print the log lines of a task run",
    .usage = "ID [--json]",
    .options = json_only_options,
    .details = "Lines are TIME LEVEL MESSAGE, oldest first. With --json prints\n"
               "{\"logs\": [{\"seq\", \"timestamp\", \"level\", \"message\"}, ...]}.",
    .run = run_runs_logs,
};

/* ---- runs cancel ---------------------------------------------------------------------- */

static int cancel_run(const struct args *a, errand_client *c)
{
    int status = CLI_EXIT_OK;
    errand_error err = {0};
    errand_run *run = NULL;
    if (errand_cancel(c, a->positional[0], &run, &err) != 0) {
        status = out_error(a->cmd, &err);
    } else if (args_has(a, "json")) {
        out_json_text(errand_run_json(run));
    } else {
        errand_state st = errand_run_state(run);
        printf("%s %s\n", errand_run_id(run), errand_state_type_name(st));
        if (st == ERRAND_STATE_CANCELLING)
            fprintf(stderr,
                    "(the worker stops the run at its next heartbeat; "
                    "'errand runs wait %s' waits for it)\n",
                    errand_run_id(run));
    }
    errand_run_free(run);
    return status;
}

static int run_runs_cancel(const struct args *a)
{
    return connect_with_client(a, cancel_run);
}

/* ---- runs retry ----------------------------------------------------------------------- */

static int retry_run(const struct args *a, errand_client *c)
{
    int status = CLI_EXIT_OK;
    errand_error err = {0};
    errand_run *run = NULL;
    if (errand_retry(c, a->positional[0], &run, &err) != 0)
        status = out_error(a->cmd, &err);
    else if (args_has(a, "json"))
        out_json_text(errand_run_json(run));
    else
        printf("%s %s\n", errand_run_id(run), errand_state_type_name(errand_run_state(run)));
    errand_run_free(run);
    return status;
}

static int run_runs_retry(const struct args *a)
{
    return connect_with_client(a, retry_run);
}

const struct cli_command cmd_runs_retry = {
    RUNS_BY_ID,
    .name = "retry",
    .summary = "Run a failed, crashed or cancelled task run again",
    .usage = "ID [--json]",
    .options = json_only_options,
    .details = "Submits a new run of the same task, parameters and options, due now, whose\n"
               "retry_of is ID, and prints NEW_ID STATE. The original run is left as it is.\n"
               "Refused for a run that is not over, or COMPLETED (submit it again instead).",
    .run = run_runs_retry,
};

const struct cli_command cmd_runs_cancel = {
    RUNS_BY_ID,
    .name = "cancel",
    .summary = "Cancel a task run",
    .usage = "ID [--json]",
    .options = json_only_options,
    .details = "A SCHEDULED run is CANCELLED at once; a run held by a worker goes to\n"
               "CANCELLING until the worker stops it. Cancelling a finished run is an error.",
    .run = run_runs_cancel,
};

/* ---- runs wait ------------------------------------------------------------------------ */

static int run_runs_wait(const struct args *a)
{
    double timeout = -1;
    int status = args_get_double(a, "timeout", 0, WAIT_TIMEOUT_MAX, &timeout);
    errand_client *c = NULL;
    if (status == CLI_EXIT_OK)
        status = connect_client(a, &c, NULL);
    if (status == CLI_EXIT_OK)
        status = run_view_wait(a->cmd, c, a->positional[0], timeout, args_has(a, "json"));
    errand_client_free(c);
    return status;
}

static const struct cli_option runs_wait_options[] = {
    {"timeout", "S", false, "give up after S seconds (default: no limit)"},
    {"json", NULL, false, "print the final run as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_runs_wait = {
    RUNS_BY_ID,
    .name = "wait",
    .summary = "Wait for a task run to finish; print its state and result",
    .usage = "ID [--timeout S] [--json]",
    .options = runs_wait_options,
    .details = "Exit status 0 when the run COMPLETED; 1 when it FAILED, CRASHED, was\n"
               "CANCELLED, or is still not finished after --timeout.",
    .run = run_runs_wait,
};

/* ---- runs result ---------------------------------------------------------------------- */

static int print_result(const struct args *a, errand_client *c)
{
    int status = CLI_EXIT_OK;
    errand_error err = {0};
    errand_run *run = NULL;
    char *result = NULL;
    if (errand_get(c, a->positional[0], &run, &err) != 0 ||
        errand_result(c, run, &result, &err) != 0)
        status = out_error(a->cmd, &err);
    else
        out_json_text(result);
    errand_free(result);
    errand_run_free(run);
    return status;
}

static int run_runs_result(const struct args *a)
{
    return connect_with_client(a, print_result);
}

const struct cli_command cmd_runs_result = {
    RUNS_BY_ID,
    .name = "result",
    .summary = "Print the result of a COMPLETED task run (JSON)",
    .usage = "ID",
    .options = NULL,
    .details = "Reads a persisted result from result storage (ERRAND_LOCAL_STORAGE_PATH) when\n"
               "the server has no inline copy. A FAILED or CRASHED run, or one that has not\n"
               "finished, is an error (exit status 1) with the reason on stderr.",
    .run = run_runs_result,
};
