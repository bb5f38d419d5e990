/* SPDX-License-Identifier: MIT */
/*
 * cmd_workers.c — `errand workers ls`: the workers the server has seen, from GET /workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/wire_limits.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64

static int print_workers_table(const json_t *workers)
{
    static const char *const headers[] = {"NAME", "ACTIVE", "LAST SEEN", "CLAIMED", "TASKS"};
    struct table *t = table_new(sizeof headers / sizeof headers[0], headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *w;
    json_array_foreach(workers, i, w)
    {
        char seen[CELL_MAX], claimed[CELL_MAX];
        snprintf(claimed, sizeof claimed, "%lld",
                 (long long)json_integer_value(json_object_get(w, "claimed")));
        /* Task names joined by commas: the compact JSON of the array minus its syntax. */
        char *tasks = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&tasks, &len);
        if (mem) {
            size_t j;
            const json_t *name;
            json_array_foreach(json_object_get(w, "tasks"), j, name)
                fprintf(mem, "%s%s", j ? "," : "", json_string_value(name));
            fclose(mem);
        }
        const char *cells[] = {
            json_string_value(json_object_get(w, "name")),
            json_is_true(json_object_get(w, "active")) ? "yes" : "no",
            out_time(json_string_value(json_object_get(w, "last_seen")), seen, sizeof seen),
            claimed,
            tasks,
        };
        bool ok = mem && table_add_row(t, cells);
        free(tasks);
        if (!ok) {
            table_free(t);
            return CLI_EXIT_FAILURE;
        }
    }
    table_print(t);
    table_free(t);
    return CLI_EXIT_OK;
}

static int list_workers(const struct args *a, errand_client *c)
{
    long long limit = 0;
    int status = args_get_int(a, "limit", 1, WIRE_LIST_LIMIT_MAX, &limit);
    if (status != CLI_EXIT_OK)
        return status;
    static const char *const options[] = {"limit", "cursor"};
    char *path = strdup("/workers");
    if (!path || !connect_add_options(&path, a, options, sizeof options / sizeof options[0])) {
        free(path);
        return CLI_EXIT_FAILURE;
    }
    json_t *answer = NULL;
    status = connect_get_json(a->cmd, c, path, &answer);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json")) {
            out_json(answer);
        } else {
            status = print_workers_table(json_object_get(answer, "workers"));
            const char *next = json_string_value(json_object_get(answer, "next_cursor"));
            if (next)
                fprintf(stderr, "(more workers: repeat with --cursor '%s')\n", next);
        }
    }
    json_decref(answer);
    free(path);
    return status;
}

static int run_workers_ls(const struct args *a)
{
    return connect_with_client(a, list_workers);
}

static const struct cli_option workers_ls_options[] = {
    {"limit", "N", false, "at most N workers, 1-1000 (default 100)"},
    {"cursor", "C", false,
     "continue a listing where the last one stopped (printed when there "
     "are more workers)"},
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

static const enum setting_id workers_settings[] = {SET_API_URL, SET_API_KEY, SET_LOG_LEVEL,
                                                   SET_LOG_FORMAT};

const struct cli_command cmd_workers_ls = {
    .group = "workers",
    .name = "ls",
    .summary = "List the workers the server has seen",
    .usage = "[--limit N] [--cursor C] [--json]",
    .options = workers_ls_options,
    .settings = workers_settings,
    .n_settings = sizeof workers_settings / sizeof workers_settings[0],
    .details = "Most recently seen first. ACTIVE is yes when the worker was seen within three "
               "lease periods;\nworkers not seen for ERRAND_WORKER_RETENTION_SECONDS (a day) are "
               "no longer listed.",
    .run = run_workers_ls,
};
