/* SPDX-License-Identifier: MIT */
/*
 * isolated_task.h — a C task function run in a process of its own (the worker's isolated
 * mode), so that a segfault, an abort, a runaway allocation or a loop that never ends takes
 * down that run only, never the worker.
 *
 * The child is forked by the worker's fork server (fork_server.h) from the copy of memory
 * it had when serve() started (the task table, the tasks' userdata); it is given the run,
 * calls the task function and sends back what a thread would have: the return code,
 * errand_task_fail()'s message and retryability, errand_task_persist_result()'s choice and the
 * result text. Inside it every errand_task_* call works as on a thread: errand_task_log() lines
 * travel on its stderr (framed, so they keep their level), what it prints goes to the run's logs
 * when log prints are on, and errand_task_should_stop() turns true when the worker asks it to stop
 * (cancel, timeout, shutdown: SIGTERM, then SIGKILL after the process grace). errand_task_submit()
 * and errand_task_wait() make their requests from the child itself, and a wait's start and
 * end travel on stderr too, so the worker lends the run's slot meanwhile (subtask.h).
 *
 * When the child dies before it reports (a signal, an exit, a limit), the outcome says how.
 */
#ifndef ERRAND_WORKER_ISOLATED_TASK_H
#define ERRAND_WORKER_ISOLATED_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "errand/errand.h"
#include "worker/fork_server.h"
#include "worker/process.h"
#include "worker/reporter.h"
#include "worker/run_queue.h"
#include "worker/task_table.h"
#include "worker/wrun.h"

/* What became of one isolated call. */
struct isolated_outcome {
    bool reported; /* the function returned and its outcome arrived; else message says why */
    int rc;        /* the function's return value */
    bool fail_set;
    bool retryable;
    int persist;   /* -1 = the task did not say */
    char *message; /* errand_task_fail()'s, or how the child died (owned; never NULL) */
    char *result;  /* the result JSON text (owned); NULL = none (JSON null) */
    bool stopped;  /* the worker asked it to stop */
};

/* Runs t's function for run in a child process that fs starts (fs was started with
 * isolated_task_child and the table t is in), within the spec's limits (its other fields are
 * ignored). should_stop(stop_ctx) is asked every PROCESS_POLL_MS. Log lines go to rep;
 * printed lines too when log_prints. Returns 0 with *out filled, or ERRAND_EIO /
 * ERRAND_ENOMEM when no child could be started. */
int isolated_task_run(fork_server *fs, const struct task_entry *t, struct wrun *run, reporter *rep,
                      bool log_prints, const struct process_spec *limits, struct run_queue *queue,
                      process_stop_fn should_stop, void *stop_ctx, struct isolated_outcome *out,
                      errand_error *err);

/* What every child is given by the fork server's copy of the worker's memory. */
struct isolated_child_env {
    const struct task_table *tasks;
    const char *api_url, *api_key; /* for errand_task_submit/wait in the child */
};

/* What the fork server's children run (fork_server_child_fn): arg is the worker's
 * struct isolated_child_env; the run comes on stdin. */
void isolated_task_child(void *arg);

void isolated_outcome_clear(struct isolated_outcome *out);

/* In the child: sends one errand_task_log() line (framed with its level) on fd. */
void isolated_task_log(int fd, int level, const char *text);

/* In the child: tells the worker on fd that the task begins (or ends) a wait for a subtask,
 * so that the run's slot is lent meanwhile (subtask.h); queue above is where. */
void isolated_task_wait_record(int fd, bool begins);

#endif
