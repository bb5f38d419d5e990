/* SPDX-License-Identifier: MIT */
/*
 * schedule_row.h — a schedule as the store keeps it: what to submit (a task and the options
 * of its runs), when (a cron expression in a time zone, or an interval), what to do after
 * ticks were missed, and the next tick due. The store neither parses the cron expression nor
 * the run options: the server (server/scheduler.c) computes next ticks and builds the runs;
 * the store keeps the rows and makes the advance of next_tick a compare-and-set, so servers
 * sharing it agree on each tick (docs/architecture.md, Schedules).
 */
#ifndef ERRAND_STORE_SCHEDULE_ROW_H
#define ERRAND_STORE_SCHEDULE_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a schedule does about ticks that passed while no server could fire them. */
enum schedule_catch_up {
    SCHEDULE_CATCH_UP_SKIP = 0, /* fire none of them; go on with the next future tick */
    SCHEDULE_CATCH_UP_ONCE = 1, /* fire one run for them (the first missed tick's), then go on */
};

struct schedule_row {
    char *name;
    char *task;
    char *run_options; /* JSON object text: the run's submission fields other than task */
    char *cron;        /* 5-field expression or alias; NULL for an interval schedule */
    int64_t every_ms;  /* the interval; 0 for a cron schedule */
    char *time_zone;   /* IANA name */
    enum schedule_catch_up catch_up;
    bool paused;
    int64_t next_tick;  /* Unix ms: the first tick not fired yet */
    int64_t last_tick;  /* the last tick that made a run, 0 = none yet */
    char *last_run_id;  /* that run, NULL = none yet */
    int64_t generation; /* 1 at creation, + 1 at each replacement: guards next_tick's advance */
    int64_t created, updated;
};

struct schedule_list {
    struct schedule_row *items;
    size_t n;
};

/* Frees the strings of r and zeroes it. */
void schedule_row_clear(struct schedule_row *r);
void schedule_list_clear(struct schedule_list *l);
/* The name of a catch-up policy on the wire and back: "skip", "once". */
const char *schedule_catch_up_name(enum schedule_catch_up c);
bool schedule_catch_up_parse(const char *s, enum schedule_catch_up *out);

#endif
