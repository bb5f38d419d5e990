/* SPDX-License-Identifier: MIT */
/*
 * main.c — the `errand` program's entry point: finds the command named by the first words
 * (`errand runs ls ...`), hands the rest to its parser and runs it; prints the overview
 * (--help), the version (--version) and `errand help CMD`. Commands are grouped
 * (`server start`, `runs ls`) or single words (`submit`); a group given alone lists its
 * subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "errand/errand.h"

#define COMMAND_COLUMN 18 /* where summaries start in the overview */

static const struct cli_command *const commands[] = {
    &cmd_server_start,     &cmd_worker,       &cmd_submit,       &cmd_runs_ls,
    &cmd_runs_show,        &cmd_runs_logs,    &cmd_runs_cancel,  &cmd_runs_retry,
    &cmd_runs_wait,        &cmd_runs_result,  &cmd_runs_bulk,    &cmd_failures,
    &cmd_workers_ls,       &cmd_tasks_ls,     &cmd_tasks_pause,  &cmd_tasks_resume,
    &cmd_limits_ls,        &cmd_limits_set,   &cmd_limits_rm,    &cmd_limits_rate,
    &cmd_schedules_set,    &cmd_schedules_ls, &cmd_schedules_rm, &cmd_schedules_pause,
    &cmd_schedules_resume, &cmd_webhooks_ls,  &cmd_webhooks_set, &cmd_webhooks_rm,
    &cmd_config,           &cmd_health,       &cmd_bench,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_command_line(FILE *out, const struct cli_command *c)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", c->group ? c->group : "", c->group ? " " : "", c->name);
    fprintf(out, "  %-*s%s\n", COMMAND_COLUMN, name, c->summary);
}

static void print_overview(FILE *out)
{
    fprintf(out,
            "errand %s: background task runs for web apps. Submit runs, serve them with\n"
            "workers, check on them.\n\n"
            "Usage: errand <command> [options]\n\nCommands:\n",
            errand_version());
    for (size_t i = 0; i < N_COMMANDS; i++)
        print_command_line(out, commands[i]);
    fprintf(out,
            "  %-*s%s\n\n"
            "Run 'errand help <command>' or 'errand <command> --help' for its options.\n"
            "Settings come from ERRAND_* environment variables, or flags of the same name\n"
            "(ERRAND_API_URL is --api-url); 'errand config' prints the values in force.\n",
            COMMAND_COLUMN, "help COMMAND", "Show the help of a command");
}

static bool is_group(const char *word)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i]->group && strcmp(commands[i]->group, word) == 0)
            return true;
    return false;
}

static void print_group(FILE *out, const char *group)
{
    fprintf(out, "Usage: errand %s <command> [options]\n\nCommands:\n", group);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i]->group && strcmp(commands[i]->group, group) == 0)
            print_command_line(out, commands[i]);
    fprintf(out, "\nRun 'errand %s <command> --help' for its options.\n", group);
}

/* The command named by words[0] (and words[1] for a group); NULL when there is none, after
 * saying so on stderr. *used is how many words named it. */
static const struct cli_command *find_command(int n, char **words, int *used)
{
    if (is_group(words[0])) {
        if (n < 2) {
            print_group(stderr, words[0]);
            return NULL;
        }
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (commands[i]->group && strcmp(commands[i]->group, words[0]) == 0 &&
                strcmp(commands[i]->name, words[1]) == 0) {
                *used = 2;
                return commands[i];
            }
        fprintf(stderr, "errand %s: unknown command '%s'\n", words[0], words[1]);
        print_group(stderr, words[0]);
        return NULL;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!commands[i]->group && strcmp(commands[i]->name, words[0]) == 0) {
            *used = 1;
            return commands[i];
        }
    fprintf(stderr, "errand: unknown command '%s'\nRun 'errand --help' for the commands.\n",
            words[0]);
    return NULL;
}

static bool is_help_word(const char *w)
{
    return strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0;
}

static int help_command(int n, char **words)
{
    if (n == 0) {
        print_overview(stdout);
        return CLI_EXIT_OK;
    }
    if (is_group(words[0]) && n == 1) {
        print_group(stdout, words[0]);
        return CLI_EXIT_OK;
    }
    int used = 0;
    const struct cli_command *cmd = find_command(n, words, &used);
    if (!cmd)
        return CLI_EXIT_USAGE;
    args_print_help(cmd, stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (is_help_word(first))
        return help_command(0, NULL);
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0 ||
        strcmp(first, "version") == 0) {
        printf("errand %s\n", errand_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "help") == 0)
        return help_command(argc - 2, argv + 2);
    if (is_group(first) && argc > 2 && is_help_word(argv[2])) {
        print_group(stdout, first);
        return CLI_EXIT_OK;
    }

    int used = 0;
    const struct cli_command *cmd = find_command(argc - 1, argv + 1, &used);
    if (!cmd)
        return CLI_EXIT_USAGE;
    struct args a;
    int status = args_parse(cmd, argc - 1 - used, argv + 1 + used, &a);
    if (status == ARGS_HELP_SHOWN)
        return CLI_EXIT_OK;
    if (status != CLI_EXIT_OK)
        return status;
    status = cmd->run(&a);
    args_free(&a);
    fflush(stdout);
    return status;
}
