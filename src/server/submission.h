/* SPDX-License-Identifier: MIT */
/*
 * submission.h — a task-run submission read from the wire: the JSON body of POST
 * /api/task_runs (or one element of a batch) checked field by field and turned into a
 * run_spec (store/run_spec.h) the store can insert without further checks. Every rejection
 * names the field, as docs/api.md lists.
 */
#ifndef ERRAND_SERVER_SUBMISSION_H
#define ERRAND_SERVER_SUBMISSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/wire_limits.h"
#include "errand/errand.h"
#include "store/run_spec.h"

/* The fields a submission may have, and a batch body (NULL-terminated): anything else is
 * refused with unknown_field. Exported so that test_openapi can hold them against the API's
 * OpenAPI document (docs/openapi.json). */
extern const char *const run_spec_fields[];
extern const char *const run_spec_batch_fields[];

/* Parses one submission object. prefix names it in errors ("runs[3]" or NULL). now_ms
 * resolves delay_seconds. On failure spec holds nothing to free. */
int run_spec_parse(const json_t *obj, const char *prefix, int64_t now_ms, struct run_spec *spec,
                   errand_error *err);

/* Parses {"runs": [...]}: *specs is a mem_alloc'd array of *n specs. */
int run_spec_parse_batch(const json_t *body, int64_t now_ms, struct run_spec **specs, size_t *n,
                         errand_error *err);

/* The traceparent request header (NULL = none) for the n specs that carry no traceparent of
 * their own. A header that is not a valid traceparent is ignored, as the W3C recommendation
 * says a receiver does; 0 or ERRAND_ENOMEM. */
int run_spec_trace_default(struct run_spec *specs, size_t n, const char *header, errand_error *err);

#endif
