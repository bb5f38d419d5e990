/* SPDX-License-Identifier: MIT */
/*
 * cmd_limits.c — `errand limits ls|set|rm|rate`: concurrency limits of tags and tasks, rate
 * limits of tasks (GET/POST /api/limits), and the runs holding their slots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64

static int print_limits(const json_t *limits)
{
    static const char *const headers[] = {"LIMIT", "MAX", "RATE", "HELD",
                                          "HELD BY (RUN, TASK, WORKER)"};
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *l;
    int status = CLI_EXIT_OK;
    json_array_foreach(limits, i, l)
    {
        const char *task = json_string_value(json_object_get(l, "task"));
        char name[CELL_MAX * 4], max[CELL_MAX] = "-", held[CELL_MAX], rate[CELL_MAX] = "-";
        snprintf(name, sizeof name, "%s %s", task ? "task" : "tag",
                 task ? task : json_string_value(json_object_get(l, "tag")));
        if (json_is_integer(json_object_get(l, "max_running")))
            snprintf(max, sizeof max, "%lld",
                     (long long)json_integer_value(json_object_get(l, "max_running")));
        const json_t *r = json_object_get(l, "rate");
        if (json_is_object(r))
            snprintf(rate, sizeof rate, "%lld per %gs",
                     (long long)json_integer_value(json_object_get(r, "max_starts")),
                     json_number_value(json_object_get(r, "per_seconds")));
        snprintf(held, sizeof held, "%lld",
                 (long long)json_integer_value(json_object_get(l, "held")));
        const json_t *holders = json_object_get(l, "holders");
        size_t n = json_array_size(holders);
        for (size_t j = 0; j == 0 || j < n; j++) {
            const json_t *h = json_array_get(holders, j);
            char who[CELL_MAX * 8] = "-";
            if (h)
                snprintf(who, sizeof who, "%s %s %s",
                         json_string_value(json_object_get(h, "run_id")),
                         json_string_value(json_object_get(h, "task")),
                         json_is_string(json_object_get(h, "worker"))
                             ? json_string_value(json_object_get(h, "worker"))
                             : "-");
            const char *cells[] = {j ? "" : name, j ? "" : max, j ? "" : rate, j ? "" : held, who};
            if (!table_add_row(t, cells)) {
                status = CLI_EXIT_FAILURE;
                break;
            }
        }
    }
    if (status == CLI_EXIT_OK)
        table_print(t);
    table_free(t);
    return status;
}

static int list_limits(const struct args *a, errand_client *c)
{
    json_t *answer = NULL;
    int status = connect_get_json(a->cmd, c, "/limits", &answer);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(json_object_get(answer, "limits"));
        else
            status = print_limits(json_object_get(answer, "limits"));
    }
    json_decref(answer);
    return status;
}

/* POST /api/limits for the tag (or with --task, the task) positional[0]. */
static int post_limit(const struct args *a, errand_client *c, long long max)
{
    bool task = args_has(a, "task");
    json_t *body =
        json_pack("{s:s, s:I}", task ? "task" : "tag", a->positional[0], "max_running", max);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return CLI_EXIT_FAILURE;
    json_t *answer = NULL;
    int status = connect_post_json(a->cmd, c, "/limits", text, &answer);
    free(text);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else if (max > 0)
            printf("%s %s: at most %lld running\n", task ? "task" : "tag", a->positional[0], max);
        else
            printf("%s %s: no limit\n", task ? "task" : "tag", a->positional[0]);
    }
    json_decref(answer);
    return status;
}

static int set_limit(const struct args *a, errand_client *c)
{
    char *end = NULL;
    long long max = strtoll(a->positional[1], &end, 10);
    if (!*a->positional[1] || *end || max < 1)
        return args_usage_error(a->cmd, "N must be a whole number of runs, 1 or more, got '%s'",
                                a->positional[1]);
    return post_limit(a, c, max);
}

/* POST /api/limits {"task", "max_starts", "per_seconds"}. */
static int set_rate(const struct args *a, errand_client *c)
{
    char *end = NULL;
    long long max = strtoll(a->positional[1], &end, 10);
    if (!*a->positional[1] || *end || max < 0)
        return args_usage_error(a->cmd,
                                "N must be a whole number of starts, 0 (none) or more, "
                                "got '%s'",
                                a->positional[1]);
    double per = 1;
    int status = args_get_double(a, "per", 0.001, 86400, &per);
    if (status != CLI_EXIT_OK)
        return status;
    json_t *body = json_pack("{s:s, s:I, s:f}", "task", a->positional[0], "max_starts", max,
                             "per_seconds", per);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return CLI_EXIT_FAILURE;
    json_t *answer = NULL;
    status = connect_post_json(a->cmd, c, "/limits", text, &answer);
    free(text);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else if (max > 0)
            printf("task %s: at most %lld starts per %g s\n", a->positional[0], max, per);
        else
            printf("task %s: no rate limit\n", a->positional[0]);
    }
    json_decref(answer);
    return status;
}

static int remove_limit(const struct args *a, errand_client *c)
{
    return post_limit(a, c, 0);
}

static int run_limits_ls(const struct args *a)
{
    return connect_with_client(a, list_limits);
}

static int run_limits_set(const struct args *a)
{
    return connect_with_client(a, set_limit);
}

static int run_limits_rate(const struct args *a)
{
    return connect_with_client(a, set_rate);
}

static int run_limits_rm(const struct args *a)
{
    return connect_with_client(a, remove_limit);
}

static const struct cli_option limits_ls_options[] = {
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

static const struct cli_option limits_set_options[] = {
    {"task", NULL, false, "NAME is a task: limit its runs (default: a tag)"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_limits_ls = {
    .group = "limits",
    .name = "ls",
    .summary = "List the concurrency limits and the runs holding their slots",
    .usage = "[--json]",
    .options = limits_ls_options,
    CONNECT_SETTINGS,
    .details = "A run holds a slot of each limit it falls under (its task's, its tags') from its\n"
               "claim until its lease ends.",
    .run = run_limits_ls,
};

const struct cli_command cmd_limits_set = {
    .group = "limits",
    .name = "set",
    .summary = "Limit how many runs of a tag (or a task) run at once",
    .usage = "NAME N [--task] [--json]",
    .min_positional = 2,
    .max_positional = 2,
    .options = limits_set_options,
    CONNECT_SETTINGS,
    .details = "Enforced by the server at claim time, across every worker and server: a run is\n"
               "handed out only while each limit it falls under has a free slot.\n"
               "\n"
               "Examples:\n"
               "  errand limits set llm 2               # runs tagged llm: 2 at a time\n"
               "  errand limits set send_mail 5 --task  # the task send_mail: 5 at a time",
    .run = run_limits_set,
};

static const struct cli_option limits_rate_options[] = {
    {"per", "SECONDS", false, "the period N starts are counted over (default 1)"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_limits_rate = {
    .group = "limits",
    .name = "rate",
    .summary = "Limit how many runs of a task start per second (or --per S)",
    .usage = "TASK N [--per SECONDS] [--json]",
    .min_positional = 2,
    .max_positional = 2,
    .options = limits_rate_options,
    CONNECT_SETTINGS,
    .details = "Starts are spaced evenly, SECONDS/N apart, so no period holds more than N; the\n"
               "server enforces it at claim time. N 0 removes the rate limit.\n"
               "\n"
               "Example:\n"
               "  errand limits rate call_partner_api 10 --per 60   # 10 a minute",
    .run = run_limits_rate,
};

const struct cli_command cmd_limits_rm = {
    .group = "limits",
    .name = "rm",
    .summary = "Remove the concurrency limit of a tag (or a task)",
    .usage = "NAME [--task] [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = limits_set_options,
    CONNECT_SETTINGS,
    .details = "Waiting runs are handed out at once.",
    .run = run_limits_rm,
};
