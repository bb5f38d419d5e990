/* SPDX-License-Identifier: MIT */
/*
 * test_worker_stdout_capture.c — log prints: while installed, what a task thread prints
 * through stdout arrives as lines at its sink (a last line without newline at the end),
 * other threads still write to file descriptor 1, and uninstalling puts the original stdout
 * back. Also the run queue's slot accounting, which decides how many runs a claim asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "worker/run_queue.h"
#include "worker/stdout_capture.h"

struct lines {
    int n;
    char text[4][64];
};

static void collect(void *ctx, const char *line, size_t len)
{
    struct lines *l = ctx;
    if (l->n < 4)
        snprintf(l->text[l->n++], sizeof l->text[0], "%.*s", (int)len, line);
}

static void *print_elsewhere(void *arg)
{
    (void)arg;
    printf("from another thread\n");
    return NULL;
}

static void task_prints_become_lines_other_threads_reach_fd_1(void **state)
{
    (void)state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(stdout);
    int saved_fd1 = dup(STDOUT_FILENO);
    dup2(pipefd[1], STDOUT_FILENO);

    FILE *original = stdout;
    errand_error err;
    assert_int_equal(stdout_capture_install(&err), 0);
    assert_ptr_not_equal(stdout, original);
    static struct capture_sink sink;
    static struct lines got;
    sink.emit = collect;
    sink.ctx = &got;
    stdout_capture_begin(&sink);
    printf("hello %d\n", 42);
    puts("second");
    fputs("no newline", stdout);
    pthread_t t;
    pthread_create(&t, NULL, print_elsewhere, NULL);
    pthread_join(t, NULL);
    stdout_capture_end();
    stdout_capture_uninstall();
    assert_ptr_equal(stdout, original);

    assert_int_equal(got.n, 3);
    assert_string_equal(got.text[0], "hello 42");
    assert_string_equal(got.text[1], "second");
    assert_string_equal(got.text[2], "no newline");

    fflush(stdout);
    dup2(saved_fd1, STDOUT_FILENO);
    close(saved_fd1);
    close(pipefd[1]);
    char buf[128] = {0};
    assert_true(read(pipefd[0], buf, sizeof buf - 1) > 0);
    close(pipefd[0]);
    assert_string_equal(buf, "from another thread\n");
}

static void slots_limit_what_is_claimed(void **state)
{
    (void)state;
    struct run_queue q;
    assert_int_equal(run_queue_init(&q, 3, 0, 0), 0);
    assert_int_equal(run_queue_wait_free(&q), 3);
    struct wrun *runs[2];
    for (int i = 0; i < 2; i++) {
        runs[i] = mem_calloc(1, sizeof *runs[i]);
        atomic_init(&runs[i]->refs, 1);
    }
    run_queue_push_many(&q, runs, 2);
    assert_int_equal(run_queue_wait_free(&q), 1);
    struct wrun *first = run_queue_next(&q, false);
    assert_ptr_equal(first, runs[0]);
    assert_int_equal(run_queue_wait_free(&q), 1); /* executing still holds its slot */
    assert_false(run_queue_wait_idle(&q, 0));
    /* closing hands back what nobody started and frees those slots */
    struct wrun *rest = run_queue_close(&q);
    assert_ptr_equal(rest, runs[1]);
    assert_null(rest->queue_next);
    assert_null(run_queue_next(&q, true)); /* the first one finished; the queue is closed */
    assert_true(run_queue_wait_idle(&q, 0));
    run_queue_stop_claims(&q);
    assert_int_equal(run_queue_wait_free(&q), 0);
    mem_free(runs[0]);
    mem_free(runs[1]);
    run_queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(task_prints_become_lines_other_threads_reach_fd_1),
        cmocka_unit_test(slots_limit_what_is_claimed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
