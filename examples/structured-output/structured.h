/* SPDX-License-Identifier: MIT */
/*
 * structured.h — the create_structured_output task function: the C version of the seed's
 * task.py. It reads the run's parameters {"payload", "target", "instructions"}, asks the
 * chat-completions endpoint for JSON matching the target's schema, checks the answer against
 * that schema and returns the typed value (3.14 for float, ["a","b"] for list[str]).
 * Failures a retry cannot fix (a bad key, a rejected request, nothing configured) fail the
 * run at once; the others (rate limits, 5xx, a malformed answer) are left to the retries.
 */
#ifndef SO_STRUCTURED_H
#define SO_STRUCTURED_H

#include "errand/errand.h"

/* An errand_task_fn; userdata is the process's const openai_config *. */
int structured_output_run(errand_task_ctx *ctx, const char *params_json, char **result_json,
                          void *userdata);

#endif
