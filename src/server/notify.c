/* SPDX-License-Identifier: MIT */
/*
 * notify.c — keyed wake-ups for parked long-polls (see notify.h).
 *
 * A parked waiter is in its keys' buckets (as every listening waiter is) and in the timer
 * heap, ordered by the monotonic time it wakes at. Whichever comes first — a signal, the
 * timer thread reaching that time, shutdown — takes it out of the heap under the one lock,
 * so a waiter wakes exactly once per park, and calls its wake function once the lock is
 * released, so signalling threads do not hold it while handing requests to the handlers. The timer
 * thread sleeps on a CLOCK_MONOTONIC condition variable until the heap's earliest time, so
 * a wall-clock jump neither cuts a long-poll short nor stretches it.
 *
 * The heap's array is grown when a waiter listens (one slot per listening waiter), so
 * parking never allocates and cannot fail for want of memory.
 */
#include "server/notify.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"

#define NOTIFY_BUCKETS 256 /* per topic; a power of two */
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u
#define NOT_IN_HEAP ((size_t)-1)
#define HEAP_INITIAL_CAP 64

/* One key of one waiter, in its bucket's list. */
struct notify_link {
    notify_waiter *w;
    const char *key;
    uint32_t hash;
    struct notify_link *prev, *next;
};

struct notify_waiter {
    enum notify_topic topic;
    bool fired;                /* a signal came while not parked, since the last wake-up */
    struct notify_link *links; /* n_links, one per key */
    size_t n_links;
    notify_waiter *prev, *next; /* the topic's waiters */
    /* While parked: */
    size_t heap_index; /* NOT_IN_HEAP when not parked */
    int64_t until_ms;
    notify_wake_fn wake;
    void *wake_arg;
    /* Once woken, until its wake call (made after the lock is released): */
    notify_waiter *woken_next;
    bool woken_by_signal;
};

struct notify {
    pthread_mutex_t lock; /* guards everything below and every waiter's state */
    pthread_cond_t timer_cond;
    pthread_t timer;
    struct notify_link *buckets[NOTIFY_TOPIC_COUNT][NOTIFY_BUCKETS];
    notify_waiter *waiters[NOTIFY_TOPIC_COUNT];
    notify_waiter **heap; /* parked waiters, earliest until_ms first */
    size_t heap_len, heap_cap;
    size_t listening;
    bool shutdown;
    bool stop_timer;
};

static uint32_t key_hash(const char *key)
{
    uint32_t h = FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * FNV_PRIME;
    return h;
}

/* --- the timer heap (lock held) ------------------------------------------------------- */

static void heap_set(notify *n, size_t i, notify_waiter *w)
{
    n->heap[i] = w;
    w->heap_index = i;
}

static void heap_up(notify *n, size_t i)
{
    notify_waiter *w = n->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (n->heap[parent]->until_ms <= w->until_ms)
            break;
        heap_set(n, i, n->heap[parent]);
        i = parent;
    }
    heap_set(n, i, w);
}

static void heap_down(notify *n, size_t i)
{
    notify_waiter *w = n->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n->heap_len)
            break;
        if (child + 1 < n->heap_len && n->heap[child + 1]->until_ms < n->heap[child]->until_ms)
            child++;
        if (w->until_ms <= n->heap[child]->until_ms)
            break;
        heap_set(n, i, n->heap[child]);
        i = child;
    }
    heap_set(n, i, w);
}

static void heap_remove(notify *n, notify_waiter *w)
{
    size_t i = w->heap_index;
    w->heap_index = NOT_IN_HEAP;
    notify_waiter *last = n->heap[--n->heap_len];
    if (i == n->heap_len)
        return;
    heap_set(n, i, last);
    if (i > 0 && n->heap[(i - 1) / 2]->until_ms > last->until_ms)
        heap_up(n, i);
    else
        heap_down(n, i);
}

struct woken {
    notify_waiter *head, *tail; /* in the order woken */
};

/* Unparks w and adds it to *woken if it is parked, else marks it for its next park. Lock
 * held; the wake calls are made by call_woken once it is released. */
static void fire(notify_waiter *w, notify *n, bool signalled, struct woken *woken)
{
    if (w->heap_index == NOT_IN_HEAP) {
        w->fired |= signalled;
        return;
    }
    heap_remove(n, w);
    w->fired = false;
    w->woken_by_signal = signalled;
    w->woken_next = NULL;
    if (woken->tail)
        woken->tail->woken_next = w;
    else
        woken->head = w;
    woken->tail = w;
}

/* Makes the wake calls of the waiters fire() took out of the heap, without the lock (a
 * woken waiter stays as it is until its own wake call: its owner is waiting for that). */
static void call_woken(struct woken *woken)
{
    for (notify_waiter *w = woken->head; w;) {
        notify_waiter *next = w->woken_next; /* w may be parked again once woken */
        w->wake(w->wake_arg, w->woken_by_signal);
        w = next;
    }
}

static void *timer_thread(void *arg)
{
    notify *n = arg;
    pthread_mutex_lock(&n->lock);
    while (!n->stop_timer) {
        if (n->heap_len == 0) {
            pthread_cond_wait(&n->timer_cond, &n->lock);
            continue;
        }
        int64_t first = n->heap[0]->until_ms;
        int64_t now = clock_mono_ms();
        if (now >= first) {
            struct woken woken = {0};
            while (n->heap_len > 0 && n->heap[0]->until_ms <= now)
                fire(n->heap[0], n, false, &woken);
            pthread_mutex_unlock(&n->lock);
            call_woken(&woken);
            pthread_mutex_lock(&n->lock);
            continue;
        }
        struct timespec until = {.tv_sec = first / MS_PER_S,
                                 .tv_nsec = (first % MS_PER_S) * NS_PER_MS};
        pthread_cond_timedwait(&n->timer_cond, &n->lock, &until);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* --- life ------------------------------------------------------------------------------ */

notify *notify_new(void)
{
    notify *n = mem_calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->heap = mem_calloc(HEAP_INITIAL_CAP, sizeof *n->heap);
    n->heap_cap = HEAP_INITIAL_CAP;
    pthread_condattr_t attr;
    bool cond = false;
    if (pthread_condattr_init(&attr) == 0) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        cond = pthread_cond_init(&n->timer_cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!n->heap || !cond || pthread_mutex_init(&n->lock, NULL) != 0) {
        if (cond)
            pthread_cond_destroy(&n->timer_cond);
        mem_free(n->heap);
        mem_free(n);
        return NULL;
    }
    if (pthread_create(&n->timer, NULL, timer_thread, n) != 0) {
        pthread_mutex_destroy(&n->lock);
        pthread_cond_destroy(&n->timer_cond);
        mem_free(n->heap);
        mem_free(n);
        return NULL;
    }
    return n;
}

void notify_free(notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop_timer = true;
    pthread_cond_signal(&n->timer_cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->timer, NULL);
    pthread_cond_destroy(&n->timer_cond);
    pthread_mutex_destroy(&n->lock);
    mem_free(n->heap);
    mem_free(n);
}

/* --- waiters --------------------------------------------------------------------------- */

/* Room in the heap for one more listening waiter. Lock held. */
static bool reserve_heap_slot(notify *n)
{
    if (n->listening < n->heap_cap)
        return true;
    notify_waiter **grown = mem_realloc(n->heap, 2 * n->heap_cap * sizeof *grown);
    if (!grown)
        return false;
    n->heap = grown;
    n->heap_cap *= 2;
    return true;
}

notify_waiter *notify_listen(notify *n, enum notify_topic topic, const char *const *keys,
                             size_t n_keys)
{
    notify_waiter *w = mem_calloc(1, sizeof *w);
    struct notify_link *links = n_keys ? mem_calloc(n_keys, sizeof *links) : NULL;
    if (!w || (n_keys && !links)) {
        mem_free(links);
        mem_free(w);
        return NULL;
    }
    w->topic = topic;
    w->links = links;
    w->n_links = n_keys;
    w->heap_index = NOT_IN_HEAP;
    for (size_t i = 0; i < n_keys; i++) {
        links[i].w = w;
        links[i].key = keys[i];
        links[i].hash = key_hash(keys[i]);
    }
    pthread_mutex_lock(&n->lock);
    if (!reserve_heap_slot(n)) {
        pthread_mutex_unlock(&n->lock);
        mem_free(links);
        mem_free(w);
        return NULL;
    }
    n->listening++;
    for (size_t i = 0; i < n_keys; i++) {
        struct notify_link **head = &n->buckets[topic][links[i].hash & (NOTIFY_BUCKETS - 1)];
        links[i].next = *head;
        if (*head)
            (*head)->prev = &links[i];
        *head = &links[i];
    }
    w->next = n->waiters[topic];
    if (w->next)
        w->next->prev = w;
    n->waiters[topic] = w;
    pthread_mutex_unlock(&n->lock);
    return w;
}

bool notify_waiter_park(notify *n, notify_waiter *w, int64_t until_mono_ms, notify_wake_fn wake,
                        void *arg)
{
    pthread_mutex_lock(&n->lock);
    bool park = !w->fired && !n->shutdown;
    w->fired = false;
    if (park) {
        w->until_ms = until_mono_ms;
        w->wake = wake;
        w->wake_arg = arg;
        n->heap[n->heap_len] = w;
        w->heap_index = n->heap_len++;
        heap_up(n, w->heap_index);
        if (w->heap_index == 0) /* the new earliest time: the timer thread must see it */
            pthread_cond_signal(&n->timer_cond);
    }
    pthread_mutex_unlock(&n->lock);
    return park;
}

void notify_unlisten(notify *n, notify_waiter *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&n->lock);
    if (w->heap_index != NOT_IN_HEAP)
        heap_remove(n, w);
    n->listening--;
    for (size_t i = 0; i < w->n_links; i++) {
        struct notify_link *l = &w->links[i];
        if (l->prev)
            l->prev->next = l->next;
        else
            n->buckets[w->topic][l->hash & (NOTIFY_BUCKETS - 1)] = l->next;
        if (l->next)
            l->next->prev = l->prev;
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        n->waiters[w->topic] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&n->lock);
    mem_free(w->links);
    mem_free(w);
}

void notify_signal_key(notify *n, enum notify_topic topic, const char *key)
{
    uint32_t h = key_hash(key);
    struct woken woken = {0};
    pthread_mutex_lock(&n->lock);
    for (struct notify_link *l = n->buckets[topic][h & (NOTIFY_BUCKETS - 1)]; l; l = l->next)
        if (l->hash == h && strcmp(l->key, key) == 0)
            fire(l->w, n, true, &woken);
    pthread_mutex_unlock(&n->lock);
    call_woken(&woken);
}

void notify_signal(notify *n, enum notify_topic topic)
{
    struct woken woken = {0};
    pthread_mutex_lock(&n->lock);
    for (notify_waiter *w = n->waiters[topic]; w; w = w->next)
        fire(w, n, true, &woken);
    pthread_mutex_unlock(&n->lock);
    call_woken(&woken);
}

void notify_shutdown(notify *n)
{
    struct woken woken = {0};
    pthread_mutex_lock(&n->lock);
    n->shutdown = true;
    while (n->heap_len > 0)
        fire(n->heap[0], n, true, &woken);
    pthread_mutex_unlock(&n->lock);
    call_woken(&woken);
}

bool notify_is_shutdown(notify *n)
{
    pthread_mutex_lock(&n->lock);
    bool s = n->shutdown;
    pthread_mutex_unlock(&n->lock);
    return s;
}

size_t notify_parked(notify *n)
{
    pthread_mutex_lock(&n->lock);
    size_t parked = n->heap_len;
    pthread_mutex_unlock(&n->lock);
    return parked;
}
