/* SPDX-License-Identifier: MIT */
/*
 * cmd_config.c — `errand config`: the settings in force (defaults, then the environment,
 * then any setting flags given here), with where each value came from. Secrets are masked.
 */
#include <stdio.h>

#include "commands.h"

static int run_config(const struct args *a)
{
    struct settings s;
    int status = args_load_settings(a, &s);
    if (status != CLI_EXIT_OK)
        return status;
    settings_print(&s, stdout, args_has(a, "json"));
    return CLI_EXIT_OK;
}

static const struct cli_option config_options[] = {
    {"json", NULL, false, "print a JSON object instead of a table"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_config = {
    .group = NULL,
    .name = "config",
    .summary = "Print the settings in force and where each comes from",
    .usage = "[--json] [settings...]",
    .options = config_options,
    .all_settings = true,
    .details = "Flags given here override the environment, as they would for other commands,\n"
               "so 'errand config --port 8080' shows what 'errand server start --port 8080'\n"
               "would use.",
    .run = run_config,
};
