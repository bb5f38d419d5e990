/* SPDX-License-Identifier: MIT */
/*
 * worker.c — errand_worker: its options and life, and serve(), which wires the pieces and
 * runs the shutdown in order:
 *
 *   poller (claims) ─▶ run queue ─▶ executor threads ─▶ reporter (reports, logs, heartbeats)
 *                                        │  ▲
 *                                        ▼  │ deadlines
 *                                      watchdog
 *
 * Stopping (errand_worker_stop: an atomic flag and a byte into a self-pipe, both
 * async-signal-safe): stop claiming (the poll is abandoned at once); hand queued, unstarted
 * runs back (SCHEDULED); let running tasks finish within grace_seconds; after that, hand C
 * tasks still running back too, and kill exec tasks (whose runs are handed back as they
 * end): the server counts those as redeliveries, not against the tasks' retries (a deploy
 * does not use up a run's retries); flush the reports; return. A C function that never returns
 * keeps its thread, which holds a reference to the worker, so errand_worker_free() never frees
 * memory that thread still uses: the worker is freed when the last reference goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h> /* isfinite (a macro: no libm) */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "client/http.h"
#include "core/choice.h"
#include "core/clock.h"
#include "core/error.h"
#include "client/s3.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/settings.h"
#include "core/wire_limits.h"
#include "worker/executor.h"
#include "worker/fork_server.h"
#include "worker/isolated_task.h"
#include "worker/poller.h"
#include "worker/process.h"
#include "worker/report_wire.h"
#include "worker/reporter.h"
#include "worker/run_queue.h"
#include "worker/signals.h"
#include "worker/stats.h"
#include "worker/stdout_capture.h"
#include "worker/subtask.h"
#include "worker/task_table.h"
#include "worker/watchdog.h"

#define WORKER_DEFAULT_GRACE_SECONDS 30.0
/* A cancelled task that has not returned after this long is reported CANCELLED anyway. */
#define WORKER_CANCEL_GRACE_MS 5000
/* On stop, how long queued reports may take to reach the server. */
#define WORKER_FLUSH_TIMEOUT_MS 10000
/* After killing exec tasks on stop, how long to wait for them beyond the kill grace. */
#define WORKER_EXEC_REAP_MARGIN_MS 1000
#define PID_TEXT_MAX 24 /* "-" and the digits of any pid_t */
#define WORKER_PREFETCH_MAX 10000
#define WORKER_CPU_LIMIT_MAX_S (365 * 24 * 3600)
#define WORKER_MAX_WAITING_MAX 10000

struct errand_worker {
    atomic_int refs; /* the user's, plus one per executor thread */
    char *api_url, *api_key, *name, *storage_path;
    struct s3_location s3; /* the result storage when it is s3:// (s3.bucket set) */
    size_t concurrency;
    size_t prefetch;
    size_t max_waiting; /* runs that may wait for subtasks with their slots lent */
    bool isolate;
    struct isolated_child_env child_env; /* what the fork server's copy gives each child */
    struct subtask_env sub;              /* for errand_task_submit/wait on executor threads */
    fork_server *fork_server;            /* isolated mode, from serve()'s start to its end */
    /* Why the worker stopped itself (set once, by the first on_fatal): serve() returns it. */
    pthread_mutex_t fatal_mu;
    char *fatal;
    size_t memory_limit_bytes;
    double cpu_limit_seconds;
    int lease_seconds; /* 0 = the server's default */
    bool persist_by_default, log_prints, handle_signals;
    int64_t grace_ms;
    size_t inline_max;
    struct task_table tasks;

    atomic_bool stopping;
    int stop_pipe[2];
    atomic_bool served;
    struct worker_counters stats;

    /* set up by serve() */
    bool queue_ready;
    struct run_queue queue;
    reporter *reporter;
    watchdog *watchdog;
    executor *executor;
    poller *poller;
};

void errand_worker_options_init(errand_worker_options *opt)
{
    if (opt)
        memset(opt, 0, sizeof *opt);
}

static void worker_destroy(errand_worker *w)
{
    poller_free(w->poller);
    executor_free(w->executor);
    watchdog_free(w->watchdog);
    reporter_free(w->reporter);
    if (w->queue_ready)
        run_queue_destroy(&w->queue);
    task_table_clear(&w->tasks);
    for (int i = 0; i < 2; i++)
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
    mem_free(w->api_url);
    mem_free(w->api_key);
    mem_free(w->name);
    mem_free(w->storage_path);
    s3_location_clear(&w->s3);
    mem_free(w->fatal);
    pthread_mutex_destroy(&w->fatal_mu);
    mem_free(w);
}

static void worker_ref(void *owner)
{
    errand_worker *w = owner;
    atomic_fetch_add(&w->refs, 1);
}

static void worker_unref(void *owner)
{
    errand_worker *w = owner;
    if (atomic_fetch_sub(&w->refs, 1) == 1)
        worker_destroy(w);
}

/* "/abs/path" from a path that may be relative to the current directory. */
static char *absolute_path(const char *path)
{
    if (!path[0] || path[0] == '/')
        return mem_strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return mem_strdup(path);
    return mem_printf("%s/%s", cwd, path);
}

static char *default_name(void)
{
    /* Room for "-<pid>" within the server's limit on worker names. */
    char host[WIRE_WORKER_NAME_MAX - PID_TEXT_MAX];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "worker");
    host[sizeof host - 1] = '\0';
    return mem_printf("%s-%ld", host, (long)getpid());
}

static int check_options(const errand_worker_options *opt, errand_error *err)
{
    if (opt->concurrency < 0)
        return error_set(err, ERRAND_EINVAL, "concurrency",
                         "concurrency must be 0 (default) or positive, got %d", opt->concurrency);
    if (opt->prefetch < 0 || opt->prefetch > WORKER_PREFETCH_MAX)
        return error_set(err, ERRAND_EINVAL, "prefetch", "prefetch must be 0 to %d, got %d",
                         WORKER_PREFETCH_MAX, opt->prefetch);
    if (opt->cpu_limit_seconds < 0 || !isfinite(opt->cpu_limit_seconds) ||
        opt->cpu_limit_seconds > WORKER_CPU_LIMIT_MAX_S)
        return error_set(err, ERRAND_EINVAL, "cpu_limit_seconds",
                         "cpu_limit_seconds must be 0 (none) to %d, got %g", WORKER_CPU_LIMIT_MAX_S,
                         opt->cpu_limit_seconds);
    if (opt->lease_seconds < 0 || !isfinite(opt->lease_seconds) || opt->lease_seconds > INT_MAX)
        return error_set(err, ERRAND_EINVAL, "lease_seconds",
                         "lease_seconds must be 0 (server default) or positive, got %g",
                         opt->lease_seconds);
    if (opt->grace_seconds < 0 || !isfinite(opt->grace_seconds))
        return error_set(err, ERRAND_EINVAL, "grace_seconds",
                         "grace_seconds must be 0 (default 30) or positive, got %g",
                         opt->grace_seconds);
    if (opt->name && (!*opt->name || strlen(opt->name) > WIRE_WORKER_NAME_MAX))
        return error_set(err, ERRAND_EINVAL, "name", "the worker name must be 1-%d characters",
                         WIRE_WORKER_NAME_MAX);
    int rc = choice_check(opt->persist_by_default, "persist_by_default", err);
    return rc ? rc : choice_check(opt->log_prints, "log_prints", err);
}

int errand_worker_new(const errand_worker_options *opt, errand_worker **out, errand_error *err)
{
    if (!out)
        return error_set(err, ERRAND_EINVAL, "out", "errand_worker_new needs an out pointer");
    *out = NULL;
    error_clear(err);
    errand_worker_options defaults;
    errand_worker_options_init(&defaults);
    if (!opt)
        opt = &defaults;
    int rc = check_options(opt, err);
    if (rc)
        return rc;
    struct settings *s = mem_alloc(sizeof *s);
    if (!s)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory loading settings");
    rc = settings_load(s, err);
    if (rc) {
        mem_free(s);
        return rc;
    }
    errand_worker *w = mem_calloc(1, sizeof *w);
    if (!w) {
        mem_free(s);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating a worker");
    }
    atomic_init(&w->refs, 1);
    atomic_init(&w->stopping, false);
    pthread_mutex_init(&w->fatal_mu, NULL);
    atomic_init(&w->served, false);
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    w->api_url = mem_strdup(opt->api_url ? opt->api_url : settings_str(s, SET_API_URL));
    w->api_key = mem_strdup(opt->api_key ? opt->api_key : settings_str(s, SET_API_KEY));
    w->name = opt->name ? mem_strdup(opt->name) : default_name();
    w->storage_path =
        absolute_path(opt->local_storage_path ? opt->local_storage_path
                                              : settings_str(s, SET_LOCAL_STORAGE_PATH));
    w->concurrency = opt->concurrency > 0 ? (size_t)opt->concurrency
                                          : (size_t)settings_int(s, SET_WORKER_CONCURRENCY);
    if (w->concurrency == 0)
        w->concurrency = 1;
    w->prefetch = (size_t)opt->prefetch;
    w->max_waiting = (size_t)settings_int(s, SET_WORKER_MAX_WAITING);
    w->isolate = opt->isolate;
    w->memory_limit_bytes = opt->memory_limit_bytes;
    w->cpu_limit_seconds = opt->cpu_limit_seconds;
    w->lease_seconds = (int)opt->lease_seconds; /* whole seconds on the wire, rounded up */
    if (w->lease_seconds < opt->lease_seconds)
        w->lease_seconds++;
    w->persist_by_default =
        choice_resolve(opt->persist_by_default, settings_bool(s, SET_RESULTS_PERSIST));
    w->log_prints = choice_resolve(opt->log_prints, settings_bool(s, SET_LOG_PRINTS));
    w->handle_signals = opt->handle_signals;
    w->grace_ms =
        (int64_t)((opt->grace_seconds > 0 ? opt->grace_seconds : WORKER_DEFAULT_GRACE_SECONDS) *
                  MS_PER_S);
    w->inline_max = (size_t)settings_int(s, SET_RESULT_INLINE_MAX);
    const char *storage =
        opt->result_storage ? opt->result_storage : settings_str(s, SET_RESULT_STORAGE);
    if (s3_is_url(storage)) {
#define OPT_OR_SETTING(field, id) (opt->field ? opt->field : settings_str(s, id))
        rc = s3_location_init(&w->s3, storage, OPT_OR_SETTING(s3_endpoint_url, SET_S3_ENDPOINT_URL),
                              OPT_OR_SETTING(s3_region, SET_S3_REGION),
                              OPT_OR_SETTING(s3_access_key_id, SET_S3_ACCESS_KEY_ID),
                              OPT_OR_SETTING(s3_secret_access_key, SET_S3_SECRET_ACCESS_KEY), err);
#undef OPT_OR_SETTING
    } else if (strcmp(storage, "local") != 0) {
        rc = error_set(err, ERRAND_EINVAL, "result_storage",
                       "the result storage '%s' must be local or s3://bucket/prefix", storage);
    }
    mem_free(s);
    if (rc) {
        worker_destroy(w);
        return rc;
    }
    if (!w->api_url || !w->api_key || !w->name || !w->storage_path) {
        worker_destroy(w);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating a worker");
    }
    if (!http_url_is_valid(w->api_url)) {
        rc = error_set(err, ERRAND_EINVAL, "api_url",
                       "the API URL '%s' must be a URL starting with http:// or https://, or a "
                       "comma-separated list of at most %d of them",
                       w->api_url, HTTP_MAX_SERVERS);
        worker_destroy(w);
        return rc;
    }
    if (pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        int e = errno;
        worker_destroy(w);
        return error_set(err, ERRAND_EIO, NULL, "cannot create the worker's stop pipe: %s",
                         strerror(e));
    }
    *out = w;
    return 0;
}

int errand_worker_add_task(errand_worker *w, const errand_task_def *task, errand_error *err)
{
    error_clear(err);
    if (!w)
        return error_set(err, ERRAND_EINVAL, "worker", "a worker is required");
    if (atomic_load(&w->served))
        return error_set(err, ERRAND_EINVAL, "task", "tasks must be added before serve()");
    return task_table_add_c(&w->tasks, task, err);
}

int errand_worker_set_max_waiting(errand_worker *w, int max_waiting, errand_error *err)
{
    error_clear(err);
    if (!w)
        return error_set(err, ERRAND_EINVAL, "worker", "a worker is required");
    if (atomic_load(&w->served))
        return error_set(err, ERRAND_EINVAL, "max_waiting",
                         "max_waiting must be set before serve()");
    if (max_waiting < 0 || max_waiting > WORKER_MAX_WAITING_MAX)
        return error_set(err, ERRAND_EINVAL, "max_waiting",
                         "max_waiting must be 0 (no lending) to %d, got %d", WORKER_MAX_WAITING_MAX,
                         max_waiting);
    w->max_waiting = (size_t)max_waiting;
    return 0;
}

int errand_worker_add_exec(errand_worker *w, const char *name, const char *command,
                           errand_error *err)
{
    error_clear(err);
    if (!w)
        return error_set(err, ERRAND_EINVAL, "worker", "a worker is required");
    if (atomic_load(&w->served))
        return error_set(err, ERRAND_EINVAL, "name", "tasks must be added before serve()");
    return task_table_add_exec(&w->tasks, name, command, err);
}

void errand_worker_stop(errand_worker *w)
{
    if (!w)
        return;
    int saved_errno = errno;
    atomic_store(&w->stopping, true);
    ssize_t n = write(w->stop_pipe[1], "x", 1); /* full pipe: already signalled, fine */
    (void)n;
    errno = saved_errno;
}

void errand_worker_get_stats(errand_worker *w, errand_worker_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!w)
        return;
    out->claimed = atomic_load(&w->stats.claimed);
    out->completed = atomic_load(&w->stats.completed);
    out->failed = atomic_load(&w->stats.failed);
    out->running = atomic_load(&w->stats.running);
}

void errand_worker_free(errand_worker *w)
{
    if (w)
        worker_unref(w);
}

/* --- deadlines and cancellation ------------------------------------------------------- */

static void on_deadline(struct wrun *run, enum watch_kind kind, void *ctx)
{
    errand_worker *w = ctx;
    enum stop_reason why = STOP_CANCEL;
    if (kind == WATCH_TIMEOUT)
        why = wrun_request_stop(run, STOP_TIMEOUT) ? STOP_TIMEOUT : wrun_stop_reason(run);
    if (why == STOP_LEASE_LOST || !wrun_take_outcome(run))
        return;
    if (why == STOP_CANCEL) {
        log_warn("a cancelled task did not return in time; reported cancelled", "run=%s%s", run->id,
                 run->trace_field);
        reporter_final(w->reporter, run, ERRAND_STATE_CANCELLED, NULL, false, NULL, NULL);
        return;
    }
    char msg[REPORT_MESSAGE_MAX];
    if (why == STOP_TIMEOUT)
        snprintf(msg, sizeof msg, "task timed out after %gs", run->timeout_seconds);
    else
        snprintf(msg, sizeof msg, "%s", executor_stop_message(why));
    log_warn("task timed out", "run=%s task=%s timeout_seconds=%g%s", run->id, run->task,
             run->timeout_seconds, run->trace_field);
    reporter_final(w->reporter, run, ERRAND_STATE_FAILED, msg, true, NULL, NULL);
    atomic_fetch_add(&w->stats.failed, 1);
}

/* A part of the worker cannot go on (its fork server died): stop, and have serve() fail. */
static void on_fatal(void *owner, const char *message)
{
    errand_worker *w = owner;
    pthread_mutex_lock(&w->fatal_mu);
    bool first = !w->fatal;
    if (first)
        w->fatal = mem_strdup(message);
    pthread_mutex_unlock(&w->fatal_mu);
    if (first)
        log_error("worker cannot go on", "worker=%s error=\"%s\"", w->name, message);
    errand_worker_stop(w);
}

static void on_cancel(struct wrun *run, void *ctx)
{
    errand_worker *w = ctx;
    watchdog_add(w->watchdog, run, clock_mono_ms() + WORKER_CANCEL_GRACE_MS, WATCH_CANCEL);
}

/* --- serve ---------------------------------------------------------------------------- */

static int start_parts(errand_worker *w, errand_error *err)
{
    if (run_queue_init(&w->queue, w->concurrency, w->prefetch, w->max_waiting))
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the run queue");
    w->queue_ready = true;
    w->sub = (struct subtask_env){
        .api_url = w->api_url, .api_key = w->api_key, .queue = &w->queue, .notify_fd = -1};
    struct reporter_config rc_cfg = {
        .api_url = w->api_url,
        .api_key = w->api_key,
        .worker_name = w->name,
        .lease_seconds = w->lease_seconds,
        .on_cancel = on_cancel,
        .cb_ctx = w,
    };
    int rc = reporter_new(&rc_cfg, &w->reporter, err);
    w->sub.reporter = w->reporter;
    if (!rc)
        rc = watchdog_new(on_deadline, w, &w->watchdog, err);
    if (!rc)
        rc = reporter_start(w->reporter, err);
    if (!rc)
        rc = watchdog_start(w->watchdog, err);
    if (rc)
        return rc;
    struct executor_env env = {
        .queue = &w->queue,
        .reporter = w->reporter,
        .watchdog = w->watchdog,
        .stats = &w->stats,
        .storage_path = w->storage_path,
        .s3 = w->s3.bucket ? &w->s3 : NULL,
        .persist_by_default = w->persist_by_default,
        .inline_max = w->inline_max,
        .log_prints = w->log_prints,
        .isolate = w->isolate,
        .fork_server = w->fork_server,
        .sub = &w->sub,
        .on_fatal = on_fatal,
        .limits = {.memory_limit_bytes = w->memory_limit_bytes,
                   .cpu_limit_seconds = w->cpu_limit_seconds},
        .on_thread_exit = worker_unref,
        .owner = w,
    };
    /* A thread for every slot, and one for each run that may run in the place of a run
       waiting for a subtask (run_queue.h). */
    rc = executor_start(&env, w->concurrency + w->max_waiting, worker_ref, &w->executor, err);
    if (rc)
        return rc;
    struct poller_config pc = {
        .api_url = w->api_url,
        .api_key = w->api_key,
        .worker_name = w->name,
        .lease_seconds = w->lease_seconds,
        .tasks = &w->tasks,
        .queue = &w->queue,
        .reporter = w->reporter,
        .stats = &w->stats,
        .stop_fd = w->stop_pipe[0],
        .stopping = &w->stopping,
    };
    return poller_start(&pc, &w->poller, err);
}

static void wait_for_stop(errand_worker *w)
{
    struct pollfd pf = {.fd = w->stop_pipe[0], .events = POLLIN};
    while (!atomic_load(&w->stopping)) {
        if (poll(&pf, 1, -1) < 0 && errno != EINTR)
            break;
    }
}

/* The orderly stop (see the top of the file); copes with parts that never started. */
static void shut_down(errand_worker *w)
{
    if (!w->queue_ready)
        return;
    run_queue_stop_claims(&w->queue);
    poller_join(w->poller);
    struct wrun *queued = run_queue_close(&w->queue);
    size_t handed_back = 0;
    while (queued) {
        struct wrun *next = queued->queue_next;
        if (wrun_take_outcome(queued)) {
            reporter_final(w->reporter, queued, ERRAND_STATE_SCHEDULED, NULL, false, NULL, NULL);
            handed_back++;
        }
        wrun_unref(queued);
        queued = next;
    }
    if (handed_back)
        log_info("handed unstarted runs back", "worker=%s runs=%zu", w->name, handed_back);
    if (w->executor && !run_queue_wait_idle(&w->queue, clock_mono_ms() + w->grace_ms)) {
        executor_abandon(w->executor);
        executor_wait_exec_done(w->executor, clock_mono_ms() + PROCESS_KILL_GRACE_MS +
                                                 WORKER_EXEC_REAP_MARGIN_MS);
    }
    if (w->watchdog)
        watchdog_stop(w->watchdog);
    if (w->reporter)
        reporter_stop(w->reporter, WORKER_FLUSH_TIMEOUT_MS);
    if (w->executor)
        executor_release(w->executor);
}

int errand_worker_serve(errand_worker *w, errand_error *err)
{
    error_clear(err);
    if (!w)
        return error_set(err, ERRAND_EINVAL, "worker", "a worker is required");
    if (w->tasks.n == 0)
        return error_set(err, ERRAND_EINVAL, "tasks",
                         "the worker serves no tasks: call errand_worker_add_task() or "
                         "errand_worker_add_exec() before serve()");
    if (atomic_exchange(&w->served, true))
        return error_set(err, ERRAND_EINVAL, "worker",
                         "errand_worker_serve() was already called on this worker");
    struct signals_saved sigs = {0};
    bool captured = false;
    int rc = 0;
    /* First, while this process has one thread: see fork_server.h. */
    if (w->isolate) {
        w->child_env = (struct isolated_child_env){
            .tasks = &w->tasks, .api_url = w->api_url, .api_key = w->api_key};
        rc = fork_server_start(isolated_task_child, &w->child_env, &w->fork_server, err);
    }
    if (!rc && w->handle_signals)
        rc = signals_install(w, &sigs, err);
    if (!rc && w->log_prints) {
        rc = stdout_capture_install(err);
        captured = rc == 0;
    }
    if (!rc)
        rc = start_parts(w, err);
    if (!rc) {
        log_info("worker started",
                 "worker=%s tasks=%zu concurrency=%zu prefetch=%zu max_waiting=%zu isolate=%s "
                 "api_url=%s",
                 w->name, w->tasks.n, w->concurrency, w->prefetch, w->max_waiting,
                 w->isolate ? "true" : "false", w->api_url);
        wait_for_stop(w);
        log_info("worker stopping", "worker=%s", w->name);
    } else {
        errand_worker_stop(w);
    }
    shut_down(w);
    fork_server_stop(w->fork_server);
    w->fork_server = NULL;
    if (captured)
        stdout_capture_uninstall();
    signals_restore(&sigs);
    pthread_mutex_lock(&w->fatal_mu);
    if (!rc && w->fatal)
        rc = error_set(err, ERRAND_EIO, NULL, "%s", w->fatal);
    pthread_mutex_unlock(&w->fatal_mu);
    if (!rc) {
        errand_worker_stats st;
        errand_worker_get_stats(w, &st);
        log_info("worker stopped", "worker=%s claimed=%llu completed=%llu failed=%llu", w->name,
                 (unsigned long long)st.claimed, (unsigned long long)st.completed,
                 (unsigned long long)st.failed);
    }
    return rc;
}

int errand_serve(const errand_task_def *tasks, size_t n, const errand_worker_options *opt,
                 errand_error *err)
{
    error_clear(err);
    if (!tasks || n == 0)
        return error_set(err, ERRAND_EINVAL, "tasks", "errand_serve needs at least one task");
    errand_worker_options o;
    if (opt)
        o = *opt;
    else
        errand_worker_options_init(&o);
    o.handle_signals = true;
    errand_worker *w = NULL;
    int rc = errand_worker_new(&o, &w, err);
    for (size_t i = 0; !rc && i < n; i++)
        rc = errand_worker_add_task(w, &tasks[i], err);
    if (!rc)
        rc = errand_worker_serve(w, err);
    errand_worker_free(w);
    return rc;
}
