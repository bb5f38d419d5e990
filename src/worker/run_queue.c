/* SPDX-License-Identifier: MIT */
/*
 * run_queue.c — the FIFO of claimed runs and the slot count (see run_queue.h).
 */
#include "worker/run_queue.h"

#include "core/clock.h"
#include "worker/sync.h"

int run_queue_init(struct run_queue *q, size_t concurrency, size_t prefetch, size_t max_waiting)
{
    q->head = q->tail = NULL;
    q->queued = q->inflight = q->idle = q->active = q->waiting = 0;
    q->concurrency = concurrency;
    q->capacity = concurrency + prefetch;
    q->max_waiting = max_waiting;
    q->no_claims = q->closed = q->waking = q->lend_refused = false;
    if (pthread_mutex_init(&q->mu, NULL))
        return -1;
    if (sync_cond_init(&q->nonempty)) {
        pthread_mutex_destroy(&q->mu);
        return -1;
    }
    if (sync_cond_init(&q->space)) {
        pthread_cond_destroy(&q->nonempty);
        pthread_mutex_destroy(&q->mu);
        return -1;
    }
    return 0;
}

void run_queue_destroy(struct run_queue *q)
{
    struct wrun *r = q->head;
    while (r) {
        struct wrun *next = r->queue_next;
        wrun_unref(r);
        r = next;
    }
    q->head = q->tail = NULL;
    pthread_cond_destroy(&q->space);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->mu);
}

size_t run_queue_wait_free(struct run_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->no_claims && q->queued + q->active >= q->capacity)
        pthread_cond_wait(&q->space, &q->mu);
    size_t n = q->no_claims ? 0 : q->capacity - (q->queued + q->active);
    pthread_mutex_unlock(&q->mu);
    return n;
}

void run_queue_stop_claims(struct run_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->no_claims = true;
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
}

void run_queue_push_many(struct run_queue *q, struct wrun *const *runs, size_t n)
{
    if (n == 0)
        return;
    for (size_t i = 0; i + 1 < n; i++)
        runs[i]->queue_next = runs[i + 1];
    runs[n - 1]->queue_next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->queue_next = runs[0];
    else
        q->head = runs[0];
    q->tail = runs[n - 1];
    q->queued += n;
    q->inflight += n;
    bool wake = q->idle > 0 && !q->waking;
    if (wake)
        q->waking = true;
    pthread_mutex_unlock(&q->mu);
    /* One wake-up at a time; the woken thread wakes the next while runs remain
       (run_queue_next). For short tasks the threads already awake take most runs and few
       need waking (each wake-up is a futex call and two context switches); long tasks still
       spread over every idle thread within a few wake-up latencies. */
    if (wake)
        pthread_cond_signal(&q->nonempty);
}

struct wrun *run_queue_next(struct run_queue *q, bool finished_one)
{
    pthread_mutex_lock(&q->mu);
    if (finished_one) {
        if (q->inflight > 0)
            q->inflight--;
        if (q->active > 0)
            q->active--;
        pthread_cond_broadcast(&q->space); /* the poller (and a stopping serve) */
    }
    while (!q->closed && (!q->head || q->active >= q->concurrency)) {
        q->idle++;
        pthread_cond_wait(&q->nonempty, &q->mu);
        q->idle--;
        q->waking = false; /* this thread is the one woken (or woke spuriously) */
    }
    struct wrun *r = NULL;
    bool wake_next = false;
    if (!q->closed) {
        r = q->head;
        q->head = r->queue_next;
        if (!q->head)
            q->tail = NULL;
        r->queue_next = NULL;
        q->queued--;
        q->active++;
        wake_next = q->head && q->active < q->concurrency && q->idle > 0 && !q->waking;
        if (wake_next)
            q->waking = true;
    }
    pthread_mutex_unlock(&q->mu);
    if (wake_next)
        pthread_cond_signal(&q->nonempty);
    return r;
}

bool run_queue_lend(struct run_queue *q, bool *first_refusal)
{
    *first_refusal = false;
    pthread_mutex_lock(&q->mu);
    bool lent = q->waiting < q->max_waiting && q->active > 0;
    bool wake = false;
    if (lent) {
        q->waiting++;
        q->active--;
        /* The slot is free: a queued run may start on an idle thread, and the poller may
           claim one more. */
        wake = q->head && q->active < q->concurrency && q->idle > 0 && !q->waking;
        if (wake)
            q->waking = true;
        pthread_cond_broadcast(&q->space);
    } else if (!q->lend_refused) {
        q->lend_refused = true;
        *first_refusal = true;
    }
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_signal(&q->nonempty);
    return lent;
}

void run_queue_reclaim(struct run_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (q->waiting > 0)
        q->waiting--;
    q->active++;
    pthread_mutex_unlock(&q->mu);
}

struct wrun *run_queue_close(struct run_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    struct wrun *chain = q->head;
    q->inflight -= q->queued;
    q->queued = 0;
    q->head = q->tail = NULL;
    pthread_cond_broadcast(&q->nonempty);
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
    return chain;
}

bool run_queue_wait_idle(struct run_queue *q, int64_t deadline_ms)
{
    pthread_mutex_lock(&q->mu);
    while (q->inflight > 0 && clock_mono_ms() < deadline_ms)
        sync_cond_wait_until(&q->space, &q->mu, deadline_ms);
    bool idle = q->inflight == 0;
    pthread_mutex_unlock(&q->mu);
    return idle;
}
