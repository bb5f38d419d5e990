/* SPDX-License-Identifier: MIT */
/*
 * line_buffer.h — assembles lines from chunks of output (a task's stdout writes, an exec
 * task's stderr reads) and hands each complete line, without its newline, to a callback.
 * A line longer than LINE_BUFFER_MAX is handed over in pieces of that size, so the buffer
 * never grows. Pure; owned by one thread at a time; unit-tested.
 */
#ifndef ERRAND_WORKER_LINE_BUFFER_H
#define ERRAND_WORKER_LINE_BUFFER_H

#include <stddef.h>

#define LINE_BUFFER_MAX 8192

typedef void (*line_fn)(void *ctx, const char *line, size_t len);

struct line_buffer {
    char buf[LINE_BUFFER_MAX];
    size_t len;
};

/* Appends data; emits every line it completes. */
void line_buffer_feed(struct line_buffer *lb, const char *data, size_t n, line_fn emit, void *ctx);
/* Emits what is left (a last line without a newline) and empties the buffer. */
void line_buffer_flush(struct line_buffer *lb, line_fn emit, void *ctx);

#endif
