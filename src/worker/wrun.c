/* SPDX-License-Identifier: MIT */
/*
 * wrun.c — claimed runs: parsing a claim item, reference counting, the stop and outcome
 * flags (see wrun.h).
 */
#include "worker/wrun.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void wrun_destroy(struct wrun *r)
{
    int fd1 = atomic_load(&r->wake_fd1);
    if (fd1 > 0)
        close(fd1 - 1);
    mem_free(r->id);
    mem_free(r->task);
    mem_free(r->lease_token);
    mem_free(r->params);
    mem_free(r);
}

int wrun_from_claim(const json_t *item, struct wrun **out, errand_error *err)
{
    *out = NULL;
    if (!json_is_object(item))
        return error_set(err, ERRAND_ESERVER, "runs", "a claimed run is not a JSON object");
    const char *id = json_string_value(json_object_get(item, "id"));
    const char *task = json_string_value(json_object_get(item, "task"));
    const char *token = json_string_value(json_object_get(item, "lease_token"));
    if (!id || !task || !token)
        return error_set(err, ERRAND_ESERVER,
                         !id     ? "id"
                         : !task ? "task"
                                 : "lease_token",
                         "a claimed run lacks its '%s'",
                         !id     ? "id"
                         : !task ? "task"
                                 : "lease_token");
    json_t *params = json_object_get(item, "parameters");
    json_t *attempt = json_object_get(item, "attempt");
    json_t *max_attempts = json_object_get(item, "max_attempts");
    json_t *timeout = json_object_get(item, "timeout_seconds");
    json_t *persist = json_object_get(item, "persist_result");
    const char *lease_expires = json_string_value(json_object_get(item, "lease_expires"));

    struct wrun *r = mem_calloc(1, sizeof *r);
    if (!r)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    atomic_init(&r->refs, 1);
    atomic_init(&r->stop, STOP_NONE);
    atomic_init(&r->outcome_taken, false);
    atomic_init(&r->running_report, RUNNING_NONE);
    atomic_init(&r->wake_fd1, 0);
    r->id = mem_strdup(id);
    r->task = mem_strdup(task);
    r->lease_token = mem_strdup(token);
    r->params = json_is_object(params) ? json_compact(params) : mem_strdup("{}");
    if (!r->id || !r->task || !r->lease_token || !r->params) {
        wrun_destroy(r);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    r->attempt = json_is_integer(attempt) ? (int)json_integer_value(attempt) : 1;
    r->max_attempts = json_is_integer(max_attempts) ? (int)json_integer_value(max_attempts) : 1;
    r->timeout_seconds = json_is_number(timeout) ? json_number_value(timeout) : 0;
    if (r->timeout_seconds < 0)
        r->timeout_seconds = 0;
    r->persist_result = json_is_boolean(persist) ? json_is_true(persist) : -1;
    if (!lease_expires || !clock_parse_rfc3339(lease_expires, &r->lease_expires_ms))
        r->lease_expires_ms = 0;
    /* An invalid traceparent (from a server that did not check it) is dropped, not passed on:
       a task's subtasks would be refused for it. */
    const char *tp = json_string_value(json_object_get(item, "traceparent"));
    if (traceparent_valid(tp) && traceparent_child(tp, r->task_traceparent) == 0)
        memcpy(r->traceparent, tp, TRACEPARENT_LEN + 1);
    else
        r->task_traceparent[0] = '\0';
    traceparent_log_field(r->traceparent, r->trace_field);
    *out = r;
    return 0;
}

struct wrun *wrun_ref(struct wrun *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void wrun_unref(struct wrun *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        wrun_destroy(r);
}

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one); /* a full counter is readable already */
    (void)n;
}

bool wrun_request_stop(struct wrun *r, enum stop_reason why)
{
    int expected = STOP_NONE;
    if (!atomic_compare_exchange_strong(&r->stop, &expected, (int)why))
        return false;
    /* After the stop is set: a waiter installs its fd before it checks the stop, so one of
       the two sees the other (both sequentially consistent). */
    int fd1 = atomic_load(&r->wake_fd1);
    if (fd1 > 0)
        wake(fd1 - 1);
    return true;
}

int wrun_wake_fd(struct wrun *r)
{
    int fd1 = atomic_load(&r->wake_fd1);
    if (fd1 > 0)
        return fd1 - 1;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -1;
    int none = 0;
    if (!atomic_compare_exchange_strong(&r->wake_fd1, &none, fd + 1)) {
        close(fd); /* another thread made one first */
        return none - 1;
    }
    if (wrun_stop_reason(r) != STOP_NONE)
        wake(fd);
    return fd;
}

enum stop_reason wrun_stop_reason(const struct wrun *r)
{
    return (enum stop_reason)atomic_load(&((struct wrun *)r)->stop);
}

bool wrun_take_outcome(struct wrun *r)
{
    bool expected = false;
    return atomic_compare_exchange_strong(&r->outcome_taken, &expected, true);
}
