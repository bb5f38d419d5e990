/* SPDX-License-Identifier: MIT */
/*
 * isolated_task.c — C task functions in child processes (see isolated_task.h).
 *
 * The child's pipes: stdin is unused (the parameters are already in its copy of memory);
 * stdout carries the outcome record, written once when the function returns; stderr
 * carries log records and whatever the task prints (the child points its stdout there).
 *
 *   outcome record:  "<rc> <fail_set> <retryable> <persist> <message bytes> <result bytes>\n"
 *                    then the message, then the result text (none when the result is NULL)
 *   log record:      LOG_MARK "<level> " text "\n", a newline in text sent as LOG_NEWLINE
 *
 * A stderr line without the mark is a printed line.
 */
#include "worker/isolated_task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "worker/line_buffer.h"
#include "worker/task_ctx.h"

#define LOG_MARK '\x1f'
#define LOG_NEWLINE '\x1e'
#define OUTCOME_HEAD_MAX 128

static const int CRASH_SIGNALS[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

/* Restores a signal's default action. Under AddressSanitizer, whose sigaction() keeps its
 * own handler for the signals it reports (and whose report, in a forked copy of a threaded
 * process, can wait for ever on a lock another thread held at the fork), through the system
 * call itself: the kernel's struct sigaction with SIG_DFL (0) and nothing else set. */
static void default_action(int sig)
{
#ifdef __SANITIZE_ADDRESS__
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } k;
    memset(&k, 0, sizeof k);
    syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof k.mask);
#else
    signal(sig, SIG_DFL);
#endif
}

/* Set by SIGTERM in the child: errand_task_should_stop() turns true. */
static volatile sig_atomic_t child_stop;

static void on_child_term(int sig)
{
    (void)sig;
    child_stop = 1;
}

/* One call: what the child runs, and what process_run's callbacks (one ctx for both) need. */
struct isolated_call {
    const struct task_entry *t;
    struct wrun *run;
    reporter *rep;
    bool log_prints;
    process_stop_fn should_stop;
    void *stop_ctx;
};

static bool call_should_stop(void *arg)
{
    const struct isolated_call *c = arg;
    return c->should_stop && c->should_stop(c->stop_ctx);
}

static void write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        data += w;
        n -= (size_t)w;
    }
}

void isolated_task_log(int fd, int level, const char *text)
{
    char line[LINE_BUFFER_MAX];
    int head = snprintf(line, sizeof line, "%c%d ", LOG_MARK, level);
    size_t n = (size_t)head;
    for (const char *p = text; *p && n < sizeof line - 1; p++)
        line[n++] = *p == '\n' ? LOG_NEWLINE : *p;
    line[n++] = '\n';
    write_all(fd, line, n);
}

/* The child: runs the function, sends the outcome, ends. */
static void child_main(void *arg)
{
    const struct isolated_call *c = arg;
    __fpurge(stdout); /* what the worker had buffered is not the task's to print */
    int outcome_fd = dup(STDOUT_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    /* A crash ends the child with its signal, for the message to name it (a sanitizer's
       handlers would turn it into an exit status). */
    for (size_t i = 0; i < sizeof CRASH_SIGNALS / sizeof CRASH_SIGNALS[0]; i++)
        default_action(CRASH_SIGNALS[i]);

    struct errand_task_ctx ctx;
    task_ctx_init(&ctx, c->run, NULL);
    ctx.log_fd = STDERR_FILENO;
    ctx.stop_flag = &child_stop;
    char *result = NULL;
    int rc = c->t->def.fn(&ctx, c->run->params, &result, c->t->def.userdata);
    fflush(stdout);
    const char *message = ctx.fail_set ? ctx.fail_message : "";
    size_t msg_len = strlen(message), result_len = result ? strlen(result) : 0;
    char head[OUTCOME_HEAD_MAX];
    int n = snprintf(head, sizeof head, "%d %d %d %d %zu %zu\n", rc, ctx.fail_set, ctx.retryable,
                     ctx.persist, msg_len, result_len);
    write_all(outcome_fd, head, (size_t)n);
    write_all(outcome_fd, message, msg_len);
    if (result)
        write_all(outcome_fd, result, result_len);
    _exit(0);
}

/* A stderr line of the child: a log record, or a printed line. */
static void child_line(void *arg, const char *line, size_t len)
{
    const struct isolated_call *c = arg;
    if (len > 0 && line[0] == LOG_MARK) {
        char *end = NULL;
        long level = strtol(line + 1, &end, 10);
        if (!end || *end != ' ')
            return;
        char *text = mem_strndup(end + 1, len - (size_t)(end + 1 - line));
        if (!text)
            return;
        for (char *p = text; *p; p++)
            if (*p == LOG_NEWLINE)
                *p = '\n';
        reporter_log(c->rep, c->run->id, (int)level, text);
        mem_free(text);
    } else if (c->log_prints) {
        reporter_log(c->rep, c->run->id, ERRAND_LOG_INFO, line);
    }
}

/* Reads the outcome record from the child's stdout; false when it is not whole. */
static bool parse_outcome(const struct process_result *pr, struct isolated_outcome *out)
{
    int rc, fail_set, retryable, persist, head_len = 0;
    size_t msg_len, result_len;
    if (sscanf(pr->out, "%d %d %d %d %zu %zu\n%n", &rc, &fail_set, &retryable, &persist, &msg_len,
               &result_len, &head_len) != 6 ||
        head_len <= 0 || pr->out_len - (size_t)head_len != msg_len + result_len)
        return false;
    const char *body = pr->out + head_len;
    out->message = mem_strndup(body, msg_len);
    out->result = result_len ? mem_strndup(body + msg_len, result_len) : NULL;
    if (!out->message || (result_len && !out->result))
        return false;
    out->reported = true;
    out->rc = rc;
    out->fail_set = fail_set != 0;
    out->retryable = retryable != 0;
    out->persist = persist;
    return true;
}

/* The line of what the child wrote last on stderr that says most about its end, for a death
 * message ("" if none): a sanitizer's "ERROR:" line when there is one (its report ends with
 * lines that say nothing), else the last line. Cuts tail into lines. */
static const char *last_words(char *tail)
{
    const char *last = "", *error = NULL;
    for (char *save = NULL, *line = strtok_r(tail, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == LOG_MARK)
            continue;
        last = line;
        if (strstr(line, "ERROR: "))
            error = line;
    }
    return error ? error : last;
}

/* How the child ended without an outcome. */
static char *death_message(const struct task_entry *t, struct process_result *pr)
{
    const char *tail = last_words(pr->err_tail);
    const char *sep = *tail ? ": " : "";
    if (pr->term_signal)
        return mem_printf("task '%s' was killed by signal %d (%s)%s%s", t->name, pr->term_signal,
                          strsignal(pr->term_signal), sep, tail);
    if (pr->out_too_big)
        return mem_printf("task '%s' returned a result over %ld bytes", t->name,
                          PROCESS_STDOUT_MAX);
    return mem_printf("task '%s' ended its process (exit status %d) before it returned%s%s",
                      t->name, pr->exit_code, sep, tail);
}

int isolated_task_run(const struct task_entry *t, struct wrun *run, reporter *rep, bool log_prints,
                      const struct process_spec *limits, process_stop_fn should_stop,
                      void *stop_ctx, struct isolated_outcome *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    out->persist = -1;
    struct isolated_call call = {.t = t,
                                 .run = run,
                                 .rep = rep,
                                 .log_prints = log_prints,
                                 .should_stop = should_stop,
                                 .stop_ctx = stop_ctx};
    struct process_spec spec = {
        .child_fn = child_main,
        .child_arg = &call,
        .memory_limit_bytes = limits ? limits->memory_limit_bytes : 0,
        .cpu_limit_seconds = limits ? limits->cpu_limit_seconds : 0,
    };
    struct process_result *pr = mem_alloc(sizeof *pr);
    if (!pr)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory starting task '%s'", t->name);
    int rc = process_run(&spec, "", 0, call_should_stop, child_line, &call, pr, err);
    if (rc) {
        mem_free(pr);
        return rc;
    }
    out->stopped = pr->stopped;
    if (!parse_outcome(pr, out)) {
        mem_free(out->message);
        mem_free(out->result);
        out->result = NULL;
        out->reported = false;
        out->message = death_message(t, pr);
    }
    process_result_clear(pr);
    mem_free(pr);
    if (!out->message)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory after task '%s'", t->name);
    return 0;
}

void isolated_outcome_clear(struct isolated_outcome *out)
{
    mem_free(out->message);
    mem_free(out->result);
    memset(out, 0, sizeof *out);
}
