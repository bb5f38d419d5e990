/* SPDX-License-Identifier: MIT */
/*
 * clock.h — time as int64 milliseconds: wall clock (Unix ms, for records and the wire) and
 * monotonic (for timeouts and intervals), and RFC 3339 text.
 */
#ifndef ERRAND_CORE_CLOCK_H
#define ERRAND_CORE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define CLOCK_RFC3339_LEN 32

/* Time units, as int64 so that products of them do not overflow. */
#define MS_PER_S INT64_C(1000)
#define MS_PER_MINUTE INT64_C(60000)
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* The instants RFC 3339 text can name: 0000-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z. */
#define CLOCK_MIN_MS INT64_C(-62167219200000)
#define CLOCK_MAX_MS INT64_C(253402300799999)

int64_t clock_now_ms(void);  /* CLOCK_REALTIME */
int64_t clock_mono_ms(void); /* CLOCK_MONOTONIC */
int64_t clock_mono_ns(void); /* CLOCK_MONOTONIC, in ns: for measuring latencies */

/* "2026-11-29T10:25:19.123Z" into out (at least CLOCK_RFC3339_LEN bytes). */
void clock_format_rfc3339(int64_t unix_ms, char out[CLOCK_RFC3339_LEN]);

/* Parses RFC 3339 ("...Z" or "+hh:mm" offsets, optional fraction); false if malformed or
 * outside [CLOCK_MIN_MS, CLOCK_MAX_MS] once the offset is applied. */
bool clock_parse_rfc3339(const char *s, int64_t *unix_ms);

/* Sleeps ms milliseconds (restarting after signals). */
void clock_sleep_ms(int64_t ms);

#endif
