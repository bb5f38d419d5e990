/* SPDX-License-Identifier: MIT */
/*
 * traceparent.h — W3C Trace Context (https://www.w3.org/TR/trace-context/) `traceparent`
 * values: checking one, taking its trace id, and deriving a child's. One module for the
 * server (which checks what a submission carries), liberrand (the thread's current trace
 * context, errand_trace_set) and the worker runtime (a task's child span), so the three
 * agree on what a valid value is.
 *
 * Only version 00 is accepted, in its exact form:
 *   00-<32 lower-case hex trace-id>-<16 lower-case hex parent-id>-<2 lower-case hex flags>
 * (55 characters); a trace id or parent id of all zeros is invalid (the W3C rules). A value
 * errand stores is always one that passed traceparent_valid(), so readers can cut fields out
 * of it by position.
 */
#ifndef ERRAND_CORE_TRACEPARENT_H
#define ERRAND_CORE_TRACEPARENT_H

#include <stdbool.h>

#define TRACEPARENT_LEN 55       /* characters, without the NUL */
#define TRACE_ID_LEN 32          /* hex characters of a trace id */
#define TRACE_PARENT_ID_LEN 16   /* hex characters of a parent (span) id */
#define TRACEPARENT_TRACE_AT 3   /* where the trace id starts in a traceparent */
#define TRACEPARENT_PARENT_AT 36 /* where the parent id starts */

/* True when s is a version-00 traceparent as above (NULL is not). */
bool traceparent_valid(const char *s);

/* True when s is a trace id: 32 lower-case hex characters, not all zeros. */
bool trace_id_valid(const char *s);

/* The trace id of a valid traceparent tp into out ("" when tp is NULL or invalid). */
void traceparent_trace_id(const char *tp, char out[TRACE_ID_LEN + 1]);

/* A child of valid traceparent tp: the same version, trace id and flags with a new random
 * parent id (a span of its own, never all zeros). 0, ERRAND_EINVAL when tp is not valid, or
 * ERRAND_EIO when no random bytes could be drawn. */
int traceparent_child(const char *tp, char out[TRACEPARENT_LEN + 1]);

/* " trace_id=<id>" for a log line's fields when tp is a valid traceparent, else "": so a log
 * call can write "run=%s%s" with it. out is returned. */
const char *traceparent_log_field(const char *tp, char out[sizeof " trace_id=" + TRACE_ID_LEN]);

#endif
