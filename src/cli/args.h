/* SPDX-License-Identifier: MIT */
/*
 * args.h — the CLI's command descriptors and its small option parser, shared by every
 * command. A command describes itself once (name, positionals, options, the settings it
 * honours, help text); the same descriptor drives parsing, `--help` and `errand help CMD`,
 * so the help can never drift from what is accepted.
 *
 * Options are spelled `--flag value` or `--flag=value`; `--` ends the options. An unknown
 * option, a missing value or a bad number prints a message naming the option and returns
 * CLI_EXIT_USAGE; commands return that status from their entry point unchanged.
 */
#ifndef ERRAND_CLI_ARGS_H
#define ERRAND_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/settings.h"

/* Process exit statuses of every errand command. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* the server or the run said no: not found, failed, unreachable */
    CLI_EXIT_USAGE = 2,   /* the command line (or a value in it) is wrong */
};

/* An option of one command. */
struct cli_option {
    const char *name;    /* "priority" for --priority; NULL ends a list */
    const char *metavar; /* "N" when the option takes a value; NULL for a switch (--json) */
    bool repeat;         /* may be given several times (--tag a --tag b) */
    const char *help;
};

struct args;

/* One command: `errand <group> <name>`, or `errand <name>` when group is NULL. */
struct cli_command {
    const char *group;   /* "runs", or NULL */
    const char *name;    /* "ls" */
    const char *summary; /* one line, shown in `errand --help` */
    const char *usage;   /* what follows the command: "ID [options]" */
    int min_positional, max_positional;
    const struct cli_option *options; /* terminated by an entry with name NULL */
    /* Settings accepted as --<flag> (and listed in the help with their variables): either
     * every setting of the table, or the listed ones. */
    bool all_settings;
    const enum setting_id *settings;
    size_t n_settings;
    const char *details; /* extra help text after the options, or NULL */
    int (*run)(const struct args *a);
};

/* The parsed command line. Values point into argv. */
struct args {
    const struct cli_command *cmd;
    const char **positional;
    int n_positional;
    /* In command-line order: option index (into cmd->options) or a setting, and its value. */
    struct args_item {
        int option; /* index into cmd->options, or -1 for a setting */
        enum setting_id setting;
        const char *value; /* NULL for switches */
    } * items;
    int n_items;
};

/* Parses argv (the words after the command name). Returns CLI_EXIT_OK, or a status to exit
 * with: CLI_EXIT_USAGE after printing why, or -1 after printing the help on stdout (the
 * caller exits 0). On CLI_EXIT_OK, call args_free() when done. */
#define ARGS_HELP_SHOWN (-1)
int args_parse(const struct cli_command *cmd, int argc, char **argv, struct args *out);
void args_free(struct args *a);

/* Prints the help of cmd (usage, options, settings and their environment variables). */
void args_print_help(const struct cli_command *cmd, FILE *out);

/* "errand runs ls" into buf. */
const char *args_command_name(const struct cli_command *cmd, char *buf, size_t size);

/* Prints "errand <cmd>: <message>" and a pointer to --help on stderr; returns CLI_EXIT_USAGE. */
int args_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether a switch or an option was given; the last value of an option (NULL if absent);
 * the number of values and the i-th one of a repeatable option. Names without "--". */
bool args_has(const struct args *a, const char *name);
const char *args_get(const struct args *a, const char *name);
int args_count(const struct args *a, const char *name);
const char *args_nth(const struct args *a, const char *name, int i);

/* Typed values of an option. Absent: *out is left as it is and CLI_EXIT_OK returned. Present
 * and valid: *out is set. Invalid: a message naming the option and the value is printed and
 * CLI_EXIT_USAGE returned. */
int args_get_int(const struct args *a, const char *name, long long min, long long max,
                 long long *out);
int args_get_double(const struct args *a, const char *name, double min, double max, double *out);

/* A number from text for options of other shapes (a list element); false if it is not one. */
bool args_parse_double(const char *text, double *out);

/* Loads the settings (defaults, then the environment), applies the settings given as flags,
 * and sets the log level from them. On a bad value prints the settings' message and returns
 * CLI_EXIT_USAGE. */
int args_load_settings(const struct args *a, struct settings *s);

#endif
