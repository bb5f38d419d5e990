/* SPDX-License-Identifier: MIT */
/*
 * cron.h — when a schedule ticks: 5-field cron expressions read in an IANA time zone, and
 * fixed intervals. Pure: a time in, the next tick out, no clock and no I/O. The time-zone
 * rules come from ICU (the zone database Debian keeps current), never from our own tables.
 *
 * Cron syntax (docs/api.md, Schedules): minute hour day-of-month month day-of-week; each
 * field a comma list of `*`, `N`, `N-M`, with an optional `/STEP` (`N/STEP` = N to the
 * field's maximum); months jan-dec and days sun-sat by name; day of week 0-7 (0 and 7 are
 * Sunday); when both day fields are restricted a day matching either fires (Vixie cron).
 * Aliases: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
 *
 * Daylight saving, decided here once (docs/architecture.md, Schedules): fields match the
 * zone's wall clock. A matching wall time that does not exist (the hour skipped when clocks
 * spring forward) fires at the first instant after the gap — once, however many matching
 * times the gap swallowed, and merged with a tick at that instant; a matching wall time that
 * happens twice (clocks fall back) fires once, at its first occurrence. Interval schedules
 * are in absolute time: daylight saving does not touch them.
 *
 * Lives in server/, not core/: core is linked into liberrand, which must not need ICU.
 */
#ifndef ERRAND_SERVER_CRON_H
#define ERRAND_SERVER_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "errand/errand.h"

/* The longest cron expression and time-zone name the server takes. */
#define CRON_EXPR_MAX 200
#define CRON_ZONE_MAX 64
/* A cron expression that matches no time within this many years is refused ("0 0 30 2 *"):
 * long enough for every leap day (2096 → 2104 skips 2100). */
#define CRON_SEARCH_YEARS 9

struct cron {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h (0-23) */
    uint32_t days;    /* bit d: day of month d (1-31) */
    uint16_t months;  /* bit m: month m (1-12) */
    uint8_t weekdays; /* bit w: day of week w (0-6, 0 = Sunday) */
    bool days_star;   /* the day-of-month field began with '*' */
    bool weekdays_star;
};

/* Parses expr (an alias or 5 fields); err names field and says what is wrong. */
int cron_parse(const char *expr, const char *field, struct cron *out, errand_error *err);

/* 0 when zone is an IANA time-zone name ICU knows ("Europe/Berlin", "UTC"); else
 * ERRAND_EINVAL naming field. */
int cron_zone_check(const char *zone, const char *field, errand_error *err);

/* The first tick of c strictly after after_ms (Unix ms), in zone, by the rules above;
 * ERRAND_ENOTFOUND when none comes within CRON_SEARCH_YEARS, ERRAND_EINVAL for an unknown
 * zone. */
int cron_next(const struct cron *c, const char *zone, int64_t after_ms, int64_t *out,
              errand_error *err);

/* The first multiple of every_ms since the Unix epoch strictly after after_ms: interval
 * schedules tick on a fixed grid, so restarts, replacements and servers agree on the ticks. */
int64_t interval_next(int64_t every_ms, int64_t after_ms);

#endif
