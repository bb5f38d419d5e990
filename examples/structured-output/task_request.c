/* SPDX-License-Identifier: MIT */
/*
 * task_request.c — validation of a submission (see task_request.h). Form fields and JSON
 * members go through the same checks; they differ only in how a value is read (form fields
 * are always text, so an empty one counts as missing, as FastAPI treats empty form values).
 */
#include "task_request.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http_reply.h"
#include "target_type.h"

#define MSG_MISSING "Field required"
#define MSG_STRING "Input should be a valid string"
#define MSG_UNICODE "Input should be a valid string, unable to parse raw data as a unicode string"
#define MSG_MAX (TARGET_WHY_MAX + 32)

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

/* A form's payload text: the JSON value it spells, else {"data": text}. */
static json_t *payload_from_text(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_pack("{s:s}", "data", text);
}

static void add_target(json_t *params, json_t *detail, json_t *target_value)
{
    target_type t;
    char why[TARGET_WHY_MAX];
    if (target_type_parse_json(target_value, &t, why) != 0) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "Value error, %s", why);
        detail_add(detail, "body", "target_type", "value_error", msg, json_incref(target_value));
        return;
    }
    json_object_set(params, "target", t.canonical);
    target_type_clear(&t);
}

/* Form fields are raw bytes; JSON text (and so the run's parameters) must be UTF-8. */
static bool check_utf8(json_t *detail, const char *name, const char *value)
{
    json_t *probe = value ? json_string(value) : NULL;
    if (value && !probe) {
        detail_add(detail, "body", name, "string_unicode", MSG_UNICODE, NULL);
        return false;
    }
    json_decref(probe);
    return true;
}

static void read_form_fields(const form *f, json_t *params, json_t *detail)
{
    const char *payload = form_field(f, "payload");
    const char *target = form_field(f, "target_type");
    const char *instructions = form_field(f, "instructions");
    bool ok = check_utf8(detail, "payload", payload);
    ok = check_utf8(detail, "target_type", target) && ok;
    ok = check_utf8(detail, "instructions", instructions) && ok;
    if (!ok)
        return;
    if (blank(payload))
        detail_add(detail, "body", "payload", "missing", MSG_MISSING, NULL);
    else
        json_object_set_new(params, "payload", payload_from_text(payload));
    if (blank(target)) {
        detail_add(detail, "body", "target_type", "missing", MSG_MISSING, NULL);
    } else {
        json_t *text = json_string(target);
        add_target(params, detail, text);
        json_decref(text);
    }
    json_object_set_new(params, "instructions",
                        blank(instructions) ? json_null() : json_string(instructions));
}

static void read_json_body(const form *f, json_t *params, json_t *detail)
{
    const char *text = form_json_text(f);
    json_t *body = blank(text) ? json_object() : NULL;
    json_error_t jerr;
    if (!body && !(body = json_loads(text, JSON_DECODE_ANY, &jerr))) {
        json_t *loc = json_pack("[s, I]", "body", (json_int_t)jerr.position);
        json_array_append_new(
            detail, json_pack("{s:s, s:o, s:s, s:{}, s:{s:s}}", "type", "json_invalid", "loc", loc,
                              "msg", "JSON decode error", "input", "ctx", "error", jerr.text));
        return;
    }
    if (!json_is_object(body)) {
        detail_add(detail, "body", NULL, "dict_type", "Input should be a valid dictionary",
                   json_incref(body));
        json_decref(body);
        return;
    }
    json_t *payload = json_object_get(body, "payload");
    json_t *target = json_object_get(body, "target_type");
    json_t *instructions = json_object_get(body, "instructions");
    if (!payload || json_is_null(payload))
        detail_add(detail, "body", "payload", "missing", MSG_MISSING, NULL);
    else
        json_object_set(params, "payload", payload);
    if (!target || json_is_null(target))
        detail_add(detail, "body", "target_type", "missing", MSG_MISSING, NULL);
    else if (!json_is_string(target) && !json_is_object(target))
        detail_add(detail, "body", "target_type", "string_type", MSG_STRING, json_incref(target));
    else
        add_target(params, detail, target);
    if (instructions && !json_is_null(instructions) && !json_is_string(instructions))
        detail_add(detail, "body", "instructions", "string_type", MSG_STRING,
                   json_incref(instructions));
    else
        json_object_set_new(params, "instructions",
                            !instructions || blank(json_string_value(instructions))
                                ? json_null()
                                : json_incref(instructions));
    json_decref(body);
}

int task_request_read(const form *f, json_t **params, json_t **detail)
{
    *params = json_object();
    *detail = json_array();
    switch (form_get_kind(f)) {
    case FORM_FIELDS:
        read_form_fields(f, *params, *detail);
        break;
    case FORM_JSON:
        read_json_body(f, *params, *detail);
        break;
    case FORM_NONE:
        detail_add(*detail, "body", "payload", "missing", MSG_MISSING, NULL);
        detail_add(*detail, "body", "target_type", "missing", MSG_MISSING, NULL);
        break;
    }
    if (json_array_size(*detail) == 0) {
        json_decref(*detail);
        *detail = NULL;
        return 0;
    }
    json_decref(*params);
    *params = NULL;
    return -1;
}
