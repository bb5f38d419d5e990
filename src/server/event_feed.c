/* SPDX-License-Identifier: MIT */
/*
 * event_feed.c — the ring of recent events and the streams that follow it (event_feed.h).
 *
 * The ring holds events with consecutive positions; `known_after` is the seq after which
 * every committed event is in the ring (it rises as old events are evicted), and `newest`
 * the seq of the last one read. A stream's cursor in [known_after, newest] can be served;
 * any other gets a reset.
 */
#include "server/event_feed.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/json_writer.h"

/* What a client waits before it reconnects, sent first on every stream (SSE "retry:"). */
#define RECONNECT_MS 2000
#define KEEPALIVE_TEXT ": keepalive\n\n"
/* Room for the "skipped" notice of a stream over its max_rate. */
#define SKIPPED_TEXT_MAX 128
/* How often the tailer looks for streams that are due a keep-alive. */
#define KEEPALIVE_SCAN_MS 1000

/* Bytes held per event on average: the byte ring is capacity times this, so a burst of
 * events with long task names evicts more of the old ones instead of growing. */
#define EVENT_BYTES_AVG 512

/* An event's fixed part; its task name (NUL-terminated) and then its SSE text
 * ("id: ...\n...\n\n") are in the feed's byte ring at off. The bytes are one allocation
 * made at start, used in FIFO order: the ring's memory neither grows nor fragments. */
struct feed_event {
    int64_t seq;
    char run_id[37];
    errand_state type;
    bool has_task; /* false: the run was deleted before the event was read */
    size_t off, task_len, len;
};

struct event_sub {
    struct event_filter filter;
    int64_t cursor;               /* the last seq passed (sent or filtered out) */
    bool started;                 /* the "retry:" line went out */
    bool reset;                   /* a reset event is due */
    bool holding;                 /* paused until a wake */
    struct event_sub_hooks hooks; /* while holding */
    bool keepalive_due;
    int64_t last_write_ms; /* monotonic */
    double tokens;         /* filter.max_rate: events it may send now */
    int64_t refilled_ms;   /* ... as of then (monotonic) */
    struct event_sub *prev, *next;
};

struct event_feed {
    store *st;
    size_t capacity;
    int64_t poll_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the tailer's: poked, or stopping */
    struct feed_event *ring;
    size_t head, count; /* the oldest event's slot, and how many are held */
    char *bytes;        /* the events' task names and texts */
    size_t bytes_cap, bytes_tail; /* ... its size, and where the newest event ends */
    int64_t known_after, newest;
    bool poked, closed, stopping;
    struct event_sub *subs;
    size_t n_subs;
    pthread_t thread;
    bool thread_started;
};

/* --- ring ------------------------------------------------------------------------------ */

static struct feed_event *ring_at(event_feed *f, size_t i)
{
    return &f->ring[(f->head + i) % f->capacity];
}

static const char *event_task(const event_feed *f, const struct feed_event *e)
{
    return e->has_task ? f->bytes + e->off : NULL;
}

static const char *event_text(const event_feed *f, const struct feed_event *e)
{
    return f->bytes + e->off + e->task_len + 1;
}

static void evict_oldest(event_feed *f)
{
    struct feed_event *old = ring_at(f, 0);
    f->known_after = old->seq;
    f->head = (f->head + 1) % f->capacity;
    if (--f->count == 0)
        f->bytes_tail = 0;
}

/* Where need contiguous bytes go, evicting the oldest events until they fit. */
static size_t make_room(event_feed *f, size_t need)
{
    for (;;) {
        if (f->count == 0)
            return 0;
        size_t head = ring_at(f, 0)->off, tail = f->bytes_tail;
        if (head < tail) { /* used: [head, tail); free: [tail, cap) and [0, head) */
            if (need <= f->bytes_cap - tail)
                return tail;
            if (need <= head)
                return 0;
        } else if (need <= head - tail) { /* used wraps: free is [tail, head) */
            return tail;
        }
        evict_oldest(f);
    }
}

/* The SSE text of e: id, event type "run", and the JSON of the change. */
static char *format_event(const struct run_event *e, size_t *len)
{
    struct jw w = {0};
    char head[64];
    int n = snprintf(head, sizeof head, "id: %lld\nevent: run\ndata: ", (long long)e->seq);
    jw_raw(&w, head, (size_t)n);
    jw_lit(&w, "{");
    jw_key(&w, "seq");
    jw_int(&w, e->seq);
    jw_member(&w, "id");
    jw_string(&w, e->id);
    jw_member(&w, "task");
    jw_string(&w, e->task);
    jw_member(&w, "state");
    jw_lit(&w, "{");
    jw_key(&w, "type");
    jw_string(&w, state_type_name(e->type));
    jw_member(&w, "name");
    jw_string(&w, e->name);
    jw_member(&w, "timestamp");
    jw_time(&w, e->at);
    jw_lit(&w, "}}\n\n");
    size_t used = w.len;
    char *text = jw_finish(&w);
    *len = text ? used : 0;
    return text;
}

/* Appends e with its text, evicting the oldest events to make room. Under the lock. */
static void ring_push(event_feed *f, const struct run_event *e, const char *text, size_t len)
{
    size_t task_len = e->task ? strlen(e->task) : 0, need = task_len + 1 + len;
    f->newest = e->seq;
    if (need > f->bytes_cap) { /* cannot happen with the sizes used; the event is skipped */
        while (f->count)
            evict_oldest(f);
        f->known_after = e->seq;
        return;
    }
    if (f->count == f->capacity)
        evict_oldest(f);
    size_t off = make_room(f, need);
    struct feed_event *slot = ring_at(f, f->count++);
    slot->seq = e->seq;
    memcpy(slot->run_id, e->id, sizeof slot->run_id);
    slot->type = e->type;
    slot->has_task = e->task != NULL;
    slot->off = off;
    slot->task_len = task_len;
    slot->len = len;
    memcpy(f->bytes + off, e->task ? e->task : "", task_len + 1);
    memcpy(f->bytes + off + task_len + 1, text, len);
    f->bytes_tail = off + need;
}

/* The index of the first held event with seq > cursor (count when none). */
static size_t ring_after(event_feed *f, int64_t cursor)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(f, mid)->seq <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool matches(const event_feed *f, const struct event_filter *flt, const struct feed_event *e)
{
    if (flt->state_mask && !(flt->state_mask & (1u << e->type)))
        return false;
    if (flt->run_id[0] && strcmp(flt->run_id, e->run_id) != 0)
        return false;
    return !flt->task[0] || (e->has_task && strcmp(flt->task, event_task(f, e)) == 0);
}

/* --- waking held streams ----------------------------------------------------------------- */

struct wake_list {
    struct event_sub_hooks *items;
    size_t n, cap;
};

/* Takes s out of holding and queues its wake (called once the lock is released). Under the
 * lock. On out of memory the wake is made at once: a held connection must not be lost. */
static void release_hold(struct wake_list *l, struct event_sub *s)
{
    s->holding = false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct event_sub_hooks *more = mem_realloc(l->items, cap * sizeof *more);
        if (!more) {
            s->hooks.wake(s->hooks.arg); /* resuming under the lock is safe, only slower */
            return;
        }
        l->items = more;
        l->cap = cap;
    }
    l->items[l->n++] = s->hooks;
}

static void wake_all(struct wake_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        l->items[i].wake(l->items[i].arg);
    mem_free(l->items);
    *l = (struct wake_list){0};
}

/* Whether a paced stream (filter.max_rate) may be woken now: when half its bucket has
 * refilled, so that under a flood it is woken about twice a second (the keep-alive scan wakes
 * it too), not at every batch. Under the lock. */
static bool pace_allows(const struct event_sub *s, int64_t now)
{
    unsigned rate = s->filter.max_rate;
    if (!rate)
        return true;
    double tokens = s->tokens + (double)(now - s->refilled_ms) * rate / MS_PER_S;
    return tokens >= (rate + 1) / 2;
}

/* Whether any held event after s's cursor passes its filter. Under the lock. */
static bool has_news(event_feed *f, const struct event_sub *s)
{
    if (s->reset || s->cursor < f->known_after || s->cursor > f->newest)
        return true;
    for (size_t i = ring_after(f, s->cursor); i < f->count; i++)
        if (matches(f, &s->filter, ring_at(f, i)))
            return true;
    return false;
}

/* --- the tailer --------------------------------------------------------------------------- */

static void poke(void *arg)
{
    event_feed *f = arg;
    pthread_mutex_lock(&f->lock);
    f->poked = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Adds the events read to the ring and wakes the streams they concern. */
static void publish(event_feed *f, struct run_event_list *l)
{
    struct wake_list wakes = {0};
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].seq <= f->newest)
            continue; /* read twice (a poke and a poll crossed) */
        size_t len = 0;
        char *text = format_event(&l->items[i], &len);
        if (!text) {
            log_warn("event feed: out of memory formatting an event", "seq=%lld",
                     (long long)l->items[i].seq);
            continue;
        }
        ring_push(f, &l->items[i], text, len);
        mem_free(text);
    }
    int64_t now = clock_mono_ms();
    for (struct event_sub *s = f->subs; s; s = s->next)
        if (s->holding && pace_allows(s, now) && has_news(f, s))
            release_hold(&wakes, s);
    pthread_mutex_unlock(&f->lock);
    wake_all(&wakes);
}

/* Reads everything after the newest event held. A backlog larger than the ring is skipped
 * to its last `capacity` events (streams behind it get a reset). */
static void catch_up(event_feed *f)
{
    errand_error err;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        int64_t after = f->newest;
        bool stopping = f->stopping;
        pthread_mutex_unlock(&f->lock);
        if (stopping)
            return;
        struct run_event_list l = {0};
        error_clear(&err);
        if (store_read_events(f->st, after, EVENT_FEED_READ_BATCH, &l, &err) < 0) {
            log_warn("event feed: cannot read the store's events", "error=\"%s\"", err.message);
            return;
        }
        size_t n = l.n;
        publish(f, &l);
        run_event_list_clear(&l);
        if (n < EVENT_FEED_READ_BATCH)
            return;
        int64_t first = 0, last = 0;
        if (store_event_bounds(f->st, &first, &last, &err) == 0 &&
            last - after > (int64_t)f->capacity + EVENT_FEED_READ_BATCH) {
            pthread_mutex_lock(&f->lock);
            f->newest = f->known_after = last - (int64_t)f->capacity;
            pthread_mutex_unlock(&f->lock);
        }
    }
}

/* Wakes held streams that have written nothing for EVENT_FEED_KEEPALIVE_MS, and paced
 * streams with news that publish() left held. */
static void keepalive_scan(event_feed *f, int64_t now)
{
    struct wake_list wakes = {0};
    pthread_mutex_lock(&f->lock);
    for (struct event_sub *s = f->subs; s; s = s->next) {
        if (!s->holding)
            continue;
        if (now - s->last_write_ms >= EVENT_FEED_KEEPALIVE_MS) {
            s->keepalive_due = true;
            release_hold(&wakes, s);
        } else if (s->filter.max_rate && has_news(f, s)) {
            release_hold(&wakes, s);
        }
    }
    pthread_mutex_unlock(&f->lock);
    wake_all(&wakes);
}

/* Waits on the tailer's condition until until_ms (monotonic) or a signal. Under the lock. */
static void wait_until(event_feed *f, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = until_ms / MS_PER_S,
                          .tv_nsec = (long)((until_ms % MS_PER_S) * NS_PER_MS)};
    pthread_cond_timedwait(&f->cond, &f->lock, &ts);
}

static void *tailer_main(void *arg)
{
    event_feed *f = arg;
    pthread_setname_np(pthread_self(), "errand-events");
    int64_t next_poll = 0, next_scan = clock_mono_ms() + KEEPALIVE_SCAN_MS;
    pthread_mutex_lock(&f->lock);
    while (!f->stopping) {
        int64_t now = clock_mono_ms();
        if (now >= next_scan) {
            pthread_mutex_unlock(&f->lock);
            keepalive_scan(f, now);
            pthread_mutex_lock(&f->lock);
            next_scan = now + KEEPALIVE_SCAN_MS;
            continue;
        }
        if (!f->poked && now < next_poll) {
            wait_until(f, next_poll < next_scan ? next_poll : next_scan);
            continue;
        }
        f->poked = false;
        pthread_mutex_unlock(&f->lock);
        catch_up(f);
        next_poll = clock_mono_ms() + f->poll_ms;
        pthread_mutex_lock(&f->lock);
        /* The next read waits EVENT_FEED_BATCH_MS at least: a burst arrives as a batch. */
        int64_t quiet_until = clock_mono_ms() + EVENT_FEED_BATCH_MS;
        while (!f->stopping && clock_mono_ms() < quiet_until)
            wait_until(f, quiet_until);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* Loads the newest events the store holds (up to the ring's size). */
static int load(event_feed *f, errand_error *err)
{
    int64_t first = 0, last = 0;
    int rc = store_event_bounds(f->st, &first, &last, err);
    if (rc < 0)
        return rc;
    int64_t after = last - (int64_t)f->capacity;
    if (after < first - 1)
        after = first > 0 ? first - 1 : 0;
    f->known_after = f->newest = after;
    for (;;) {
        struct run_event_list l = {0};
        if ((rc = store_read_events(f->st, f->newest, EVENT_FEED_READ_BATCH, &l, err)) < 0)
            return rc;
        size_t n = l.n;
        publish(f, &l);
        run_event_list_clear(&l);
        if (n < EVENT_FEED_READ_BATCH)
            return 0;
    }
}

/* --- lifecycle ---------------------------------------------------------------------------- */

int event_feed_start(store *st, const struct event_feed_options *opt, event_feed **out,
                     errand_error *err)
{
    *out = NULL;
    event_feed *f = mem_calloc(1, sizeof *f);
    size_t capacity = opt && opt->capacity ? opt->capacity : EVENT_FEED_CAPACITY_DEFAULT;
    if (!f || !(f->ring = mem_calloc(capacity, sizeof *f->ring)) ||
        !(f->bytes = mem_alloc(capacity * EVENT_BYTES_AVG))) {
        if (f)
            mem_free(f->ring);
        mem_free(f);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    f->bytes_cap = capacity * EVENT_BYTES_AVG;
    f->st = st;
    f->capacity = capacity;
    f->poll_ms = opt && opt->poll_ms > 0 ? opt->poll_ms : EVENT_FEED_POLL_MS_DEFAULT;
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &attr);
    pthread_condattr_destroy(&attr);
    int rc = load(f, err);
    if (rc == 0 && pthread_create(&f->thread, NULL, tailer_main, f) != 0)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "cannot start the event feed's thread");
    if (rc < 0) {
        event_feed_free(f);
        return rc;
    }
    f->thread_started = true;
    store_on_events(st, poke, f);
    *out = f;
    return 0;
}

void event_feed_shutdown(event_feed *f)
{
    if (!f)
        return;
    struct wake_list wakes = {0};
    pthread_mutex_lock(&f->lock);
    f->closed = true;
    for (struct event_sub *s = f->subs; s; s = s->next)
        if (s->holding)
            release_hold(&wakes, s);
    pthread_mutex_unlock(&f->lock);
    wake_all(&wakes);
}

void event_feed_free(event_feed *f)
{
    if (!f)
        return;
    if (f->thread_started) {
        store_on_events(f->st, NULL, NULL);
        pthread_mutex_lock(&f->lock);
        f->stopping = true;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->lock);
        pthread_join(f->thread, NULL);
    }
    mem_free(f->bytes);
    mem_free(f->ring);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    mem_free(f);
}

/* --- streams ------------------------------------------------------------------------------ */

event_sub *event_feed_subscribe(event_feed *f, const struct event_filter *filter, int64_t after)
{
    event_sub *s = mem_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->filter = *filter;
    s->last_write_ms = s->refilled_ms = clock_mono_ms();
    s->tokens = filter->max_rate;
    pthread_mutex_lock(&f->lock);
    if (f->closed) {
        pthread_mutex_unlock(&f->lock);
        mem_free(s);
        return NULL;
    }
    if (after < 0) {
        s->cursor = f->newest;
    } else {
        s->cursor = after;
        s->reset = after < f->known_after || after > f->newest;
    }
    s->next = f->subs;
    if (f->subs)
        f->subs->prev = s;
    f->subs = s;
    f->n_subs++;
    pthread_mutex_unlock(&f->lock);
    return s;
}

void event_feed_unsubscribe(event_feed *f, event_sub *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&f->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        f->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    f->n_subs--;
    pthread_mutex_unlock(&f->lock);
    mem_free(s);
}

/* Appends text to buf if it fits. */
static bool put(char *buf, size_t max, size_t *used, const char *text, size_t len)
{
    if (len > max - *used)
        return false;
    memcpy(buf + *used, text, len);
    *used += len;
    return true;
}

/* The reset event: the client missed events (or named a position this feed never had) and
 * must reload what it shows; it goes on from the newest event. Under the lock. */
static bool put_reset(event_feed *f, struct event_sub *s, char *buf, size_t max, size_t *used)
{
    char text[256];
    int n = snprintf(text, sizeof text,
                     "id: %lld\nevent: reset\ndata: {\"after\":%lld,\"oldest\":%lld,"
                     "\"newest\":%lld}\n\n",
                     (long long)f->newest, (long long)s->cursor, (long long)f->known_after,
                     (long long)f->newest);
    if (!put(buf, max, used, text, (size_t)n))
        return false;
    s->cursor = f->newest;
    s->reset = false;
    return true;
}

ssize_t event_feed_read(event_feed *f, event_sub *s, char *buf, size_t max,
                        const struct event_sub_hooks *hooks)
{
    size_t used = 0;
    pthread_mutex_lock(&f->lock);
    if (f->closed) {
        pthread_mutex_unlock(&f->lock);
        return -1;
    }
    if (!s->started) {
        char retry[32];
        int n = snprintf(retry, sizeof retry, "retry: %d\n\n", RECONNECT_MS);
        s->started = put(buf, max, &used, retry, (size_t)n);
    }
    if (s->reset || s->cursor < f->known_after || s->cursor > f->newest)
        put_reset(f, s, buf, max, &used);
    int64_t skipped = 0;
    if (!s->reset) {
        unsigned rate = s->filter.max_rate;
        if (rate) { /* a token bucket holding a second's worth */
            int64_t now = clock_mono_ms();
            s->tokens += (double)(now - s->refilled_ms) * rate / MS_PER_S;
            if (s->tokens > rate)
                s->tokens = rate;
            s->refilled_ms = now;
        }
        for (size_t i = ring_after(f, s->cursor); i < f->count; i++) {
            struct feed_event *e = ring_at(f, i);
            if (matches(f, &s->filter, e)) {
                if (rate && s->tokens < 1) {
                    if (max - used < SKIPPED_TEXT_MAX)
                        break; /* no room for the notice: the rest waits */
                    skipped++;
                } else if (put(buf, max, &used, event_text(f, e), e->len)) {
                    s->tokens -= rate ? 1 : 0;
                } else if (used > 0) {
                    break;
                } /* else larger than the whole buffer (not with the sizes used): skipped */
            }
            s->cursor = e->seq;
        }
    }
    if (skipped > 0) {
        char text[SKIPPED_TEXT_MAX];
        int n = snprintf(text, sizeof text,
                         "id: %lld\nevent: skipped\ndata: {\"skipped\":%lld,\"newest\":%lld}\n\n",
                         (long long)s->cursor, (long long)skipped, (long long)s->cursor);
        put(buf, max, &used, text, (size_t)n);
    }
    if (used == 0 && s->keepalive_due)
        put(buf, max, &used, KEEPALIVE_TEXT, sizeof KEEPALIVE_TEXT - 1);
    if (used > 0) {
        s->keepalive_due = false;
        s->last_write_ms = clock_mono_ms();
    } else {
        s->holding = true;
        s->hooks = *hooks;
        hooks->hold(hooks->arg);
    }
    pthread_mutex_unlock(&f->lock);
    return (ssize_t)used;
}

size_t event_feed_subscribers(event_feed *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->n_subs;
    pthread_mutex_unlock(&f->lock);
    return n;
}

int64_t event_feed_newest(event_feed *f)
{
    pthread_mutex_lock(&f->lock);
    int64_t n = f->newest;
    pthread_mutex_unlock(&f->lock);
    return n;
}
