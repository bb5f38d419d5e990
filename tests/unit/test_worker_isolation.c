/* SPDX-License-Identifier: MIT */
/*
 * test_worker_isolation.c — the worker's isolated mode against a real errand server (started
 * in this process, live_server.h): C task functions that segfault, abort, allocate without
 * end, spin on the CPU or ignore a timeout each end their own run, FAILED with how they died
 * and retried per their policy, while the worker serves on; a well-behaved task still has
 * every errand_task_* call (logs, prints, attempt, stop flag) working from its child.
 */
#include "live_server.h"

#include <sys/resource.h>

#include "errand/errand.h"

#ifdef __SANITIZE_ADDRESS__
/* At the memory limit AddressSanitizer's malloc returns NULL, as glibc's does, rather than
 * report (a report needs memory the limit no longer grants). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

#define MEMORY_LIMIT_BYTES (64u * 1024 * 1024)
#define CPU_LIMIT_SECONDS 1.0
#define HOG_STEP_BYTES (1024 * 1024)
#define HOG_MAX_STEPS 4096 /* 4 GiB: far past the limit, never reached */
#define WAIT_FINAL_MS 60000
#define POLL_MS 20

/* A field of /proc/PID/status ("Threads", "PPid"), or -1. */
static long proc_status_field(long pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long value = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            value = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return value;
}

/* Says which process it is, and how many threads its parent and grandparent have. */
static int task_ok(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ud;
    errand_task_log(ctx, ERRAND_LOG_WARNING, "attempt %d of run %s\nsecond line",
                    errand_task_attempt(ctx), errand_task_run_id(ctx));
    printf("printed by the task\n");
    long parent = (long)getppid(), grandparent = proc_status_field(parent, "PPid");
    char *r = malloc(256);
    snprintf(r, 256,
             "{\"pid\": %ld, \"params\": %s, \"parent_threads\": %ld, "
             "\"grandparent_threads\": %ld}",
             (long)getpid(), params, proc_status_field(parent, "Threads"),
             proc_status_field(grandparent, "Threads"));
    *result = r;
    return 0;
}

static int task_segv(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)params, (void)result, (void)ud;
    raise(SIGSEGV);
    return 0;
}

static int task_abort(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)params, (void)result, (void)ud;
    abort();
}

/* Allocates (and touches) until the allocation fails; keeps what it got. */
static int task_hog(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)params, (void)result, (void)ud;
    for (int i = 0; i < HOG_MAX_STEPS; i++) {
        char *p = malloc(HOG_STEP_BYTES);
        if (!p) {
            errand_task_fail(ctx, false, "allocation failed after %d MiB", i);
            return 1;
        }
        memset(p, 1, HOG_STEP_BYTES);
    }
    errand_task_fail(ctx, false, "the memory limit did not hold");
    return 1;
}

static int task_spin(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)params, (void)result, (void)ud;
    volatile unsigned long n = 1;
    while (n)
        n = n + 2; /* odd: never 0 */
    return 0;
}

/* Returns once asked to stop (its timeout): the stop flag reaches the child. */
static int task_polite(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)params, (void)result, (void)ud;
    while (!errand_task_should_stop(ctx))
        usleep(10 * 1000);
    errand_task_fail(ctx, true, "stopped as asked");
    return 1;
}

/* Ignores every request to stop: only SIGKILL ends it. */
static int task_stubborn(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)params, (void)result, (void)ud;
    signal(SIGTERM, SIG_IGN);
    volatile bool forever = true;
    while (forever)
        pause();
    return 0;
}

static void serve_isolated(const struct live_server *ls, struct served *s)
{
    errand_worker_options opt;
    errand_worker_options_init(&opt);
    opt.api_url = ls->api_url;
    opt.api_key = "";
    opt.name = "iso-worker";
    opt.concurrency = 3;
    opt.log_prints = ERRAND_YES;
    opt.isolate = true;
    opt.memory_limit_bytes = MEMORY_LIMIT_BYTES;
    opt.cpu_limit_seconds = CPU_LIMIT_SECONDS;
    errand_error err;
    assert_int_equal(errand_worker_new(&opt, &s->w, &err), 0);
    static const struct {
        const char *name;
        errand_task_fn fn;
    } tasks[] = {{"iso.ok", task_ok},
                 {"iso.segv", task_segv},
                 {"iso.abort", task_abort},
                 {"iso.hog", task_hog},
                 {"iso.spin", task_spin},
                 {"iso.polite", task_polite},
                 {"iso.stubborn", task_stubborn}};
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
        errand_task_def def = {.name = tasks[i].name, .fn = tasks[i].fn};
        assert_int_equal(errand_worker_add_task(s->w, &def, &err), 0);
    }
    served_start(s);
}

static json_t *wait_final(struct fixture *fx, const char *id)
{
    int64_t deadline = clock_mono_ms() + WAIT_FINAL_MS;
    for (;;) {
        json_t *r = get_run(fx, id);
        errand_state st;
        assert_true(state_parse(state_type_of(r), &st));
        if (state_is_final(st))
            return r;
        if (clock_mono_ms() > deadline)
            fail_msg("run %s did not end: %s", id, state_type_of(r));
        json_decref(r);
        usleep(POLL_MS * 1000);
    }
}

static const char *message_of(const json_t *run)
{
    return sfield(json_object_get(run, "state"), "message");
}

/* The run ended FAILED with needle in its message. */
static void expect_failed(const json_t *run, const char *needle)
{
    if (strcmp(state_type_of(run), "FAILED") != 0 || !strstr(message_of(run), needle))
        fail_msg("run %s: %s \"%s\", want FAILED with \"%s\"", sfield(run, "id"),
                 state_type_of(run), message_of(run), needle);
}

/* Submits a run of task with extra spec fields; returns its id (owned). */
static char *submit_task(struct fixture *fx, const char *task, const char *extra)
{
    char spec[256];
    snprintf(spec, sizeof spec, "{\"task\": \"%s\", \"parameters\": {\"n\": 7}%s%s}", task,
             extra[0] ? ", " : "", extra);
    json_t *run = submit(fx, clock_now_ms(), spec, NULL);
    char *id = strdup(sfield(run, "id"));
    json_decref(run);
    return id;
}

/* Every log line of a run, joined by "|". */
static char *logs_of(struct fixture *fx, const char *id)
{
    struct log_page page;
    errand_error err;
    assert_int_equal(store_get_logs(fx->st, id, 0, 100, &page, &err), 0);
    size_t len = 1;
    for (size_t i = 0; i < page.n; i++)
        len += strlen(page.items[i].message) + 1;
    char *all = calloc(1, len);
    for (size_t i = 0; i < page.n; i++) {
        strcat(all, page.items[i].message);
        strcat(all, "|");
    }
    log_page_clear(&page);
    return all;
}

static void crashes_end_their_run_and_the_worker_serves_on(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    struct served s;
    serve_isolated(&ls, &s);

    char *segv = submit_task(fx, "iso.segv", "\"retries\": 1");
    char *abrt = submit_task(fx, "iso.abort", "");
    char *hog = submit_task(fx, "iso.hog", "");
    char *spin = submit_task(fx, "iso.spin", "");
    char *polite = submit_task(fx, "iso.polite", "\"timeout_seconds\": 0.3");
    char *stubborn = submit_task(fx, "iso.stubborn", "\"timeout_seconds\": 0.3");

    json_t *r = wait_final(fx, segv);
    expect_failed(r, "killed by signal 11");
    assert_int_equal(ifield(r, "attempt"), 2); /* a crash is retried per the run's policy */
    json_decref(r);
    r = wait_final(fx, abrt);
    expect_failed(r, "killed by signal 6");
    json_decref(r);
    r = wait_final(fx, hog);
    assert_string_equal(state_type_of(r), "FAILED");
    /* malloc fails at the limit; under AddressSanitizer its allocator ends the child. */
    if (!strstr(message_of(r), "allocation failed after") && !strstr(message_of(r), "memory"))
        fail_msg("the memory limit did not end the hog: %s", message_of(r));
    json_decref(r);
    r = wait_final(fx, spin);
    expect_failed(r, "CPU time limit exceeded");
    json_decref(r);
    r = wait_final(fx, polite);
    expect_failed(r, "timed out");
    json_decref(r);
    r = wait_final(fx, stubborn);
    expect_failed(r, "timed out");
    json_decref(r);

    /* The worker lives on, with its slots back: a good run after all that completes, from a
       process of its own, with its log lines (level kept, a newline inside one) and prints. */
    char *ok = submit_task(fx, "iso.ok", "");
    r = wait_final(fx, ok);
    if (strcmp(state_type_of(r), "COMPLETED") != 0)
        fail_msg("iso.ok ended %s: %s", state_type_of(r), message_of(r));
    json_t *result = json_object_get(r, "result");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(result, "params"), "n")),
                     7);
    assert_int_not_equal(json_integer_value(json_object_get(result, "pid")), (long)getpid());
    char *logs = logs_of(fx, ok);
    char want[128];
    snprintf(want, sizeof want, "attempt 1 of run %s\nsecond line|", ok);
    assert_non_null(strstr(logs, want));
    assert_non_null(strstr(logs, "printed by the task|"));
    free(logs);
    /* It was forked by a process of one thread, itself forked by one (the keeper and the fork
       server), not by the threaded worker: no lock another thread held came along. */
    assert_int_equal(json_integer_value(json_object_get(result, "parent_threads")), 1);
    assert_int_equal(json_integer_value(json_object_get(result, "grandparent_threads")), 1);
    json_decref(r);

    /* Many at once, each from a process of its own, all served. */
    enum { MANY = 30 };
    char *many[MANY];
    for (int i = 0; i < MANY; i++)
        many[i] = submit_task(fx, "iso.ok", "");
    long pids[MANY];
    for (int i = 0; i < MANY; i++) {
        r = wait_final(fx, many[i]);
        if (strcmp(state_type_of(r), "COMPLETED") != 0)
            fail_msg("iso.ok ended %s: %s", state_type_of(r), message_of(r));
        pids[i] = (long)json_integer_value(json_object_get(json_object_get(r, "result"), "pid"));
        for (int j = 0; j < i; j++)
            assert_int_not_equal(pids[i], pids[j]);
        json_decref(r);
        free(many[i]);
    }

    served_stop(&s);
    live_stop(&ls);
    free(segv), free(abrt), free(hog), free(spin), free(polite), free(stubborn), free(ok);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(crashes_end_their_run_and_the_worker_serves_on, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
