/* SPDX-License-Identifier: MIT */
/*
 * log_json.h — the JSON form of a log line (ERRAND_LOGGING_FORMAT=json): one object per
 * line, {"ts": "...", "level": "info", "msg": "listening", "host": "127.0.0.1", "port": 4200}.
 * log.c formats an event's fields as logfmt (key=value, values quoted when they need it) and
 * hands them here to become members of the object: a quoted value is a string, a bare one a
 * number or true/false when it reads as one (else a string), a key without a value is true.
 */
#ifndef ERRAND_CORE_LOG_JSON_H
#define ERRAND_CORE_LOG_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the whole line, ending in "}\n", into buf (of size cap) and returns its length.
 * Whatever does not fit is left out at a member's boundary, so the line stays one valid JSON
 * object, and the object then says "truncated": true. cap must be at least 256. */
size_t log_json_line(char *buf, size_t cap, const char *ts, const char *level, const char *msg,
                     const char *logfmt_fields, bool fields_truncated);

#endif
