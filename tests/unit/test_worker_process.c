/* SPDX-License-Identifier: MIT */
/*
 * test_worker_process.c — running exec tasks' commands (worker/process.h): parameters on
 * stdin and the result on stdout, input larger than a pipe, a command that never reads its
 * stdin (no SIGPIPE), exit status and a bounded stderr tail, stderr line by line, a stop
 * request ending a long command promptly (SIGTERM to its process group, children included),
 * a command killed by a signal, and the memory and CPU limits of a command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "worker/process.h"

/* Generous: only catches a stop that is not acted on at all. */
#define STOP_DEADLINE_MS 1500

static struct process_result res;

static int run(const char *cmd, const char *input, size_t len)
{
    errand_error err;
    int rc = process_run(&(struct process_spec){.command = cmd}, input, len, NULL, NULL, NULL, &res,
                         &err);
    if (rc)
        fail_msg("process_run: %s", err.message);
    return rc;
}

static void limits_hold_for_commands(void **state)
{
    (void)state;
    errand_error err;
    /* 64 MiB of data at most: a 512 MiB allocation fails inside the command. */
    struct process_spec mem = {.command = "exec python3 -c 'bytearray(512 << 20)'",
                               .memory_limit_bytes = 64u << 20};
    assert_int_equal(process_run(&mem, "", 0, NULL, NULL, NULL, &res, &err), 0);
    assert_true(res.exited);
    assert_int_not_equal(res.exit_code, 0);
    assert_non_null(strstr(res.err_tail, "MemoryError"));
    process_result_clear(&res);
    /* 1 CPU second: a busy loop ends with SIGXCPU. */
    struct process_spec cpu = {.command = "while :; do :; done", .cpu_limit_seconds = 1};
    assert_int_equal(process_run(&cpu, "", 0, NULL, NULL, NULL, &res, &err), 0);
    assert_int_equal(res.term_signal, SIGXCPU);
    process_result_clear(&res);
}

static void stdin_goes_in_and_stdout_comes_back(void **state)
{
    (void)state;
    const char *params = "{\"x\":[1,2]}";
    run("cat", params, strlen(params));
    assert_true(res.exited);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.out, params);
    assert_int_equal(res.out_len, strlen(params));
    process_result_clear(&res);

    size_t big = 1024 * 1024; /* far more than a pipe holds */
    char *input = mem_alloc(big);
    memset(input, 'a', big);
    run("wc -c", input, big);
    assert_int_equal(atol(res.out), (long)big);
    process_result_clear(&res);
    /* a command that does not read its input: EPIPE, not a SIGPIPE death of the process */
    run("exit 0", input, big);
    assert_true(res.exited);
    assert_int_equal(res.exit_code, 0);
    process_result_clear(&res);
    mem_free(input);
}

static void exit_status_and_stderr_tail(void **state)
{
    (void)state;
    run("echo first >&2; echo oops >&2; exit 3", "", 0);
    assert_true(res.exited);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.err_tail, "first\noops\n");
    process_result_clear(&res);
    /* only the last PROCESS_STDERR_TAIL_MAX bytes are kept */
    run("i=0; while [ $i -lt 2000 ]; do echo line-$i >&2; i=$((i+1)); done; exit 1", "", 0);
    assert_int_equal(res.err_tail_len, PROCESS_STDERR_TAIL_MAX);
    assert_int_equal(strlen(res.err_tail), PROCESS_STDERR_TAIL_MAX);
    assert_non_null(strstr(res.err_tail, "line-1999\n"));
    process_result_clear(&res);
}

struct seen {
    int n;
    char last[64];
};

static void on_line(void *ctx, const char *line, size_t len)
{
    struct seen *s = ctx;
    s->n++;
    snprintf(s->last, sizeof s->last, "%.*s", (int)len, line);
}

static void stderr_lines_are_handed_over(void **state)
{
    (void)state;
    struct seen s = {0};
    errand_error err;
    assert_int_equal(
        process_run(&(struct process_spec){.command = "printf 'a\\nb\\nno newline' >&2"}, "", 0,
                    NULL, on_line, &s, &res, &err),
        0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.last, "no newline");
    process_result_clear(&res);
}

static atomic_bool stop_now;

static bool should_stop(void *ctx)
{
    (void)ctx;
    return atomic_load(&stop_now);
}

static void stop_ends_the_whole_process_group(void **state)
{
    (void)state;
    atomic_store(&stop_now, true);
    errand_error err;
    int64_t t0 = clock_mono_ms();
    /* the shell forks a child sleep: both are in the group and both get SIGTERM */
    assert_int_equal(process_run(&(struct process_spec){.command = "sleep 30 & sleep 30; wait"}, "",
                                 0, should_stop, NULL, NULL, &res, &err),
                     0);
    assert_true(clock_mono_ms() - t0 < STOP_DEADLINE_MS);
    assert_true(res.stopped);
    assert_false(res.exited);
    assert_int_equal(res.term_signal, SIGTERM);
    process_result_clear(&res);
    atomic_store(&stop_now, false);
}

static void a_signal_death_is_reported(void **state)
{
    (void)state;
    run("kill -KILL $$", "", 0);
    assert_false(res.exited);
    assert_int_equal(res.term_signal, SIGKILL);
    assert_false(res.stopped);
    process_result_clear(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stdin_goes_in_and_stdout_comes_back),
        cmocka_unit_test(exit_status_and_stderr_tail),
        cmocka_unit_test(stderr_lines_are_handed_over),
        cmocka_unit_test(stop_ends_the_whole_process_group),
        cmocka_unit_test(a_signal_death_is_reported),
        cmocka_unit_test(limits_hold_for_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
