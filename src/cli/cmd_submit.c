/* SPDX-License-Identifier: MIT */
/*
 * cmd_submit.c — `errand submit TASK`: one task run from the command line, optionally
 * waiting for its outcome. Everything that can be checked locally (the parameters' JSON,
 * numbers, times) is checked before the server is contacted, so a typo costs no request.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "connect.h"
#include "core/clock.h"
#include "output.h"
#include "run_view.h"

#define MAX_RETRIES 1000                    /* docs/api.md: retries 0-1000 */
#define MAX_SECONDS 1e9                     /* bound for delays and timeouts given in seconds */
#define PARAMS_FILE_MAX (64L * 1024 * 1024) /* --params @FILE: larger files are refused */
#define TRACEPARENT_ENV "TRACEPARENT"       /* the OpenTelemetry environment carrier */

static const struct cli_option submit_options[] = {
    {"params", "JSON", false,
     "the run's parameters, a JSON object (default {}); @FILE reads them from FILE, @- from stdin"},
    {"idempotency-key", "K", false, "a later submission with this key returns the first run"},
    {"delay", "SECONDS", false, "do not start before this many seconds from now"},
    {"scheduled-at", "RFC3339", false, "do not start before this time (2026-11-29T10:25:19Z)"},
    {"priority", "N", false, "higher runs first (default 0)"},
    {"tag", "T", true, "a tag for filtering ('errand runs ls --tag T')"},
    {"retries", "N", false, "extra attempts after a failure, 0-1000 (default 0)"},
    {"retry-delay", "S[,S...]", false, "seconds before each retry; the last one repeats"},
    {"retry-jitter", "F", false, "stretch each retry delay by up to this fraction at random"},
    {"timeout", "S", false, "fail the attempt after S seconds"},
    {"cache-key", "K", false, "answer from a COMPLETED run with the same key, if any"},
    {"cache-expiration", "S", false, "how long a completed result serves as cache"},
    {"persist-result", "BOOL", false, "persist the result to result storage"},
    {"traceparent", "TP", false,
     "the W3C trace context to submit the run in (default: $TRACEPARENT, as an exec task has)"},
    {"wait-for", "ID", true,
     "an upstream run: start only once it COMPLETED ({\"$result\": \"ID\"} in --params takes its "
     "result)"},
    {"allow-upstream-failure", NULL, false,
     "with --wait-for: start once the upstream runs ended, however they ended"},
    {"wait", NULL, false, "wait for the run to finish and print its state and result"},
    {"wait-timeout", "S", false, "with --wait: give up after S seconds (default: no limit)"},
    {"json", NULL, false, "print the run as JSON"},
    {NULL, NULL, false, NULL},
};

/* Everything a submission needs that outlives the parsing: the options point into these. */
struct submit_request {
    errand_submit_options opt;
    errand_dependencies deps;
    const char **tags;
    const char **wait_for;
    double *delays;
    const char *params;
    char *params_file; /* the text read for --params @FILE */
    double wait_timeout;
};

static void submit_request_free(struct submit_request *r)
{
    free(r->tags);
    free(r->wait_for);
    free(r->delays);
    free(r->params_file);
}

/* Reads --params @FILE (@- = stdin) into r->params_file. */
static int read_params_file(const struct args *a, const char *path, struct submit_request *r)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return args_usage_error(a->cmd, "--params @%s: cannot open: %s", path, strerror(errno));
    size_t cap = BUFSIZ, len = 0;
    char *buf = malloc(cap + 1);
    int status = CLI_EXIT_OK;
    while (buf) {
        if (len == cap) {
            if (cap >= (size_t)PARAMS_FILE_MAX) {
                status = args_usage_error(a->cmd, "--params @%s: larger than %ld bytes", path,
                                          PARAMS_FILE_MAX);
                break;
            }
            char *grown = realloc(buf, cap * 2 + 1);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (status == CLI_EXIT_OK && buf && ferror(f))
        status = args_usage_error(a->cmd, "--params @%s: read failed: %s", path, strerror(errno));
    if (!is_stdin)
        fclose(f);
    if (!buf && status == CLI_EXIT_OK) {
        fprintf(stderr, "errand submit: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    if (status != CLI_EXIT_OK) {
        free(buf);
        return status;
    }
    buf[len] = '\0';
    r->params_file = buf;
    r->params = buf;
    return CLI_EXIT_OK;
}

/* Checks --params: a JSON object. */
static int check_params(const struct args *a, const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v)
        return args_usage_error(a->cmd, "--params is not valid JSON: %s (line %d, column %d)",
                                jerr.text, jerr.line, jerr.column);
    const char *kind = out_json_kind(v);
    bool is_object = json_is_object(v);
    json_decref(v);
    if (!is_object)
        return args_usage_error(a->cmd,
                                "--params must be a JSON object like '{\"x\": 1}', "
                                "got %s",
                                kind);
    return CLI_EXIT_OK;
}

/* "1,10,60" into r->delays. */
static int parse_retry_delays(const struct args *a, struct submit_request *r)
{
    const char *text = args_get(a, "retry-delay");
    if (!text)
        return CLI_EXIT_OK;
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    r->delays = calloc(n, sizeof *r->delays);
    char *copy = strdup(text);
    if (!r->delays || !copy) {
        free(copy);
        fprintf(stderr, "errand submit: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    size_t i = 0;
    int status = CLI_EXIT_OK;
    /* strsep, not strtok: "1,,2" must be refused, not read as "1,2". */
    char *rest = copy;
    for (char *tok; (tok = strsep(&rest, ",")) != NULL; i++) {
        if (!args_parse_double(tok, &r->delays[i]) || r->delays[i] < 0 ||
            r->delays[i] > MAX_SECONDS) {
            status = args_usage_error(a->cmd,
                                      "--retry-delay must be numbers of seconds >= 0 "
                                      "separated by commas, got '%s'",
                                      text);
            break;
        }
    }
    free(copy);
    r->opt.retry_delays = r->delays;
    r->opt.n_retry_delays = i;
    return status;
}

/* The trace context of the submission: --traceparent, else $TRACEPARENT (the OpenTelemetry
 * environment carrier, which the worker sets for exec tasks: so an exec task that runs
 * `errand submit` passes its trace on). It becomes this thread's current trace context,
 * which liberrand sends with the submission. An invalid --traceparent is an error; an invalid
 * $TRACEPARENT is ignored, as W3C says an invalid incoming traceparent is. Read here, not
 * through the settings: it is the caller's context, not errand's configuration. */
static int parse_trace(const struct args *a)
{
    const char *given = args_get(a, "traceparent");
    if (given) {
        if (errand_trace_set(given) != 0)
            return args_usage_error(a->cmd,
                                    "--traceparent must be a W3C traceparent such as "
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "
                                    "(version 00, lower-case hex), got '%s'",
                                    given);
        return CLI_EXIT_OK;
    }
    const char *env = getenv(TRACEPARENT_ENV);
    if (env)
        errand_trace_set(env); /* invalid: left without one */
    return CLI_EXIT_OK;
}

static int parse_submit(const struct args *a, struct submit_request *r)
{
    errand_submit_options_init(&r->opt);
    r->wait_timeout = -1;
    r->params = args_get(a, "params");
    int st;
    if (r->params && r->params[0] == '@' &&
        (st = read_params_file(a, r->params + 1, r)) != CLI_EXIT_OK)
        return st;
    if (r->params && (st = check_params(a, r->params)) != CLI_EXIT_OK)
        return st;
    if ((st = parse_trace(a)) != CLI_EXIT_OK)
        return st;
    r->opt.idempotency_key = args_get(a, "idempotency-key");
    r->opt.cache_key = args_get(a, "cache-key");

    if (args_has(a, "delay") && args_has(a, "scheduled-at"))
        return args_usage_error(a->cmd, "give --delay or --scheduled-at, not both");
    if ((st = args_get_double(a, "delay", 0, MAX_SECONDS, &r->opt.delay_seconds)) != 0)
        return st;
    const char *at = args_get(a, "scheduled-at");
    if (at && !clock_parse_rfc3339(at, &r->opt.scheduled_at_ms))
        return args_usage_error(a->cmd,
                                "--scheduled-at must be an RFC 3339 time such as "
                                "2026-11-29T10:25:19Z, got '%s'",
                                at);

    long long n = r->opt.priority;
    if ((st = args_get_int(a, "priority", INT_MIN, INT_MAX, &n)) != 0)
        return st;
    r->opt.priority = (int)n;
    n = r->opt.retries;
    if ((st = args_get_int(a, "retries", 0, MAX_RETRIES, &n)) != 0)
        return st;
    r->opt.retries = (int)n;
    if ((st = parse_retry_delays(a, r)) != 0)
        return st;
    if ((st = args_get_double(a, "retry-jitter", 0, MAX_SECONDS, &r->opt.retry_jitter_factor)))
        return st;
    if ((st = args_get_double(a, "timeout", 0, MAX_SECONDS, &r->opt.timeout_seconds)) != 0)
        return st;
    if (args_has(a, "timeout") && r->opt.timeout_seconds <= 0)
        return args_usage_error(a->cmd, "--timeout must be > 0 seconds");
    if ((st = args_get_double(a, "cache-expiration", 0, MAX_SECONDS,
                              &r->opt.cache_expiration_seconds)) != 0)
        return st;
    const char *persist = args_get(a, "persist-result");
    if (persist) {
        bool b;
        if (!settings_parse_bool(persist, &b))
            return args_usage_error(a->cmd, "--persist-result must be true or false, got '%s'",
                                    persist);
        r->opt.persist_result = b ? ERRAND_YES : ERRAND_NO;
    }

    int n_tags = args_count(a, "tag");
    if (n_tags > 0) {
        r->tags = calloc((size_t)n_tags, sizeof *r->tags);
        if (!r->tags) {
            fprintf(stderr, "errand submit: out of memory\n");
            return CLI_EXIT_FAILURE;
        }
        for (int i = 0; i < n_tags; i++)
            r->tags[i] = args_nth(a, "tag", i);
        r->opt.tags = r->tags;
        r->opt.n_tags = (size_t)n_tags;
    }

    int n_ups = args_count(a, "wait-for");
    if (n_ups > 0) {
        if (!(r->wait_for = calloc((size_t)n_ups, sizeof *r->wait_for))) {
            fprintf(stderr, "errand submit: out of memory\n");
            return CLI_EXIT_FAILURE;
        }
        for (int i = 0; i < n_ups; i++)
            r->wait_for[i] = args_nth(a, "wait-for", i);
        r->deps.wait_for = r->wait_for;
        r->deps.n_wait_for = (size_t)n_ups;
    }
    r->deps.allow_upstream_failure = args_has(a, "allow-upstream-failure");

    if (args_has(a, "wait-timeout") && !args_has(a, "wait"))
        return args_usage_error(a->cmd, "--wait-timeout needs --wait");
    return args_get_double(a, "wait-timeout", 0, MAX_SECONDS, &r->wait_timeout);
}

static int run_submit(const struct args *a)
{
    struct submit_request r = {0};
    int status = parse_submit(a, &r);
    errand_client *c = NULL;
    if (status == CLI_EXIT_OK)
        status = connect_client(a, &c, NULL);
    if (status != CLI_EXIT_OK) {
        submit_request_free(&r);
        return status;
    }

    const char *task = a->positional[0];
    bool as_json = args_has(a, "json");
    bool wait = args_has(a, "wait");
    errand_error err = {0};
    errand_run *run = NULL;
    if (errand_submit_after(c, task, r.params, &r.opt, &r.deps, &run, &err) != 0) {
        status = out_error(a->cmd, &err);
    } else if (wait) {
        /* The id first, so it is known even if the wait is interrupted. */
        if (!as_json) {
            printf("%s\n", errand_run_id(run));
            fflush(stdout);
        }
        status = run_view_wait(a->cmd, c, errand_run_id(run), r.wait_timeout, as_json);
    } else if (as_json) {
        out_json_text(errand_run_json(run));
    } else {
        printf("%s\n", errand_run_id(run));
    }
    errand_run_free(run);
    errand_client_free(c);
    submit_request_free(&r);
    return status;
}

const struct cli_command cmd_submit = {
    .group = NULL,
    .name = "submit",
    .summary = "Submit a task run (and optionally wait for its result)",
    .usage = "TASK [--params JSON] [--delay S | --scheduled-at T] [--wait] [options]",
    .min_positional = 1,
    .max_positional = 1,
    .options = submit_options,
    CONNECT_SETTINGS,
    .details =
        "Prints the run's id (or the run as JSON with --json). With --wait, then waits for\n"
        "the run to finish and prints its final state and result; the exit status is 0 when\n"
        "it COMPLETED and 1 when it FAILED, CRASHED, was CANCELLED or the wait timed out.\n"
        "\n"
        "Examples:\n"
        "  errand submit errand.noop --params '{\"x\": 1}'\n"
        "  errand submit errand.sleep --params '{\"seconds\": 2}' --wait --wait-timeout 10\n"
        "  errand submit send_mail --params @mail.json --tag mail --retries 3 --retry-delay 1,10\n"
        "  errand submit report --wait-for $RUN --params '{\"rows\": {\"$result\": \"'$RUN'\"}}'",
    .run = run_submit,
};
