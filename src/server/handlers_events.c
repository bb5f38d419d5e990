/* SPDX-License-Identifier: MIT */
/*
 * handlers_events.c — GET /api/events: the change feed as server-sent events
 * (event_feed.h), filtered by task, run and state, resumable from the last event id.
 *
 * The handler checks the query, subscribes and answers 200 with a stream; from then on the
 * event threads copy events from the feed's ring as the connection drains, and the
 * connection is held, costing no thread, while there is nothing to send.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/wire_limits.h"
#include "server/event_feed.h"
#include "server/handlers.h"
#include "server/query.h"

#define CONTENT_EVENT_STREAM "text/event-stream"
#define LAST_EVENT_ID_HEADER "Last-Event-ID"
#define EVENTS_MAX_RATE_LIMIT 100000

struct events_stream {
    event_feed *feed;
    event_sub *sub;
};

static void hold_conn(void *conn)
{
    http_stream_hold(conn);
}

static void wake_conn(void *conn)
{
    http_stream_wake(conn);
}

static ssize_t events_read(void *state, http_stream_conn *conn, char *buf, size_t max)
{
    struct events_stream *es = state;
    const struct event_sub_hooks hooks = {hold_conn, wake_conn, conn};
    return event_feed_read(es->feed, es->sub, buf, max, &hooks);
}

static void events_free(void *state)
{
    struct events_stream *es = state;
    event_feed_unsubscribe(es->feed, es->sub);
    mem_free(es);
}

/* The position to resume from: the Last-Event-ID header (what a reconnecting EventSource
 * sends), else ?after=; -1 (from now) when neither is given. */
static int resume_position(const struct http_request *req, long long *out, errand_error *err)
{
    const char *last = http_header(req, LAST_EVENT_ID_HEADER);
    if (!last || !last[0])
        return query_int(req, "after", 0, INT64_MAX, -1, out, err);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(last, &end, 10);
    if (errno || end == last || *end || v < 0 || !isdigit((unsigned char)last[0]))
        return error_set(err, ERR_INVALID_PARAMETER, LAST_EVENT_ID_HEADER,
                         "the Last-Event-ID header must be an event id this server sent "
                         "(a non-negative integer), got '%.40s'",
                         last);
    *out = v;
    return 0;
}

const struct query_param events_params[] = {
    {"task", false},  {"run", false},      {"state", true},
    {"after", false}, {"max_rate", false}, {NULL, false},
};

int handle_events(const struct handler_ctx *ctx, const struct http_request *req,
                  struct http_reply *reply, errand_error *err)
{
    struct event_filter filter = {0};
    const char *task = NULL, *run = NULL;
    long long after = -1, max_rate = 0;
    int rc;
    if ((rc = query_check(req, events_params, err)) < 0 ||
        (rc = query_string(req, "task", WIRE_TASK_NAME_MAX, &task, err)) < 0 ||
        (rc = query_uuid(req, "run", &run, err)) < 0 ||
        (rc = query_states(req, "state", &filter.state_mask, err)) < 0 ||
        (rc = query_int(req, "max_rate", 0, EVENTS_MAX_RATE_LIMIT, 0, &max_rate, err)) < 0 ||
        (rc = resume_position(req, &after, err)) < 0)
        return rc;
    filter.max_rate = (unsigned)max_rate;
    if (task)
        snprintf(filter.task, sizeof filter.task, "%s", task);
    if (run)
        for (size_t i = 0; run[i] && i < sizeof filter.run_id - 1; i++)
            filter.run_id[i] = (char)tolower((unsigned char)run[i]);
    struct events_stream *es = mem_calloc(1, sizeof *es);
    if (!es)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    es->feed = ctx->events;
    if (!ctx->events || !(es->sub = event_feed_subscribe(ctx->events, &filter, after))) {
        mem_free(es);
        return error_set(err, ERRAND_EUNAVAILABLE, NULL,
                         "the server is shutting down; reconnect to another server or later");
    }
    const struct http_stream stream = {events_read, events_free, es};
    http_reply_stream(reply, HTTP_OK, &stream, CONTENT_EVENT_STREAM);
    return 0;
}
