/* SPDX-License-Identifier: MIT */
/*
 * submit.c — submissions: building bodies (submit.h) and errand_submit, errand_submit_batch,
 * their _after forms (dependencies), errand_delay, errand_submit_options_init.
 */
#include "client/submit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "client/run.h"
#include "core/cache_key.h"
#include "core/choice.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/uuid.h"

/* The idempotency key liberrand adds to a submission it may retry: the prefix, the time in
 * milliseconds (12 hex digits) and random bytes (hex). Keys that sort by time land at the end
 * of the store's key index, near each other: random ones would each touch a page of their own
 * once millions of runs are stored. */
#define RETRY_KEY_PREFIX "errand-retry-"
#define RETRY_KEY_TIME_DIGITS 12
#define RETRY_KEY_RANDOM_BYTES 10

/* Field names in errors: "parameters" or "runs[3].parameters". */
static void field_name(char *out, size_t n, const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf(out, n, "%s.%s", prefix, name);
    else
        snprintf(out, n, "%s", name);
}

/* Parses parameters text into an object; NULL text is {}. */
static int parse_params(const char *params_json, const char *prefix, json_t **out,
                        errand_error *err)
{
    char field[ERRAND_ERROR_FIELD_MAX];
    field_name(field, sizeof field, prefix, "parameters");
    if (!params_json) {
        *out = json_object();
        return *out ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    json_error_t jerr;
    json_t *v = json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return error_set(err, ERRAND_EINVAL, field,
                         "field '%s' is not valid JSON: %s (line %d, column %d)", field, jerr.text,
                         jerr.line, jerr.column);
    if (!json_is_object(v)) {
        json_decref(v);
        return error_set(err, ERRAND_EINVAL, field, "field '%s' must be a JSON object", field);
    }
    *out = v;
    return 0;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v ? json_object_set_new(obj, key, v) : -1;
}

/* Refuses what has no meaning on the wire: negative retries (-1 once meant the server's
 * default, which 0 is), a persist_result that is no errand_choice. */
static int check_options(const errand_submit_options *opt, const char *prefix, errand_error *err)
{
    char field[ERRAND_ERROR_FIELD_MAX];
    if (opt->retries < 0) {
        field_name(field, sizeof field, prefix, "retries");
        return error_set(err, ERRAND_EINVAL, field,
                         "field '%s' must be 0 (none, the default) or more, got %d", field,
                         opt->retries);
    }
    field_name(field, sizeof field, prefix, "persist_result");
    return choice_check(opt->persist_result, field, err);
}

int submit_build(const char *task, const char *params_json, const errand_submit_options *opt,
                 const char *prefix, json_t **out, errand_error *err)
{
    *out = NULL;
    char field[ERRAND_ERROR_FIELD_MAX];
    errand_submit_options defaults;
    if (!opt) {
        errand_submit_options_init(&defaults);
        opt = &defaults;
    }
    if (!task || !*task) {
        field_name(field, sizeof field, prefix, "task");
        return error_set(err, ERRAND_EINVAL, field, "field '%s' must name a task", field);
    }
    int rc = check_options(opt, prefix, err);
    if (rc)
        return rc;
    json_t *params = NULL;
    rc = parse_params(params_json, prefix, &params, err);
    if (rc)
        return rc;
    json_t *o = json_object();
    if (!o) {
        json_decref(params);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int bad = set_new(o, "task", json_string(task));
    bad |= json_object_set_new(o, "parameters", params);
    if (opt->idempotency_key)
        bad |= set_new(o, "idempotency_key", json_string(opt->idempotency_key));
    if (opt->scheduled_at_ms) {
        char ts[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(opt->scheduled_at_ms, ts);
        bad |= set_new(o, "scheduled_at", json_string(ts));
    }
    if (opt->delay_seconds != 0)
        bad |= set_new(o, "delay_seconds", json_real(opt->delay_seconds));
    if (opt->priority != 0)
        bad |= set_new(o, "priority", json_integer(opt->priority));
    if (opt->n_tags > 0) {
        json_t *tags = json_array();
        bad |= set_new(o, "tags", tags);
        for (size_t i = 0; tags && i < opt->n_tags; i++) {
            if (!opt->tags || !opt->tags[i]) {
                json_decref(o);
                field_name(field, sizeof field, prefix, "tags");
                return error_set(err, ERRAND_EINVAL, field, "field '%s' has a NULL tag at %zu",
                                 field, i);
            }
            bad |= json_array_append_new(tags, json_string(opt->tags[i]));
        }
    }
    if (opt->retries > 0) /* 0 is the server's default too: left to it, like every zero */
        bad |= set_new(o, "retries", json_integer(opt->retries));
    if (opt->n_retry_delays > 0) {
        if (!opt->retry_delays) {
            json_decref(o);
            field_name(field, sizeof field, prefix, "retry_delay_seconds");
            return error_set(err, ERRAND_EINVAL, field,
                             "field '%s': n_retry_delays is %zu but retry_delays is NULL", field,
                             opt->n_retry_delays);
        }
        json_t *d = json_array();
        bad |= set_new(o, "retry_delay_seconds", d);
        for (size_t i = 0; d && i < opt->n_retry_delays; i++)
            bad |= json_array_append_new(d, json_real(opt->retry_delays[i]));
    }
    if (opt->retry_jitter_factor != 0)
        bad |= set_new(o, "retry_jitter_factor", json_real(opt->retry_jitter_factor));
    if (opt->timeout_seconds != 0)
        bad |= set_new(o, "timeout_seconds", json_real(opt->timeout_seconds));
    if (opt->cache_key)
        bad |= set_new(o, "cache_key", json_string(opt->cache_key));
    if (opt->cache_expiration_seconds != 0)
        bad |= set_new(o, "cache_expiration_seconds", json_real(opt->cache_expiration_seconds));
    if (opt->persist_result != ERRAND_DEFAULT)
        bad |= set_new(o, "persist_result", json_boolean(opt->persist_result == ERRAND_YES));
    /* The thread's current trace context (errand_trace_set, or the worker's for a subtask). */
    if (errand_trace_get())
        bad |= set_new(o, "traceparent", json_string(errand_trace_get()));
    if (bad) {
        json_decref(o);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a submission");
    }
    *out = o;
    return 0;
}

int submit_options_from_def(const errand_task_def *def, const char *params_json,
                            errand_submit_options *opt, char key_buf[65], errand_error *err)
{
    errand_submit_options_init(opt);
    if (!def->name || !*def->name)
        return error_set(err, ERRAND_EINVAL, "name", "the task definition has no name");
    opt->retries = def->retries;
    opt->retry_delays = def->retry_delays;
    opt->n_retry_delays = def->n_retry_delays;
    opt->retry_jitter_factor = def->retry_jitter_factor;
    opt->timeout_seconds = def->timeout_seconds;
    opt->persist_result = def->persist_result;
    if (def->cache_policy == ERRAND_CACHE_INPUTS_AND_VERSION) {
        json_t *params = NULL;
        int rc = parse_params(params_json, NULL, &params, err);
        if (rc)
            return rc;
        rc = cache_key_inputs(def->name, def->version ? def->version : "1", params, key_buf, err);
        json_decref(params);
        if (rc)
            return rc;
        opt->cache_key = key_buf;
        opt->cache_expiration_seconds = def->cache_expiration_seconds;
    } else if (def->cache_policy != ERRAND_CACHE_NONE) {
        return error_set(err, ERRAND_EINVAL, "cache_policy", "unknown cache policy %d",
                         (int)def->cache_policy);
    }
    return 0;
}

/* A submission that may be retried needs an idempotency key, or a retry after a commit whose
 * answer was lost would store the run twice: the caller's, else one of ours, made of the time
 * and the RETRY_KEY_RANDOM_BYTES at rnd (a batch draws all of its keys' bytes at once: a
 * CSPRNG call per key was an eighth of a batch's cost to its submitter). rnd is read only
 * when the client retries. */
static int add_retry_key(const errand_client *c, json_t *submission, const unsigned char *rnd,
                         errand_error *err)
{
    if (c->submit_retry_ms <= 0 || json_object_get(submission, "idempotency_key"))
        return 0;
    char key[sizeof RETRY_KEY_PREFIX + RETRY_KEY_TIME_DIGITS + 2 * RETRY_KEY_RANDOM_BYTES];
    int n = snprintf(key, sizeof key, "%s%0*" PRIx64, RETRY_KEY_PREFIX, RETRY_KEY_TIME_DIGITS,
                     (uint64_t)clock_now_ms());
    if (n != (int)(sizeof RETRY_KEY_PREFIX - 1 + RETRY_KEY_TIME_DIGITS))
        return error_set(err, ERRAND_EIO, NULL, "cannot draw an idempotency key");
    hex_from_bytes(rnd, RETRY_KEY_RANDOM_BYTES, key + n);
    if (json_object_set_new(submission, "idempotency_key", json_string(key)) < 0)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

void errand_submit_options_init(errand_submit_options *opt)
{
    if (opt)
        memset(opt, 0, sizeof *opt);
}

int submit_add_deps(json_t *submission, const errand_dependencies *deps, const char *prefix,
                    errand_error *err)
{
    if (!deps)
        return 0;
    char field[ERRAND_ERROR_FIELD_MAX];
    field_name(field, sizeof field, prefix, "wait_for");
    if (deps->n_wait_for > 0 && !deps->wait_for)
        return error_set(err, ERRAND_EINVAL, field,
                         "field '%s': n_wait_for is %zu but wait_for is NULL", field,
                         deps->n_wait_for);
    int bad = 0;
    if (deps->n_wait_for > 0) {
        json_t *ids = json_array();
        bad |= set_new(submission, "wait_for", ids);
        for (size_t i = 0; ids && i < deps->n_wait_for; i++) {
            if (!deps->wait_for[i])
                return error_set(err, ERRAND_EINVAL, field, "field '%s' has a NULL run id at %zu",
                                 field, i);
            bad |= json_array_append_new(ids, json_string(deps->wait_for[i]));
        }
    }
    if (deps->allow_upstream_failure)
        bad |= set_new(submission, "allow_upstream_failure", json_true());
    return bad ? error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a submission") : 0;
}

int errand_submit(errand_client *c, const char *task, const char *params_json,
                  const errand_submit_options *opt, errand_run **out, errand_error *err)
{
    return errand_submit_after(c, task, params_json, opt, NULL, out, err);
}

int errand_submit_after(errand_client *c, const char *task, const char *params_json,
                        const errand_submit_options *opt, const errand_dependencies *deps,
                        errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!c)
        return error_set(err, ERRAND_EINVAL, "client", "errand_submit needs a client");
    json_t *body = NULL;
    int rc = submit_build(task, params_json, opt, NULL, &body, err);
    if (rc)
        return rc;
    if ((rc = submit_add_deps(body, deps, NULL, err)) < 0) {
        json_decref(body);
        return rc;
    }
    unsigned char rnd[RETRY_KEY_RANDOM_BYTES];
    if (c->submit_retry_ms > 0 && random_bytes(rnd, sizeof rnd) < 0)
        rc = error_set(err, ERRAND_EIO, NULL, "cannot draw an idempotency key");
    if (rc < 0 || (rc = add_retry_key(c, body, rnd, err)) < 0) {
        json_decref(body);
        return rc;
    }
    json_t *answer = NULL;
    rc = client_call_retrying(c, "POST", "/task_runs", body, &answer, err);
    json_decref(body);
    if (rc)
        return rc;
    if (out)
        rc = run_wrap(answer, out, err);
    json_decref(answer);
    return rc;
}

int errand_submit_batch(errand_client *c, const errand_submission *subs, size_t n,
                        errand_run ***out, errand_error *err)
{
    return errand_submit_batch_after(c, subs, NULL, n, out, err);
}

int errand_submit_batch_after(errand_client *c, const errand_submission *subs,
                              const errand_dependencies *deps, size_t n, errand_run ***out,
                              errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!c)
        return error_set(err, ERRAND_EINVAL, "client", "errand_submit_batch needs a client");
    if (n == 0 || !subs)
        return error_set(err, ERRAND_EINVAL, "runs", "a batch needs at least one submission");
    json_t *body = json_object();
    json_t *runs = json_array();
    if (!body || !runs || json_object_set(body, "runs", runs)) {
        json_decref(body);
        json_decref(runs);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a batch");
    }
    json_decref(runs);
    int rc = 0;
    unsigned char *rnd = NULL; /* the retry keys' random bytes, when the client retries */
    if (c->submit_retry_ms > 0 && !(rnd = mem_alloc(n * RETRY_KEY_RANDOM_BYTES)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a batch");
    else if (rnd && random_bytes(rnd, n * RETRY_KEY_RANDOM_BYTES) < 0)
        rc = error_set(err, ERRAND_EIO, NULL, "cannot draw an idempotency key");
    for (size_t i = 0; i < n && !rc; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "runs[%zu]", i);
        json_t *item = NULL;
        rc = submit_build(subs[i].task, subs[i].params_json, subs[i].options, prefix, &item, err);
        if (!rc &&
            ((rc = submit_add_deps(item, deps ? &deps[i] : NULL, prefix, err)) < 0 ||
             (rc = add_retry_key(c, item, rnd ? rnd + i * RETRY_KEY_RANDOM_BYTES : NULL, err)) < 0))
            json_decref(item);
        if (rc)
            break;
        if (json_array_append_new(runs, item)) {
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a batch");
            break;
        }
    }
    mem_free(rnd);
    json_t *answer = NULL;
    /* A caller that does not want the runs back does not pay for reading them: the 2xx says
     * every one was stored. */
    if (!rc)
        rc = client_call_retrying(c, "POST", "/task_runs/batch", body, out ? &answer : NULL, err);
    json_decref(body);
    if (rc || !out) {
        json_decref(answer);
        return rc;
    }
    json_t *got = json_object_get(answer, "runs");
    if (!json_is_array(got) || json_array_size(got) != n) {
        json_decref(answer);
        return error_set(err, ERRAND_ESERVER, NULL,
                         "the server answered a batch of %zu without %zu runs", n, n);
    }
    errand_run **arr = mem_calloc(n, sizeof *arr);
    if (!arr) {
        json_decref(answer);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = run_wrap(json_array_get(got, i), &arr[i], err);
    json_decref(answer);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            errand_run_free(arr[i]);
        mem_free(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int errand_delay(errand_client *c, const errand_task_def *task, const char *params_json,
                 errand_run **out, errand_error *err)
{
    if (out)
        *out = NULL;
    error_clear(err);
    if (!task)
        return error_set(err, ERRAND_EINVAL, "task", "errand_delay needs a task definition");
    errand_submit_options opt;
    char key[CACHE_KEY_LEN];
    int rc = submit_options_from_def(task, params_json, &opt, key, err);
    if (rc)
        return rc;
    return errand_submit(c, task->name, params_json, &opt, out, err);
}
