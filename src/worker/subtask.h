/* SPDX-License-Identifier: MIT */
/*
 * subtask.h — a task that submits runs and waits for them (errand_task_submit,
 * errand_task_wait of errand.h), without the deadlock of a worker whose every slot is held
 * by runs waiting for subtasks that no slot is left to run.
 *
 * A run that waits lends its slot (run_queue.h): the worker may start another run in its
 * place, on one of its max_waiting spare executor threads; when the wait ends the run takes
 * a slot back at once. Past max_waiting runs waiting, a wait keeps its slot (a warning, once
 * per worker). In an isolated child process there is no queue: the child tells the worker
 * on its stderr channel that it begins and ends a wait (isolated_task.c), and the executor
 * thread that watches the child lends and takes back the slot for it.
 *
 * The wait is a long-poll that the run's stop (cancel, timeout, shutdown) abandons at once:
 * in the worker's process through the run's wake fd (wrun.h), in a child through a pipe its
 * SIGTERM handler writes to.
 */
#ifndef ERRAND_WORKER_SUBTASK_H
#define ERRAND_WORKER_SUBTASK_H

#include <stdbool.h>

#include "worker/run_queue.h"
#include "worker/wrun.h"

/* What a task's subtask calls need; set up by serve(), read-only while it runs. */
struct subtask_env {
    const char *api_url, *api_key; /* the worker's */
    struct run_queue *queue;       /* in the worker's process; NULL in an isolated child */
    int notify_fd;                 /* in an isolated child: where wait records go; else -1 */
    struct reporter *reporter;     /* in the worker's process: tells the server of waits */
};

/* Lends the slot of run, executing on the caller's thread, to another run (run_queue_lend),
 * logging the first refusal of this queue. True when lent: run_queue_reclaim() after. */
bool subtask_lend(struct run_queue *q, const struct wrun *run);

#endif
