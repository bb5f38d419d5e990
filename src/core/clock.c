/* SPDX-License-Identifier: MIT */
/*
 * clock.c — wall-clock and monotonic milliseconds, and RFC 3339 text for the wire
 * ("2026-11-29T10:25:19.123Z": UTC, always milliseconds). Parsing is stricter than sscanf:
 * every field must have its exact digit count and range, so "2026-13-01..." or trailing
 * garbage is refused rather than silently normalised by timegm.
 */
#include "core/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SECS_PER_MIN 60
#define MINS_PER_HOUR 60
#define FRACTION_MS_DIGITS 3
#define MAX_HOUR 23
#define MAX_MINUTE 59
#define MAX_SECOND 60 /* RFC 3339 allows a leap second */
#define TM_YEAR_BASE 1900
#define MAX_YEAR 9999
#define CLOCK_EPOCH_TEXT "1970-01-01T00:00:00.000Z"

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / NS_PER_MS;
}

int64_t clock_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t clock_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes v as exactly n digits (zero-padded) at p; returns p + n. */
static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

void clock_format_rfc3339(int64_t unix_ms, char out[CLOCK_RFC3339_LEN])
{
    /* Floor division, so times before 1970 keep a non-negative millisecond part. */
    int64_t secs = unix_ms / MS_PER_S;
    int64_t ms = unix_ms % MS_PER_S;
    if (ms < 0) {
        ms += MS_PER_S;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    /* RFC 3339 has four-digit years; anything outside them is not a time we produce. */
    if (!gmtime_r(&t, &tm) || tm.tm_year + TM_YEAR_BASE < 0 ||
        tm.tm_year + TM_YEAR_BASE > MAX_YEAR) {
        snprintf(out, CLOCK_RFC3339_LEN, "%s", CLOCK_EPOCH_TEXT);
        return;
    }
    /* By hand rather than snprintf: every run in every answer carries several times. */
    char *p = put_digits(out, tm.tm_year + TM_YEAR_BASE, 4);
    *p++ = '-';
    p = put_digits(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (int)ms, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* Reads exactly n digits at *p into *out and advances *p; false if any is not a digit. */
static bool read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static bool is_leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && is_leap_year(year))
        return 29;
    return days[month - 1];
}

bool clock_parse_rfc3339(const char *s, int64_t *unix_ms)
{
    if (!s)
        return false;
    const char *p = s;
    int year, mon, day, hour, min, sec;
    if (!read_digits(&p, 4, &year) || !expect(&p, '-') || !read_digits(&p, 2, &mon) ||
        !expect(&p, '-') || !read_digits(&p, 2, &day))
        return false;
    if (*p != 'T' && *p != 't')
        return false;
    p++;
    if (!read_digits(&p, 2, &hour) || !expect(&p, ':') || !read_digits(&p, 2, &min) ||
        !expect(&p, ':') || !read_digits(&p, 2, &sec))
        return false;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > MAX_HOUR ||
        min > MAX_MINUTE || sec > MAX_SECOND)
        return false;

    int ms = 0;
    if (*p == '.') {
        p++;
        int ndigits = 0;
        while (*p >= '0' && *p <= '9') {
            if (ndigits < FRACTION_MS_DIGITS)
                ms = ms * 10 + (*p - '0');
            ndigits++;
            p++;
        }
        if (ndigits == 0)
            return false;
        for (; ndigits < FRACTION_MS_DIGITS; ndigits++)
            ms *= 10;
    }

    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (!read_digits(&p, 2, &oh) || !expect(&p, ':') || !read_digits(&p, 2, &om))
            return false;
        if (oh > MAX_HOUR || om > MAX_MINUTE)
            return false;
        offset_min = sign * (oh * MINS_PER_HOUR + om);
    } else {
        return false;
    }
    if (*p != '\0')
        return false;

    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - TM_YEAR_BASE;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    errno = 0;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && errno != 0)
        return false;
    /* Local time = UTC + offset, so UTC = local time - offset. */
    int64_t secs = (int64_t)t - (int64_t)offset_min * SECS_PER_MIN;
    int64_t result = secs * MS_PER_S + ms;
    /* An offset (or a leap second) can carry a valid-looking text outside the years
       clock_format_rfc3339 can print; refuse it rather than store a time we cannot show. */
    if (result < CLOCK_MIN_MS || result > CLOCK_MAX_MS)
        return false;
    *unix_ms = result;
    return true;
}

void clock_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / MS_PER_S);
    until.tv_nsec += (long)(ms % MS_PER_S) * NS_PER_MS;
    if (until.tv_nsec >= NS_PER_MS * MS_PER_S) {
        until.tv_sec += 1;
        until.tv_nsec -= NS_PER_MS * MS_PER_S;
    }
    /* An absolute deadline, so a signal that interrupts the sleep does not stretch it. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}
