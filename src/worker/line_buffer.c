/* SPDX-License-Identifier: MIT */
/*
 * line_buffer.c — splitting output into lines (see line_buffer.h).
 */
#include "worker/line_buffer.h"

#include <string.h>

static void emit_line(struct line_buffer *lb, line_fn emit, void *ctx)
{
    size_t n = lb->len;
    if (n > 0 && lb->buf[n - 1] == '\r')
        n--;
    lb->buf[n] = '\0'; /* n < LINE_BUFFER_MAX: there is room, see line_buffer_feed */
    emit(ctx, lb->buf, n);
    lb->len = 0;
}

void line_buffer_feed(struct line_buffer *lb, const char *data, size_t n, line_fn emit, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            emit_line(lb, emit, ctx);
            continue;
        }
        lb->buf[lb->len++] = data[i];
        if (lb->len == LINE_BUFFER_MAX - 1) /* keep one byte for the NUL */
            emit_line(lb, emit, ctx);
    }
}

void line_buffer_flush(struct line_buffer *lb, line_fn emit, void *ctx)
{
    if (lb->len > 0)
        emit_line(lb, emit, ctx);
}
