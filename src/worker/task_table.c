/* SPDX-License-Identifier: MIT */
/*
 * task_table.c — the served tasks (see task_table.h). Entries are allocated one by one so
 * the pointers handed to claimed runs stay valid as the table grows.
 */
#include "worker/task_table.h"

#include <string.h>

#include "core/choice.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/wire_limits.h"

static int check_name(const struct task_table *t, const char *name, errand_error *err)
{
    if (!name || !*name)
        return error_set(err, ERRAND_EINVAL, "name", "a served task needs a name");
    if (strlen(name) > WIRE_TASK_NAME_MAX)
        return error_set(err, ERRAND_EINVAL, "name",
                         "task name '%.40s...' is longer than %d characters", name,
                         WIRE_TASK_NAME_MAX);
    if (task_table_find(t, name))
        return error_set(err, ERRAND_EINVAL, "name", "task '%s' is already served by this worker",
                         name);
    return 0;
}

static void entry_free(struct task_entry *e)
{
    if (!e)
        return;
    mem_free(e->name);
    mem_free((char *)e->def.version);
    mem_free((double *)e->def.retry_delays);
    mem_free(e->command);
    mem_free(e);
}

static int append(struct task_table *t, struct task_entry *e, errand_error *err)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct task_entry **items = mem_realloc(t->items, cap * sizeof *items);
        if (!items) {
            entry_free(e);
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory adding a task");
        }
        t->items = items;
        t->cap = cap;
    }
    t->items[t->n++] = e;
    return 0;
}

int task_table_add_c(struct task_table *t, const errand_task_def *def, errand_error *err)
{
    if (!def)
        return error_set(err, ERRAND_EINVAL, "task", "a task definition is required");
    int rc = check_name(t, def->name, err);
    if (rc)
        return rc;
    if (!def->fn)
        return error_set(err, ERRAND_EINVAL, "fn", "task '%s' has no function to run", def->name);
    if (def->n_retry_delays > 0 && !def->retry_delays)
        return error_set(err, ERRAND_EINVAL, "retry_delays",
                         "task '%s': n_retry_delays is %zu but retry_delays is NULL", def->name,
                         def->n_retry_delays);
    if ((rc = choice_check(def->persist_result, "persist_result", err)) < 0)
        return rc;
    struct task_entry *e = mem_calloc(1, sizeof *e);
    if (!e)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory adding a task");
    e->kind = TASK_C;
    e->def = *def;
    e->def.version = NULL;
    e->def.retry_delays = NULL;
    e->name = mem_strdup(def->name);
    char *version = mem_strdup(def->version ? def->version : "1");
    double *delays = NULL;
    if (def->n_retry_delays > 0) {
        delays = mem_alloc(def->n_retry_delays * sizeof *delays);
        if (delays)
            memcpy(delays, def->retry_delays, def->n_retry_delays * sizeof *delays);
    }
    e->def.version = version;
    e->def.retry_delays = delays;
    e->def.name = e->name;
    if (!e->name || !version || (def->n_retry_delays > 0 && !delays)) {
        entry_free(e);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory adding a task");
    }
    return append(t, e, err);
}

int task_table_add_exec(struct task_table *t, const char *name, const char *command,
                        errand_error *err)
{
    int rc = check_name(t, name, err);
    if (rc)
        return rc;
    if (!command || !*command)
        return error_set(err, ERRAND_EINVAL, "command", "exec task '%s' needs a command", name);
    struct task_entry *e = mem_calloc(1, sizeof *e);
    if (!e)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory adding a task");
    e->kind = TASK_EXEC;
    e->name = mem_strdup(name);
    e->command = mem_strdup(command);
    e->def.name = e->name;
    if (!e->name || !e->command) {
        entry_free(e);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory adding a task");
    }
    return append(t, e, err);
}

const struct task_entry *task_table_find(const struct task_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i]->name, name) == 0)
            return t->items[i];
    return NULL;
}

void task_table_clear(struct task_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        entry_free(t->items[i]);
    mem_free(t->items);
    t->items = NULL;
    t->n = t->cap = 0;
}
