/* SPDX-License-Identifier: MIT */
/*
 * cmd_server.c — `errand server start`: the settings (defaults, environment, then every
 * setting given as a flag) handed to server_run(), which serves until SIGINT/SIGTERM.
 */
#include "commands.h"
#include "server/server.h"

static const struct cli_option server_start_options[] = {
    {NULL, NULL, false, NULL},
};

static int run_server_start(const struct args *a)
{
    struct settings s;
    int status = args_load_settings(a, &s);
    if (status != CLI_EXIT_OK)
        return status;
    return server_run(&s);
}

const struct cli_command cmd_server_start = {
    .group = "server",
    .name = "start",
    .summary = "Run the errand server: HTTP API, store and lease sweeper",
    .usage = "[--host H] [--port P] [--database-url URL] [--api-key K] [settings...]",
    .min_positional = 0,
    .max_positional = 0,
    .options = server_start_options,
    .all_settings = true,
    .details =
        "Every setting below is accepted as a flag and overrides its environment variable.\n"
        "With --port 0 the server picks a free port; the \"listening\" log line names it.\n"
        "Stops cleanly on SIGINT or SIGTERM: in-flight requests finish, the store is closed.\n"
        "\n"
        "Examples:\n"
        "  errand server start\n"
        "  errand server start --port 0 --database-url sqlite:///tmp/errand.db\n"
        "  ERRAND_API_KEY=secret errand server start --host 0.0.0.0",
    .run = run_server_start,
};
