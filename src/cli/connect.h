/* SPDX-License-Identifier: MIT */
/*
 * connect.h — how a CLI command reaches the errand server: a client built from the settings
 * (ERRAND_API_URL, ERRAND_API_KEY, ERRAND_LOCAL_STORAGE_PATH, or their flags), and JSON GETs
 * for the listings that errand.h has no typed call for (through errand_request()).
 */
#ifndef ERRAND_CLI_CONNECT_H
#define ERRAND_CLI_CONNECT_H

#include <jansson.h>

#include "args.h"
#include "errand/errand.h"

/* The settings that the commands submitting or reading runs accept as flags (the client's
 * URL and key, and the log level and format). CONNECT_SETTINGS fills the .settings and
 * .n_settings of a cli_command with them (connect.c checks that the count matches the list). */
enum { CONNECT_N_SETTINGS = 4 };
extern const enum setting_id connect_settings[];
#define CONNECT_SETTINGS .settings = connect_settings, .n_settings = CONNECT_N_SETTINGS

/* Loads the settings (env, then the flags in a) and makes a client. Returns CLI_EXIT_OK, or
 * the exit status after printing why. *settings_out (optional) receives the settings. */
int connect_client(const struct args *a, errand_client **out, struct settings *settings_out);

/* Makes a client as connect_client() does, runs body with it and frees it: the frame of a
 * command that has nothing to check before it connects. Returns body's status, or the exit
 * status of connect_client() without calling body. */
int connect_with_client(const struct args *a, int (*body)(const struct args *a, errand_client *c));

/* GET path (below the API URL); on HTTP 200 parses the body into *out (json_decref it).
 * Otherwise prints the server's error message and returns the exit status. */
int connect_get_json(const struct cli_command *cmd, errand_client *c, const char *path,
                     json_t **out);

/* POST body (JSON text) to path; on HTTP 200 or 201 parses the answer into *out as
 * connect_get_json does. */
int connect_post_json(const struct cli_command *cmd, errand_client *c, const char *path,
                      const char *body, json_t **out);

/* Percent-encodes a query-string value (RFC 3986 unreserved characters pass); malloc'd. */
char *connect_escape(const char *value);

/* "/task_runs/<id><suffix>" with id escaped; malloc'd, NULL when out of memory. */
char *connect_run_path(const char *id, const char *suffix);

/* Appends "&name=value" (or "?name=value" to a path without a query) to the malloc'd *path,
 * escaping value. False when out of memory. */
bool connect_add_query(char **path, const char *name, const char *value);

/* Appends, for each of the n option names that a was given, "name=<its value>" to *path as
 * connect_add_query does. False when out of memory. */
bool connect_add_options(char **path, const struct args *a, const char *const *names, size_t n);

#endif
