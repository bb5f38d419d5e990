/* SPDX-License-Identifier: MIT */
/*
 * cmd_webhooks.c — `errand webhooks ls|set|rm`: the tasks' webhooks (docs/api.md, Webhooks)
 * and the deliveries not made yet (GET /api/webhooks); setting one goes through liberrand's
 * errand_webhook_set().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define CELL_MAX 64

static const char *text_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static int print_webhooks(const json_t *answer)
{
    static const char *const headers[] = {"TASK", "URL"};
    struct table *t = table_new(2, headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    int status = CLI_EXIT_OK;
    size_t i;
    const json_t *w;
    json_array_foreach(json_object_get(answer, "webhooks"), i, w)
    {
        const char *cells[] = {text_of(w, "task"), text_of(w, "url")};
        if (!table_add_row(t, cells))
            status = CLI_EXIT_FAILURE;
    }
    if (status == CLI_EXIT_OK)
        table_print(t);
    table_free(t);
    const json_t *deliveries = json_object_get(answer, "deliveries");
    long long pending = (long long)json_integer_value(json_object_get(answer, "pending"));
    if (status != CLI_EXIT_OK || pending == 0)
        return status;
    printf("\n%lld deliveries not made yet%s:\n", pending,
           (size_t)pending > json_array_size(deliveries) ? " (the soonest due)" : "");
    static const char *const dheaders[] = {"RUN", "URL", "ATTEMPTS", "NEXT", "LAST ERROR"};
    if (!(t = table_new(5, dheaders)))
        return CLI_EXIT_FAILURE;
    const json_t *d;
    json_array_foreach(deliveries, i, d)
    {
        char attempts[CELL_MAX];
        snprintf(attempts, sizeof attempts, "%lld",
                 (long long)json_integer_value(json_object_get(d, "attempts")));
        const char *cells[] = {text_of(d, "run_id"), text_of(d, "url"), attempts,
                               text_of(d, "next_at"), text_of(d, "last_error")};
        if (!table_add_row(t, cells))
            status = CLI_EXIT_FAILURE;
    }
    if (status == CLI_EXIT_OK)
        table_print(t);
    table_free(t);
    return status;
}

static int list_webhooks(const struct args *a, errand_client *c)
{
    json_t *answer = NULL;
    int status = connect_get_json(a->cmd, c, "/webhooks", &answer);
    if (status == CLI_EXIT_OK) {
        if (args_has(a, "json"))
            out_json(answer);
        else
            status = print_webhooks(answer);
    }
    json_decref(answer);
    return status;
}

/* The task positional[0]'s webhook set to url, or removed (url NULL). */
static int set_webhook(const struct args *a, errand_client *c, const char *url)
{
    errand_error err = {0};
    if (errand_webhook_set(c, a->positional[0], url, &err) != 0)
        return out_error(a->cmd, &err);
    if (url)
        printf("task %s: its runs are reported to %s when they end\n", a->positional[0], url);
    else
        printf("task %s: no webhook\n", a->positional[0]);
    return CLI_EXIT_OK;
}

static int set_body(const struct args *a, errand_client *c)
{
    return set_webhook(a, c, a->positional[1]);
}

static int remove_body(const struct args *a, errand_client *c)
{
    return set_webhook(a, c, NULL);
}

static int run_ls(const struct args *a)
{
    return connect_with_client(a, list_webhooks);
}

static int run_set(const struct args *a)
{
    return connect_with_client(a, set_body);
}

static int run_rm(const struct args *a)
{
    return connect_with_client(a, remove_body);
}

static const struct cli_option json_options[] = {
    {"json", NULL, false, "print the server's answer as JSON"},
    {NULL, NULL, false, NULL},
};

static const struct cli_option no_options[] = {
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_webhooks_ls = {
    .group = "webhooks",
    .name = "ls",
    .summary = "List the tasks' webhooks and the deliveries not made yet",
    .usage = "[--json]",
    .options = json_options,
    CONNECT_SETTINGS,
    .details = "A delivery that keeps failing shows its attempts and its last error until it\n"
               "succeeds or is given up (ERRAND_WEBHOOK_MAX_ATTEMPTS).",
    .run = run_ls,
};

const struct cli_command cmd_webhooks_set = {
    .group = "webhooks",
    .name = "set",
    .summary = "Report every run of a task to a URL when it ends",
    .usage = "TASK URL",
    .min_positional = 2,
    .max_positional = 2,
    .options = no_options,
    CONNECT_SETTINGS,
    .details = "Each run that reaches a final state is POSTed to URL as JSON, retried until a\n"
               "2xx answer, and signed with the server's ERRAND_WEBHOOK_SECRET (the header\n"
               "Errand-Signature). A submission's own webhook_url wins.\n"
               "\n"
               "Example:\n"
               "  errand webhooks set send_invoice https://hooks.example.com/errand",
    .run = run_set,
};

const struct cli_command cmd_webhooks_rm = {
    .group = "webhooks",
    .name = "rm",
    .summary = "Remove the webhook of a task",
    .usage = "TASK",
    .min_positional = 1,
    .max_positional = 1,
    .options = no_options,
    CONNECT_SETTINGS,
    .details = "Deliveries already written are still made.",
    .run = run_rm,
};
