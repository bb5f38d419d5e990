/* SPDX-License-Identifier: MIT */
/*
 * run_view.h — how the CLI shows one task run: the waiting and final outcome shared by
 * `errand submit --wait` and `errand runs wait`, and the detailed view of `errand runs show`.
 */
#ifndef ERRAND_CLI_RUN_VIEW_H
#define ERRAND_CLI_RUN_VIEW_H

#include <jansson.h>
#include <stdbool.h>

#include "args.h"
#include "errand/errand.h"

/* Waits until run `id` is final (timeout_seconds < 0: no limit), then prints its outcome:
 * "state: ..." and "result: ..." lines, or the run as JSON (with its result filled in) when
 * as_json. Returns CLI_EXIT_OK when the run COMPLETED, CLI_EXIT_FAILURE otherwise (FAILED,
 * CRASHED, CANCELLED or timed out, with the reason on stderr). */
int run_view_wait(const struct cli_command *cmd, errand_client *c, const char *id,
                  double timeout_seconds, bool as_json);

/* `errand runs show`: the run's fields and its state history (a table), or one JSON object
 * (the run with a "states" array added) when as_json. */
int run_view_show(const struct cli_command *cmd, errand_client *c, const char *id, bool as_json);

#endif
