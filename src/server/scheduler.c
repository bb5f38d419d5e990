/* SPDX-License-Identifier: MIT */
/*
 * scheduler.c — the scheduler thread (see scheduler.h). A failed look or submission is
 * logged and tried again at the next wake-up: the tick stays due in the store, so nothing is
 * lost by firing late (within the lateness limit, then the catch-up policy decides).
 */
#include "server/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/schedule_plan.h"
#include "server/submission.h"

struct scheduler {
    store *st;
    notify *notify;
    struct scheduler_config cfg;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop and woken */
    pthread_cond_t wake;
    bool stop, woken;
};

static int64_t scheduler_now(const scheduler *sc)
{
    return clock_now_ms() + sc->cfg.clock_offset_ms;
}

/* The run of s's tick as a submission: its run options, its task, the tick's key and the
 * schedule's tag added to its tags. */
static int tick_spec(const struct schedule_row *s, int64_t tick, struct run_spec *spec,
                     errand_error *err)
{
    json_t *obj = json_parse_text(s->run_options, strlen(s->run_options), err);
    if (!obj)
        return err->code < 0 ? err->code : ERRAND_EINVAL;
    char key[SCHEDULE_KEY_MAX], tag[SCHEDULE_KEY_MAX];
    schedule_run_key(s->name, tick, key);
    schedule_run_tag(s->name, tag);
    json_t *tags = json_object_get(obj, "tags");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(obj, "tags", tags);
    }
    json_array_append_new(tags, json_string(tag));
    json_object_set_new(obj, "task", json_string(s->task));
    json_object_set_new(obj, "idempotency_key", json_string(key));
    int rc = run_spec_parse(obj, "run", clock_now_ms(), spec, err);
    json_decref(obj);
    return rc;
}

/* Submits the run of tick; *run_id (37 bytes) its id. */
static int fire(scheduler *sc, const struct schedule_row *s, int64_t tick, char run_id[37],
                errand_error *err)
{
    struct run_spec spec;
    memset(&spec, 0, sizeof spec);
    int rc = tick_spec(s, tick, &spec, err);
    if (rc < 0)
        return rc;
    struct run_row run;
    bool created = false;
    if ((rc = store_submit(sc->st, &spec, 1, clock_now_ms(), &run, &created, err)) == 0) {
        snprintf(run_id, 37, "%s", run.id);
        if (created)
            notify_signal_key(sc->notify, NOTIFY_RUNS_DUE, s->task);
        char at[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(tick, at);
        log_info(created ? "schedule fired" : "schedule tick already fired",
                 "schedule=%s tick=%s run=%s", s->name, at, run.id);
        run_row_clear(&run);
    }
    run_spec_clear(&spec);
    return rc;
}

/* Carries out the plan for one due schedule: 1 when it moved on, 0 when another server
 * moved it first, or the error. */
static int handle_due(scheduler *sc, const struct schedule_row *s, int64_t now)
{
    errand_error err;
    error_clear(&err);
    struct schedule_plan plan;
    char run_id[37] = "";
    if (schedule_plan(s, now, sc->cfg.late_ms, &plan, &err) < 0) {
        log_warn("schedule has no next tick; pausing it", "schedule=%s error=\"%s\"", s->name,
                 err.message);
        return store_schedule_set_paused(sc->st, s->name, true, 0, now, &err);
    }
    if (plan.fire) {
        int rc = fire(sc, s, plan.tick, run_id, &err);
        if (rc == ERRAND_EINVAL || rc == ERR_MISSING_FIELD || rc == ERR_UNKNOWN_FIELD) {
            /* the stored run options no longer make a run (a limit changed since): trying
               again cannot help, so the tick passes without one */
            log_warn("schedule's run refused; tick skipped", "schedule=%s error=\"%s\"", s->name,
                     err.message);
            plan.fire = false;
        } else if (rc < 0) {
            log_warn("schedule could not fire; trying again", "schedule=%s error=\"%s\"", s->name,
                     err.message);
            return rc;
        }
    } else {
        char at[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(s->next_tick, at);
        log_info("schedule ticks missed, skipped", "schedule=%s first_missed=%s", s->name, at);
    }
    bool advanced = false;
    if (store_schedule_advance(sc->st, s->name, s->generation, s->next_tick, plan.next_tick,
                               plan.tick, plan.fire ? run_id : NULL, now, &advanced, &err) < 0) {
        log_warn("schedule could not move on; trying again", "schedule=%s error=\"%s\"", s->name,
                 err.message);
        return err.code < 0 ? err.code : ERRAND_ESTORE;
    }
    return advanced ? 1 : 0;
}

/* Fires what is due; returns the soonest next_tick within the interval (scheduler's clock),
 * or 0 when none is. */
static int64_t run_once(scheduler *sc)
{
    for (int pass = 0; pass < SCHEDULER_PASSES_MAX; pass++) {
        int64_t now = scheduler_now(sc);
        errand_error err;
        error_clear(&err);
        struct schedule_list due;
        if (store_schedule_due(sc->st, now, SCHEDULER_BATCH, &due, &err) < 0) {
            log_warn("reading the due schedules failed", "error=\"%s\"", err.message);
            return 0;
        }
        size_t moved = 0;
        for (size_t i = 0; i < due.n; i++)
            moved += handle_due(sc, &due.items[i], now) > 0;
        schedule_list_clear(&due);
        if (moved == 0) /* nothing due, or nothing this server could move: wait */
            break;
    }
    errand_error err;
    error_clear(&err);
    struct schedule_list soon;
    int64_t next = 0;
    if (store_schedule_due(sc->st, scheduler_now(sc) + sc->cfg.interval_ms, 1, &soon, &err) == 0 &&
        soon.n > 0)
        next = soon.items[0].next_tick;
    schedule_list_clear(&soon);
    return next;
}

static void *scheduler_main(void *arg)
{
    scheduler *sc = arg;
    pthread_mutex_lock(&sc->lock);
    while (!sc->stop) {
        sc->woken = false;
        pthread_mutex_unlock(&sc->lock);
        int64_t next = run_once(sc);
        int64_t wait_ms = sc->cfg.interval_ms;
        if (next > 0) {
            int64_t until_next = next - scheduler_now(sc);
            /* a tick still due after the look (its store write failed, or more were due than
               one wake-up fires) is looked at again soon, not in a busy loop */
            if (until_next <= 0)
                until_next = SCHEDULER_RETRY_MS;
            wait_ms = until_next < wait_ms ? until_next : wait_ms;
        }
        int64_t until_ms = clock_mono_ms() + wait_ms;
        struct timespec until = {.tv_sec = until_ms / MS_PER_S,
                                 .tv_nsec = (until_ms % MS_PER_S) * NS_PER_MS};
        pthread_mutex_lock(&sc->lock);
        while (!sc->stop && !sc->woken)
            if (pthread_cond_timedwait(&sc->wake, &sc->lock, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

int scheduler_start(store *st, notify *n, const struct scheduler_config *cfg, scheduler **out,
                    errand_error *err)
{
    *out = NULL;
    if (cfg->interval_ms <= 0)
        return 0;
    scheduler *sc = mem_calloc(1, sizeof *sc);
    if (!sc)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sc->st = st;
    sc->notify = n;
    sc->cfg = *cfg;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sc->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&sc->lock, NULL);
    int rc = pthread_create(&sc->thread, NULL, scheduler_main, sc);
    if (rc != 0) {
        pthread_cond_destroy(&sc->wake);
        pthread_mutex_destroy(&sc->lock);
        mem_free(sc);
        return error_set(err, ERRAND_EIO, NULL, "cannot start the scheduler thread (error %d)", rc);
    }
    *out = sc;
    return 0;
}

void scheduler_wake(scheduler *sc)
{
    if (!sc)
        return;
    pthread_mutex_lock(&sc->lock);
    sc->woken = true;
    pthread_cond_signal(&sc->wake);
    pthread_mutex_unlock(&sc->lock);
}

void scheduler_stop(scheduler *sc)
{
    if (!sc)
        return;
    pthread_mutex_lock(&sc->lock);
    sc->stop = true;
    pthread_cond_signal(&sc->wake);
    pthread_mutex_unlock(&sc->lock);
    pthread_join(sc->thread, NULL);
    pthread_cond_destroy(&sc->wake);
    pthread_mutex_destroy(&sc->lock);
    mem_free(sc);
}
