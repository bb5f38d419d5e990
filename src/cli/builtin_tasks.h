/* SPDX-License-Identifier: MIT */
/*
 * builtin_tasks.h — the tasks `errand worker --builtin` serves, for trying errand out and
 * for tests without writing a task:
 *   errand.noop   returns its parameters unchanged;
 *   errand.sleep  {"seconds": x} sleeps x seconds (stopping early when cancelled or timed
 *                 out) and returns {"slept": x}.
 */
#ifndef ERRAND_CLI_BUILTIN_TASKS_H
#define ERRAND_CLI_BUILTIN_TASKS_H

#include "errand/errand.h"

#define BUILTIN_TASK_NOOP "errand.noop"
#define BUILTIN_TASK_SLEEP "errand.sleep"

/* Adds every built-in task to w. */
int builtin_tasks_add(errand_worker *w, errand_error *err);

#endif
