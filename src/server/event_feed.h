/* SPDX-License-Identifier: MIT */
/*
 * event_feed.h — the server's side of the store's change feed (store.h), as server-sent
 * events for GET /api/events.
 *
 * One thread, the tailer, reads the store's feed after the last event it has and keeps the
 * newest `capacity` events in a ring, each already written out as the text of one SSE event
 * (so a thousand connected dashboards share one formatting of each event). It reads when the
 * store says a commit added events (store_on_events), at most every EVENT_FEED_BATCH_MS so
 * bursts arrive as batches, and every poll_ms regardless — which picks up what another
 * server sharing the store committed. At start it loads the newest events the store holds, so
 * a client reconnecting after a server restart resumes where it was.
 *
 * A subscriber is one stream: a filter and a cursor (the last seq it has passed). Reading
 * copies the SSE text of the events after its cursor that pass its filter; when there are
 * none it *holds* (its connection is paused, costing no thread) and is woken when events
 * come, when a keep-alive comment is due (EVENT_FEED_KEEPALIVE_MS, so proxies keep the
 * connection and a client that went away is noticed), or at shutdown. A cursor older than
 * the ring (the client was away longer than the window) or newer than the feed (another
 * store) gets one "reset" event, and goes on from the newest event.
 *
 * Thread-safe: one mutex guards the ring and the subscribers; wake calls run without it.
 */
#ifndef ERRAND_SERVER_EVENT_FEED_H
#define ERRAND_SERVER_EVENT_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errand/errand.h"
#include "store/store.h"

#define EVENT_FEED_CAPACITY_DEFAULT 4096
#define EVENT_FEED_POLL_MS_DEFAULT 1000
/* Reads of the store, at most one per this many ms (a burst's events come as one batch). */
#define EVENT_FEED_BATCH_MS 50
/* A stream with nothing to send writes a comment this often. */
#define EVENT_FEED_KEEPALIVE_MS 15000
/* Events read from the store per query. */
#define EVENT_FEED_READ_BATCH 1000
/* Longest task name a filter may hold. */
#define EVENT_FEED_TASK_MAX 256

typedef struct event_feed event_feed;
typedef struct event_sub event_sub;

struct event_feed_options {
    size_t capacity; /* events kept (ERRAND_EVENTS_BUFFER); 0 = the default */
    int poll_ms;     /* read the store at least this often; 0 = the default */
};

/* Starts the tailer on st (which must outlive event_feed_free) and registers the store hook. */
int event_feed_start(store *st, const struct event_feed_options *opt, event_feed **out,
                     errand_error *err);
/* Ends every stream: each reads to its end, and new subscriptions are refused. */
void event_feed_shutdown(event_feed *f);
/* Stops the tailer and frees the feed; every subscriber must be gone. NULL is fine. */
void event_feed_free(event_feed *f);

/* What a stream wants: every field optional (empty = any). */
struct event_filter {
    char task[EVENT_FEED_TASK_MAX]; /* "" = any task */
    char run_id[37];                /* "" = any run (lower case) */
    unsigned state_mask;            /* bit (1u << errand_state); 0 = any state */
    /* Most events a second the stream sends (0 = no limit); past it, the matching events are
       skipped and one "skipped" notice says how many (a dashboard then reloads what it
       shows), so a busy store costs a screen that only watches a bounded stream. */
    unsigned max_rate;
};

/* A new stream. after: the seq the client saw last (its Last-Event-ID); negative = from now.
 * NULL when out of memory or shut down. */
event_sub *event_feed_subscribe(event_feed *f, const struct event_filter *filter, int64_t after);
void event_feed_unsubscribe(event_feed *f, event_sub *s);

/* Holding and waking a stream's connection: hold(arg) is called under the feed's lock when a
 * read finds nothing (it pauses the connection); wake(arg) once, later and without the lock,
 * to resume it. */
struct event_sub_hooks {
    void (*hold)(void *arg);
    void (*wake)(void *arg);
    void *arg;
};

/* Copies the text of the next events (and a first "retry:" line, resets, keep-alives) into
 * buf, at most max bytes, whole events only (an event larger than max is cut to a comment).
 * Returns the bytes written; 0 after calling hooks->hold (nothing now: a wake follows);
 * -1 when the feed is shut down (the stream ends). */
ssize_t event_feed_read(event_feed *f, event_sub *s, char *buf, size_t max,
                        const struct event_sub_hooks *hooks);

/* For /metrics and tests: streams connected now, and the seq of the newest event held. */
size_t event_feed_subscribers(event_feed *f);
int64_t event_feed_newest(event_feed *f);

#endif
