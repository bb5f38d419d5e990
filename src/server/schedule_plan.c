/* SPDX-License-Identifier: MIT */
/*
 * schedule_plan.c — the scheduler's decisions (see schedule_plan.h).
 */
#include "server/schedule_plan.h"

#include <stdio.h>

#include "core/clock.h"
#include "server/cron.h"

int schedule_next_after(const struct schedule_row *s, int64_t after_ms, int64_t *out,
                        errand_error *err)
{
    if (!s->cron) {
        *out = interval_next(s->every_ms, after_ms);
        return 0;
    }
    struct cron c;
    int rc = cron_parse(s->cron, "cron", &c, err);
    return rc < 0 ? rc : cron_next(&c, s->time_zone, after_ms, out, err);
}

int schedule_plan(const struct schedule_row *s, int64_t now_ms, int64_t late_ms,
                  struct schedule_plan *out, errand_error *err)
{
    *out = (struct schedule_plan){.tick = s->next_tick};
    if (now_ms - s->next_tick <= late_ms) {
        out->fire = true;
        return schedule_next_after(s, s->next_tick, &out->next_tick, err);
    }
    out->fire = out->caught_up = s->catch_up == SCHEDULE_CATCH_UP_ONCE;
    /* the first tick at or after now - late_ms: the oldest one still on time */
    return schedule_next_after(s, now_ms - late_ms - 1, &out->next_tick, err);
}

void schedule_run_key(const char *name, int64_t tick, char out[SCHEDULE_KEY_MAX])
{
    char at[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(tick, at);
    snprintf(out, SCHEDULE_KEY_MAX, "schedule:%s:%s", name, at);
}

void schedule_run_tag(const char *name, char out[SCHEDULE_KEY_MAX])
{
    snprintf(out, SCHEDULE_KEY_MAX, "schedule:%s", name);
}
