/* SPDX-License-Identifier: MIT */
/*
 * task_ctx.h — errand_task_ctx, what a C task function sees of its run: the run (id,
 * attempt, stop flag), where its logs go, and what it asked for (a failure message, whether
 * a retry may help, persistence). Lives on the executor thread's stack for one call; only
 * that thread writes it. In isolated mode (isolated_task.h) it lives in the child process,
 * where logs go to a file descriptor and the stop flag is the child's own. The errand_task_*
 * functions of errand.h are in task_ctx.c.
 */
#ifndef ERRAND_WORKER_TASK_CTX_H
#define ERRAND_WORKER_TASK_CTX_H

#include <signal.h>
#include <stdbool.h>

#include "errand/errand.h"
#include "worker/report_wire.h"
#include "worker/reporter.h"
#include "worker/stdout_capture.h"
#include "worker/subtask.h"
#include "worker/wrun.h"

struct errand_task_ctx {
    struct wrun *run;
    reporter *reporter;
    bool fail_set;
    bool retryable; /* default true */
    int persist;    /* -1 = the task did not say */
    char fail_message[REPORT_MESSAGE_MAX];
    struct capture_sink sink;         /* its printed lines, when log prints are on */
    int log_fd;                       /* >= 0 in an isolated child: errand_task_log() writes here */
    volatile sig_atomic_t *stop_flag; /* in an isolated child: set when asked to stop */
    /* Subtasks (subtask.h): the worker's settings (NULL: the ctx cannot submit), the client
       made on the first errand_task_submit/wait (freed by task_ctx_clear), and in an
       isolated child the fd that turns readable when it is asked to stop (else -1: the
       run's wake fd). */
    const struct subtask_env *sub;
    errand_client *client;
    int cancel_fd;
};

/* Prepares ctx for one call of a task function. */
void task_ctx_init(struct errand_task_ctx *ctx, struct wrun *run, reporter *rep);

/* Frees what the call left (its client), after the task function returned. */
void task_ctx_clear(struct errand_task_ctx *ctx);

/* A line_fn that ships a printed line as an info log of the ctx's run. */
void task_ctx_print_line(void *ctx, const char *line, size_t len);

#endif
