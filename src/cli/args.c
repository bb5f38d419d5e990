/* SPDX-License-Identifier: MIT */
/*
 * args.c — parsing a command's words against its descriptor (args.h), and printing its help
 * from the same descriptor. Options are looked up first among the command's own options,
 * then among the settings it honours (settings_find_flag), so `--api-url` means the same
 * thing, with the same validation, in every command that talks to a server.
 */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define ARGS_NAME_MAX 64
#define HELP_COLUMN 30 /* where option help text starts */
#define HELP_WIDTH 79  /* help lines wrap before this column */
#define HELP_INDENT "  "

const char *args_command_name(const struct cli_command *cmd, char *buf, size_t size)
{
    if (cmd->group)
        snprintf(buf, size, "errand %s %s", cmd->group, cmd->name);
    else
        snprintf(buf, size, "errand %s", cmd->name);
    return buf;
}

int args_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
    char name[ARGS_NAME_MAX];
    args_command_name(cmd, name, sizeof name);
    fprintf(stderr, "%s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", name);
    return CLI_EXIT_USAGE;
}

static int find_option(const struct cli_command *cmd, const char *name, size_t len)
{
    for (int i = 0; cmd->options && cmd->options[i].name; i++)
        if (strlen(cmd->options[i].name) == len && strncmp(cmd->options[i].name, name, len) == 0)
            return i;
    return -1;
}

static bool command_takes_setting(const struct cli_command *cmd, enum setting_id id)
{
    if (cmd->all_settings)
        return true;
    for (size_t i = 0; i < cmd->n_settings; i++)
        if (cmd->settings[i] == id)
            return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* What the value of a setting flag looks like, for the help: "--api-url URL". */
static const char *setting_metavar(const struct setting_def *def)
{
    static const struct {
        const char *suffix, *metavar;
    } names[] = {{"url", "URL"},   {"path", "DIR"},    {"home", "DIR"}, {"key", "KEY"},
                 {"host", "HOST"}, {"level", "LEVEL"}, {"sync", "MODE"}};
    switch (def->type) {
    case SETTING_INT:
        return "N";
    case SETTING_BOOL:
        return "BOOL";
    case SETTING_STRING:
        break;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (ends_with(def->flag, names[i].suffix))
            return names[i].metavar;
    return "VALUE";
}

/* A boolean setting flag may stand alone (--log-prints means true) or take a value
 * (--log-prints false): the next word is its value only when it reads as a boolean. */
static bool next_is_bool(int i, int argc, char **argv)
{
    bool ignored;
    return i + 1 < argc && settings_parse_bool(argv[i + 1], &ignored);
}

int args_parse(const struct cli_command *cmd, int argc, char **argv, struct args *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    /* Every word is at most one item or one positional, so argc bounds both arrays. */
    size_t cap = argc > 0 ? (size_t)argc : 1;
    out->positional = calloc(cap, sizeof *out->positional);
    out->items = calloc(cap, sizeof *out->items);
    if (!out->positional || !out->items) {
        args_free(out);
        fprintf(stderr, "errand: out of memory\n");
        return CLI_EXIT_FAILURE;
    }

    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *word = argv[i];
        if (options_done || word[0] != '-' || strcmp(word, "-") == 0) {
            out->positional[out->n_positional++] = word;
            continue;
        }
        if (strcmp(word, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(word, "-h") == 0 || strcmp(word, "--help") == 0) {
            args_print_help(cmd, stdout);
            args_free(out);
            return ARGS_HELP_SHOWN;
        }
        if (strncmp(word, "--", 2) != 0) {
            args_free(out);
            return args_usage_error(cmd, "unknown option '%s'", word);
        }
        const char *name = word + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char *inline_value = eq ? eq + 1 : NULL;

        struct args_item *item = &out->items[out->n_items];
        int opt = find_option(cmd, name, name_len);
        if (opt >= 0) {
            const struct cli_option *o = &cmd->options[opt];
            item->option = opt;
            if (!o->metavar) {
                if (inline_value) {
                    args_free(out);
                    return args_usage_error(cmd, "option --%s takes no value", o->name);
                }
            } else if (inline_value) {
                item->value = inline_value;
            } else if (i + 1 < argc) {
                item->value = argv[++i];
            } else {
                args_free(out);
                return args_usage_error(cmd, "option --%s needs a value (%s)", o->name, o->metavar);
            }
            out->n_items++;
            continue;
        }

        char flag[ARGS_NAME_MAX];
        snprintf(flag, sizeof flag, "%.*s", (int)name_len, name);
        const struct setting_def *def = settings_find_flag(flag);
        if (!def) {
            args_free(out);
            return args_usage_error(cmd, "unknown option '--%s'", flag);
        }
        if (!command_takes_setting(cmd, def->id)) {
            args_free(out);
            return args_usage_error(cmd, "option --%s (%s) does not apply to this command", flag,
                                    def->env);
        }
        item->option = -1;
        item->setting = def->id;
        if (inline_value)
            item->value = inline_value;
        else if (def->type == SETTING_BOOL && !next_is_bool(i, argc, argv))
            item->value = "true";
        else if (i + 1 < argc)
            item->value = argv[++i];
        else {
            args_free(out);
            return args_usage_error(cmd, "option --%s needs a value (%s)", flag,
                                    setting_metavar(def));
        }
        out->n_items++;
    }

    if (out->n_positional < cmd->min_positional) {
        char name[ARGS_NAME_MAX];
        int status = args_usage_error(cmd, "missing argument (usage: %s %s)",
                                      args_command_name(cmd, name, sizeof name), cmd->usage);
        args_free(out);
        return status;
    }
    if (out->n_positional > cmd->max_positional) {
        int status =
            args_usage_error(cmd, "unexpected argument '%s'", out->positional[cmd->max_positional]);
        args_free(out);
        return status;
    }
    return CLI_EXIT_OK;
}

void args_free(struct args *a)
{
    free(a->positional);
    free(a->items);
    a->positional = NULL;
    a->items = NULL;
    a->n_positional = a->n_items = 0;
}

/* Prints `text` in the help column, starting from the current column `col`: words wrap
 * before HELP_WIDTH and every '\n' in text starts a new line, all indented to HELP_COLUMN. */
static void print_help_text(FILE *out, int col, const char *text)
{
    if (col >= HELP_COLUMN) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - col, "");
    col = HELP_COLUMN;
    bool line_start = true; /* no word on this line yet */
    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == '\n') {
            if (*p == '\n' && p[1]) {
                fprintf(out, "\n%*s", HELP_COLUMN, "");
                col = HELP_COLUMN;
                line_start = true;
            }
            p++;
            continue;
        }
        int len = (int)strcspn(p, " \n");
        if (!line_start && col + 1 + len > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_COLUMN, "");
            col = HELP_COLUMN;
            line_start = true;
        }
        if (!line_start) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, (size_t)len, out);
        col += len;
        line_start = false;
        p += len;
    }
    fputc('\n', out);
}

void args_print_help(const struct cli_command *cmd, FILE *out)
{
    char name[ARGS_NAME_MAX];
    args_command_name(cmd, name, sizeof name);
    fprintf(out, "Usage: %s %s\n\n%s\n", name, cmd->usage, cmd->summary);

    fprintf(out, "\nOptions:\n");
    for (int i = 0; cmd->options && cmd->options[i].name; i++) {
        const struct cli_option *o = &cmd->options[i];
        int col = fprintf(out, HELP_INDENT "--%s%s%s", o->name, o->metavar ? " " : "",
                          o->metavar ? o->metavar : "");
        char help[512];
        snprintf(help, sizeof help, "%s%s", o->help, o->repeat ? " (repeatable)" : "");
        print_help_text(out, col, help);
    }
    int col = fprintf(out, HELP_INDENT "-h, --help");
    print_help_text(out, col, "show this help");

    const struct setting_def *table = settings_table();
    bool header = false;
    for (int id = 0; id < SET_COUNT; id++) {
        const struct setting_def *def = &table[id];
        if (!command_takes_setting(cmd, def->id))
            continue;
        if (!header) {
            fprintf(out, "\nSettings (flag, or environment variable; flags win):\n");
            header = true;
        }
        col = fprintf(out, HELP_INDENT "--%s %s", def->flag, setting_metavar(def));
        print_help_text(out, col, def->help);
        fprintf(out, "%*s%s, default: %s\n", HELP_COLUMN, "", def->env,
                def->fallback && def->fallback[0] ? def->fallback : "none");
    }
    if (cmd->details)
        fprintf(out, "\n%s\n", cmd->details);
    fprintf(out, "\nExit status: 0 on success, 1 when the server or the run reports an error,\n"
                 "2 on a usage error (bad option or value).\n");
}

static const struct args_item *last_item(const struct args *a, const char *name)
{
    const struct args_item *found = NULL;
    for (int i = 0; i < a->n_items; i++) {
        const struct args_item *it = &a->items[i];
        if (it->option >= 0 && strcmp(a->cmd->options[it->option].name, name) == 0)
            found = it;
    }
    return found;
}

bool args_has(const struct args *a, const char *name)
{
    return last_item(a, name) != NULL;
}

const char *args_get(const struct args *a, const char *name)
{
    const struct args_item *it = last_item(a, name);
    return it ? it->value : NULL;
}

int args_count(const struct args *a, const char *name)
{
    int n = 0;
    for (int i = 0; i < a->n_items; i++)
        if (a->items[i].option >= 0 && strcmp(a->cmd->options[a->items[i].option].name, name) == 0)
            n++;
    return n;
}

const char *args_nth(const struct args *a, const char *name, int nth)
{
    for (int i = 0; i < a->n_items; i++)
        if (a->items[i].option >= 0 &&
            strcmp(a->cmd->options[a->items[i].option].name, name) == 0 && nth-- == 0)
            return a->items[i].value;
    return NULL;
}

int args_get_int(const struct args *a, const char *name, long long min, long long max,
                 long long *out)
{
    const char *text = args_get(a, name);
    if (!text)
        return CLI_EXIT_OK;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!text[0] || *end || errno == ERANGE)
        return args_usage_error(a->cmd, "--%s must be an integer, got '%s'", name, text);
    if (v < min || v > max)
        return args_usage_error(a->cmd, "--%s must be between %lld and %lld, got %lld", name, min,
                                max, v);
    *out = v;
    return CLI_EXIT_OK;
}

bool args_parse_double(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!text[0] || *end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

int args_get_double(const struct args *a, const char *name, double min, double max, double *out)
{
    const char *text = args_get(a, name);
    if (!text)
        return CLI_EXIT_OK;
    double v;
    if (!args_parse_double(text, &v))
        return args_usage_error(a->cmd, "--%s must be a number, got '%s'", name, text);
    if (v < min || v > max)
        return args_usage_error(a->cmd, "--%s must be between %g and %g, got %g", name, min, max,
                                v);
    *out = v;
    return CLI_EXIT_OK;
}

int args_load_settings(const struct args *a, struct settings *s)
{
    errand_error err = {0};
    if (settings_load(s, &err) != 0) {
        fprintf(stderr, "errand: %s\n", err.message);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < a->n_items; i++) {
        const struct args_item *it = &a->items[i];
        if (it->option >= 0)
            continue;
        if (settings_set(s, it->setting, it->value, SETTING_FLAG, &err) != 0)
            return args_usage_error(a->cmd, "%s", err.message);
    }
    int level = log_level_parse(settings_str(s, SET_LOG_LEVEL));
    if (level >= 0)
        log_set_level((enum log_level)level);
    int format = log_format_parse(settings_str(s, SET_LOG_FORMAT));
    if (format >= 0)
        log_set_format((enum log_format)format);
    return CLI_EXIT_OK;
}
