/* SPDX-License-Identifier: MIT */
/*
 * watchdog.c — run deadlines (see watchdog.h). A worker holds at most `concurrency` running
 * runs, so a plain array scanned for the earliest deadline is enough.
 */
#include "worker/watchdog.h"

#include <pthread.h>
#include <stdbool.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "worker/sync.h"

/* Sleep when no deadline is pending (woken by any watchdog_add). */
#define WATCHDOG_IDLE_MS 60000

struct watch {
    struct wrun *run;
    int64_t deadline_ms;
    enum watch_kind kind;
};

struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct watch *items;
    size_t n, cap;
    bool stopping;
    pthread_t thread;
    bool started;
    watchdog_expire_fn on_expire;
    void *ctx;
};

int watchdog_new(watchdog_expire_fn on_expire, void *ctx, watchdog **out, errand_error *err)
{
    *out = NULL;
    watchdog *w = mem_calloc(1, sizeof *w);
    if (!w)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating the watchdog");
    if (pthread_mutex_init(&w->mu, NULL)) {
        mem_free(w);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the watchdog's lock");
    }
    if (sync_cond_init(&w->wake)) {
        pthread_mutex_destroy(&w->mu);
        mem_free(w);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the watchdog's condition");
    }
    w->on_expire = on_expire;
    w->ctx = ctx;
    *out = w;
    return 0;
}

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        int64_t now = clock_mono_ms();
        int64_t next = now + WATCHDOG_IDLE_MS;
        size_t i = 0;
        struct watch fired = {0};
        bool have = false;
        while (i < w->n) {
            if (w->items[i].deadline_ms <= now) {
                fired = w->items[i];
                w->items[i] = w->items[--w->n];
                have = true;
                break;
            }
            if (w->items[i].deadline_ms < next)
                next = w->items[i].deadline_ms;
            i++;
        }
        if (have) {
            pthread_mutex_unlock(&w->mu);
            w->on_expire(fired.run, fired.kind, w->ctx);
            wrun_unref(fired.run);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        sync_cond_wait_until(&w->wake, &w->mu, next);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int watchdog_start(watchdog *w, errand_error *err)
{
    if (pthread_create(&w->thread, NULL, watchdog_main, w))
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot start the watchdog thread");
    w->started = true;
    return 0;
}

void watchdog_stop(watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void watchdog_free(watchdog *w)
{
    if (!w)
        return;
    watchdog_stop(w);
    for (size_t i = 0; i < w->n; i++)
        wrun_unref(w->items[i].run);
    mem_free(w->items);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    mem_free(w);
}

void watchdog_add(watchdog *w, struct wrun *run, int64_t deadline_ms, enum watch_kind kind)
{
    pthread_mutex_lock(&w->mu);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct watch *items = mem_realloc(w->items, cap * sizeof *items);
        if (!items) {
            /* Without memory the deadline cannot be kept; the task still ends by itself. */
            pthread_mutex_unlock(&w->mu);
            return;
        }
        w->items = items;
        w->cap = cap;
    }
    w->items[w->n++] = (struct watch){wrun_ref(run), deadline_ms, kind};
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

void watchdog_remove(watchdog *w, struct wrun *run)
{
    pthread_mutex_lock(&w->mu);
    size_t i = 0;
    while (i < w->n) {
        if (w->items[i].run == run) {
            wrun_unref(run);
            w->items[i] = w->items[--w->n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&w->mu);
}
