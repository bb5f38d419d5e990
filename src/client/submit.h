/* SPDX-License-Identifier: MIT */
/*
 * submit.h — turning a submission (task, parameters, errand_submit_options, or a task
 * definition's defaults) into the JSON body of POST /api/task_runs (docs/api.md). Pure: no
 * I/O, unit-tested in tests/unit/test_client_submit.c.
 */
#ifndef ERRAND_CLIENT_SUBMIT_H
#define ERRAND_CLIENT_SUBMIT_H

#include <jansson.h>

#include "errand/errand.h"

/* Builds one submission object. opt NULL = defaults. prefix names the element in errors
 * ("runs[3]") or is NULL. */
int submit_build(const char *task, const char *params_json, const errand_submit_options *opt,
                 const char *prefix, json_t **out, errand_error *err);

/* Adds deps (NULL = none) to a submission object: wait_for and allow_upstream_failure. */
int submit_add_deps(json_t *submission, const errand_dependencies *deps, const char *prefix,
                    errand_error *err);

/* The submission options a task definition implies for these parameters (retries, delays,
 * jitter, timeout, persistence, and the cache key of ERRAND_CACHE_INPUTS_AND_VERSION into
 * key_buf). */
int submit_options_from_def(const errand_task_def *def, const char *params_json,
                            errand_submit_options *opt, char key_buf[65], errand_error *err);

#endif
