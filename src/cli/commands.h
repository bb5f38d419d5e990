/* SPDX-License-Identifier: MIT */
/*
 * commands.h — the descriptors of every errand command (args.h), one per command, defined in
 * the cmd_*.c file of its group. main.c lists them to dispatch and to print the overview.
 */
#ifndef ERRAND_CLI_COMMANDS_H
#define ERRAND_CLI_COMMANDS_H

#include "args.h"

extern const struct cli_command cmd_server_start;
extern const struct cli_command cmd_worker;
extern const struct cli_command cmd_submit;
extern const struct cli_command cmd_runs_ls;
extern const struct cli_command cmd_runs_show;
extern const struct cli_command cmd_runs_logs;
extern const struct cli_command cmd_runs_cancel;
extern const struct cli_command cmd_runs_retry;
extern const struct cli_command cmd_runs_wait;
extern const struct cli_command cmd_runs_bulk;
extern const struct cli_command cmd_failures;
extern const struct cli_command cmd_runs_result;
extern const struct cli_command cmd_workers_ls;
extern const struct cli_command cmd_tasks_ls;
extern const struct cli_command cmd_tasks_pause;
extern const struct cli_command cmd_tasks_resume;
extern const struct cli_command cmd_limits_ls;
extern const struct cli_command cmd_limits_set;
extern const struct cli_command cmd_limits_rm;
extern const struct cli_command cmd_limits_rate;
extern const struct cli_command cmd_webhooks_ls;
extern const struct cli_command cmd_webhooks_set;
extern const struct cli_command cmd_webhooks_rm;
extern const struct cli_command cmd_schedules_set;
extern const struct cli_command cmd_schedules_ls;
extern const struct cli_command cmd_schedules_rm;
extern const struct cli_command cmd_schedules_pause;
extern const struct cli_command cmd_schedules_resume;
extern const struct cli_command cmd_config;
extern const struct cli_command cmd_health;
extern const struct cli_command cmd_bench;

#endif
