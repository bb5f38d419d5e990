/* SPDX-License-Identifier: MIT */
/*
 * task_table.h — the tasks one worker serves: C functions (errand_worker_add_task) and
 * commands (errand_worker_add_exec), by name. Filled before serve() starts, read-only while
 * serving, so threads read it without a lock.
 */
#ifndef ERRAND_WORKER_TASK_TABLE_H
#define ERRAND_WORKER_TASK_TABLE_H

#include <stddef.h>

#include "core/wire_limits.h"
#include "errand/errand.h"

enum task_kind { TASK_C, TASK_EXEC };

struct task_entry {
    enum task_kind kind;
    char *name;
    /* TASK_C: a deep copy of the definition (name, version and delays owned here). */
    errand_task_def def;
    /* TASK_EXEC: the shell command. */
    char *command;
};

struct task_table {
    struct task_entry **items;
    size_t n, cap;
};

int task_table_add_c(struct task_table *t, const errand_task_def *def, errand_error *err);
int task_table_add_exec(struct task_table *t, const char *name, const char *command,
                        errand_error *err);
const struct task_entry *task_table_find(const struct task_table *t, const char *name);
void task_table_clear(struct task_table *t);

#endif
