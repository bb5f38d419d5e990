/* SPDX-License-Identifier: MIT */
/*
 * sync.h — condition variables on the monotonic clock, so waits with deadlines (slots,
 * heartbeats, timeouts, grace periods) are immune to wall-clock jumps. Deadlines are
 * clock_mono_ms() values. Joins with a deadline too.
 */
#ifndef ERRAND_WORKER_SYNC_H
#define ERRAND_WORKER_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* pthread_cond_init with CLOCK_MONOTONIC; 0 or an errno value. */
int sync_cond_init(pthread_cond_t *c);

/* Waits on c (mu held) until signalled or deadline_ms passes. */
void sync_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t deadline_ms);

/* Joins thread, waiting until it ends or deadline_ms passes; true when it was joined (false:
 * it still runs, and may still be joined or detached). */
bool sync_join_until(pthread_t thread, int64_t deadline_ms);

#endif
