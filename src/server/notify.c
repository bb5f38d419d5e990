/*
 * notify.c — generation counters and condition variables (see notify.h). The condition
 * variables run on CLOCK_MONOTONIC so that a wall-clock jump neither cuts a long-poll short
 * nor stretches it.
 */
#include "server/notify.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"

#define MS_PER_S 1000
#define NS_PER_MS 1000000L

struct notify {
    pthread_mutex_t lock; /* guards gen[] and shutdown */
    pthread_cond_t cond[NOTIFY_TOPIC_COUNT];
    uint64_t gen[NOTIFY_TOPIC_COUNT];
    bool shutdown;
};

notify *notify_new(void)
{
    notify *n = mem_calloc(1, sizeof *n);
    if (!n)
        return NULL;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        mem_free(n);
        return NULL;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int made = 0;
    for (; made < NOTIFY_TOPIC_COUNT; made++)
        if (pthread_cond_init(&n->cond[made], &attr) != 0)
            break;
    pthread_condattr_destroy(&attr);
    if (made < NOTIFY_TOPIC_COUNT || pthread_mutex_init(&n->lock, NULL) != 0) {
        for (int i = 0; i < made; i++)
            pthread_cond_destroy(&n->cond[i]);
        mem_free(n);
        return NULL;
    }
    return n;
}

void notify_free(notify *n)
{
    if (!n)
        return;
    for (int i = 0; i < NOTIFY_TOPIC_COUNT; i++)
        pthread_cond_destroy(&n->cond[i]);
    pthread_mutex_destroy(&n->lock);
    mem_free(n);
}

uint64_t notify_generation(notify *n, enum notify_topic topic)
{
    pthread_mutex_lock(&n->lock);
    uint64_t g = n->gen[topic];
    pthread_mutex_unlock(&n->lock);
    return g;
}

void notify_signal(notify *n, enum notify_topic topic)
{
    pthread_mutex_lock(&n->lock);
    n->gen[topic]++;
    pthread_cond_broadcast(&n->cond[topic]);
    pthread_mutex_unlock(&n->lock);
}

bool notify_wait(notify *n, enum notify_topic topic, uint64_t seen, int64_t deadline_mono_ms)
{
    /* clock_mono_ms() reads CLOCK_MONOTONIC, the clock the condition variables use. */
    struct timespec until = {
        .tv_sec = deadline_mono_ms / MS_PER_S,
        .tv_nsec = (deadline_mono_ms % MS_PER_S) * NS_PER_MS,
    };
    pthread_mutex_lock(&n->lock);
    while (n->gen[topic] == seen && !n->shutdown) {
        if (pthread_cond_timedwait(&n->cond[topic], &n->lock, &until) == ETIMEDOUT)
            break;
    }
    bool moved = n->gen[topic] != seen;
    pthread_mutex_unlock(&n->lock);
    return moved;
}

void notify_shutdown(notify *n)
{
    pthread_mutex_lock(&n->lock);
    n->shutdown = true;
    for (int i = 0; i < NOTIFY_TOPIC_COUNT; i++)
        pthread_cond_broadcast(&n->cond[i]);
    pthread_mutex_unlock(&n->lock);
}

bool notify_is_shutdown(notify *n)
{
    pthread_mutex_lock(&n->lock);
    bool s = n->shutdown;
    pthread_mutex_unlock(&n->lock);
    return s;
}
