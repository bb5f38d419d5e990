/* SPDX-License-Identifier: MIT */
/*
 * executor.h — the pool of `concurrency + max_waiting` threads that run claimed runs (at most
 * `concurrency` of them holding a slot; the others run in the place of runs that wait for
 * subtasks with their slots lent, see run_queue.h and subtask.h): each pops a run from
 * the run queue, reports RUNNING, arms its timeout, calls the C task function on its own
 * thread (or runs the exec task's command through process.h), and reports the outcome
 * (COMPLETED with the result inline and/or persisted, FAILED with a message, CANCELLED).
 *
 * Timeouts: at the deadline the watchdog reports the run FAILED "task timed out after Ns" and
 * errand_task_should_stop() turns true. A C function cannot be interrupted, so its thread
 * (and slot) stays busy until the function returns; its late result is discarded. Exec tasks
 * are killed.
 *
 * Each thread's record (struct slot, one per thread) records the run it executes, under the
 * executor's mutex, so shutdown can find and stop running runs.
 */
#ifndef ERRAND_WORKER_EXECUTOR_H
#define ERRAND_WORKER_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "worker/process.h"
#include "client/s3.h"
#include "worker/reporter.h"
#include "worker/run_queue.h"
#include "worker/stats.h"
#include "worker/subtask.h"
#include "worker/watchdog.h"

struct executor_env {
    struct run_queue *queue;
    reporter *reporter;
    watchdog *watchdog;
    struct worker_counters *stats;
    const char *storage_path;     /* absolute */
    const struct s3_location *s3; /* results go there instead when not NULL */
    bool persist_by_default;
    size_t inline_max; /* results up to this many bytes are reported inline */
    bool log_prints;
    /* Isolated mode: C task functions run in child processes (isolated_task.h) that
       fork_server starts. The limits (only those fields) apply to every task process, exec
       or C. */
    bool isolate;
    fork_server *fork_server;
    /* What errand_task_submit/wait need (subtask.h); lives as long as the worker. */
    const struct subtask_env *sub;
    /* Called (from an executor thread) when the fork server has died: the run was handed
       back, and the worker must stop; message says why. */
    void (*on_fatal)(void *owner, const char *message);
    struct process_spec limits;
    /* Each thread calls this as the very last thing it does (the worker drops a reference
       it took for the thread, so a task still running after serve() returned keeps the
       worker alive). */
    void (*on_thread_exit)(void *owner);
    void *owner;
};

typedef struct executor executor;

/* Starts n threads. before_thread(owner) is called once per thread started (to take the
 * reference on_thread_exit drops). */
int executor_start(const struct executor_env *env, size_t n, void (*before_thread)(void *owner),
                   executor **out, errand_error *err);

/* Shutdown, after the queue was closed and the grace period ran out: every running run gets
 * STOP_SHUTDOWN; C tasks still running are handed back (SCHEDULED) now (their threads are
 * left to finish); exec tasks are killed and are handed back as they end. */
void executor_abandon(executor *ex);

/* Waits until no exec task runs (their processes were killed) or deadline_ms passes. */
bool executor_wait_exec_done(executor *ex, int64_t deadline_ms);

/* After the queue was closed: joins every thread that is not inside a task function (so each
 * has ended, its thread-specific data destroyed, before the process may exit) and detaches
 * the others. Those finish on their own, and still use the executor: free it only once every
 * thread called on_thread_exit. */
void executor_release(executor *ex);
void executor_free(executor *ex);

/* The outcome message of a run stopped for this reason (a generic one for STOP_NONE). */
const char *executor_stop_message(enum stop_reason why);

#endif
