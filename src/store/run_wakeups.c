/* SPDX-License-Identifier: MIT */
/*
 * run_wakeups.c — wake-ups a transaction's side effects owe (run_wakeups.h).
 */
#include "store/run_wakeups.h"

#include <string.h>

void run_wakeups_task(struct run_wakeups *w, const char *task)
{
    if (!w->fn || w->all_tasks)
        return;
    for (size_t i = 0; i < w->n_tasks; i++)
        if (strcmp(w->tasks[i], task) == 0)
            return;
    if (w->n_tasks == RUN_WAKEUPS_TASKS ||
        !run_copy_fixed(w->tasks[w->n_tasks], RUN_TALLY_TASK_MAX, task))
        w->all_tasks = true;
    else
        w->n_tasks++;
}

void run_wakeups_any_task(struct run_wakeups *w)
{
    if (w->fn)
        w->all_tasks = true;
}

void run_wakeups_run(struct run_wakeups *w, const char *id)
{
    if (!w->fn || w->all_runs)
        return;
    if (w->n_runs == RUN_WAKEUPS_RUNS || !run_copy_fixed(w->runs[w->n_runs], UUID_STR_LEN, id))
        w->all_runs = true;
    else
        w->n_runs++;
}

void run_wakeups_flush(struct run_wakeups *w)
{
    if (!w->fn)
        return;
    if (w->all_tasks)
        w->fn(w->arg, STORE_SIGNAL_RUNS_DUE, NULL);
    else
        for (size_t i = 0; i < w->n_tasks; i++)
            w->fn(w->arg, STORE_SIGNAL_RUNS_DUE, w->tasks[i]);
    if (w->all_runs)
        w->fn(w->arg, STORE_SIGNAL_RUN_FINAL, NULL);
    else
        for (size_t i = 0; i < w->n_runs; i++)
            w->fn(w->arg, STORE_SIGNAL_RUN_FINAL, w->runs[i]);
    w->n_tasks = w->n_runs = 0;
    w->all_tasks = w->all_runs = false;
}
