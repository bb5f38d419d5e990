/* SPDX-License-Identifier: MIT */
/*
 * test_cron.c — cron expressions and next ticks (server/cron.h): the fields, ranges, steps,
 * names and aliases; the Vixie rule for the two day fields; next ticks in UTC and in a real
 * zone across both daylight-saving changes of Europe/Berlin in 2027 (spring forward on
 * 28 March at 02:00 CET, fall back on 31 October at 03:00 CEST), where a skipped wall time
 * fires once at the end of the gap and a repeated one once, at its first occurrence;
 * interval ticks on their fixed grid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/clock.h"
#include "server/cron.h"

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    assert_true(clock_parse_rfc3339(rfc3339, &ms));
    return ms;
}

static struct cron parsed(const char *expr)
{
    struct cron c;
    errand_error err;
    if (cron_parse(expr, "cron", &c, &err) != 0)
        fail_msg("'%s' refused: %s", expr, err.message);
    return c;
}

/* The next tick of expr in zone after the RFC 3339 time `after`, as RFC 3339 UTC. */
static const char *next(const char *expr, const char *zone, const char *after)
{
    static char out[CLOCK_RFC3339_LEN];
    struct cron c = parsed(expr);
    errand_error err;
    int64_t ms = 0;
    if (cron_next(&c, zone, at(after), &ms, &err) != 0)
        fail_msg("no next tick for '%s': %s", expr, err.message);
    clock_format_rfc3339(ms, out);
    return out;
}

/* How many ticks of expr in zone lie in [from, to). */
static int ticks_between(const char *expr, const char *zone, const char *from, const char *to)
{
    struct cron c = parsed(expr);
    errand_error err;
    int64_t t = at(from) - 1, end = at(to);
    int n = 0;
    for (;;) {
        assert_int_equal(cron_next(&c, zone, t, &t, &err), 0);
        if (t >= end)
            return n;
        n++;
    }
}

static void fields_ranges_steps_and_lists_parse_into_bits(void **state)
{
    (void)state;
    struct cron c = parsed("*/15 9-17 1,15 * 1-5");
    assert_true(c.minutes == ((UINT64_C(1) << 0) | (UINT64_C(1) << 15) | (UINT64_C(1) << 30) |
                              (UINT64_C(1) << 45)));
    assert_int_equal(c.hours, 0x3fe00); /* 9..17 */
    assert_int_equal(c.days, (1u << 1) | (1u << 15));
    assert_int_equal(c.months, 0x1ffe);
    assert_int_equal(c.weekdays, 0x3e);
    assert_false(c.days_star);
    assert_false(c.weekdays_star);

    c = parsed("5-20/5 0 * jan,Jul sun,7");
    assert_true(c.minutes == ((UINT64_C(1) << 5) | (UINT64_C(1) << 10) | (UINT64_C(1) << 15) |
                              (UINT64_C(1) << 20)));
    assert_int_equal(c.months, (1u << 1) | (1u << 7));
    assert_int_equal(c.weekdays, 1); /* 0 and 7 are both Sunday */
    assert_true(c.days_star);

    c = parsed("10/20 * * * *"); /* N/STEP runs to the field's maximum */
    assert_true(c.minutes == ((UINT64_C(1) << 10) | (UINT64_C(1) << 30) | (UINT64_C(1) << 50)));

    struct cron a = parsed("@hourly"), b = parsed("0 * * * *");
    assert_memory_equal(&a, &b, sizeof a);
    a = parsed("@daily"), b = parsed("0 0 * * *");
    assert_memory_equal(&a, &b, sizeof a);
}

static void bad_expressions_are_refused_naming_the_field(void **state)
{
    (void)state;
    const char *bad[] = {"",          "* * * *",      "* * * * * *", "60 * * * *",  "* 24 * * *",
                         "* * 0 * *", "* * * 13 *",   "* * * * 8",   "5-1 * * * *", "*/0 * * * *",
                         "a * * * *", "1,,2 * * * *", "@often",      "* * * foo *", "1- * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cron c;
        errand_error err;
        if (cron_parse(bad[i], "cron", &c, &err) != ERRAND_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_string_equal(err.field, "cron");
    }
    struct cron c = parsed("0 0 30 2 *"); /* parses, but never comes */
    errand_error err;
    int64_t t;
    assert_int_equal(cron_next(&c, "UTC", at("2027-01-01T00:00:00Z"), &t, &err), ERRAND_ENOTFOUND);
}

static void zones_are_checked_against_icu(void **state)
{
    (void)state;
    errand_error err;
    assert_int_equal(cron_zone_check("Europe/Berlin", "time_zone", &err), 0);
    assert_int_equal(cron_zone_check("UTC", "time_zone", &err), 0);
    assert_int_equal(cron_zone_check("America/New_York", "time_zone", &err), 0);
    assert_int_equal(cron_zone_check("Europe/Berlinn", "time_zone", &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "time_zone");
    assert_non_null(strstr(err.message, "Europe/Berlinn"));
    assert_int_equal(cron_zone_check("", "time_zone", &err), ERRAND_EINVAL);
}

static void next_ticks_in_utc(void **state)
{
    (void)state;
    assert_string_equal(next("*/5 * * * *", "UTC", "2027-01-01T10:02:30Z"),
                        "2027-01-01T10:05:00.000Z");
    assert_string_equal(next("*/5 * * * *", "UTC", "2027-01-01T10:05:00Z"),
                        "2027-01-01T10:10:00.000Z"); /* strictly after */
    assert_string_equal(next("0 0 1 * *", "UTC", "2027-01-31T12:00:00Z"),
                        "2027-02-01T00:00:00.000Z");
    assert_string_equal(next("0 12 29 2 *", "UTC", "2027-03-01T00:00:00Z"),
                        "2028-02-29T12:00:00.000Z"); /* the next leap day */
    assert_string_equal(next("59 23 31 12 *", "UTC", "2027-06-01T00:00:00Z"),
                        "2027-12-31T23:59:00.000Z");
    /* 2027-01-04 is a Monday: weekdays only */
    assert_string_equal(next("0 9 * * mon-fri", "UTC", "2027-01-01T10:00:00Z"),
                        "2027-01-04T09:00:00.000Z");
}

static void both_day_fields_restricted_match_either(void **state)
{
    (void)state;
    /* the 13th or a Friday: 2027-08-06 is a Friday, before the 13th */
    assert_string_equal(next("0 0 13 * fri", "UTC", "2027-08-01T00:00:00Z"),
                        "2027-08-06T00:00:00.000Z");
    /* with the weekday '*', the 13th only */
    assert_string_equal(next("0 0 13 * *", "UTC", "2027-08-01T00:00:00Z"),
                        "2027-08-13T00:00:00.000Z");
}

static void a_zone_shifts_the_wall_clock(void **state)
{
    (void)state;
    /* 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer */
    assert_string_equal(next("0 9 * * *", "Europe/Berlin", "2027-01-10T12:00:00Z"),
                        "2027-01-11T08:00:00.000Z");
    assert_string_equal(next("0 9 * * *", "Europe/Berlin", "2027-07-10T12:00:00Z"),
                        "2027-07-11T07:00:00.000Z");
    assert_string_equal(next("0 9 * * *", "America/New_York", "2027-01-10T20:00:00Z"),
                        "2027-01-11T14:00:00.000Z");
}

static void a_skipped_wall_time_fires_once_at_the_end_of_the_gap(void **state)
{
    (void)state;
    /* 02:30 does not exist in Berlin on 2027-03-28: 02:00 CET became 03:00 CEST (01:00Z) */
    assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2027-03-27T01:30:00Z"),
                        "2027-03-28T01:00:00.000Z");
    assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2027-03-28T01:00:00Z"),
                        "2027-03-29T00:30:00.000Z");
    /* four skipped quarter hours make one tick at 03:00 CEST, then the next is the next day */
    assert_string_equal(next("*/15 2 * * *", "Europe/Berlin", "2027-03-28T00:50:00Z"),
                        "2027-03-28T01:00:00.000Z");
    assert_string_equal(next("*/15 2 * * *", "Europe/Berlin", "2027-03-28T01:00:00Z"),
                        "2027-03-29T00:00:00.000Z");
    /* hourly: 02:00 is skipped and merges with 03:00's own tick; the day has 23 ticks */
    assert_string_equal(next("0 * * * *", "Europe/Berlin", "2027-03-28T00:00:00Z"),
                        "2027-03-28T01:00:00.000Z");
    assert_string_equal(next("0 * * * *", "Europe/Berlin", "2027-03-28T01:00:00Z"),
                        "2027-03-28T02:00:00.000Z");
    assert_int_equal(
        ticks_between("0 * * * *", "Europe/Berlin", "2027-03-27T23:00:00Z", "2027-03-28T22:00:00Z"),
        23);
    assert_int_equal(ticks_between("*/30 * * * *", "Europe/Berlin", "2027-03-27T23:00:00Z",
                                   "2027-03-28T22:00:00Z"),
                     46);
}

static void a_repeated_wall_time_fires_once_at_its_first_occurrence(void **state)
{
    (void)state;
    /* 02:30 happens twice in Berlin on 2027-10-31: 00:30Z (CEST), then 01:30Z (CET) */
    assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2027-10-30T12:00:00Z"),
                        "2027-10-31T00:30:00.000Z");
    assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2027-10-31T00:30:00Z"),
                        "2027-11-01T01:30:00.000Z");
    /* asked during the second 02:xx, the repeat is passed over */
    assert_string_equal(next("30 2 * * *", "Europe/Berlin", "2027-10-31T01:10:00Z"),
                        "2027-11-01T01:30:00.000Z");
    assert_string_equal(next("*/30 * * * *", "Europe/Berlin", "2027-10-31T01:10:00Z"),
                        "2027-10-31T02:00:00.000Z");
    /* hourly: 02:00 fires once; the 25-hour day has 24 ticks */
    assert_int_equal(
        ticks_between("0 * * * *", "Europe/Berlin", "2027-10-30T22:00:00Z", "2027-10-31T23:00:00Z"),
        24);
    assert_int_equal(ticks_between("*/30 * * * *", "Europe/Berlin", "2027-10-30T22:00:00Z",
                                   "2027-10-31T23:00:00Z"),
                     48);
}

static void intervals_tick_on_a_fixed_grid_in_absolute_time(void **state)
{
    (void)state;
    assert_int_equal(interval_next(1000, 0), 1000);
    assert_int_equal(interval_next(1000, 999), 1000);
    assert_int_equal(interval_next(1000, 1000), 2000);
    assert_int_equal(interval_next(1000, -1), 0);
    assert_int_equal(interval_next(1000, -1000), 0);
    /* an hourly interval goes on through the spring-forward night: 3600 s apart */
    int64_t t = at("2027-03-28T00:30:00Z");
    int64_t a = interval_next(3600000, t), b = interval_next(3600000, a);
    assert_int_equal(a, at("2027-03-28T01:00:00Z"));
    assert_int_equal(b - a, 3600000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_ranges_steps_and_lists_parse_into_bits),
        cmocka_unit_test(bad_expressions_are_refused_naming_the_field),
        cmocka_unit_test(zones_are_checked_against_icu),
        cmocka_unit_test(next_ticks_in_utc),
        cmocka_unit_test(both_day_fields_restricted_match_either),
        cmocka_unit_test(a_zone_shifts_the_wall_clock),
        cmocka_unit_test(a_skipped_wall_time_fires_once_at_the_end_of_the_gap),
        cmocka_unit_test(a_repeated_wall_time_fires_once_at_its_first_occurrence),
        cmocka_unit_test(intervals_tick_on_a_fixed_grid_in_absolute_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
