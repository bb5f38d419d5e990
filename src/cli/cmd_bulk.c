/* SPDX-License-Identifier: MIT */
/*
 * cmd_bulk.c — `errand runs bulk ACTION` (POST /api/task_runs/bulk, a page at a time until
 * every matching run is done) and `errand failures` (GET /api/failures): the incident tools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64
#define BULK_PAGE 500

static int bulk(const struct args *a, errand_client *c)
{
    const char *action = a->positional[0];
    if (strcmp(action, "cancel") != 0 && strcmp(action, "retry") != 0 &&
        strcmp(action, "delete") != 0) {
        fprintf(stderr, "errand runs bulk: ACTION must be cancel, retry or delete, got '%s'\n",
                action);
        return CLI_EXIT_USAGE;
    }
    json_t *body = json_pack("{s:s, s:i}", "action", action, "limit", BULK_PAGE);
    static const char *const fields[] = {"task", "tag", "worker", "fingerprint"};
    for (size_t i = 0; body && i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = args_get(a, fields[i]);
        if (v)
            json_object_set_new(body, fields[i], json_string(v));
    }
    const char *state = args_get(a, "state");
    if (body && state)
        json_object_set_new(body, "state", json_string(state));
    if (!body)
        return CLI_EXIT_FAILURE;
    long long matched = 0, done = 0;
    int status = CLI_EXIT_OK;
    for (;;) {
        char *text = json_dumps(body, JSON_COMPACT);
        json_t *answer = NULL;
        status = text ? connect_post_json(a->cmd, c, "/task_runs/bulk", text, &answer)
                      : CLI_EXIT_FAILURE;
        free(text);
        if (status != CLI_EXIT_OK)
            break;
        matched += json_integer_value(json_object_get(answer, "matched"));
        done += json_integer_value(json_object_get(answer, "done"));
        const char *next = json_string_value(json_object_get(answer, "next_cursor"));
        if (next)
            json_object_set_new(body, "cursor", json_string(next));
        json_decref(answer);
        if (!next)
            break;
    }
    json_decref(body);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            printf("{\"action\": \"%s\", \"matched\": %lld, \"done\": %lld}\n", action, matched,
                   done);
        else
            printf("%s: %lld of %lld matching runs\n", action, done, matched);
    }
    return status;
}

static int print_failures(const json_t *groups)
{
    static const char *const headers[] = {"TASK", "RUNS", "LAST", "LAST RUN", "MESSAGE"};
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *g;
    json_array_foreach(groups, i, g)
    {
        char count[CELL_MAX], when[CELL_MAX];
        snprintf(count, sizeof count, "%lld",
                 (long long)json_integer_value(json_object_get(g, "count")));
        const char *cells[] = {
            json_string_value(json_object_get(g, "task")),
            count,
            out_time(json_string_value(json_object_get(g, "last_at")), when, sizeof when),
            json_string_value(json_object_get(g, "last_run")),
            json_string_value(json_object_get(g, "message")),
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

static int failures(const struct args *a, errand_client *c)
{
    static const char *const options[] = {"task", "limit"};
    char *path = strdup("/failures");
    if (!path || !connect_add_options(&path, a, options, sizeof options / sizeof options[0])) {
        free(path);
        return CLI_EXIT_FAILURE;
    }
    json_t *answer = NULL;
    int status = connect_get_json(a->cmd, c, path, &answer);
    free(path);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else
            status = print_failures(json_object_get(answer, "groups"));
    }
    json_decref(answer);
    return status;
}

static int run_bulk(const struct args *a)
{
    return connect_with_client(a, bulk);
}

static int run_failures(const struct args *a)
{
    return connect_with_client(a, failures);
}

static const struct cli_option bulk_options[] = {
    {"task", "TASK", false, "only runs of this task"},
    {"state", "STATES", false, "only runs in these states (comma-separated state types)"},
    {"tag", "TAG", false, "only runs with this tag"},
    {"worker", "NAME", false, "only runs the worker NAME claimed last"},
    {"fingerprint", "F", false, "only the failed runs of this failure group (errand failures)"},
    {"json", NULL, false, "print the totals as JSON"},
    {NULL, NULL, false, NULL},
};

static const struct cli_option failures_options[] = {
    {"task", "TASK", false, "only this task's failures"},
    {"limit", "N", false, "at most N groups, 1-1000 (default 100)"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_runs_bulk = {
    .group = "runs",
    .name = "bulk",
    .summary = "Cancel, retry or delete every run a filter selects",
    .usage = "cancel|retry|delete [--task T] [--state S] [--tag T] [--worker W] [--fingerprint F] "
             "[--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = bulk_options,
    CONNECT_SETTINGS,
    .details = "At least one filter is needed. Works through the matching runs newest first, "
               "500 a request,\nand prints how many it acted on: cancel skips runs already "
               "over, retry takes FAILED,\nCRASHED and CANCELLED runs, delete takes finished "
               "runs (with their history, logs and result).",
    .run = run_bulk,
};

const struct cli_command cmd_failures = {
    .group = NULL,
    .name = "failures",
    .summary = "List the failures, grouped by task and message",
    .usage = "[--task T] [--limit N] [--json]",
    .options = failures_options,
    CONNECT_SETTINGS,
    .details = "FAILED and CRASHED runs stored, grouped by task and the shape of their message\n"
               "(numbers and ids left out), the latest failure first. Retry a group with\n"
               "errand runs bulk retry --task T --fingerprint F.",
    .run = run_failures,
};
