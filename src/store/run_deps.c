/* SPDX-License-Identifier: MIT */
/*
 * run_deps.c — dependencies between runs, the backend-neutral part (run_deps.h).
 */
#include "store/run_deps.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "store/run_transition.h"

bool run_deps_batch_ref(const char *ref, size_t *index)
{
    static const char prefix[] = "runs[";
    size_t plen = sizeof prefix - 1;
    if (!ref || strncmp(ref, prefix, plen) != 0)
        return false;
    const char *p = ref + plen;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] != ']'))
        return false;
    size_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (SIZE_MAX - 9) / 10)
            return false;
        n = n * 10 + (size_t)(*p - '0');
    }
    if (p[0] != ']' || p[1] != '\0')
        return false;
    *index = n;
    return true;
}

static int resolve_one(json_t *holder, size_t at, const char *const *ids, size_t n,
                       errand_error *err)
{
    json_t *ref = json_array_get(holder, at);
    size_t index;
    if (!run_deps_batch_ref(json_string_value(ref), &index))
        return 0;
    if (index >= n)
        return error_set(err, ERRAND_EINVAL, "wait_for",
                         "'%s' refers past the runs submitted before it", json_string_value(ref));
    return json_array_set_new(holder, at, json_string(ids[index])) == 0
               ? 0
               : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

int run_deps_resolve(const char *refs_json, bool pairs, const char *const *ids, size_t n,
                     char **out, errand_error *err)
{
    *out = NULL;
    json_t *arr = json_loads(refs_json, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: dependency references are not a "
                         "JSON array");
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++)
        rc = pairs ? resolve_one(json_array_get(arr, i), 1, ids, n, err)
                   : resolve_one(arr, i, ids, n, err);
    if (rc == 0 && !(*out = json_compact(arr)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_decref(arr);
    return rc;
}

void run_deps_waiting_message(int pending, char *buf, size_t size)
{
    snprintf(buf, size, "waiting for %d upstream run%s", pending, pending == 1 ? "" : "s");
}

/* The value at path (an array of keys and indexes) in root is replaced by value (stolen).
 * false when the path does not lead anywhere (the parameters were stored with it, so it
 * always does). */
static bool set_at(json_t *root, const json_t *path, json_t *value)
{
    json_t *at = root;
    size_t n = json_array_size(path);
    for (size_t i = 0; at && i + 1 < n; i++) {
        const json_t *step = json_array_get(path, i);
        at = json_is_string(step) ? json_object_get(at, json_string_value(step))
                                  : json_array_get(at, (size_t)json_integer_value(step));
    }
    const json_t *last = json_array_get(path, n - 1);
    int rc = -1;
    if (at && n > 0 && json_is_string(last) && json_is_object(at))
        rc = json_object_set_new(at, json_string_value(last), value);
    else if (at && n > 0 && json_is_integer(last) && json_is_array(at))
        rc = json_array_set_new(at, (size_t)json_integer_value(last), value);
    else
        json_decref(value);
    return rc == 0;
}

/* Fills every place of result_refs that refers to upstream with result (NULL: null) in
 * parameters; *out NULL when none refers to it. *first_path: the first such place (for a
 * message). */
static int fill(const char *parameters, const char *result_refs, const char *upstream,
                const char *result, char **out, char *first_path, size_t path_size,
                errand_error *err)
{
    *out = NULL;
    first_path[0] = '\0';
    if (!result_refs)
        return 0;
    json_t *refs = json_loads(result_refs, 0, NULL), *params = NULL;
    int rc = 0;
    bool any = false;
    for (size_t i = 0; rc == 0 && i < json_array_size(refs); i++) {
        const json_t *pair = json_array_get(refs, i);
        const char *ref = json_string_value(json_array_get(pair, 1));
        if (!ref || strcmp(ref, upstream) != 0)
            continue;
        if (!params && !(params = json_loads(parameters, 0, NULL))) {
            rc = error_set(err, ERRAND_EINVAL, NULL, "the stored parameters are not JSON");
            break;
        }
        if (!any) {
            char *p = json_compact(json_array_get(pair, 0));
            snprintf(first_path, path_size, "%s", p ? p : "");
            mem_free(p);
        }
        any = true;
        json_t *value = result ? json_loads(result, JSON_DECODE_ANY, NULL) : json_null();
        if (!value || !set_at(params, json_array_get(pair, 0), value))
            rc = error_set(err, ERRAND_EINVAL, NULL,
                           "the result of run %s cannot be put in the parameters at %s", upstream,
                           first_path);
    }
    if (rc == 0 && any && !(*out = json_compact(params)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_decref(params);
    json_decref(refs);
    return rc;
}

int run_deps_name_refs(const char *parameters, const char *result_refs, char **out,
                       errand_error *err)
{
    *out = NULL;
    json_t *refs = json_loads(result_refs, 0, NULL);
    json_t *params = json_loads(parameters, 0, NULL);
    int rc = refs && params ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < json_array_size(refs); i++) {
        const json_t *pair = json_array_get(refs, i);
        json_t *ref = json_pack("{s:O}", RUN_DEPS_RESULT_KEY, json_array_get(pair, 1));
        if (!ref || !set_at(params, json_array_get(pair, 0), ref))
            rc = error_set(err, ERRAND_EINVAL, "parameters",
                           "a result reference's place in the parameters was not found");
    }
    if (rc == 0 && !(*out = json_compact(params)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_decref(refs);
    json_decref(params);
    return rc;
}

int run_deps_upstream_ended(const char *parameters, const char *result_refs, bool allow,
                            int pending, const char *upstream, errand_state state,
                            const char *result, const char *result_ref, struct run_deps_step *out,
                            errand_error *err)
{
    memset(out, 0, sizeof *out);
    out->pending = pending > 0 ? pending - 1 : 0;
    bool completed = state == ERRAND_STATE_COMPLETED;
    if (!completed && !allow) {
        out->outcome = RUN_DEPS_CANCEL;
        snprintf(out->message, sizeof out->message, "upstream run %s ended %s", upstream,
                 state_type_name(state));
        return 0;
    }
    char path[RUN_DEPS_MESSAGE_MAX / 2];
    bool unpassable = completed && !result && result_ref;
    errand_error why;
    int rc = fill(parameters, result_refs, upstream, unpassable || !completed ? NULL : result,
                  &out->parameters, path, sizeof path, &why);
    if (rc == ERRAND_ENOMEM)
        return err ? (*err = why, rc) : rc;
    if (rc < 0) { /* stored data it cannot use: this run fails, the upstream's end stands */
        out->outcome = RUN_DEPS_FAIL;
        snprintf(out->message, sizeof out->message, "%s", why.message);
        return 0;
    }
    if (unpassable && out->parameters) {
        mem_free(out->parameters);
        out->parameters = NULL;
        out->outcome = RUN_DEPS_FAIL;
        snprintf(out->message, sizeof out->message,
                 "parameter at %s takes the result of run %s, which was persisted and not "
                 "inlined (larger than the worker's ERRAND_RESULT_INLINE_MAX): only inline "
                 "results are passed downstream",
                 path, upstream);
        return 0;
    }
    out->outcome = out->pending == 0 ? RUN_DEPS_RELEASE : RUN_DEPS_WAIT;
    if (out->outcome == RUN_DEPS_WAIT)
        run_deps_waiting_message(out->pending, out->message, sizeof out->message);
    return 0;
}

/* --- planning a new run ------------------------------------------------------------------ */

void run_deps_plan_clear(struct run_deps_plan *p)
{
    mem_free(p->wait_for);
    mem_free(p->result_refs);
    mem_free(p->parameters);
    mem_free(p->upstream_ids);
    mem_free(p->edges);
    memset(p, 0, sizeof *p);
}

int run_deps_plan_begin(const struct run_spec *spec, const char *const *ids, size_t n_ids,
                        struct run_deps_plan *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    out->state = ERRAND_STATE_SCHEDULED;
    out->name = STATE_NAME_SCHEDULED;
    int rc = run_deps_resolve(spec->wait_for, false, ids, n_ids, &out->wait_for, err);
    if (rc == 0 && spec->result_refs)
        rc = run_deps_resolve(spec->result_refs, true, ids, n_ids, &out->result_refs, err);
    if (rc == 0 && out->result_refs && strcmp(out->result_refs, spec->result_refs) != 0)
        rc = run_deps_name_refs(spec->parameters, out->result_refs, &out->parameters, err);
    json_t *ups = rc == 0 ? json_loads(out->wait_for, 0, NULL) : NULL;
    size_t n = json_array_size(ups);
    if (rc == 0 && !ups)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (rc == 0 && n > 0 &&
        (!(out->upstream_ids = mem_calloc(n, sizeof *out->upstream_ids)) ||
         !(out->edges = mem_calloc(n, sizeof *out->edges))))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        run_copy_fixed(out->upstream_ids[out->n_upstream++], UUID_STR_LEN,
                       json_string_value(json_array_get(ups, i)));
    json_decref(ups);
    if (rc < 0)
        run_deps_plan_clear(out);
    return rc;
}

int run_deps_plan_apply(const struct run_spec *spec, const struct run_deps_upstream *ups,
                        struct run_deps_plan *out, errand_error *err)
{
    int pending = (int)out->n_upstream;
    for (size_t i = 0; i < out->n_upstream; i++) {
        const char *id = out->upstream_ids[i];
        if (!ups[i].found)
            return error_set(err, ERRAND_EINVAL, "wait_for",
                             "wait_for names run '%s', which does not exist (never submitted, "
                             "or deleted after it finished: ERRAND_RETENTION_SECONDS)",
                             id);
        if (!state_is_final(ups[i].state)) {
            memcpy(out->edges[out->pending++], id, UUID_STR_LEN);
            continue;
        }
        if (out->state != ERRAND_STATE_SCHEDULED)
            continue; /* ended by an earlier one already */
        struct run_deps_step step;
        int rc =
            run_deps_upstream_ended(out->parameters ? out->parameters : spec->parameters,
                                    out->result_refs, spec->allow_upstream_failure, pending, id,
                                    ups[i].state, ups[i].result, ups[i].result_ref, &step, err);
        if (rc < 0)
            return rc;
        pending = step.pending;
        if (step.parameters) {
            mem_free(out->parameters);
            out->parameters = step.parameters;
        }
        if (step.outcome == RUN_DEPS_CANCEL || step.outcome == RUN_DEPS_FAIL) {
            bool cancel = step.outcome == RUN_DEPS_CANCEL;
            out->state = cancel ? ERRAND_STATE_CANCELLED : ERRAND_STATE_FAILED;
            out->name =
                cancel ? RUN_DEPS_NAME_UPSTREAM_FAILED : state_default_name(ERRAND_STATE_FAILED);
            memcpy(out->message, step.message, sizeof out->message);
        }
    }
    if (out->state != ERRAND_STATE_SCHEDULED) {
        out->pending = 0; /* ended: nothing to wait for */
    } else if (out->pending > 0) {
        out->name = RUN_DEPS_NAME_WAITING;
        run_deps_waiting_message(out->pending, out->message, sizeof out->message);
    }
    return 0;
}
