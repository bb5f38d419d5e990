/* SPDX-License-Identifier: MIT */
/*
 * run_view.c — one task run on the terminal (run_view.h). The run arrives as liberrand's
 * errand_run; its JSON (errand_run_json) is parsed here to show the fields that errand.h has
 * no getter for. A result that was persisted rather than inlined is fetched with
 * errand_result(), so what is printed is the result, wherever it lives.
 */
#include "run_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "output.h"

/* Long waits are cut into long-polls of this many seconds (the server allows up to 300). */
#define WAIT_CHUNK_SECONDS 60.0
/* A run still SCHEDULED after the first poll of this many seconds makes the wait ask whether
 * any live worker serves its task. */
#define FIRST_CHUNK_SECONDS 1.0
#define HTTP_OK 200
#define RESULT_INLINE_CHARS 100 /* longer results are pretty-printed below "result:" */
#define CELL_MAX 64

/* The run's JSON with "result" filled in from result storage when it was persisted. */
static json_t *run_json_with_result(errand_client *c, const errand_run *run, errand_error *err)
{
    json_t *obj = json_loads(errand_run_json(run), 0, NULL);
    if (!obj) {
        err->code = ERRAND_ESERVER;
        snprintf(err->message, sizeof err->message, "the server sent a run that is not JSON");
        return NULL;
    }
    if (errand_run_state(run) == ERRAND_STATE_COMPLETED && !json_object_get(obj, "result")) {
        char *text = NULL;
        if (errand_result(c, run, &text, err) != 0) {
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, "result", json_loads(text, JSON_DECODE_ANY, NULL));
        errand_free(text);
    }
    return obj;
}

static void print_result_line(const json_t *result)
{
    char *compact = out_json_compact(result);
    if (compact && strlen(compact) <= RESULT_INLINE_CHARS && !json_is_string(result)) {
        printf("result: %s\n", compact);
    } else {
        printf("result:\n");
        out_json(result);
    }
    free(compact);
}

/* Prints the outcome of a final (or timed-out) run; returns the exit status. */
static int print_outcome(const struct cli_command *cmd, errand_client *c, const errand_run *run,
                         bool as_json, bool timed_out, double timeout_seconds)
{
    errand_error err = {0};
    json_t *obj = run_json_with_result(c, run, &err);
    if (!obj)
        return out_error(cmd, &err);
    errand_state state = errand_run_state(run);
    if (as_json) {
        out_json(obj);
    } else {
        printf("state: %s (%s, attempt %d)\n", errand_run_state_name(run),
               errand_state_type_name(state), errand_run_attempt(run));
        if (state == ERRAND_STATE_COMPLETED)
            print_result_line(json_object_get(obj, "result"));
    }
    json_decref(obj);
    fflush(stdout);

    char name[CELL_MAX];
    args_command_name(cmd, name, sizeof name);
    if (timed_out) {
        fprintf(stderr, "%s: run %s is still %s after %g s\n", name, errand_run_id(run),
                errand_state_type_name(state), timeout_seconds);
        return CLI_EXIT_FAILURE;
    }
    if (state == ERRAND_STATE_COMPLETED)
        return CLI_EXIT_OK;
    const char *msg = errand_run_message(run);
    fprintf(stderr, "%s: run %s ended %s%s%s\n", name, errand_run_id(run),
            errand_state_type_name(state), msg && msg[0] ? ": " : "", msg ? msg : "");
    return CLI_EXIT_FAILURE;
}

/* Whether the server knows a live worker that serves task; true when it cannot tell (the
 * question must never turn a wait into a failure). */
static bool task_is_served(errand_client *c, const char *task)
{
    int status = 0;
    char *body = NULL;
    errand_error err = {0};
    if (errand_request(c, "GET", "/workers", NULL, &status, &body, &err) != 0 ||
        status != HTTP_OK) {
        errand_free(body);
        return true;
    }
    json_t *answer = json_loads(body, 0, NULL);
    errand_free(body);
    json_t *workers = json_object_get(answer, "workers");
    bool served = !json_is_array(workers);
    size_t i, j;
    json_t *w, *name;
    json_array_foreach(workers, i, w)
    {
        if (!json_is_true(json_object_get(w, "active")))
            continue;
        json_array_foreach(json_object_get(w, "tasks"), j, name)
        {
            if (json_is_string(name) && strcmp(json_string_value(name), task) == 0)
                served = true;
        }
    }
    json_decref(answer);
    return served;
}

/* Says once, on stderr, that nobody will pick the run up yet; the wait goes on. */
static void note_if_unserved(const struct cli_command *cmd, errand_client *c, const errand_run *run)
{
    if (errand_run_state(run) != ERRAND_STATE_SCHEDULED || task_is_served(c, errand_run_task(run)))
        return;
    char name[CELL_MAX];
    args_command_name(cmd, name, sizeof name);
    fprintf(stderr,
            "%s: no live worker serves task '%s'; still waiting for run %s (`errand workers ls` "
            "lists the workers)\n",
            name, errand_run_task(run), errand_run_id(run));
}

int run_view_wait(const struct cli_command *cmd, errand_client *c, const char *id,
                  double timeout_seconds, bool as_json)
{
    errand_error err = {0};
    errand_run *run = NULL;
    double left = timeout_seconds;
    bool first = true;
    int rc;
    for (;;) {
        double chunk = first ? FIRST_CHUNK_SECONDS : WAIT_CHUNK_SECONDS;
        if (timeout_seconds >= 0 && left < chunk)
            chunk = left;
        errand_run_free(run);
        run = NULL;
        rc = errand_wait(c, id, chunk, &run, &err);
        if (rc != ERRAND_ETIMEDOUT)
            break;
        if (timeout_seconds >= 0) {
            left -= chunk;
            if (left <= 0)
                break;
        }
        if (first && run)
            note_if_unserved(cmd, c, run);
        first = false;
    }
    int status;
    if (rc == 0 || (rc == ERRAND_ETIMEDOUT && run))
        status = print_outcome(cmd, c, run, as_json, rc == ERRAND_ETIMEDOUT, timeout_seconds);
    else
        status = out_error(cmd, &err);
    errand_run_free(run);
    return status;
}

/* A field of obj as text for "key: value" lines: strings as they are, null as "-". */
static char *field_text(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return strdup("-");
    if (json_is_array(v) && json_array_size(v) == 0)
        return strdup("-");
    return out_json_compact(v);
}

static void print_field(const char *label, const char *value)
{
    printf("%-16s %s\n", label, value ? value : "-");
}

static void print_json_field(const json_t *obj, const char *label, const char *key)
{
    char *text = field_text(obj, key);
    print_field(label, text);
    free(text);
}

static void print_time_field(const json_t *obj, const char *label, const char *key)
{
    char buf[CELL_MAX];
    print_field(label, out_time(json_string_value(json_object_get(obj, key)), buf, sizeof buf));
}

static const char *or_unknown(const char *s)
{
    return s ? s : "?";
}

static void print_run_fields(const json_t *run)
{
    const json_t *state = json_object_get(run, "state");
    char line[ERRAND_ERROR_MESSAGE_MAX];
    print_json_field(run, "id:", "id");
    print_json_field(run, "task:", "task");
    snprintf(line, sizeof line, "%s (%s)",
             or_unknown(json_string_value(json_object_get(state, "name"))),
             or_unknown(json_string_value(json_object_get(state, "type"))));
    print_field("state:", line);
    const char *msg = json_string_value(json_object_get(state, "message"));
    if (msg && msg[0])
        print_field("message:", msg);
    snprintf(line, sizeof line, "%lld of %lld",
             (long long)json_integer_value(json_object_get(run, "attempt")),
             (long long)json_integer_value(json_object_get(run, "max_attempts")));
    print_field("attempt:", line);
    print_time_field(run, "created:", "created");
    print_time_field(run, "scheduled at:", "scheduled_at");
    print_time_field(run, "started:", "started");
    print_time_field(run, "finished:", "finished");
    print_json_field(run, "worker:", "worker");
    print_json_field(run, "priority:", "priority");
    print_json_field(run, "tags:", "tags");
    print_json_field(run, "idempotency key:", "idempotency_key");
    print_json_field(run, "cache key:", "cache_key");
    print_json_field(run, "retries:", "retries");
    print_json_field(run, "retry delays:", "retry_delay_seconds");
    print_json_field(run, "timeout:", "timeout_seconds");
    const char *tp = json_string_value(json_object_get(run, "traceparent"));
    if (tp) {
        print_field("traceparent:", tp);
        /* The trace id alone, for errand runs ls --trace-id. */
        if (strlen(tp) > 35) {
            snprintf(line, sizeof line, "%.32s", tp + 3);
            print_field("trace id:", line);
        }
    }
    if (json_array_size(json_object_get(run, "wait_for")) > 0) {
        print_json_field(run, "waits for:", "wait_for");
        if (json_is_true(json_object_get(run, "allow_upstream_failure")))
            print_field("upstream failure:", "allowed (starts once they have ended, however)");
    }
    print_json_field(run, "parameters:", "parameters");
    if (json_object_get(run, "result"))
        print_json_field(run, "result:", "result");
    if (json_object_get(run, "result_ref"))
        print_json_field(run, "result ref:", "result_ref");
}

static int print_history(const json_t *states)
{
    static const char *const headers[] = {"TIME", "TYPE", "NAME", "MESSAGE"};
    struct table *t = table_new(4, headers);
    if (!t)
        return CLI_EXIT_FAILURE;
    size_t i;
    const json_t *st;
    json_array_foreach(states, i, st)
    {
        char when[CELL_MAX];
        const char *cells[] = {
            out_time(json_string_value(json_object_get(st, "timestamp")), when, sizeof when),
            json_string_value(json_object_get(st, "type")),
            json_string_value(json_object_get(st, "name")),
            json_string_value(json_object_get(st, "message")),
        };
        if (!table_add_row(t, cells)) {
            table_free(t);
            return CLI_EXIT_FAILURE;
        }
    }
    printf("\nState history:\n");
    table_print(t);
    table_free(t);
    return CLI_EXIT_OK;
}

int run_view_show(const struct cli_command *cmd, errand_client *c, const char *id, bool as_json)
{
    errand_error err = {0};
    errand_run *run = NULL;
    if (errand_get(c, id, &run, &err) != 0)
        return out_error(cmd, &err);
    json_t *obj = json_loads(errand_run_json(run), 0, NULL);
    errand_run_free(run);
    if (!obj) {
        err.code = ERRAND_ESERVER;
        snprintf(err.message, sizeof err.message, "the server sent a run that is not JSON");
        return out_error(cmd, &err);
    }

    char *path = connect_run_path(id, "/states");
    json_t *history = NULL;
    int status = path ? connect_get_json(cmd, c, path, &history) : CLI_EXIT_FAILURE;
    free(path);
    if (status != CLI_EXIT_OK) {
        json_decref(obj);
        return status;
    }
    json_t *states = json_object_get(history, "states");
    if (as_json) {
        json_object_set_new(obj, "states", states ? json_incref(states) : json_array());
        out_json(obj);
    } else {
        print_run_fields(obj);
        status = print_history(states);
    }
    json_decref(history);
    json_decref(obj);
    return status;
}
