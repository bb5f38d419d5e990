/* SPDX-License-Identifier: MIT */
/*
 * cron.c — cron expressions and the next tick (see cron.h). The search for the next matching
 * time runs on the zone's wall clock as plain calendar arithmetic (a proleptic Gregorian
 * date and a minute, no zone); ICU only converts an instant to the wall clock and a wall
 * time back to an instant, which is where the daylight-saving rules are applied:
 * UCAL_WALLTIME_NEXT_VALID for a time in a gap, UCAL_WALLTIME_FIRST for a repeated one.
 * A UCalendar is opened per call: they are not thread-safe to share, and opening one costs
 * microseconds against a tick's database round trip.
 */
#include "server/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "core/clock.h"
#include "core/error.h"

/* --- parsing ------------------------------------------------------------------------- */

struct cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* names for min, min+1, ... (NULL = none) */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct cron_field fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

static const struct {
    const char *alias, *expr;
} aliases[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* A number or (for fields with names) a three-letter name at *p; advances *p. */
static bool read_value(const struct cron_field *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = (int)v;
        *p = s;
        return true;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->min + i;
            *p = s + 3;
            return true;
        }
    return false;
}

/* One field's text (up to its space) into a bit set; *star when it begins with '*'. */
static int parse_field(const struct cron_field *f, const char *text, size_t len, uint64_t *bits,
                       bool *star, const char *field, errand_error *err)
{
    char buf[CRON_EXPR_MAX + 1];
    memcpy(buf, text, len);
    buf[len] = '\0';
    *bits = 0;
    *star = buf[0] == '*';
    const char *p = buf;
    for (;;) {
        int lo, hi, step = 1;
        bool range = false;
        if (*p == '*') {
            lo = f->min, hi = f->max, range = true;
            p++;
        } else {
            if (!read_value(f, &p, &lo))
                goto bad;
            hi = lo;
            if (*p == '-') {
                p++;
                if (!read_value(f, &p, &hi))
                    goto bad;
                range = true;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p) || !read_value(f, &p, &step) || step < 1 ||
                step > f->max)
                goto bad;
            if (!range)
                hi = f->max;
        }
        if (lo < f->min || hi > f->max || lo > hi)
            return error_set(err, ERRAND_EINVAL, field,
                             "'%s': the %s field '%s' goes outside %d-%d (or its range is "
                             "backwards)",
                             field, f->name, buf, f->min, f->max);
        for (int v = lo; v <= hi; v += step)
            *bits |= UINT64_C(1) << v;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            goto bad;
        p++;
    }
bad:
    return error_set(err, ERRAND_EINVAL, field,
                     "'%s': the %s field '%s' is not cron syntax (a comma list of *, N, N-M, "
                     "each with an optional /STEP%s)",
                     field, f->name, buf, f->names ? "; names such as jan or mon" : "");
}

int cron_parse(const char *expr, const char *field, struct cron *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    if (!expr || strlen(expr) > CRON_EXPR_MAX)
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s' must be a cron expression of at most %d characters", field,
                         CRON_EXPR_MAX);
    if (expr[0] == '@') {
        for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
            if (strcasecmp(expr, aliases[i].alias) == 0)
                return cron_parse(aliases[i].expr, field, out, err);
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s': unknown alias '%s' (known: @yearly, @annually, @monthly, "
                         "@weekly, @daily, @midnight, @hourly)",
                         field, expr);
    }
    const char *p = expr;
    uint64_t bits[5];
    bool star[5];
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0)
            return error_set(err, ERRAND_EINVAL, field,
                             "'%s' must have 5 fields (minute hour day-of-month month "
                             "day-of-week), got %d in '%s'",
                             field, i, expr);
        int rc = parse_field(&fields[i], p, len, &bits[i], &star[i], field, err);
        if (rc < 0)
            return rc;
        p += len;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s' must have 5 fields (minute hour day-of-month month "
                         "day-of-week), got more in '%s'",
                         field, expr);
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    out->days_star = star[2];
    out->weekdays_star = star[4];
    return 0;
}

/* --- calendar arithmetic on the wall clock -------------------------------------------- */

struct civil {
    int y, mo, d, h, mi; /* mo 1-12, d 1-31 */
};

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int mo)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return mo == 2 && is_leap(y) ? 29 : days[mo - 1];
}

/* 0 = Sunday (Sakamoto's method). */
static int weekday(int y, int mo, int d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (mo < 3)
        y -= 1;
    return (y + y / 4 - y / 100 + y / 400 + t[mo - 1] + d) % 7;
}

static bool day_matches(const struct cron *c, int y, int mo, int d)
{
    bool dom = c->days & (UINT32_C(1) << d);
    bool dow = c->weekdays & (1u << weekday(y, mo, d));
    return c->days_star || c->weekdays_star ? dom && dow : dom || dow;
}

/* Carries minutes into hours, hours into days, days into months, months into years. */
static void civil_normalise(struct civil *t)
{
    if (t->mo > 12) /* a month skipped past December */
        t->mo = 1, t->y++;
    if (t->mi > 59)
        t->mi = 0, t->h++;
    if (t->h > 23)
        t->h = 0, t->d++;
    if (t->d > days_in_month(t->y, t->mo))
        t->d = 1, t->mo++;
    if (t->mo > 12)
        t->mo = 1, t->y++;
}

/* The first wall-clock minute after *t that c matches, into *t; false when none comes
 * within CRON_SEARCH_YEARS. Each step skips a whole month, day, hour or minute. */
static bool civil_next(const struct cron *c, struct civil *t)
{
    int limit = t->y + CRON_SEARCH_YEARS;
    t->mi++;
    civil_normalise(t);
    while (t->y <= limit) {
        if (!(c->months & (1u << t->mo))) {
            t->mo++, t->d = 1, t->h = 0, t->mi = 0;
        } else if (!day_matches(c, t->y, t->mo, t->d)) {
            t->d++, t->h = 0, t->mi = 0;
            if (t->d > days_in_month(t->y, t->mo))
                t->d = 1, t->mo++;
        } else if (!(c->hours & (UINT32_C(1) << t->h))) {
            t->h++, t->mi = 0;
        } else if (!(c->minutes & (UINT64_C(1) << t->mi))) {
            t->mi++;
        } else {
            return true;
        }
        civil_normalise(t);
    }
    return false;
}

/* --- the zone (ICU) ------------------------------------------------------------------- */

static UCalendar *zone_open(const char *zone)
{
    UChar id[CRON_ZONE_MAX + 1];
    if (strlen(zone) > CRON_ZONE_MAX)
        return NULL;
    u_uastrcpy(id, zone);
    UErrorCode status = U_ZERO_ERROR;
    UChar canonical[CRON_ZONE_MAX * 2];
    UBool system = 0;
    ucal_getCanonicalTimeZoneID(id, -1, canonical, CRON_ZONE_MAX * 2, &system, &status);
    if (U_FAILURE(status) || !system)
        return NULL;
    UCalendar *cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &status);
    if (U_FAILURE(status)) {
        if (cal)
            ucal_close(cal);
        return NULL;
    }
    ucal_setAttribute(cal, UCAL_LENIENT, 1);
    ucal_setAttribute(cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    ucal_setAttribute(cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    return cal;
}

int cron_zone_check(const char *zone, const char *field, errand_error *err)
{
    UCalendar *cal = zone && *zone ? zone_open(zone) : NULL;
    if (!cal)
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s' must be an IANA time-zone name such as 'Europe/Berlin' or "
                         "'UTC', got '%.*s'",
                         field, CRON_ZONE_MAX, zone ? zone : "");
    ucal_close(cal);
    return 0;
}

static bool to_civil(UCalendar *cal, int64_t ms, struct civil *t)
{
    UErrorCode s = U_ZERO_ERROR;
    ucal_setMillis(cal, (UDate)ms, &s);
    t->y = ucal_get(cal, UCAL_EXTENDED_YEAR, &s);
    t->mo = ucal_get(cal, UCAL_MONTH, &s) + 1;
    t->d = ucal_get(cal, UCAL_DATE, &s);
    t->h = ucal_get(cal, UCAL_HOUR_OF_DAY, &s);
    t->mi = ucal_get(cal, UCAL_MINUTE, &s);
    return U_SUCCESS(s);
}

/* The instant of wall time t: the first of two when it happens twice, the end of the gap
 * when it does not happen (the attributes zone_open set). */
static bool to_instant(UCalendar *cal, const struct civil *t, int64_t *ms)
{
    UErrorCode s = U_ZERO_ERROR;
    ucal_clear(cal);
    ucal_set(cal, UCAL_EXTENDED_YEAR, t->y);
    ucal_set(cal, UCAL_MONTH, t->mo - 1);
    ucal_set(cal, UCAL_DATE, t->d);
    ucal_set(cal, UCAL_HOUR_OF_DAY, t->h);
    ucal_set(cal, UCAL_MINUTE, t->mi);
    ucal_set(cal, UCAL_SECOND, 0);
    ucal_set(cal, UCAL_MILLISECOND, 0);
    UDate d = ucal_getMillis(cal, &s);
    *ms = (int64_t)d;
    return U_SUCCESS(s);
}

int cron_next(const struct cron *c, const char *zone, int64_t after_ms, int64_t *out,
              errand_error *err)
{
    UCalendar *cal = zone_open(zone);
    if (!cal)
        return cron_zone_check(zone, "time_zone", err);
    struct civil t;
    int rc = 0;
    if (!to_civil(cal, after_ms, &t)) {
        rc = error_set(err, ERRAND_EINVAL, NULL, "no wall time in %s for %lld ms", zone,
                       (long long)after_ms);
        goto done;
    }
    /* A matching wall time whose (first) instant is not after after_ms is passed over: it
       is the repeat of a time that fired at its first occurrence, or lies before after_ms
       in a gap already fired at the gap's end. */
    for (;;) {
        if (!civil_next(c, &t)) {
            rc = error_set(err, ERRAND_ENOTFOUND, NULL,
                           "the cron expression matches no time in the next %d years",
                           CRON_SEARCH_YEARS);
            goto done;
        }
        int64_t ms;
        if (!to_instant(cal, &t, &ms)) {
            rc = error_set(err, ERRAND_EINVAL, NULL, "no instant for a wall time in %s", zone);
            goto done;
        }
        if (ms > after_ms) {
            *out = ms;
            goto done;
        }
    }
done:
    ucal_close(cal);
    return rc;
}

int64_t interval_next(int64_t every_ms, int64_t after_ms)
{
    int64_t k = after_ms / every_ms;
    if (after_ms < 0 && after_ms % every_ms != 0)
        k--; /* floor, not truncation */
    return (k + 1) * every_ms;
}
