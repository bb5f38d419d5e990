/* SPDX-License-Identifier: MIT */
/*
 * process.h — running a task in a process of its own: an exec task's command (/bin/sh -c
 * COMMAND), or a C task function in a process forked by the worker's fork server (isolated
 * mode, fork_server.h), in its own process group, within optional memory and CPU limits, with the
 * run's parameters on stdin, stdout collected (the result), stderr kept as a bounded tail (the
 * failure message) and, optionally, handed over line by line (log prints).
 *
 * One poll() loop does the I/O on the calling thread and asks should_stop() every
 * PROCESS_POLL_MS; once it says yes (timeout, cancellation, shutdown), the process group gets
 * SIGTERM and, PROCESS_KILL_GRACE_MS later, SIGKILL. SIGPIPE is blocked on the calling thread
 * while it writes to a child that may have gone.
 */
#ifndef ERRAND_WORKER_PROCESS_H
#define ERRAND_WORKER_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "errand/errand.h"
#include "worker/fork_server.h"
#include "worker/line_buffer.h"

/* Bytes of stderr kept for the failure message. */
#define PROCESS_STDERR_TAIL_MAX 4096
/* Stdout beyond this fails the run (a result that large belongs in a file). */
#define PROCESS_STDOUT_MAX (64L * 1024 * 1024)
/* How often the loop checks should_stop() while the command is quiet. */
#define PROCESS_POLL_MS 50
/* Between SIGTERM and SIGKILL. */
#define PROCESS_KILL_GRACE_MS 2000

typedef bool (*process_stop_fn)(void *ctx);

/* What the process runs, and within what limits. */
struct process_spec {
    const char *command; /* /bin/sh -c command; or NULL and fork_server: */
    /* Starts the process (fork_server.h): the function it was started with runs with stdin,
       stdout and stderr on the pipes. */
    fork_server *fork_server;
    /* The W3C traceparent the command gets as TRACEPARENT in its environment (the
       OpenTelemetry environment carrier), NULL = none; a TRACEPARENT of the worker's own
       environment is never passed on. */
    const char *traceparent;
    /* 0 = none. Data size (RLIMIT_DATA: heap and private mappings) the process may add to
       what it has when it starts (a forked copy already holds its parent's), so a runaway
       allocation fails there; it holds under AddressSanitizer too, unlike an address-space
       limit. */
    size_t memory_limit_bytes;
    /* 0 = none. CPU seconds (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later. */
    double cpu_limit_seconds;
};

struct process_result {
    bool exited; /* exited normally with exit_code */
    int exit_code;
    int term_signal; /* > 0 when a signal ended it */
    bool stopped;    /* should_stop() said yes and the process was signalled */
    bool out_too_big;
    char *out; /* stdout, NUL-terminated (mem_free via process_result_clear) */
    size_t out_len;
    char err_tail[PROCESS_STDERR_TAIL_MAX + 1]; /* the last bytes of stderr, NUL-terminated */
    size_t err_tail_len;
};

/* Runs the spec's process to its end. on_stderr_line (may be NULL) receives each stderr line.
 * Returns 0 once the process ended (whatever its status), or ERRAND_EIO/ENOMEM when it could
 * not be started. */
int process_run(const struct process_spec *spec, const char *input, size_t input_len,
                process_stop_fn should_stop, line_fn on_stderr_line, void *ctx,
                struct process_result *res, errand_error *err);
void process_result_clear(struct process_result *res);

/* In a newly forked task process (fork_server.c): makes it the leader of its own group,
 * restores the signals' defaults and an empty mask, puts in, out and errp on stdin, stdout
 * and stderr (closing them) and sets the limits on itself. */
void process_enter_child(int in, int out, int errp, const struct fork_limits *limits);

#endif
