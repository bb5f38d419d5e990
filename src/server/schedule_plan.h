/* SPDX-License-Identifier: MIT */
/*
 * schedule_plan.h — what the scheduler does with a due schedule: which tick (if any) makes a
 * run, and where next_tick goes. Pure: the schedule, the time and the lateness limit in, the
 * plan out; server/scheduler.c carries it out. The rules (docs/architecture.md, Schedules):
 *
 *  - a tick fired within late_ms of its time is on time: it makes its run, and next_tick
 *    moves to the following tick (a server that was slow fires each tick in turn);
 *  - a tick older than that was missed (no server ran, or all were stopped): with catch-up
 *    `skip` no run is made; with `once` one run is made, for the first missed tick (the
 *    stored next_tick, which every server agrees on, so they all derive the same
 *    idempotency key); then next_tick jumps to the first tick not older than late_ms.
 */
#ifndef ERRAND_SERVER_SCHEDULE_PLAN_H
#define ERRAND_SERVER_SCHEDULE_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/schedule_row.h"

/* A schedule's name: at most this many characters (letters, digits, '.', '_', '-'); an
 * interval: at most a leap year. */
#define SCHEDULE_NAME_MAX 100
#define SCHEDULE_EVERY_SECONDS_MAX (366LL * 24 * 3600)

/* The first tick of s strictly after after_ms (cron in its zone, or its interval grid). */
int schedule_next_after(const struct schedule_row *s, int64_t after_ms, int64_t *out,
                        errand_error *err);

struct schedule_plan {
    bool fire;         /* make the run of tick */
    bool caught_up;    /* the run stands for missed ticks (catch-up once) */
    int64_t tick;      /* the tick fired (when fire) */
    int64_t next_tick; /* where the schedule goes: always after s->next_tick */
};

/* The plan for s, due (s->next_tick <= now_ms), at now_ms. */
int schedule_plan(const struct schedule_row *s, int64_t now_ms, int64_t late_ms,
                  struct schedule_plan *out, errand_error *err);

/* "schedule:<name>:<tick as RFC 3339 UTC>": the idempotency key of a tick's run, and so the
 * reason two servers firing one tick make one run. */
#define SCHEDULE_KEY_MAX 160
void schedule_run_key(const char *name, int64_t tick, char out[SCHEDULE_KEY_MAX]);
/* "schedule:<name>": the tag every run of the schedule carries. */
void schedule_run_tag(const char *name, char out[SCHEDULE_KEY_MAX]);

#endif
