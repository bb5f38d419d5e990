/* SPDX-License-Identifier: MIT */
/*
 * connect.c — the CLI's way to the server (connect.h). Settings come from core/settings
 * (env, then flags) and are handed to errand_client_new() explicitly, so `errand config`
 * shows exactly the URL and key that the other commands use.
 */
#include "connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

#define HTTP_OK 200
#define HTTP_CREATED 201

#define HEX_DIGITS "0123456789ABCDEF"
#define ESCAPED_CHAR_LEN 3 /* "%2F" */

const enum setting_id connect_settings[] = {SET_API_URL, SET_API_KEY, SET_LOG_LEVEL,
                                            SET_LOG_FORMAT};
_Static_assert(sizeof connect_settings / sizeof connect_settings[0] == CONNECT_N_SETTINGS,
               "CONNECT_N_SETTINGS must count connect_settings");

int connect_client(const struct args *a, errand_client **out, struct settings *settings_out)
{
    struct settings local;
    struct settings *s = settings_out ? settings_out : &local;
    int status = args_load_settings(a, s);
    if (status != CLI_EXIT_OK)
        return status;

    errand_client_options opt = {0};
    opt.api_url = settings_str(s, SET_API_URL);
    opt.api_key = settings_str(s, SET_API_KEY);
    errand_error err = {0};
    if (errand_client_new(&opt, out, &err) != 0)
        return out_error(a->cmd, &err);
    return CLI_EXIT_OK;
}

int connect_with_client(const struct args *a, int (*body)(const struct args *a, errand_client *c))
{
    errand_client *c = NULL;
    int status = connect_client(a, &c, NULL);
    if (status == CLI_EXIT_OK)
        status = body(a, c);
    errand_client_free(c);
    return status;
}

/* Sends method path (body, may be NULL) and parses a 200/201 answer into *out. */
static int request_json(const struct cli_command *cmd, errand_client *c, const char *method,
                        const char *path, const char *body_text, json_t **out)
{
    *out = NULL;
    errand_error err = {0};
    int status = 0;
    char *body = NULL;
    if (errand_request(c, method, path, body_text, &status, &body, &err) != 0)
        return out_error(cmd, &err);
    if (status != HTTP_OK && status != HTTP_CREATED) {
        errand_error_from_response(status, body, &err);
        errand_free(body);
        return out_error(cmd, &err);
    }
    json_error_t jerr;
    *out = json_loads(body ? body : "", 0, &jerr);
    errand_free(body);
    if (!*out) {
        err.code = ERRAND_ESERVER;
        snprintf(err.message, sizeof err.message,
                 "the server's answer to %s %s is not JSON: %s (line %d, column %d)", method, path,
                 jerr.text, jerr.line, jerr.column);
        return out_error(cmd, &err);
    }
    return CLI_EXIT_OK;
}

int connect_get_json(const struct cli_command *cmd, errand_client *c, const char *path,
                     json_t **out)
{
    return request_json(cmd, c, "GET", path, NULL, out);
}

int connect_post_json(const struct cli_command *cmd, errand_client *c, const char *path,
                      const char *body, json_t **out)
{
    return request_json(cmd, c, "POST", path, body, out);
}

static bool is_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

char *connect_escape(const char *value)
{
    size_t len = strlen(value);
    char *out = malloc(len * ESCAPED_CHAR_LEN + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        if (is_unreserved(*s)) {
            *p++ = (char)*s;
        } else {
            *p++ = '%';
            *p++ = HEX_DIGITS[*s >> 4];
            *p++ = HEX_DIGITS[*s & 0xF];
        }
    }
    *p = '\0';
    return out;
}

bool connect_add_query(char **path, const char *name, const char *value)
{
    char *escaped = connect_escape(value);
    if (!escaped)
        return false;
    const char *sep = strchr(*path, '?') ? "&" : "?";
    size_t n = strlen(*path) + strlen(sep) + strlen(name) + 1 + strlen(escaped) + 1;
    char *grown = malloc(n);
    if (grown)
        snprintf(grown, n, "%s%s%s=%s", *path, sep, name, escaped);
    free(escaped);
    if (!grown)
        return false;
    free(*path);
    *path = grown;
    return true;
}

bool connect_add_options(char **path, const struct args *a, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *value = args_get(a, names[i]);
        if (value && !connect_add_query(path, names[i], value))
            return false;
    }
    return true;
}

char *connect_run_path(const char *id, const char *suffix)
{
    static const char prefix[] = "/task_runs/";
    char *escaped = connect_escape(id);
    if (!escaped)
        return NULL;
    size_t n = sizeof prefix + strlen(escaped) + strlen(suffix);
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s%s", prefix, escaped, suffix);
    free(escaped);
    return path;
}
