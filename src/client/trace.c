/* SPDX-License-Identifier: MIT */
/*
 * trace.c — the calling thread's current trace context (errand_trace_set / errand_trace_get,
 * errand.h): one traceparent per thread in thread-local storage, read by submit.c for every
 * submission made on that thread. Thread-local rather than per client, so that a web
 * framework's request thread and a task's thread each carry their own trace, whatever client
 * they use (OpenTelemetry's context works the same way).
 */
#include "client/trace.h"

#include <string.h>

#include "core/traceparent.h"
#include "errand/errand.h"

/* Owned by its thread alone. */
static _Thread_local char current[TRACEPARENT_LEN + 1];

int errand_trace_set(const char *traceparent)
{
    if (!traceparent) {
        current[0] = '\0';
        return 0;
    }
    if (!traceparent_valid(traceparent))
        return ERRAND_EINVAL;
    memcpy(current, traceparent, TRACEPARENT_LEN + 1);
    return 0;
}

const char *errand_trace_get(void)
{
    return current[0] ? current : NULL;
}

void trace_context_save(char out[TRACEPARENT_LEN + 1])
{
    memcpy(out, current, sizeof current);
}

void trace_context_restore(const char saved[TRACEPARENT_LEN + 1])
{
    memcpy(current, saved, sizeof current);
}
