/*
 * clock.h — time as int64 milliseconds: wall clock (Unix ms, for records and the wire) and
 * monotonic (for timeouts and intervals), and RFC 3339 text.
 */
#ifndef ERRAND_CORE_CLOCK_H
#define ERRAND_CORE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define CLOCK_RFC3339_LEN 32

int64_t clock_now_ms(void);  /* CLOCK_REALTIME */
int64_t clock_mono_ms(void); /* CLOCK_MONOTONIC */

/* "2026-11-29T10:25:19.123Z" into out (at least CLOCK_RFC3339_LEN bytes). */
void clock_format_rfc3339(int64_t unix_ms, char out[CLOCK_RFC3339_LEN]);

/* Parses RFC 3339 ("...Z" or "+hh:mm" offsets, optional fraction); false if malformed. */
bool clock_parse_rfc3339(const char *s, int64_t *unix_ms);

/* Sleeps ms milliseconds (restarting after signals). */
void clock_sleep_ms(int64_t ms);

#endif
