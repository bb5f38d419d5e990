/* SPDX-License-Identifier: MIT */
/*
 * task_request.h — the seed's StructuredOutputRequest: reads payload (required), target_type
 * (required) and instructions (optional) from a submitted form or JSON body, checks them, and
 * builds the run's parameters {"payload", "target", "instructions"} — the arguments of
 * create_structured_output(payload, target=..., instructions=...).
 *
 * payload: in a form, text that parses as JSON is that JSON value, other text becomes
 *   {"data": <text>} (as the upstream page sends it); in a JSON body, any value but null.
 * target_type: a type expression or a JSON Schema (see target_type.h); refused here, with
 *   the reason, when the task could not use it.
 * instructions: text; empty means none.
 * Problems are reported all at once, as FastAPI's 422 "detail" list.
 */
#ifndef SO_TASK_REQUEST_H
#define SO_TASK_REQUEST_H

#include <jansson.h>

#include "form.h"

/* Returns 0 with *params (new reference), or -1 with *detail (new reference, a non-empty
 * FastAPI detail array). */
int task_request_read(const form *f, json_t **params, json_t **detail);

#endif
