/* SPDX-License-Identifier: MIT */
/*
 * work_pool.c — a fixed set of threads taking items from one FIFO queue (see work_pool.h).
 */
#include "server/work_pool.h"

#include <pthread.h>
#include <stdbool.h>

#include "core/error.h"
#include "core/mem.h"

struct work_pool {
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t ready;
    struct work_item *head, *tail;
    bool stopping;
    pthread_t *threads;
    int n_threads;
};

static void *pool_thread(void *arg)
{
    work_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->ready, &p->mu);
        struct work_item *item = p->head;
        if (!item)
            break; /* stopping, and nothing left */
        p->head = item->next;
        if (!p->head)
            p->tail = NULL;
        item->next = NULL;
        pthread_mutex_unlock(&p->mu);
        item->fn(item); /* item may be queued again from here on: not touched after */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void join_threads(work_pool *p, int n)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
}

int work_pool_start(int n_threads, work_pool **out, errand_error *err)
{
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    work_pool *p = mem_calloc(1, sizeof *p);
    if (!p || !(p->threads = mem_calloc((size_t)n_threads, sizeof *p->threads))) {
        mem_free(p);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_thread, p) != 0) {
            join_threads(p, i);
            pthread_cond_destroy(&p->ready);
            pthread_mutex_destroy(&p->mu);
            mem_free(p->threads);
            mem_free(p);
            return error_set(err, ERRAND_ENOMEM, NULL,
                             "cannot start handler thread %d of %d; lower "
                             "ERRAND_HANDLER_THREADS",
                             i + 1, n_threads);
        }
    }
    p->n_threads = n_threads;
    *out = p;
    return 0;
}

void work_pool_submit(work_pool *p, struct work_item *item)
{
    item->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = item;
    else
        p->head = item;
    p->tail = item;
    pthread_cond_signal(&p->ready);
    pthread_mutex_unlock(&p->mu);
}

void work_pool_stop(work_pool *p)
{
    if (!p)
        return;
    join_threads(p, p->n_threads);
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->mu);
    mem_free(p->threads);
    mem_free(p);
}
