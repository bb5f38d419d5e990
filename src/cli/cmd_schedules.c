/* SPDX-License-Identifier: MIT */
/*
 * cmd_schedules.c — `errand schedules set|ls|rm|pause|resume`: schedules (docs/api.md,
 * Schedules) over POST/GET /api/schedules. The server checks every value and names the field
 * it refuses; the CLI only checks what it must to build the body (--params is JSON).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64

/* The body of POST /api/schedules from the command line, or NULL after a usage error
 * (printed; *status says which). */
static json_t *schedule_body(const struct args *a, int *status)
{
    long long every = 0, priority = 0, retries = 0;
    double timeout = 0;
    if ((*status = args_get_int(a, "every", 1, 366LL * 24 * 3600, &every)) != CLI_EXIT_OK ||
        (*status = args_get_int(a, "priority", -2147483648LL, 2147483647LL, &priority)) !=
            CLI_EXIT_OK ||
        (*status = args_get_int(a, "retries", 0, 1000, &retries)) != CLI_EXIT_OK ||
        (*status = args_get_double(a, "timeout", 0, 3153600000.0, &timeout)) != CLI_EXIT_OK)
        return NULL;
    if (args_has(a, "cron") == args_has(a, "every")) {
        *status = args_usage_error(a->cmd, "give exactly one of --cron EXPR and --every SECONDS");
        return NULL;
    }
    json_t *run = json_object();
    json_t *body = json_pack("{s:s, s:s}", "name", a->positional[0], "task", a->positional[1]);
    if (!run || !body)
        goto oom;
    const char *params = args_get(a, "params");
    if (params) {
        json_error_t jerr;
        json_t *p = json_loads(params, JSON_DECODE_ANY, &jerr);
        if (!json_is_object(p)) {
            json_decref(p);
            *status = args_usage_error(a->cmd, "--params must be a JSON object like '{\"x\": 1}'");
            goto fail;
        }
        json_object_set_new(run, "parameters", p);
    }
    if (args_has(a, "priority"))
        json_object_set_new(run, "priority", json_integer(priority));
    if (args_has(a, "retries"))
        json_object_set_new(run, "retries", json_integer(retries));
    if (args_has(a, "timeout"))
        json_object_set_new(run, "timeout_seconds", json_real(timeout));
    int n_tags = args_count(a, "tag");
    if (n_tags > 0) {
        json_t *tags = json_array();
        for (int i = 0; tags && i < n_tags; i++)
            json_array_append_new(tags, json_string(args_nth(a, "tag", i)));
        json_object_set_new(run, "tags", tags);
    }
    if (args_has(a, "cron"))
        json_object_set_new(body, "cron", json_string(args_get(a, "cron")));
    else
        json_object_set_new(body, "every_seconds", json_integer(every));
    if (args_has(a, "tz"))
        json_object_set_new(body, "time_zone", json_string(args_get(a, "tz")));
    if (args_has(a, "catch-up"))
        json_object_set_new(body, "catch_up", json_string(args_get(a, "catch-up")));
    if (args_has(a, "paused"))
        json_object_set_new(body, "paused", json_true());
    json_object_set_new(body, "run", run);
    *status = CLI_EXIT_OK;
    return body;
oom:
    *status = CLI_EXIT_FAILURE;
fail:
    json_decref(run);
    json_decref(body);
    return NULL;
}

static void print_schedule(const json_t *s)
{
    const json_t *cron = json_object_get(s, "cron");
    char when[CELL_MAX];
    if (json_is_string(cron))
        snprintf(when, sizeof when, "cron '%s' (%s)", json_string_value(cron),
                 json_string_value(json_object_get(s, "time_zone")));
    else
        snprintf(when, sizeof when, "every %llds",
                 (long long)json_integer_value(json_object_get(s, "every_seconds")));
    printf("%s: %s %s, next %s%s\n", json_string_value(json_object_get(s, "name")),
           json_string_value(json_object_get(s, "task")), when,
           json_string_value(json_object_get(s, "next_tick")),
           json_is_true(json_object_get(s, "paused")) ? " (paused)" : "");
}

static int set_schedule(const struct args *a, errand_client *c)
{
    int status;
    json_t *body = schedule_body(a, &status);
    if (!body)
        return status;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return CLI_EXIT_FAILURE;
    json_t *answer = NULL;
    status = connect_post_json(a->cmd, c, "/schedules", text, &answer);
    free(text);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else
            print_schedule(answer);
    }
    json_decref(answer);
    return status;
}

static int list_schedules(const struct args *a, errand_client *c)
{
    static const char *const headers[] = {"NAME",     "TASK",   "WHEN",      "ZONE",
                                          "CATCH-UP", "PAUSED", "NEXT TICK", "LAST TICK"};
    json_t *answer = NULL;
    int status = connect_get_json(a->cmd, c, "/schedules", &answer);
    if (status != CLI_EXIT_OK || args_has(a, "json")) {
        if (status == CLI_EXIT_OK)
            out_json(json_object_get(answer, "schedules"));
        json_decref(answer);
        return status;
    }
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(answer, "schedules"), i, s)
    {
        if (!t)
            break;
        char when[CELL_MAX], next[CELL_MAX], last[CELL_MAX];
        const json_t *cron = json_object_get(s, "cron");
        if (json_is_string(cron))
            snprintf(when, sizeof when, "%s", json_string_value(cron));
        else
            snprintf(when, sizeof when, "every %llds",
                     (long long)json_integer_value(json_object_get(s, "every_seconds")));
        const json_t *lt = json_object_get(s, "last_tick");
        const char *cells[] = {
            json_string_value(json_object_get(s, "name")),
            json_string_value(json_object_get(s, "task")),
            when,
            json_string_value(json_object_get(s, "time_zone")),
            json_string_value(json_object_get(s, "catch_up")),
            json_is_true(json_object_get(s, "paused")) ? "yes" : "no",
            out_time(json_string_value(json_object_get(s, "next_tick")), next, sizeof next),
            json_is_string(lt) ? out_time(json_string_value(lt), last, sizeof last) : "-",
        };
        if (!table_add_row(t, cells)) {
            table_free(t);
            t = NULL;
        }
    }
    if (t) {
        table_print(t);
        table_free(t);
    } else {
        status = CLI_EXIT_FAILURE;
    }
    json_decref(answer);
    return status;
}

/* POST /api/schedules/<action> {"name": NAME}. */
static int control(const struct args *a, errand_client *c, const char *action)
{
    json_t *body = json_pack("{s:s}", "name", a->positional[0]);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return CLI_EXIT_FAILURE;
    char path[32];
    snprintf(path, sizeof path, "/schedules/%s", action);
    json_t *answer = NULL;
    int status = connect_post_json(a->cmd, c, path, text, &answer);
    free(text);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else if (strcmp(action, "delete") == 0)
            printf("%s deleted\n", a->positional[0]);
        else
            print_schedule(answer);
    }
    json_decref(answer);
    return status;
}

static int delete_schedule(const struct args *a, errand_client *c)
{
    return control(a, c, "delete");
}

static int pause_schedule(const struct args *a, errand_client *c)
{
    return control(a, c, "pause");
}

static int resume_schedule(const struct args *a, errand_client *c)
{
    return control(a, c, "resume");
}

static int run_set(const struct args *a)
{
    return connect_with_client(a, set_schedule);
}

static int run_ls(const struct args *a)
{
    return connect_with_client(a, list_schedules);
}

static int run_rm(const struct args *a)
{
    return connect_with_client(a, delete_schedule);
}

static int run_pause(const struct args *a)
{
    return connect_with_client(a, pause_schedule);
}

static int run_resume(const struct args *a)
{
    return connect_with_client(a, resume_schedule);
}

static const struct cli_option set_options[] = {
    {"cron", "EXPR", false,
     "a 5-field cron expression ('*/5 * * * *', '30 2 * * mon-fri') or @hourly, @daily, ..."},
    {"every", "SECONDS", false, "an interval instead: ticks at every multiple of it"},
    {"tz", "ZONE", false, "the IANA time zone --cron is read in (default UTC)"},
    {"catch-up", "skip|once", false,
     "after ticks were missed (every server down): none of them (default), or one run"},
    {"params", "JSON", false, "the parameters of each run (a JSON object)"},
    {"priority", "N", false, "each run's priority"},
    {"tag", "TAG", true, "a tag of each run (besides schedule:NAME)"},
    {"retries", "N", false, "each run's retries"},
    {"timeout", "SECONDS", false, "each run's timeout"},
    {"paused", NULL, false, "store it paused"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

static const struct cli_option json_options[] = {
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_schedules_set = {
    .group = "schedules",
    .name = "set",
    .summary = "Create or replace a schedule: a task run on a cron expression or an interval",
    .usage = "NAME TASK (--cron EXPR [--tz ZONE] | --every SECONDS) [--catch-up skip|once] "
             "[--params JSON] [options]",
    .min_positional = 2,
    .max_positional = 2,
    .options = set_options,
    CONNECT_SETTINGS,
    .details = "Every server sharing the store fires it; each tick makes exactly one run, tagged\n"
               "schedule:NAME. A wall time skipped by daylight saving fires at the end of the\n"
               "gap; one repeated fires once, at its first occurrence (docs/api.md, Schedules).",
    .run = run_set,
};

const struct cli_command cmd_schedules_ls = {
    .group = "schedules",
    .name = "ls",
    .summary = "List the schedules and their next ticks",
    .usage = "[--json]",
    .options = json_options,
    CONNECT_SETTINGS,
    .run = run_ls,
};

const struct cli_command cmd_schedules_rm = {
    .group = "schedules",
    .name = "rm",
    .summary = "Delete a schedule (its runs stay)",
    .usage = "NAME [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = json_options,
    CONNECT_SETTINGS,
    .run = run_rm,
};

const struct cli_command cmd_schedules_pause = {
    .group = "schedules",
    .name = "pause",
    .summary = "Pause a schedule: it fires nothing until resumed",
    .usage = "NAME [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = json_options,
    CONNECT_SETTINGS,
    .run = run_pause,
};

const struct cli_command cmd_schedules_resume = {
    .group = "schedules",
    .name = "resume",
    .summary = "Resume a schedule from its next tick after now",
    .usage = "NAME [--json]",
    .min_positional = 1,
    .max_positional = 1,
    .options = json_options,
    CONNECT_SETTINGS,
    .details = "The ticks passed while it was paused are not caught up.",
    .run = run_resume,
};
