/* SPDX-License-Identifier: MIT */
/*
 * cmd_tasks.c — `errand tasks ls|pause|resume`: the per-task table of GET /api/stats, and
 * pausing a task (claims hand out none of its runs) during an incident.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64

static void cell_int(char *buf, const json_t *v)
{
    snprintf(buf, CELL_MAX, "%lld", (long long)json_integer_value(v));
}

static int print_tasks_table(const json_t *tasks)
{
    static const char *const headers[] = {"TASK",   "QUEUED",      "RUNNING", "COMPLETED",
                                          "FAILED", "FAIL %",      "P50 MS",  "P95 MS",
                                          "PAUSED", "LAST FAILURE"};
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *task;
    json_array_foreach(tasks, i, task)
    {
        const json_t *counts = json_object_get(task, "counts");
        const json_t *run_ms = json_object_get(task, "run_ms");
        const json_t *rate = json_object_get(task, "failure_rate");
        const json_t *last = json_object_get(task, "last_failure");
        char queued[CELL_MAX], running[CELL_MAX], completed[CELL_MAX], failed[CELL_MAX],
            pct[CELL_MAX], p50[CELL_MAX], p95[CELL_MAX], when[CELL_MAX];
        cell_int(queued, json_object_get(counts, "SCHEDULED"));
        snprintf(running, sizeof running, "%lld",
                 (long long)(json_integer_value(json_object_get(counts, "PENDING")) +
                             json_integer_value(json_object_get(counts, "RUNNING"))));
        cell_int(completed, json_object_get(task, "completed"));
        cell_int(failed, json_object_get(task, "failed"));
        if (json_is_number(rate))
            snprintf(pct, sizeof pct, "%.1f", 100.0 * json_number_value(rate));
        else
            snprintf(pct, sizeof pct, "-");
        if (json_is_object(run_ms)) {
            cell_int(p50, json_object_get(run_ms, "p50"));
            cell_int(p95, json_object_get(run_ms, "p95"));
        } else {
            snprintf(p50, sizeof p50, "-");
            snprintf(p95, sizeof p95, "-");
        }
        const char *cells[] = {
            json_string_value(json_object_get(task, "task")),
            queued,
            running,
            completed,
            failed,
            pct,
            p50,
            p95,
            json_is_true(json_object_get(task, "paused")) ? "yes" : "no",
            last ? out_time(json_string_value(json_object_get(last, "at")), when, sizeof when)
                 : "-",
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

static int list_tasks(const struct args *a, errand_client *c)
{
    static const char *const options[] = {"window"};
    char *path = strdup("/stats");
    if (!path || !connect_add_options(&path, a, options, 1)) {
        free(path);
        return CLI_EXIT_FAILURE;
    }
    json_t *answer = NULL;
    int status = connect_get_json(a->cmd, c, path, &answer);
    free(path);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(json_object_get(answer, "tasks"));
        else
            status = print_tasks_table(json_object_get(answer, "tasks"));
    }
    json_decref(answer);
    return status;
}

static int set_paused(const struct args *a, errand_client *c, const char *what)
{
    json_t *body = json_pack("{s:s}", "task", a->positional[0]);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return CLI_EXIT_FAILURE;
    char path[32];
    snprintf(path, sizeof path, "/tasks/%s", what);
    json_t *answer = NULL;
    int status = connect_post_json(a->cmd, c, path, text, &answer);
    free(text);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else
            printf("%s %s\n", json_string_value(json_object_get(answer, "task")),
                   json_is_true(json_object_get(answer, "paused")) ? "paused" : "resumed");
    }
    json_decref(answer);
    return status;
}

static int pause_task(const struct args *a, errand_client *c)
{
    return set_paused(a, c, "pause");
}

static int resume_task(const struct args *a, errand_client *c)
{
    return set_paused(a, c, "resume");
}

static int run_tasks_ls(const struct args *a)
{
    return connect_with_client(a, list_tasks);
}

static int run_tasks_pause(const struct args *a)
{
    return connect_with_client(a, pause_task);
}

static int run_tasks_resume(const struct args *a)
{
    return connect_with_client(a, resume_task);
}

static const struct cli_option tasks_ls_options[] = {
    {"window", "W", false, "hour (default) or day: the window of the finished counts"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

static const struct cli_option tasks_json_options[] = {
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_tasks_ls = {
    .group = "tasks",
    .name = "ls",
    .summary = "List the tasks: queued, running, finished, failure rate, durations",
    .usage = "[--window hour|day] [--json]",
    .options = tasks_ls_options,
    CONNECT_SETTINGS,
    .details = "From the server's counters (GET /api/stats): QUEUED and RUNNING now (RUNNING\n"
               "counts PENDING too), COMPLETED and FAILED (FAILED or CRASHED) within the window,\n"
               "the run time percentiles of the latest finished runs, and whether it is paused.",
    .run = run_tasks_ls,
};

const struct cli_command cmd_tasks_pause = {
    .group = "tasks",
    .name = "pause",
    .summary = "Pause a task: workers are handed none of its runs",
    .usage = "TASK [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = tasks_json_options,
    CONNECT_SETTINGS,
    .details = "Runs already claimed go on; new and queued runs wait until `errand tasks resume`.\n"
               "A task can be paused before any run of it exists.",
    .run = run_tasks_pause,
};

const struct cli_command cmd_tasks_resume = {
    .group = "tasks",
    .name = "resume",
    .summary = "Resume a paused task",
    .usage = "TASK [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = tasks_json_options,
    CONNECT_SETTINGS,
    .details = "Workers waiting for the task's runs get them at once.",
    .run = run_tasks_resume,
};
