/* SPDX-License-Identifier: MIT */
/*
 * task_ctx.c — the functions a task calls on its context (errand.h, "Inside a task
 * function").
 */
#include "worker/task_ctx.h"

#include <stdarg.h>
#include <stdio.h>

#include "worker/isolated_task.h"

void task_ctx_init(struct errand_task_ctx *ctx, struct wrun *run, reporter *rep)
{
    ctx->run = run;
    ctx->reporter = rep;
    ctx->fail_set = false;
    ctx->retryable = true;
    ctx->persist = -1;
    ctx->fail_message[0] = '\0';
    ctx->sink.emit = task_ctx_print_line;
    ctx->sink.ctx = ctx;
    ctx->sink.lines.len = 0;
    ctx->log_fd = -1;
    ctx->stop_flag = NULL;
    ctx->sub = NULL;
    ctx->client = NULL;
    ctx->cancel_fd = -1;
}

void task_ctx_clear(struct errand_task_ctx *ctx)
{
    errand_client_free(ctx->client);
    ctx->client = NULL;
}

void task_ctx_print_line(void *arg, const char *line, size_t len)
{
    struct errand_task_ctx *ctx = arg;
    (void)len;
    reporter_log(ctx->reporter, ctx->run->id, ERRAND_LOG_INFO, line);
}

const char *errand_task_run_id(const errand_task_ctx *ctx)
{
    return ctx ? ctx->run->id : NULL;
}

const char *errand_task_traceparent(const errand_task_ctx *ctx)
{
    return ctx && ctx->run->traceparent[0] ? ctx->run->traceparent : NULL;
}

int errand_task_attempt(const errand_task_ctx *ctx)
{
    return ctx ? ctx->run->attempt : 0;
}

bool errand_task_should_stop(const errand_task_ctx *ctx)
{
    if (!ctx)
        return false;
    if (ctx->stop_flag && *ctx->stop_flag)
        return true;
    return wrun_stop_reason(ctx->run) != STOP_NONE;
}

void errand_task_log(errand_task_ctx *ctx, errand_log_level level, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return;
    char text[REPORT_LOG_MESSAGE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (ctx->log_fd >= 0)
        isolated_task_log(ctx->log_fd, (int)level, text);
    else
        reporter_log(ctx->reporter, ctx->run->id, (int)level, text);
}

void errand_task_fail(errand_task_ctx *ctx, bool retryable, const char *fmt, ...)
{
    if (!ctx)
        return;
    ctx->fail_set = true;
    ctx->retryable = retryable;
    if (!fmt) {
        ctx->fail_message[0] = '\0';
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->fail_message, sizeof ctx->fail_message, fmt, ap);
    va_end(ap);
}

void errand_task_persist_result(errand_task_ctx *ctx, bool persist)
{
    if (ctx)
        ctx->persist = persist ? 1 : 0;
}
