/*
 * sweeper.c — the lease-sweeper thread (see sweeper.h). It sleeps on its own condition
 * variable (CLOCK_MONOTONIC) rather than in clock_sleep_ms, so sweeper_stop() interrupts the
 * interval at once instead of waiting it out.
 *
 * A failed sweep is logged and retried at the next interval: an unavailable store must not
 * kill the thread, and nothing is lost by sweeping late.
 */
#include "server/sweeper.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

struct sweeper {
    store *st;
    notify *notify;
    metrics *metrics;
    int interval_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;
    bool stop;
};

static void sweep_once(sweeper *sw)
{
    errand_error err;
    error_clear(&err);
    struct sweep_counts n = {0};
    if (store_sweep(sw->st, clock_now_ms(), &n, &err) < 0) {
        log_warn("lease sweep failed", "error=\"%s\"", err.message);
        return;
    }
    if (n.promoted > 0 || n.expired > 0)
        notify_signal(sw->notify, NOTIFY_RUNS_DUE);
    if (n.expired <= 0)
        return;
    metrics_add(sw->metrics, METRIC_LEASE_EXPIRIES, (uint64_t)n.expired);
    notify_signal(sw->notify, NOTIFY_RUN_FINAL);
    log_info("leases expired", "count=%d", n.expired);
}

static void *sweeper_main(void *arg)
{
    sweeper *sw = arg;
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop) {
        pthread_mutex_unlock(&sw->lock);
        sweep_once(sw);
        int64_t until_ms = clock_mono_ms() + sw->interval_ms;
        struct timespec until = {.tv_sec = until_ms / MS_PER_S,
                                 .tv_nsec = (until_ms % MS_PER_S) * NS_PER_MS};
        pthread_mutex_lock(&sw->lock);
        while (!sw->stop)
            if (pthread_cond_timedwait(&sw->wake, &sw->lock, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&sw->lock);
    return NULL;
}

int sweeper_start(store *st, notify *n, metrics *m, int interval_ms, sweeper **out,
                  errand_error *err)
{
    *out = NULL;
    sweeper *sw = mem_calloc(1, sizeof *sw);
    if (!sw)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sw->st = st;
    sw->notify = n;
    sw->metrics = m;
    sw->interval_ms = interval_ms;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sw->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&sw->lock, NULL);
    int rc = pthread_create(&sw->thread, NULL, sweeper_main, sw);
    if (rc != 0) {
        pthread_cond_destroy(&sw->wake);
        pthread_mutex_destroy(&sw->lock);
        mem_free(sw);
        return error_set(err, ERRAND_EIO, NULL, "cannot start the lease sweeper thread (error %d)",
                         rc);
    }
    *out = sw;
    return 0;
}

void sweeper_stop(sweeper *sw)
{
    if (!sw)
        return;
    pthread_mutex_lock(&sw->lock);
    sw->stop = true;
    pthread_cond_signal(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    pthread_join(sw->thread, NULL);
    pthread_cond_destroy(&sw->wake);
    pthread_mutex_destroy(&sw->lock);
    mem_free(sw);
}
