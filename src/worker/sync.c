/* SPDX-License-Identifier: MIT */
/*
 * sync.c — monotonic-clock condition variables (see sync.h).
 */
#include "worker/sync.h"

#include <errno.h>
#include <time.h>

#include "core/clock.h"

int sync_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

static struct timespec mono_timespec(int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / MS_PER_S,
                          .tv_nsec = (deadline_ms % MS_PER_S) * NS_PER_MS};
    if (ts.tv_nsec >= NS_PER_S) {
        ts.tv_sec++;
        ts.tv_nsec -= NS_PER_S;
    }
    return ts;
}

void sync_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t deadline_ms)
{
    struct timespec ts = mono_timespec(deadline_ms);
    pthread_cond_timedwait(c, mu, &ts);
}

bool sync_join_until(pthread_t thread, int64_t deadline_ms)
{
    struct timespec ts = mono_timespec(deadline_ms);
    int rc;
    while ((rc = pthread_clockjoin_np(thread, NULL, CLOCK_MONOTONIC, &ts)) == EINTR)
        ;
    return rc == 0;
}
