/* SPDX-License-Identifier: MIT */
/*
 * handlers_stats.c — the dashboard's figures and the task controls:
 *   GET  /api/stats?window=hour|day  counts by state, runs finished per minute, duration
 *                                    percentiles of the latest finished runs, per-task table;
 *   POST /api/tasks/pause  {"task"}  claims hand out none of the task's runs until
 *   POST /api/tasks/resume {"task"}  ... it is resumed (which wakes the waiting claims).
 * The figures come from the store's counters (store_read_stats), never from a scan of the
 * runs, so they cost the same with ten million runs stored as with none.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "server/field.h"
#include "server/handlers.h"
#include "server/query.h"

#define WINDOW_HOUR_MIN 60
#define WINDOW_DAY_MIN (24 * 60)
/* Finished runs read for the duration percentiles. */
#define STATS_SAMPLE 2000

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile p (0-100) of the n sorted values. */
static int64_t percentile(const int64_t *v, size_t n, int p)
{
    size_t rank = (size_t)((p * n + 99) / 100);
    return v[rank > 0 ? rank - 1 : 0];
}

/* {"p50", "p95", "p99"} of the n values (sorted in place), or null when there are none. */
static void write_percentiles(struct jw *w, int64_t *v, size_t n)
{
    if (n == 0) {
        jw_lit(w, "null");
        return;
    }
    qsort(v, n, sizeof *v, cmp_i64);
    jw_lit(w, "{");
    jw_key(w, "p50");
    jw_int(w, percentile(v, n, 50));
    jw_member(w, "p95");
    jw_int(w, percentile(v, n, 95));
    jw_member(w, "p99");
    jw_int(w, percentile(v, n, 99));
    jw_member(w, "n");
    jw_int(w, (int64_t)n);
    jw_lit(w, "}");
}

static void write_counts(struct jw *w, const int64_t counts[8])
{
    jw_lit(w, "{");
    for (int i = 0; i < 8; i++) {
        if (i)
            jw_lit(w, ",");
        jw_key(w, state_type_name((errand_state)i));
        jw_int(w, counts[i]);
    }
    jw_lit(w, "}");
}

/* Every minute of the window, oldest first, zeros where nothing finished. */
static void write_minutes(struct jw *w, const struct store_stats *st, int64_t first_minute,
                          int minutes)
{
    jw_lit(w, "[");
    size_t j = 0;
    for (int i = 0; i < minutes; i++) {
        int64_t at = (first_minute + i) * MS_PER_MINUTE;
        while (j < st->n_minutes && st->minutes[j].minute_ms < at)
            j++;
        const struct minute_stats *m =
            j < st->n_minutes && st->minutes[j].minute_ms == at ? &st->minutes[j] : NULL;
        if (i)
            jw_lit(w, ",");
        jw_lit(w, "{");
        jw_key(w, "at");
        jw_time(w, at);
        jw_member(w, "completed");
        jw_int(w, m ? m->completed : 0);
        jw_member(w, "failed");
        jw_int(w, m ? m->failed : 0);
        jw_member(w, "cancelled");
        jw_int(w, m ? m->cancelled : 0);
        jw_lit(w, "}");
    }
    jw_lit(w, "]");
}

/* The run durations of the samples of task (SIZE_MAX: every task) into buf. */
static size_t gather(const struct store_stats *st, size_t task, bool wait, int64_t *buf)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n_samples; i++) {
        const struct finished_sample *f = &st->samples[i];
        int64_t v = wait ? f->wait_ms : f->run_ms;
        if (v >= 0 && (task == SIZE_MAX || f->task == task))
            buf[n++] = v;
    }
    return n;
}

static void write_task(struct jw *w, const struct store_stats *st, size_t i, int64_t *buf)
{
    const struct task_stats *t = &st->tasks[i];
    jw_lit(w, "{");
    jw_key(w, "task");
    jw_string(w, t->task);
    jw_member(w, "counts");
    write_counts(w, t->counts);
    jw_member(w, "completed");
    jw_int(w, t->completed);
    jw_member(w, "failed");
    jw_int(w, t->failed);
    jw_member(w, "cancelled");
    jw_int(w, t->cancelled);
    int64_t ended = t->completed + t->failed;
    jw_member(w, "failure_rate");
    if (ended > 0)
        jw_number(w, (double)t->failed / (double)ended);
    else
        jw_lit(w, "null");
    jw_member(w, "run_ms");
    write_percentiles(w, buf, gather(st, i, false, buf));
    jw_member(w, "paused");
    jw_bool(w, t->paused);
    jw_member(w, "last_failure");
    if (t->last_failure_id) {
        jw_lit(w, "{");
        jw_key(w, "id");
        jw_string(w, t->last_failure_id);
        jw_member(w, "at");
        jw_time(w, t->last_failure_at);
        jw_lit(w, "}");
    } else {
        jw_lit(w, "null");
    }
    jw_lit(w, "}");
}

const struct query_param stats_params[] = {{"window", false}, {NULL, false}};
const char *const task_control_fields[] = {"task", NULL};

int handle_stats(const struct handler_ctx *ctx, const struct http_request *req,
                 struct http_reply *reply, errand_error *err)
{
    int rc = query_check(req, stats_params, err);
    if (rc < 0)
        return rc;
    const char *window = http_query(req, "window");
    int minutes = WINDOW_HOUR_MIN;
    if (window && strcmp(window, "day") == 0)
        minutes = WINDOW_DAY_MIN;
    else if (window && strcmp(window, "hour") != 0)
        return error_set(err, ERR_INVALID_PARAMETER, "window",
                         "'window' must be hour or day, got '%.40s'", window);
    int64_t now = clock_now_ms();
    int64_t first_minute = now / MS_PER_MINUTE - (minutes - 1);
    struct store_stats st;
    if ((rc = store_read_stats(ctx->st, first_minute * MS_PER_MINUTE, STATS_SAMPLE, &st, err)) < 0)
        return rc;
    int64_t *buf = mem_calloc(st.n_samples + 1, sizeof *buf);
    if (!buf) {
        store_stats_clear(&st);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "window");
    jw_string(&w, minutes == WINDOW_DAY_MIN ? "day" : "hour");
    jw_member(&w, "since");
    jw_time(&w, first_minute * MS_PER_MINUTE);
    jw_member(&w, "counts");
    write_counts(&w, st.counts);
    jw_member(&w, "minutes");
    write_minutes(&w, &st, first_minute, minutes);
    jw_member(&w, "durations");
    jw_lit(&w, "{");
    jw_key(&w, "sampled");
    jw_int(&w, (int64_t)st.n_samples);
    jw_member(&w, "wait_ms");
    write_percentiles(&w, buf, gather(&st, SIZE_MAX, true, buf));
    jw_member(&w, "run_ms");
    write_percentiles(&w, buf, gather(&st, SIZE_MAX, false, buf));
    jw_lit(&w, "}");
    jw_member(&w, "tasks");
    jw_lit(&w, "[");
    for (size_t i = 0; i < st.n_tasks; i++) {
        if (i)
            jw_lit(&w, ",");
        write_task(&w, &st, i, buf);
    }
    jw_lit(&w, "]");
    jw_member(&w, "tasks_truncated");
    jw_bool(&w, st.tasks_truncated);
    jw_lit(&w, "}");
    mem_free(buf);
    store_stats_clear(&st);
    return reply_written(reply, HTTP_OK, &w, err);
}

/* POST /api/tasks/pause and /resume: {"task": "<name>"}. */
static int set_paused(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, bool paused, errand_error *err)
{
    json_t *body = NULL;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    json_t *task = json_object_get(body, "task");
    const char *name = json_string_value(task);
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, task_control_fields, err)) < 0)
        ; /* the error names the unknown field */
    else if (!task)
        rc = error_set(err, ERR_MISSING_FIELD, "task", "'task' is required: the task's name");
    else if (!name || !*name || json_string_length(task) > WIRE_TASK_NAME_MAX * 4)
        rc = error_set(err, ERRAND_EINVAL, "task", "'task' must be a task name of 1-%d characters",
                       WIRE_TASK_NAME_MAX);
    if (rc == 0 && (rc = store_set_paused(ctx->st, name, paused, err)) == 0) {
        if (!paused) /* claims waiting for the task look again */
            notify_signal_key(ctx->notify, NOTIFY_RUNS_DUE, name);
        http_reply_json(reply, HTTP_OK, json_pack("{s:s, s:b}", "task", name, "paused", paused));
    }
    json_decref(body);
    return rc;
}

int handle_task_pause(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, errand_error *err)
{
    return set_paused(ctx, req, reply, true, err);
}

int handle_task_resume(const struct handler_ctx *ctx, const struct http_request *req,
                       struct http_reply *reply, errand_error *err)
{
    return set_paused(ctx, req, reply, false, err);
}
