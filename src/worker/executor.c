/* SPDX-License-Identifier: MIT */
/*
 * executor.c — the executor threads and what happens to one run (see executor.h).
 */
#include "worker/executor.h"

#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/choice.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "client/trace.h"
#include "worker/isolated_task.h"
#include "worker/process.h"
#include "worker/report_wire.h"
#include "worker/result_store.h"
#include "worker/stdout_capture.h"
#include "worker/sync.h"
#include "worker/task_ctx.h"
#include "worker/task_table.h"

/* How much of an exec task's unparsable stdout the failure message quotes. */
#define INVALID_OUTPUT_QUOTE_MAX 200
/* The log entry that records a run's trace: three fields and two traceparents. */
#define TRACE_LOG_LINE_MAX (2 * TRACEPARENT_LEN + 80)
/* On release, how long threads that are not inside a task may take to end. */
#define EXECUTOR_JOIN_TIMEOUT_MS 5000

struct slot {
    executor *ex;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards the two below; one per slot, so it is never contended */
    struct wrun *run;   /* what it executes now, or NULL */
    bool in_child;
};

struct executor {
    struct executor_env env;
    pthread_mutex_t mu;
    pthread_cond_t changed;  /* a slot's run ended (signalled only while someone waits) */
    atomic_int exec_waiters; /* threads in executor_wait_exec_done */
    struct slot *slots;
    size_t n;
};

/* What became of one execution, before it is reported. */
struct outcome {
    bool ok;
    json_t *result; /* ok: the result (owned) */
    size_t size;    /* ok: bytes of its compact JSON */
    char message[REPORT_MESSAGE_MAX];
    bool retryable;
    bool hand_back;   /* not the task's doing (the worker cannot run it): back to the queue */
    int task_persist; /* errand_task_persist_result()'s: -1 (no call) / 0 / 1 */
    int def_persist;  /* the task definition's, as -1 (ERRAND_DEFAULT) / 0 / 1 */
};

const char *executor_stop_message(enum stop_reason why)
{
    switch (why) {
    case STOP_CANCEL:
        return "the task run was cancelled";
    case STOP_TIMEOUT:
        return "task timed out";
    case STOP_LEASE_LOST:
        return "the worker lost the run's lease";
    case STOP_SHUTDOWN:
        return "worker stopped before the task finished";
    case STOP_NONE:
        break;
    }
    /* Never NULL: every caller formats it with "%s". */
    return "the task run was stopped";
}

static void fail(struct outcome *o, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct outcome *o, bool retryable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
    o->ok = false;
    o->retryable = retryable;
}

static void succeed(struct outcome *o, json_t *result)
{
    o->ok = true;
    o->result = result;
    o->size = json_dumpb(result, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY | json_real_flags(result));
}

/* --- C tasks --------------------------------------------------------------------------- */

static bool run_should_stop(void *arg)
{
    return wrun_stop_reason(arg) != STOP_NONE;
}

/* The outcome of a C task function, whether it ran on this thread or in a child. */
static void c_outcome(const struct task_entry *t, int rc, bool fail_set, bool retryable,
                      const char *fail_message, const char *result, struct outcome *o)
{
    if (rc != 0) {
        if (fail_set && fail_message[0])
            fail(o, retryable, "%s", fail_message);
        else
            fail(o, retryable, "task '%s' failed (its function returned %d)", t->name, rc);
    } else if (!result) {
        succeed(o, json_null());
    } else {
        json_error_t jerr;
        json_t *v = json_loads(result, JSON_DECODE_ANY, &jerr);
        if (v)
            succeed(o, v);
        else
            fail(o, true, "task '%s' returned invalid JSON: %s (line %d, column %d)", t->name,
                 jerr.text, jerr.line, jerr.column);
    }
}

/* Isolated mode: the function runs in a child process (isolated_task.h). */
static void run_c_isolated(executor *ex, struct wrun *run, const struct task_entry *t,
                           struct outcome *o)
{
    struct isolated_outcome io;
    errand_error err;
    if (isolated_task_run(ex->env.fork_server, t, run, ex->env.reporter, ex->env.log_prints,
                          &ex->env.limits, ex->env.queue, run_should_stop, run, &io, &err) != 0) {
        fail(o, true, "%s", err.message);
        if (fork_server_gone(ex->env.fork_server)) {
            o->hand_back = true;
            char why[REPORT_MESSAGE_MAX];
            snprintf(why, sizeof why,
                     "the worker's fork server has died: isolated tasks cannot start (%s)",
                     err.message);
            ex->env.on_fatal(ex->env.owner, why);
        }
        return;
    }
    o->task_persist = io.persist;
    o->def_persist = choice_tristate(t->def.persist_result);
    if (io.reported)
        c_outcome(t, io.rc, io.fail_set, io.retryable, io.message, io.result, o);
    else /* it died: a crash is retried per the run's policy */
        fail(o, true, "%s", io.message);
    isolated_outcome_clear(&io);
}

static void run_c(executor *ex, struct wrun *run, const struct task_entry *t, struct outcome *o)
{
    if (ex->env.isolate) {
        run_c_isolated(ex, run, t, o);
        return;
    }
    struct errand_task_ctx ctx;
    task_ctx_init(&ctx, run, ex->env.reporter);
    ctx.sub = ex->env.sub;
    char *result = NULL;
    if (ex->env.log_prints)
        stdout_capture_begin(&ctx.sink);
    int rc = t->def.fn(&ctx, run->params, &result, t->def.userdata);
    if (ex->env.log_prints)
        stdout_capture_end();
    task_ctx_clear(&ctx);
    o->task_persist = ctx.persist;
    o->def_persist = choice_tristate(t->def.persist_result);
    c_outcome(t, rc, ctx.fail_set, ctx.retryable, ctx.fail_message, result, o);
    free(result); /* the task allocated it with malloc (errand.h) */
}

/* --- exec tasks ------------------------------------------------------------------------ */

struct exec_call {
    executor *ex;
    struct wrun *run;
};

static bool exec_should_stop(void *arg)
{
    struct exec_call *c = arg;
    return run_should_stop(c->run);
}

static void exec_stderr_line(void *arg, const char *line, size_t len)
{
    struct exec_call *c = arg;
    (void)len;
    reporter_log(c->ex->env.reporter, c->run->id, ERRAND_LOG_INFO, line);
}

/* Strips trailing whitespace in place; returns s. */
static char *rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void run_exec(executor *ex, struct wrun *run, const struct task_entry *t, struct outcome *o)
{
    o->task_persist = -1;
    o->def_persist = -1;
    struct exec_call call = {ex, run};
    struct process_result *pr = mem_alloc(sizeof *pr);
    if (!pr) {
        fail(o, true, "out of memory starting exec task '%s'", t->name);
        return;
    }
    errand_error err;
    struct process_spec spec = ex->env.limits;
    spec.command = t->command;
    spec.fork_server = NULL;
    spec.traceparent = run->task_traceparent[0] ? run->task_traceparent : NULL;
    int rc = process_run(&spec, run->params, strlen(run->params), exec_should_stop,
                         ex->env.log_prints ? exec_stderr_line : NULL, &call, pr, &err);
    if (rc) {
        fail(o, true, "%s", err.message);
        mem_free(pr);
        return;
    }
    char *tail = rtrim(pr->err_tail);
    if (pr->stopped) {
        fail(o, true, "exec task '%s' was stopped", t->name);
    } else if (pr->out_too_big) {
        fail(o, true, "exec task '%s' printed more than %ld bytes on stdout", t->name,
             PROCESS_STDOUT_MAX);
    } else if (pr->term_signal) {
        fail(o, true, "exec task '%s' was killed by signal %d (%s)%s%s", t->name, pr->term_signal,
             strsignal(pr->term_signal), *tail ? ": " : "", tail);
    } else if (pr->exit_code != 0) {
        if (*tail)
            fail(o, true, "%s", tail);
        else
            fail(o, true, "exec task '%s' exited with status %d", t->name, pr->exit_code);
    } else {
        /* Nothing (or only whitespace) on stdout is a null result. */
        const char *out = pr->out;
        while (isspace((unsigned char)*out))
            out++;
        if (!*out) {
            succeed(o, json_null());
        } else {
            json_error_t jerr;
            json_t *v = json_loads(out, JSON_DECODE_ANY, &jerr);
            if (v)
                succeed(o, v);
            else
                fail(o, true,
                     "exec task printed invalid JSON on stdout: %s (line %d, column "
                     "%d); stdout began with: %.*s",
                     jerr.text, jerr.line, jerr.column, INVALID_OUTPUT_QUOTE_MAX, out);
        }
    }
    process_result_clear(pr);
    mem_free(pr);
}

/* --- reporting the outcome ------------------------------------------------------------- */

static void complete(executor *ex, struct wrun *run, struct outcome *o)
{
    const struct executor_env *env = &ex->env;
    bool persist = result_should_persist(o->task_persist, run->persist_result, o->def_persist,
                                         env->persist_by_default);
    bool fits = o->size <= env->inline_max;
    char *ref = NULL;
    if (persist || !fits) {
        char *text =
            json_dumps(o->result, JSON_COMPACT | JSON_ENCODE_ANY | json_real_flags(o->result));
        errand_error err;
        int rc = text ? result_store_write(env->storage_path, env->s3, run->id, text, strlen(text),
                                           &ref, &err)
                      : error_set(&err, ERRAND_ENOMEM, NULL, "out of memory");
        mem_free(text);
        if (rc) {
            log_warn("could not persist a result", "run=%s%s error=\"%s\"", run->id,
                     run->trace_field, err.message);
            char msg[REPORT_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "could not persist the result: %s", err.message);
            reporter_final(env->reporter, run, ERRAND_STATE_FAILED, msg, true, NULL, NULL);
            atomic_fetch_add(&env->stats->failed, 1);
            return;
        }
    }
    json_t *inline_result = fits ? o->result : NULL;
    if (fits)
        o->result = NULL; /* handed to the reporter */
    reporter_final(env->reporter, run, ERRAND_STATE_COMPLETED, NULL, false, inline_result, ref);
    atomic_fetch_add(&env->stats->completed, 1);
    mem_free(ref);
}

static void deliver(executor *ex, struct wrun *run, struct outcome *o)
{
    const struct executor_env *env = &ex->env;
    if (!wrun_take_outcome(run))
        return; /* the watchdog, the reporter or shutdown reported it already */
    enum stop_reason why = wrun_stop_reason(run);
    if (why == STOP_CANCEL) {
        reporter_final(env->reporter, run, ERRAND_STATE_CANCELLED, NULL, false, NULL, NULL);
        return;
    }
    if (why == STOP_LEASE_LOST)
        return;
    if (o->ok) {
        complete(ex, run, o);
        return;
    }
    if (why == STOP_SHUTDOWN || o->hand_back) {
        /* Cut short by a stop (a deploy), or never started by a worker that must stop:
           handed back, a redelivery that leaves the task's retries alone. */
        reporter_final(env->reporter, run, ERRAND_STATE_SCHEDULED, NULL, false, NULL, NULL);
        return;
    }
    char msg[REPORT_MESSAGE_MAX];
    if (why == STOP_TIMEOUT)
        snprintf(msg, sizeof msg, "task timed out after %gs", run->timeout_seconds);
    else if (why != STOP_NONE)
        snprintf(msg, sizeof msg, "%s", executor_stop_message(why));
    else
        snprintf(msg, sizeof msg, "%s", o->message);
    reporter_final(env->reporter, run, ERRAND_STATE_FAILED, msg,
                   why != STOP_NONE ? true : o->retryable, NULL, NULL);
    atomic_fetch_add(&env->stats->failed, 1);
}

static void execute(executor *ex, struct wrun *run)
{
    const struct executor_env *env = &ex->env;
    const struct task_entry *t = run->entry;
    if (wrun_stop_reason(run) != STOP_NONE) {
        /* Cancelled (or its lease lost) while it waited in the queue: never started. */
        struct outcome none = {.ok = false};
        snprintf(none.message, sizeof none.message, "%s",
                 executor_stop_message(wrun_stop_reason(run)));
        deliver(ex, run, &none);
        return;
    }
    atomic_fetch_add(&env->stats->running, 1);
    reporter_running(env->reporter, run);
    bool timed = run->timeout_seconds > 0;
    if (timed)
        watchdog_add(env->watchdog, run,
                     clock_mono_ms() + (int64_t)(run->timeout_seconds * MS_PER_S), WATCH_TIMEOUT);
    struct outcome o = {.ok = false, .retryable = true, .task_persist = -1, .def_persist = -1};
    log_debug("task run started", "run=%s task=%s attempt=%d%s", run->id, run->task, run->attempt,
              run->trace_field);
    if (run->traceparent[0]) {
        /* The run's logs record its trace: the first entry of each attempt. */
        char line[TRACE_LOG_LINE_MAX];
        snprintf(line, sizeof line, "trace_id=%.32s traceparent=%s span_traceparent=%s",
                 run->traceparent + TRACEPARENT_TRACE_AT, run->traceparent, run->task_traceparent);
        reporter_log(env->reporter, run->id, ERRAND_LOG_INFO, line);
    }
    /* The task's thread carries the task's span while it runs (an isolated child process is
       given it with the run), so what it submits joins the trace. */
    char saved[TRACEPARENT_LEN + 1];
    trace_context_save(saved);
    trace_context_restore(run->task_traceparent);
    if (t->kind == TASK_C)
        run_c(ex, run, t, &o);
    else
        run_exec(ex, run, t, &o);
    trace_context_restore(saved);
    if (timed || wrun_stop_reason(run) != STOP_NONE)
        watchdog_remove(env->watchdog, run);
    log_debug("task run ended", "run=%s task=%s ok=%s%s", run->id, run->task,
              o.ok ? "true" : "false", run->trace_field);
    deliver(ex, run, &o);
    json_decref(o.result);
    atomic_fetch_sub(&env->stats->running, 1);
}

static void *executor_main(void *arg)
{
    struct slot *slot = arg;
    executor *ex = slot->ex;
    struct wrun *run;
    bool finished = false;
    while ((run = run_queue_next(ex->env.queue, finished))) {
        pthread_mutex_lock(&slot->mu);
        slot->run = run;
        slot->in_child = run->entry->kind == TASK_EXEC || ex->env.isolate;
        pthread_mutex_unlock(&slot->mu);

        execute(ex, run);

        pthread_mutex_lock(&slot->mu);
        slot->run = NULL;
        pthread_mutex_unlock(&slot->mu);
        if (atomic_load(&ex->exec_waiters)) {
            pthread_mutex_lock(&ex->mu);
            pthread_cond_broadcast(&ex->changed);
            pthread_mutex_unlock(&ex->mu);
        }
        wrun_unref(run);
        finished = true;
    }
    ex->env.on_thread_exit(ex->env.owner); /* last: the executor may be freed after this */
    return NULL;
}

int executor_start(const struct executor_env *env, size_t n, void (*before_thread)(void *owner),
                   executor **out, errand_error *err)
{
    *out = NULL;
    executor *ex = mem_calloc(1, sizeof *ex);
    struct slot *slots = mem_calloc(n, sizeof *slots);
    if (!ex || !slots) {
        mem_free(ex);
        mem_free(slots);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory starting executor threads");
    }
    ex->env = *env;
    ex->slots = slots;
    ex->n = n;
    if (pthread_mutex_init(&ex->mu, NULL)) {
        mem_free(slots);
        mem_free(ex);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the executor's lock");
    }
    if (sync_cond_init(&ex->changed)) {
        pthread_mutex_destroy(&ex->mu);
        mem_free(slots);
        mem_free(ex);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the executor's condition");
    }
    atomic_init(&ex->exec_waiters, 0);
    for (size_t i = 0; i < n; i++)
        pthread_mutex_init(&slots[i].mu, NULL); /* default attributes: cannot fail */
    *out = ex;
    for (size_t i = 0; i < n; i++) {
        slots[i].ex = ex;
        before_thread(env->owner);
        if (pthread_create(&slots[i].thread, NULL, executor_main, &slots[i])) {
            env->on_thread_exit(env->owner);
            return error_set(err, ERRAND_ENOMEM, NULL, "cannot start executor thread %zu of %zu",
                             i + 1, n);
        }
        slots[i].started = true;
    }
    return 0;
}

void executor_abandon(executor *ex)
{
    size_t n = 0;
    struct wrun **abandoned = mem_calloc(ex->n, sizeof *abandoned);
    for (size_t i = 0; i < ex->n; i++) {
        struct slot *s = &ex->slots[i];
        pthread_mutex_lock(&s->mu);
        struct wrun *run = s->run;
        if (run) {
            wrun_request_stop(run, STOP_SHUTDOWN);
            if (!s->in_child && abandoned && wrun_take_outcome(run))
                abandoned[n++] = wrun_ref(run);
        }
        pthread_mutex_unlock(&s->mu);
    }
    for (size_t i = 0; i < n; i++) {
        log_warn("task still running at the end of the grace period; handed back",
                 "run=%s task=%s%s", abandoned[i]->id, abandoned[i]->task,
                 abandoned[i]->trace_field);
        reporter_final(ex->env.reporter, abandoned[i], ERRAND_STATE_SCHEDULED, NULL, false, NULL,
                       NULL);
        wrun_unref(abandoned[i]);
    }
    mem_free(abandoned);
}

static bool exec_running(executor *ex)
{
    bool busy = false;
    for (size_t i = 0; i < ex->n && !busy; i++) {
        struct slot *s = &ex->slots[i];
        pthread_mutex_lock(&s->mu);
        busy = s->run && s->in_child;
        pthread_mutex_unlock(&s->mu);
    }
    return busy;
}

bool executor_wait_exec_done(executor *ex, int64_t deadline_ms)
{
    atomic_fetch_add(&ex->exec_waiters, 1);
    pthread_mutex_lock(&ex->mu);
    bool busy;
    while ((busy = exec_running(ex)) && clock_mono_ms() < deadline_ms)
        sync_cond_wait_until(&ex->changed, &ex->mu, deadline_ms);
    pthread_mutex_unlock(&ex->mu);
    atomic_fetch_sub(&ex->exec_waiters, 1);
    return !busy;
}

void executor_release(executor *ex)
{
    /* The queue is closed, so a thread that is not inside a task is on its way out: join it.
       Only a join makes sure the thread has really ended, its thread-specific data destroyed
       (OpenSSL's per-thread random generator among them) before the process goes on to exit.
       A detached thread that is still ending when exit() runs the atexit handlers loses that
       memory for good (OPENSSL_cleanup has already deleted the key whose destructor would
       free it), and LeakSanitizer reports it. A thread still inside a task function past the
       grace period may never return: it is detached, and keeps its reference to the worker.
       The join is bounded all the same, in case a thread picks a run up between the two. */
    int64_t deadline_ms = clock_mono_ms() + EXECUTOR_JOIN_TIMEOUT_MS;
    for (size_t i = 0; i < ex->n; i++) {
        struct slot *s = &ex->slots[i];
        if (!s->started)
            continue;
        pthread_mutex_lock(&s->mu);
        bool in_task = s->run != NULL;
        pthread_mutex_unlock(&s->mu);
        if (in_task || !sync_join_until(s->thread, deadline_ms))
            pthread_detach(s->thread);
        s->started = false;
    }
}

void executor_free(executor *ex)
{
    if (!ex)
        return;
    for (size_t i = 0; i < ex->n; i++)
        pthread_mutex_destroy(&ex->slots[i].mu);
    pthread_cond_destroy(&ex->changed);
    pthread_mutex_destroy(&ex->mu);
    mem_free(ex->slots);
    mem_free(ex);
}
