/* SPDX-License-Identifier: MIT */
/*
 * test_worker_executor.c — the executor threads' end (worker/executor.h): once the run queue
 * is closed, executor_release() returns only after every thread that was not inside a task
 * has ended for good, its last callback done and the thread gone from the process. A thread
 * merely detached while it is still ending races with the process's exit: OpenSSL's
 * per-thread state (made by the first RAND_bytes on the thread, as a persisted result's
 * file name does) is then never freed, and LeakSanitizer fails the worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdatomic.h>
#include <time.h>

#include "core/uuid.h"
#include "worker/executor.h"

#define THREADS 4
#define QUEUE_CAPACITY 8
/* How long each thread's last callback takes: far longer than release needs to return if it
 * does not wait for the threads. */
#define SLOW_EXIT_MS 200
#define TASK_LIST_SETTLE_POLLS 50 /* of 1 ms */

static atomic_int threads_out;

static void count_in(void *owner)
{
    (void)owner;
}

/* The thread's very last step (executor_env.on_thread_exit), made slow on purpose. */
static void slow_exit(void *owner)
{
    (void)owner;
    /* What an executor thread does for a persisted result: its own RNG state in OpenSSL. */
    char token[2 * 8 + 1];
    token_random_hex(8, token);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = SLOW_EXIT_MS * 1000000L};
    nanosleep(&pause, NULL);
    atomic_fetch_add(&threads_out, 1);
}

/* Threads of this process, from /proc/self/task. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void release_waits_for_every_idle_thread_to_end(void **state)
{
    (void)state;
    int before = thread_count();
    struct run_queue q;
    assert_int_equal(run_queue_init(&q, QUEUE_CAPACITY, 0, 0), 0);
    struct worker_counters stats = {0};
    struct executor_env env = {
        .queue = &q,
        .stats = &stats,
        .on_thread_exit = slow_exit,
        .owner = NULL,
    };
    executor *ex = NULL;
    errand_error err = {0};
    assert_int_equal(executor_start(&env, THREADS, count_in, &ex, &err), 0);
    assert_int_equal(thread_count(), before + THREADS);

    assert_null(run_queue_close(&q)); /* nothing was queued */
    executor_release(ex);
    assert_int_equal(atomic_load(&threads_out), THREADS);
    /* Joined, so each thread has ended; the kernel drops an ended thread from
       /proc/self/task a moment after the join returns (it wakes the joiner on its way out),
       which a loaded machine can make visible: allow it that moment, far less than
       SLOW_EXIT_MS. */
    for (int i = 0; i < TASK_LIST_SETTLE_POLLS && thread_count() != before; i++) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000L};
        nanosleep(&pause, NULL);
    }
    assert_int_equal(thread_count(), before);

    executor_free(ex);
    run_queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(release_waits_for_every_idle_thread_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
