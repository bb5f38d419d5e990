/* SPDX-License-Identifier: MIT */
/*
 * handlers_schedules.c — schedules (docs/api.md, Schedules):
 *   POST /api/schedules                 create or replace one by name (201 / 200)
 *   GET  /api/schedules                 every schedule, by name
 *   POST /api/schedules/delete {"name"} delete one (its runs stay)
 *   POST /api/schedules/pause  {"name"} stop firing it
 *   POST /api/schedules/resume {"name"} fire it again from the next tick after now
 * A schedule's runs are made by the scheduler (scheduler.c), not here. What a tick's run is
 * made of — the fields of "run" — is checked here with the submission's own parser, so a
 * schedule that is stored can always fire.
 */
#include <ctype.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/wire_limits.h"
#include "server/cron.h"
#include "server/field.h"
#include "server/handlers.h"
#include "server/query.h"
#include "server/schedule_plan.h"
#include "server/submission.h"

const char *const schedule_fields[] = {
    "name", "task", "cron", "every_seconds", "time_zone", "catch_up", "paused", "run", NULL};
/* A submission's fields, less those a schedule decides itself (the key, the time) or that
 * name other runs. */
const char *const schedule_run_fields[] = {"parameters",
                                           "priority",
                                           "tags",
                                           "retries",
                                           "retry_delay_seconds",
                                           "retry_jitter_factor",
                                           "timeout_seconds",
                                           "cache_key",
                                           "cache_expiration_seconds",
                                           "persist_result",
                                           "traceparent",
                                           "webhook_url",
                                           NULL};
const char *const schedule_control_fields[] = {"name", NULL};

static int64_t scheduler_now(const struct handler_ctx *ctx)
{
    return clock_now_ms() + ctx->scheduler_clock_offset_ms;
}

static void write_schedule(struct jw *w, const struct schedule_row *s)
{
    jw_lit(w, "{");
    jw_key(w, "name");
    jw_string(w, s->name);
    jw_member(w, "task");
    jw_string(w, s->task);
    jw_member(w, "cron");
    if (s->cron)
        jw_string(w, s->cron);
    else
        jw_lit(w, "null");
    jw_member(w, "every_seconds");
    if (s->cron)
        jw_lit(w, "null");
    else
        jw_int(w, s->every_ms / MS_PER_S);
    jw_member(w, "time_zone");
    jw_string(w, s->time_zone);
    jw_member(w, "catch_up");
    jw_string(w, schedule_catch_up_name(s->catch_up));
    jw_member(w, "paused");
    jw_bool(w, s->paused);
    jw_member(w, "run");
    jw_lit(w, s->run_options);
    jw_member(w, "next_tick");
    jw_time(w, s->next_tick);
    jw_member(w, "last_tick");
    if (s->last_tick)
        jw_time(w, s->last_tick);
    else
        jw_lit(w, "null");
    jw_member(w, "last_run_id");
    if (s->last_run_id)
        jw_string(w, s->last_run_id);
    else
        jw_lit(w, "null");
    jw_member(w, "created");
    jw_time(w, s->created);
    jw_member(w, "updated");
    jw_time(w, s->updated);
    jw_lit(w, "}");
}

static int reply_schedule(struct http_reply *reply, int status, const struct schedule_row *s,
                          errand_error *err)
{
    struct jw w = {0};
    write_schedule(&w, s);
    return reply_written(reply, status, &w, err);
}

/* "name": 1..SCHEDULE_NAME_MAX of letters, digits, '.', '_' and '-' (it goes into run keys
 * and tags, and into URLs of clients). */
static int check_name(const json_t *body, const char **out, errand_error *err)
{
    bool present = false;
    int rc = field_string(body, NULL, "name", true, SCHEDULE_NAME_MAX, out, &present, err);
    if (rc < 0)
        return rc;
    for (const char *p = *out; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return error_set(err, ERRAND_EINVAL, "name",
                             "'name' may hold only letters, digits, '.', '_' and '-', got '%s'",
                             *out);
    return 0;
}

/* The body's "run" object, checked as the submission of a tick's run would be; *options
 * its compact text ("{}" when absent). */
static int check_run(const json_t *body, const char *task, char **options, errand_error *err)
{
    const json_t *run = NULL;
    bool present = false;
    int rc = field_object(body, NULL, "run", false, &run, &present, err);
    if (rc < 0)
        return rc;
    if (!present) {
        *options = mem_strdup("{}");
        return *options ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    if ((rc = json_check_fields(run, "run", schedule_run_fields, err)) < 0)
        return rc;
    const json_t *tags = json_object_get(run, "tags");
    if (json_is_array(tags) && json_array_size(tags) >= RUN_SPEC_TAGS_MAX)
        return error_set(err, ERRAND_EINVAL, "run.tags",
                         "'run.tags' may hold at most %d tags (each run also gets "
                         "\"schedule:<name>\")",
                         RUN_SPEC_TAGS_MAX - 1);
    json_t *whole = json_deep_copy(run);
    if (!whole)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    json_object_set_new(whole, "task", json_string(task));
    struct run_spec spec;
    memset(&spec, 0, sizeof spec);
    rc = run_spec_parse(whole, "run", clock_now_ms(), &spec, err);
    json_decref(whole);
    if (rc < 0)
        return rc;
    run_spec_clear(&spec);
    *options = json_compact(run);
    return *options ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* The schedule in body into *s (strings owned), with its first tick after now. */
static int parse_schedule(const struct handler_ctx *ctx, const json_t *body, struct schedule_row *s,
                          errand_error *err)
{
    const char *name = NULL, *task = NULL, *cron = NULL, *zone = NULL, *catch_up = NULL;
    bool has_cron = false, has_every = false, has_zone = false, has_catch_up = false, present;
    long long every = 0;
    int rc;
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, schedule_fields, err)) < 0 ||
        (rc = check_name(body, &name, err)) < 0 ||
        (rc = field_string(body, NULL, "task", true, WIRE_TASK_NAME_MAX, &task, &present, err)) <
            0 ||
        (rc = field_string(body, NULL, "cron", false, CRON_EXPR_MAX, &cron, &has_cron, err)) < 0 ||
        (rc = field_int(body, NULL, "every_seconds", false, 1, SCHEDULE_EVERY_SECONDS_MAX, &every,
                        &has_every, err)) < 0 ||
        (rc = field_string(body, NULL, "time_zone", false, CRON_ZONE_MAX, &zone, &has_zone, err)) <
            0 ||
        (rc = field_string(body, NULL, "catch_up", false, 8, &catch_up, &has_catch_up, err)) < 0)
        return rc;
    if (has_cron == has_every)
        return error_set(err, has_cron ? ERRAND_EINVAL : ERR_MISSING_FIELD, "cron",
                         "a schedule needs exactly one of 'cron' (a cron expression such as "
                         "'*/5 * * * *') and 'every_seconds'");
    if (has_every && has_zone)
        return error_set(err, ERRAND_EINVAL, "time_zone",
                         "'time_zone' applies to 'cron' schedules only: 'every_seconds' ticks "
                         "in absolute time");
    enum schedule_catch_up cu = SCHEDULE_CATCH_UP_SKIP;
    if (has_catch_up && !schedule_catch_up_parse(catch_up, &cu))
        return error_set(err, ERRAND_EINVAL, "catch_up",
                         "'catch_up' must be \"skip\" or \"once\", got '%s'", catch_up);
    const json_t *paused = json_object_get(body, "paused");
    if (paused && !json_is_null(paused) && !json_is_boolean(paused))
        return error_set(err, ERRAND_EINVAL, "paused", "'paused' must be true or false, got %s",
                         json_type_label(paused));
    struct cron parsed;
    if (has_cron && (rc = cron_parse(cron, "cron", &parsed, err)) < 0)
        return rc;
    if (!has_zone)
        zone = "UTC";
    if ((rc = cron_zone_check(zone, "time_zone", err)) < 0)
        return rc;
    memset(s, 0, sizeof *s);
    s->every_ms = has_every ? every * MS_PER_S : 0;
    s->catch_up = cu;
    s->paused = json_is_true(paused);
    if (!(s->name = mem_strdup(name)) || !(s->task = mem_strdup(task)) ||
        !(s->time_zone = mem_strdup(zone)) || (has_cron && !(s->cron = mem_strdup(cron)))) {
        schedule_row_clear(s);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    if ((rc = check_run(body, task, &s->run_options, err)) < 0 ||
        (rc = schedule_next_after(s, scheduler_now(ctx), &s->next_tick, err)) < 0) {
        if (rc == ERRAND_ENOTFOUND)
            rc = error_set(err, ERRAND_EINVAL, "cron",
                           "'cron' '%s' matches no time in the next %d years", cron,
                           CRON_SEARCH_YEARS);
        schedule_row_clear(s);
        return rc;
    }
    return 0;
}

int handle_schedule_put(const struct handler_ctx *ctx, const struct http_request *req,
                        struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    struct schedule_row s, stored;
    rc = parse_schedule(ctx, body, &s, err);
    json_decref(body);
    if (rc < 0)
        return rc;
    bool created = false;
    rc = store_schedule_put(ctx->st, &s, clock_now_ms(), &stored, &created, err);
    schedule_row_clear(&s);
    if (rc < 0)
        return rc;
    scheduler_wake(ctx->scheduler);
    rc = reply_schedule(reply, created ? HTTP_CREATED : HTTP_OK, &stored, err);
    schedule_row_clear(&stored);
    return rc;
}

int handle_schedule_list(const struct handler_ctx *ctx, const struct http_request *req,
                         struct http_reply *reply, errand_error *err)
{
    int rc = query_none(req, err);
    if (rc < 0)
        return rc;
    struct schedule_list l;
    if ((rc = store_schedule_list(ctx->st, &l, err)) < 0)
        return rc;
    struct jw w = {0};
    jw_lit(&w, "{");
    jw_key(&w, "schedules");
    jw_lit(&w, "[");
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            jw_lit(&w, ",");
        write_schedule(&w, &l.items[i]);
    }
    jw_lit(&w, "]}");
    schedule_list_clear(&l);
    return reply_written(reply, HTTP_OK, &w, err);
}

/* The name of a control body {"name": ...}. body is the caller's to free. */
static int control_name(const struct http_request *req, json_t **body, const char **name,
                        errand_error *err)
{
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = http_request_json(req, body, err)) < 0)
        return rc;
    if ((rc = field_require_object(*body, NULL, err)) < 0 ||
        (rc = json_check_fields(*body, NULL, schedule_control_fields, err)) < 0)
        return rc;
    return check_name(*body, name, err);
}

int handle_schedule_delete(const struct handler_ctx *ctx, const struct http_request *req,
                           struct http_reply *reply, errand_error *err)
{
    json_t *body = NULL;
    const char *name = NULL;
    int rc = control_name(req, &body, &name, err);
    if (rc == 0 && (rc = store_schedule_delete(ctx->st, name, err)) == 0)
        http_reply_json(reply, HTTP_OK, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
    json_decref(body);
    return rc;
}

static int set_paused(const struct handler_ctx *ctx, const struct http_request *req,
                      struct http_reply *reply, bool paused, errand_error *err)
{
    json_t *body = NULL;
    const char *name = NULL;
    struct schedule_row s;
    memset(&s, 0, sizeof s);
    int64_t next = 0;
    int rc = control_name(req, &body, &name, err);
    /* resuming starts from the next tick after now: the ticks passed while paused were not
       missed by accident, so no catch-up */
    if (rc == 0 && !paused && (rc = store_schedule_get(ctx->st, name, &s, err)) == 0)
        rc = schedule_next_after(&s, scheduler_now(ctx), &next, err);
    schedule_row_clear(&s);
    if (rc == 0)
        rc = store_schedule_set_paused(ctx->st, name, paused, next, clock_now_ms(), err);
    if (rc == 0 && (rc = store_schedule_get(ctx->st, name, &s, err)) == 0) {
        scheduler_wake(ctx->scheduler);
        rc = reply_schedule(reply, HTTP_OK, &s, err);
        schedule_row_clear(&s);
    }
    json_decref(body);
    return rc;
}

int handle_schedule_pause(const struct handler_ctx *ctx, const struct http_request *req,
                          struct http_reply *reply, errand_error *err)
{
    return set_paused(ctx, req, reply, true, err);
}

int handle_schedule_resume(const struct handler_ctx *ctx, const struct http_request *req,
                           struct http_reply *reply, errand_error *err)
{
    return set_paused(ctx, req, reply, false, err);
}
