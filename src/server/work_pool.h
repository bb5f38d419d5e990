/* SPDX-License-Identifier: MIT */
/*
 * work_pool.h — the threads that run request handlers. libmicrohttpd's event threads read
 * requests and write replies and must never block; a handler may (a store write waits for
 * its group commit, a read for a reader connection), so each request's handler is handed to
 * this pool and its connection suspended until the answer is ready. A long-poll holds no
 * thread while it waits: it parks (notify.h) and is handed to the pool again when woken.
 *
 * Items are intrusive (embedded in the request they run for), so submitting cannot fail.
 * Items run in the order submitted. Thread-safe: one mutex guards the queue.
 */
#ifndef ERRAND_SERVER_WORK_POOL_H
#define ERRAND_SERVER_WORK_POOL_H

#include "errand/errand.h"

struct work_item {
    void (*fn)(struct work_item *item); /* runs on a pool thread */
    struct work_item *next;             /* the queue's; the pool's while queued */
};

typedef struct work_pool work_pool;

/* Starts n_threads threads (at least 1). */
int work_pool_start(int n_threads, work_pool **out, errand_error *err);

/* Queues item: item->fn(item) runs on a pool thread. item must not be queued already; it may
 * be submitted again from its own fn, or once fn has returned. */
void work_pool_submit(work_pool *p, struct work_item *item);

/* Runs what is queued, then ends the threads and frees the pool (NULL is fine). */
void work_pool_stop(work_pool *p);

#endif
