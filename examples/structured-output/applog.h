/* SPDX-License-Identifier: MIT */
/*
 * applog.h — the example's logger: logfmt lines on stderr, in the same shape as errand's own
 * (so one grep, or one log pipeline, reads the server, the worker and the app alike):
 *   ts=2026-11-29T10:25:19.123Z level=info msg="listening" host=0.0.0.0 port=8000
 * The example uses liberrand only through errand.h, as any user would, so it carries this
 * small logger of its own rather than reaching into errand's internals.
 * Thread-safe: each line is formatted in a stack buffer and written with one write(2).
 */
#ifndef SO_APPLOG_H
#define SO_APPLOG_H

enum applog_level { APPLOG_DEBUG = 10, APPLOG_INFO = 20, APPLOG_WARNING = 30, APPLOG_ERROR = 40 };

/* Lines below this level are dropped; the default is APPLOG_INFO. */
void applog_set_level(enum applog_level level);

/* msg is written quoted; fields_fmt (may be NULL) formats the key=value fields after it. */
void applog_write(enum applog_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define applog_info(msg, ...) applog_write(APPLOG_INFO, msg, __VA_ARGS__)
#define applog_warn(msg, ...) applog_write(APPLOG_WARNING, msg, __VA_ARGS__)
#define applog_error(msg, ...) applog_write(APPLOG_ERROR, msg, __VA_ARGS__)

#endif
