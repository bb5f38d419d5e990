/* SPDX-License-Identifier: MIT */
/*
 * stdout_capture.c — capturing task prints (see stdout_capture.h).
 */
#include "worker/stdout_capture.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "core/error.h"

static pthread_mutex_t capture_mu = PTHREAD_MUTEX_INITIALIZER;
static int capture_users;    /* guarded by capture_mu */
static FILE *capture_stream; /* created once, never closed */
static FILE *saved_stdout;   /* guarded by capture_mu */
static _Thread_local struct capture_sink *thread_sink;

static ssize_t capture_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    struct capture_sink *sink = thread_sink;
    if (sink) {
        line_buffer_feed(&sink->lines, buf, size, sink->emit, sink->ctx);
        return (ssize_t)size;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(STDOUT_FILENO, buf + off, size - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return off > 0 ? (ssize_t)off : -1;
        off += (size_t)w;
    }
    return (ssize_t)size;
}

int stdout_capture_install(errand_error *err)
{
    pthread_mutex_lock(&capture_mu);
    if (capture_users == 0) {
        if (!capture_stream) {
            cookie_io_functions_t io = {.write = capture_write};
            capture_stream = fopencookie(NULL, "w", io);
            if (!capture_stream) {
                pthread_mutex_unlock(&capture_mu);
                return error_set(err, ERRAND_ENOMEM, NULL,
                                 "cannot capture stdout for log prints: fopencookie failed");
            }
            setvbuf(capture_stream, NULL, _IONBF, 0);
        }
        fflush(stdout);
        saved_stdout = stdout;
        stdout = capture_stream;
    }
    capture_users++;
    pthread_mutex_unlock(&capture_mu);
    return 0;
}

void stdout_capture_uninstall(void)
{
    pthread_mutex_lock(&capture_mu);
    if (capture_users > 0 && --capture_users == 0) {
        stdout = saved_stdout;
        saved_stdout = NULL;
    }
    pthread_mutex_unlock(&capture_mu);
}

void stdout_capture_begin(struct capture_sink *sink)
{
    sink->lines.len = 0;
    thread_sink = sink;
}

void stdout_capture_end(void)
{
    struct capture_sink *sink = thread_sink;
    if (!sink)
        return;
    thread_sink = NULL;
    line_buffer_flush(&sink->lines, sink->emit, sink->ctx);
}
