/*
 * notify.c — keyed wake-ups for long-polls (see notify.h). Each waiter has its own condition
 * variable on CLOCK_MONOTONIC, so that a wall-clock jump neither cuts a long-poll short nor
 * stretches it, and a signal wakes exactly the waiters it concerns.
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

/* One key of one waiter, in its bucket's list. */
struct notify_link {
    notify_waiter *w;
    const char *key;
    uint32_t hash;
    struct notify_link *prev, *next;
};

struct notify_waiter {
    enum notify_topic topic;
    pthread_cond_t cond;
    bool fired;                /* a signal came since the last wait returned */
    struct notify_link *links; /* n_links, one per key */
    size_t n_links;
    notify_waiter *prev, *next; /* the topic's waiters */
};

struct notify {
    pthread_mutex_t lock; /* guards everything below and every waiter's links and flag */
    struct notify_link *buckets[NOTIFY_TOPIC_COUNT][NOTIFY_BUCKETS];
    notify_waiter *waiters[NOTIFY_TOPIC_COUNT];
    bool shutdown;
};

static uint32_t key_hash(const char *key)
{
    uint32_t h = FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * FNV_PRIME;
    return h;
}

notify *notify_new(void)
{
    notify *n = mem_calloc(1, sizeof *n);
    if (!n)
        return NULL;
    if (pthread_mutex_init(&n->lock, NULL) != 0) {
        mem_free(n);
        return NULL;
    }
    return n;
}

void notify_free(notify *n)
{
    if (!n)
        return;
    pthread_mutex_destroy(&n->lock);
    mem_free(n);
}

/* Marks w signalled and wakes it; lock held. */
static void fire(notify_waiter *w)
{
    w->fired = true;
    pthread_cond_signal(&w->cond);
}

notify_waiter *notify_listen(notify *n, enum notify_topic topic, const char *const *keys,
                             size_t n_keys)
{
    notify_waiter *w = mem_calloc(1, sizeof *w);
    struct notify_link *links = n_keys ? mem_calloc(n_keys, sizeof *links) : NULL;
    pthread_condattr_t attr;
    bool made = false;
    if (w && (links || !n_keys) && pthread_condattr_init(&attr) == 0) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        made = pthread_cond_init(&w->cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!made) {
        mem_free(links);
        mem_free(w);
        return NULL;
    }
    w->topic = topic;
    w->links = links;
    w->n_links = n_keys;
    for (size_t i = 0; i < n_keys; i++) {
        links[i].w = w;
        links[i].key = keys[i];
        links[i].hash = key_hash(keys[i]);
    }
    pthread_mutex_lock(&n->lock);
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

bool notify_waiter_wait(notify *n, notify_waiter *w, int64_t deadline_mono_ms)
{
    /* clock_mono_ms() reads CLOCK_MONOTONIC, the clock the condition variables use. */
    struct timespec until = {
        .tv_sec = deadline_mono_ms / MS_PER_S,
        .tv_nsec = (deadline_mono_ms % MS_PER_S) * NS_PER_MS,
    };
    pthread_mutex_lock(&n->lock);
    while (!w->fired && !n->shutdown) {
        if (pthread_cond_timedwait(&w->cond, &n->lock, &until) == ETIMEDOUT)
            break;
    }
    bool fired = w->fired;
    w->fired = false;
    pthread_mutex_unlock(&n->lock);
    return fired;
}

void notify_unlisten(notify *n, notify_waiter *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&n->lock);
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
    pthread_cond_destroy(&w->cond);
    mem_free(w->links);
    mem_free(w);
}

void notify_signal_key(notify *n, enum notify_topic topic, const char *key)
{
    uint32_t h = key_hash(key);
    pthread_mutex_lock(&n->lock);
    for (struct notify_link *l = n->buckets[topic][h & (NOTIFY_BUCKETS - 1)]; l; l = l->next)
        if (l->hash == h && strcmp(l->key, key) == 0)
            fire(l->w);
    pthread_mutex_unlock(&n->lock);
}

void notify_signal(notify *n, enum notify_topic topic)
{
    pthread_mutex_lock(&n->lock);
    for (notify_waiter *w = n->waiters[topic]; w; w = w->next)
        fire(w);
    pthread_mutex_unlock(&n->lock);
}

void notify_shutdown(notify *n)
{
    pthread_mutex_lock(&n->lock);
    n->shutdown = true;
    for (int t = 0; t < NOTIFY_TOPIC_COUNT; t++)
        for (notify_waiter *w = n->waiters[t]; w; w = w->next)
            pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&n->lock);
}

bool notify_is_shutdown(notify *n)
{
    pthread_mutex_lock(&n->lock);
    bool s = n->shutdown;
    pthread_mutex_unlock(&n->lock);
    return s;
}
