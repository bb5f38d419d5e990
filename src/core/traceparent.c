/* SPDX-License-Identifier: MIT */
/*
 * traceparent.c — W3C traceparent values (traceparent.h).
 */
#include "core/traceparent.h"

#include <stdio.h>
#include <string.h>

#include "core/uuid.h"
#include "errand/errand.h"

#define TRACEPARENT_FLAGS_AT 53
#define TRACE_VERSION "00"

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* n lower-case hex characters at s, not all '0'. */
static bool hex_field(const char *s, size_t n, bool nonzero)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_hex(s[i]))
            return false;
        any |= s[i] != '0';
    }
    return any || !nonzero;
}

bool traceparent_valid(const char *s)
{
    if (!s || strlen(s) != TRACEPARENT_LEN)
        return false;
    return memcmp(s, TRACE_VERSION, 2) == 0 && s[2] == '-' &&
           hex_field(s + TRACEPARENT_TRACE_AT, TRACE_ID_LEN, true) &&
           s[TRACEPARENT_PARENT_AT - 1] == '-' &&
           hex_field(s + TRACEPARENT_PARENT_AT, TRACE_PARENT_ID_LEN, true) &&
           s[TRACEPARENT_FLAGS_AT - 1] == '-' && hex_field(s + TRACEPARENT_FLAGS_AT, 2, false);
}

bool trace_id_valid(const char *s)
{
    return s && strlen(s) == TRACE_ID_LEN && hex_field(s, TRACE_ID_LEN, true);
}

void traceparent_trace_id(const char *tp, char out[TRACE_ID_LEN + 1])
{
    out[0] = '\0';
    if (!traceparent_valid(tp))
        return;
    memcpy(out, tp + TRACEPARENT_TRACE_AT, TRACE_ID_LEN);
    out[TRACE_ID_LEN] = '\0';
}

int traceparent_child(const char *tp, char out[TRACEPARENT_LEN + 1])
{
    if (!traceparent_valid(tp))
        return ERRAND_EINVAL;
    char span[TRACE_PARENT_ID_LEN + 1];
    do {
        if (token_random_hex(TRACE_PARENT_ID_LEN / 2, span) < 0)
            return ERRAND_EIO;
    } while (!hex_field(span, TRACE_PARENT_ID_LEN, true) ||
             memcmp(span, tp + TRACEPARENT_PARENT_AT, TRACE_PARENT_ID_LEN) == 0);
    memcpy(out, tp, TRACEPARENT_LEN + 1);
    memcpy(out + TRACEPARENT_PARENT_AT, span, TRACE_PARENT_ID_LEN);
    return 0;
}

const char *traceparent_log_field(const char *tp, char out[sizeof " trace_id=" + TRACE_ID_LEN])
{
    char id[TRACE_ID_LEN + 1];
    traceparent_trace_id(tp, id);
    if (id[0])
        snprintf(out, sizeof " trace_id=" + TRACE_ID_LEN, " trace_id=%s", id);
    else
        out[0] = '\0';
    return out;
}
