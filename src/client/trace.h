/* SPDX-License-Identifier: MIT */
/*
 * trace.h — the thread's current trace context behind errand_trace_set/errand_trace_get
 * (errand.h), and what the worker runtime needs besides: saving the context of the thread a
 * task runs on and putting it back after the task.
 */
#ifndef ERRAND_CLIENT_TRACE_H
#define ERRAND_CLIENT_TRACE_H

#include "core/traceparent.h"

/* Copies the calling thread's current context (all of it, "" when none) into out. */
void trace_context_save(char out[TRACEPARENT_LEN + 1]);
/* Makes saved (from trace_context_save) the calling thread's current context again. */
void trace_context_restore(const char saved[TRACEPARENT_LEN + 1]);

#endif
