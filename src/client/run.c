/* SPDX-License-Identifier: MIT */
/*
 * run.c — errand_run snapshots and their accessors (see run.h).
 */
#include "client/run.h"

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"

int run_wrap(json_t *obj, errand_run **out, errand_error *err)
{
    *out = NULL;
    if (!json_is_object(obj))
        return error_set(err, ERRAND_ESERVER, NULL,
                         "the server sent a task run that is not a JSON object");
    const char *id = json_string_value(json_object_get(obj, "id"));
    json_t *st = json_object_get(obj, "state");
    const char *type = json_string_value(json_object_get(st, "type"));
    errand_state state;
    if (!id || !type || !state_parse(type, &state))
        return error_set(err, ERRAND_ESERVER, NULL,
                         "the server sent a task run without an id or a known state type");
    errand_run *r = mem_calloc(1, sizeof *r);
    if (!r)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    r->text = json_compact(obj);
    if (!r->text) {
        mem_free(r);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    r->root = json_incref(obj);
    r->id = id;
    r->state = state;
    r->task = json_string_value(json_object_get(obj, "task"));
    r->state_name = json_string_value(json_object_get(st, "name"));
    r->message = json_string_value(json_object_get(st, "message"));
    json_t *attempt = json_object_get(obj, "attempt");
    r->attempt = json_is_integer(attempt) ? (int)json_integer_value(attempt) : 0;
    if (!r->task)
        r->task = "";
    if (!r->state_name)
        r->state_name = state_default_name(state);
    if (!r->message)
        r->message = "";
    *out = r;
    return 0;
}

const char *errand_run_id(const errand_run *r)
{
    return r ? r->id : NULL;
}

const char *errand_run_task(const errand_run *r)
{
    return r ? r->task : NULL;
}

errand_state errand_run_state(const errand_run *r)
{
    return r ? r->state : ERRAND_STATE_SCHEDULED;
}

const char *errand_run_state_name(const errand_run *r)
{
    return r ? r->state_name : NULL;
}

const char *errand_run_message(const errand_run *r)
{
    return r ? r->message : NULL;
}

int errand_run_attempt(const errand_run *r)
{
    return r ? r->attempt : 0;
}

const char *errand_run_json(const errand_run *r)
{
    return r ? r->text : NULL;
}

void errand_run_free(errand_run *r)
{
    if (!r)
        return;
    json_decref(r->root);
    mem_free(r->text);
    mem_free(r);
}
