/* SPDX-License-Identifier: MIT */
/*
 * stdout_capture.h — "log prints": what C task functions print to stdout becomes log lines
 * of their run.
 *
 * While installed, the process's `stdout` is a fopencookie() stream, unbuffered, whose write
 * callback looks at a thread-local sink: on a thread running a task (between
 * stdout_capture_begin and _end) the bytes are split into lines and each line goes to the
 * sink; on any other thread they go straight to file descriptor 1. Installation is counted,
 * so several workers in one process share it; the last uninstall puts the original stdout
 * back. The cookie stream itself is created once and never closed, so a task thread still
 * printing after serve() returned never touches a freed FILE.
 *
 * Limits: only writes through the `stdout` FILE are seen (printf, puts, fwrite(stdout));
 * write(1, ...) and a FILE* copied from stdout before serve() started are not captured, and
 * neither is the output of child processes.
 */
#ifndef ERRAND_WORKER_STDOUT_CAPTURE_H
#define ERRAND_WORKER_STDOUT_CAPTURE_H

#include "errand/errand.h"
#include "worker/line_buffer.h"

struct capture_sink {
    line_fn emit; /* called with each complete line */
    void *ctx;
    struct line_buffer lines;
};

int stdout_capture_install(errand_error *err);
void stdout_capture_uninstall(void);

/* This thread's stdout lines go to sink until stdout_capture_end(), which also emits a last
 * line without a newline. */
void stdout_capture_begin(struct capture_sink *sink);
void stdout_capture_end(void);

#endif
