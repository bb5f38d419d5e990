/* SPDX-License-Identifier: MIT */
/*
 * sweeper.c — the sweeper thread (see sweeper.h). It sleeps on its own condition
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
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/result_ref.h"
#include "core/uuid.h"

struct sweeper {
    store *st;
    notify *notify;
    metrics *metrics;
    int interval_ms;
    int64_t retention_ms, worker_retention_ms, events_retention_ms, events_max;
    const result_storage *results; /* NULL: no result file is deleted */
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

/* Deletes what outlived the retention, a bounded number of batches per sweep. */
static void retain_once(sweeper *sw)
{
    if (sw->retention_ms <= 0 && sw->worker_retention_ms <= 0)
        return;
    int64_t now = clock_now_ms();
    int64_t runs_before = sw->retention_ms > 0 ? now - sw->retention_ms : 0;
    int64_t workers_before = sw->worker_retention_ms > 0 ? now - sw->worker_retention_ms : 0;
    for (int pass = 0; pass < SWEEPER_RETENTION_PASSES; pass++) {
        errand_error err;
        error_clear(&err);
        struct retention_counts n = {0, 0};
        struct ref_list freed = {0};
        if (store_delete_expired(sw->st, runs_before, workers_before, SWEEPER_RETENTION_BATCH, &n,
                                 &freed, &err) < 0) {
            log_warn("retention pass failed", "error=\"%s\"", err.message);
            return;
        }
        result_storage_delete_files(sw->results, freed.refs, freed.n);
        ref_list_clear(&freed);
        if (n.runs > 0)
            metrics_add(sw->metrics, METRIC_RUNS_DELETED, (uint64_t)n.runs);
        if (n.runs < SWEEPER_RETENTION_BATCH && n.workers < SWEEPER_RETENTION_BATCH)
            return;
        workers_before = n.workers < SWEEPER_RETENTION_BATCH ? 0 : workers_before;
        runs_before = n.runs < SWEEPER_RETENTION_BATCH ? 0 : runs_before;
    }
}

/* Prunes the change feed of events older than its retention or beyond its size, a bounded
 * number of batches per sweep. */
static void prune_events_once(sweeper *sw)
{
    if (sw->events_retention_ms <= 0 && sw->events_max <= 0)
        return;
    int64_t before =
        sw->events_retention_ms > 0 ? clock_now_ms() - sw->events_retention_ms : INT64_MIN;
    for (int pass = 0; pass < SWEEPER_RETENTION_PASSES; pass++) {
        errand_error err;
        error_clear(&err);
        int deleted = 0;
        if (store_prune_events(sw->st, before, sw->events_max, SWEEPER_EVENTS_BATCH, &deleted,
                               &err) < 0) {
            log_warn("pruning the change feed failed", "error=\"%s\"", err.message);
            return;
        }
        if (deleted < SWEEPER_EVENTS_BATCH)
            return;
    }
}

static void *sweeper_main(void *arg)
{
    sweeper *sw = arg;
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop) {
        pthread_mutex_unlock(&sw->lock);
        sweep_once(sw);
        retain_once(sw);
        prune_events_once(sw);
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

int sweeper_start(store *st, notify *n, metrics *m, const struct sweeper_config *cfg, sweeper **out,
                  errand_error *err)
{
    *out = NULL;
    sweeper *sw = mem_calloc(1, sizeof *sw);
    if (!sw)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    sw->st = st;
    sw->notify = n;
    sw->metrics = m;
    sw->interval_ms = cfg->interval_ms;
    sw->retention_ms = cfg->retention_ms;
    sw->worker_retention_ms = cfg->worker_retention_ms;
    sw->events_retention_ms = cfg->events_retention_ms;
    sw->events_max = cfg->events_max;
    sw->results = cfg->results;
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
