/* SPDX-License-Identifier: MIT */
/*
 * log.h — the one logger: lines of logfmt on stderr,
 *   ts=2026-11-29T10:25:19.123Z level=info msg="listening" host=127.0.0.1 port=4200
 * or, with the JSON format, one JSON object a line (log_json.h),
 *   {"ts":"2026-11-29T10:25:19.123Z","level":"info","msg":"listening","host":"127.0.0.1","port":4200}
 * Callers pass the message and then key=value fields already formatted, e.g.
 *   log_info("listening", "host=%s port=%d", host, port);
 * With no fields, pass NULL: log_info("stopped", NULL) (an empty "" format does not compile
 * under -Wall -Werror, it trips -Wformat-zero-length). The message is quoted and escaped;
 * newlines inside fields become spaces, and lines over 4 KiB are cut and end in "...".
 * Thread-safe (one write(2) per line). Levels below log_get_level() are dropped. Until
 * log_set_level()/log_set_format() are called, the level and format are those of the
 * environment (ERRAND_LOGGING_LEVEL, ERRAND_LOGGING_FORMAT; info and logfmt by default).
 */
#ifndef ERRAND_CORE_LOG_H
#define ERRAND_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 10, LOG_INFO = 20, LOG_WARNING = 30, LOG_ERROR = 40 };
enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON = 1 };

void log_set_level(enum log_level level);
/* Parses "debug|info|warning|error"; -1 if unknown. */
int log_level_parse(const char *s);
enum log_level log_get_level(void);

void log_set_format(enum log_format format);
/* Parses "logfmt|json"; -1 if unknown. */
int log_format_parse(const char *s);
enum log_format log_get_format(void);

void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_write(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write(LOG_WARNING, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
