/* SPDX-License-Identifier: MIT */
/*
 * isolated_task.c — C task functions in child processes (see isolated_task.h).
 *
 * The child is started by the worker's fork server (fork_server.h), whose copy of memory has
 * the task table but not the run: the run comes on the child's stdin. Its stdout carries the
 * outcome record, written once when the function returns; stderr carries log records and
 * whatever the task prints (the child points its stdout there).
 *
 *   run record:      "<attempt> <task bytes> <id bytes> <traceparent bytes>
 *                     <task traceparent bytes> <params bytes>\n" then those five texts
 *   outcome record:  "<rc> <fail_set> <retryable> <persist> <message bytes> <result bytes>\n"
 *                    then the message, then the result text (none when the result is NULL)
 *   log record:      LOG_MARK "<level> " text "\n", a newline in text sent as LOG_NEWLINE
 *   wait record:     WAIT_MARK "1\n" when the task begins to wait for a subtask, WAIT_MARK
 *                    "0\n" when that wait is over
 *
 * A stderr line without either mark is a printed line.
 */
#include "worker/isolated_task.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "client/trace.h"
#include "worker/line_buffer.h"
#include "worker/subtask.h"
#include "worker/task_ctx.h"

#define LOG_MARK '\x1f'
#define LOG_NEWLINE '\x1e'
#define WAIT_MARK '\x1d'
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

/* Set by SIGTERM in the child: errand_task_should_stop() turns true, and the pipe turns
 * readable (what abandons a wait for a subtask). */
static volatile sig_atomic_t child_stop;
static int child_stop_pipe[2] = {-1, -1};

static void on_child_term(int sig)
{
    (void)sig;
    int saved_errno = errno;
    child_stop = 1;
    if (child_stop_pipe[1] >= 0) {
        ssize_t n = write(child_stop_pipe[1], "x", 1);
        (void)n;
    }
    errno = saved_errno;
}

/* One call: what process_run's callbacks need. */
struct isolated_call {
    const struct task_entry *t;
    struct wrun *run;
    reporter *rep;
    bool log_prints;
    struct run_queue *queue;
    bool lent; /* the child waits for a subtask, and its slot is lent */
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

void isolated_task_wait_record(int fd, bool begins)
{
    fflush(stdout); /* what the task printed comes first, as a line of its own */
    char line[] = {WAIT_MARK, begins ? '1' : '0', '\n'};
    write_all(fd, line, sizeof line);
}

/* In the child: all of stdin (NUL-terminated), or NULL. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = mem_alloc(cap);
    for (;;) {
        if (!buf)
            return NULL;
        if (n + 1 == cap) {
            char *b = mem_realloc(buf, cap * 2);
            if (!b) {
                mem_free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(STDIN_FILENO, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            mem_free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* In the child: the run record (see the top of the file) into run (its id and parameters
 * copied; they live as long as the process) and the task's name into *task. False if not
 * whole. */
static bool parse_run(const char *buf, size_t len, struct wrun *run, char **task)
{
    int attempt, head_len = 0;
    size_t lens[5];
    if (sscanf(buf, "%d %zu %zu %zu %zu %zu\n%n", &attempt, &lens[0], &lens[1], &lens[2], &lens[3],
               &lens[4], &head_len) != 6 ||
        head_len <= 0)
        return false;
    size_t total = 0;
    for (size_t i = 0; i < 5; i++) {
        if (lens[i] > len)
            return false;
        total += lens[i];
    }
    if (lens[2] > TRACEPARENT_LEN || lens[3] > TRACEPARENT_LEN || len - (size_t)head_len != total)
        return false;
    const char *at = buf + head_len;
    *task = mem_strndup(at, lens[0]);
    run->id = mem_strndup(at += lens[0], lens[1]);
    memcpy(run->traceparent, at += lens[1], lens[2]);
    run->traceparent[lens[2]] = '\0';
    memcpy(run->task_traceparent, at += lens[2], lens[3]);
    run->task_traceparent[lens[3]] = '\0';
    run->params = mem_strndup(at + lens[3], lens[4]);
    run->attempt = attempt;
    return *task && run->id && run->params;
}

void isolated_task_child(void *arg)
{
    const struct isolated_child_env *env = arg;
    const struct task_table *table = env->tasks;
    int outcome_fd = dup(STDOUT_FILENO);
    if (pipe2(child_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        child_stop_pipe[0] = child_stop_pipe[1] = -1; /* then a wait ends at its timeout */
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

    size_t len = 0;
    char *record = read_stdin(&len);
    struct wrun run;
    memset(&run, 0, sizeof run);
    char *name = NULL;
    const struct task_entry *t = NULL;
    if (!record || !parse_run(record, len, &run, &name) || !(t = task_table_find(table, name)) ||
        t->kind != TASK_C) {
        fprintf(stderr, "the task process got no run it can serve\n");
        _exit(126);
    }
    /* The task's span is this process's current trace context: what it submits joins it. */
    trace_context_restore(run.task_traceparent);

    struct errand_task_ctx ctx;
    task_ctx_init(&ctx, &run, NULL);
    ctx.log_fd = STDERR_FILENO;
    ctx.stop_flag = &child_stop;
    struct subtask_env sub = {.api_url = env->api_url,
                              .api_key = env->api_key,
                              .queue = NULL,
                              .notify_fd = STDERR_FILENO};
    ctx.sub = &sub;
    ctx.cancel_fd = child_stop_pipe[0];
    char *result = NULL;
    int rc = t->def.fn(&ctx, run.params, &result, t->def.userdata);
    task_ctx_clear(&ctx);
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
    struct isolated_call *c = arg;
    if (len == 2 && line[0] == WAIT_MARK) {
        if (c->rep && (line[1] == '1' || line[1] == '0'))
            reporter_waiting(c->rep, c->run, line[1] == '1');
        if (line[1] == '1' && !c->lent && c->queue)
            c->lent = subtask_lend(c->queue, c->run);
        else if (line[1] == '0' && c->lent) {
            run_queue_reclaim(c->queue);
            c->lent = false;
        }
    } else if (len > 0 && line[0] == LOG_MARK) {
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
        if (line[0] == LOG_MARK || line[0] == WAIT_MARK)
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

/* The run record for the child (see the top of the file); NULL when out of memory. */
static char *run_record(const struct task_entry *t, const struct wrun *run, size_t *len)
{
    const char *params = run->params ? run->params : "";
    char *record = mem_printf("%d %zu %zu %zu %zu %zu\n%s%s%s%s%s", run->attempt, strlen(t->name),
                              strlen(run->id), strlen(run->traceparent),
                              strlen(run->task_traceparent), strlen(params), t->name, run->id,
                              run->traceparent, run->task_traceparent, params);
    if (record)
        *len = strlen(record);
    return record;
}

int isolated_task_run(fork_server *fs, const struct task_entry *t, struct wrun *run, reporter *rep,
                      bool log_prints, const struct process_spec *limits, struct run_queue *queue,
                      process_stop_fn should_stop, void *stop_ctx, struct isolated_outcome *out,
                      errand_error *err)
{
    memset(out, 0, sizeof *out);
    out->persist = -1;
    struct isolated_call call = {.t = t,
                                 .run = run,
                                 .rep = rep,
                                 .log_prints = log_prints,
                                 .queue = queue,
                                 .lent = false,
                                 .should_stop = should_stop,
                                 .stop_ctx = stop_ctx};
    struct process_spec spec = {
        .fork_server = fs,
        .memory_limit_bytes = limits ? limits->memory_limit_bytes : 0,
        .cpu_limit_seconds = limits ? limits->cpu_limit_seconds : 0,
    };
    size_t record_len = 0;
    char *record = run_record(t, run, &record_len);
    struct process_result *pr = mem_alloc(sizeof *pr);
    if (!pr || !record) {
        mem_free(pr);
        mem_free(record);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory starting task '%s'", t->name);
    }
    int rc = process_run(&spec, record, record_len, call_should_stop, child_line, &call, pr, err);
    mem_free(record);
    if (call.lent) /* the child ended (was killed) while it waited */
        run_queue_reclaim(queue);
    if (rep && atomic_load(&run->waiting) == WRUN_WAITING)
        reporter_waiting(rep, run, false);
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
