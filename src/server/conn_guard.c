/*
 * conn_guard.c — closing idle, slow and unauthenticated connections (see conn_guard.h).
 *
 * The connections are a doubly linked list in accept order, under one mutex; a pass walks it
 * once (connections are at most ERRAND_MAX_CONNECTIONS). The oldest unauthenticated waiting
 * connections are closed first: an attacker's connections are the ones that wait.
 */
#include "server/conn_guard.h"

#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

/* A summary line of what the guard closed, at most this often. */
#define LOG_INTERVAL_MS 10000

struct guarded_conn {
    guarded_conn *prev, *next;
    int fd;
    int64_t waiting_since_ms; /* 0: busy */
    bool authenticated;
    bool closing; /* the guard shut its socket down */
};

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool stop;
    int64_t idle_ms;
    int unauth_cap;
    guarded_conn *head, *tail;
    struct conn_guard_counts closed;
    struct conn_guard_counts logged; /* closed, as of the last summary line */
    int64_t logged_at_ms;
};

/* Shuts c's socket down; its thread then ends the connection. Under mu. */
static void shut(guarded_conn *c)
{
    c->closing = true;
    shutdown(c->fd, SHUT_RDWR);
}

void conn_guard_sweep(conn_guard *g, int64_t now_ms)
{
    pthread_mutex_lock(&g->mu);
    int unauth_waiting = 0;
    for (guarded_conn *c = g->head; c; c = c->next) {
        if (c->closing || !c->waiting_since_ms)
            continue;
        if (now_ms - c->waiting_since_ms > g->idle_ms) {
            shut(c);
            g->closed.idle++;
        } else if (!c->authenticated) {
            unauth_waiting++;
        }
    }
    for (guarded_conn *c = g->head; c && unauth_waiting > g->unauth_cap; c = c->next) {
        if (c->closing || !c->waiting_since_ms || c->authenticated)
            continue;
        shut(c);
        g->closed.over_cap++;
        unauth_waiting--;
    }
    struct conn_guard_counts now = g->closed, before = g->logged;
    bool log_now = (now.idle != before.idle || now.over_cap != before.over_cap) &&
                   now_ms - g->logged_at_ms >= LOG_INTERVAL_MS;
    if (log_now) {
        g->logged = now;
        g->logged_at_ms = now_ms;
    }
    pthread_mutex_unlock(&g->mu);
    if (log_now)
        log_warn("closed idle or slow connections", "idle=%llu unauthenticated_over_cap=%llu",
                 (unsigned long long)(now.idle - before.idle),
                 (unsigned long long)(now.over_cap - before.over_cap));
}

static void *guard_main(void *arg)
{
    conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)CONN_GUARD_TICK_MS * NS_PER_MS;
        if (until.tv_nsec >= NS_PER_S) {
            until.tv_sec++;
            until.tv_nsec -= NS_PER_S;
        }
        pthread_cond_timedwait(&g->wake, &g->mu, &until);
        if (g->stop)
            break;
        pthread_mutex_unlock(&g->mu);
        conn_guard_sweep(g, clock_mono_ms());
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int conn_guard_start(int64_t idle_ms, int unauth_cap, conn_guard **out, errand_error *err)
{
    *out = NULL;
    conn_guard *g = mem_calloc(1, sizeof *g);
    if (!g)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    g->idle_ms = idle_ms;
    g->unauth_cap = unauth_cap > 0 ? unauth_cap : 1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->mu);
        mem_free(g);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot start the connection guard");
    }
    *out = g;
    return 0;
}

void conn_guard_stop(conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    for (guarded_conn *c = g->head, *next; c; c = next) {
        next = c->next;
        mem_free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    mem_free(g);
}

guarded_conn *conn_guard_open(conn_guard *g, int fd, int64_t now_ms)
{
    guarded_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->waiting_since_ms = now_ms > 0 ? now_ms : 1;
    pthread_mutex_lock(&g->mu);
    c->prev = g->tail;
    if (g->tail)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void conn_guard_close(conn_guard *g, guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->tail = c->prev;
    pthread_mutex_unlock(&g->mu);
    mem_free(c);
}

void conn_guard_waiting(conn_guard *g, guarded_conn *c, int64_t now_ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->waiting_since_ms = now_ms > 0 ? now_ms : 1;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_busy(conn_guard *g, guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->waiting_since_ms = 0;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_authenticated(conn_guard *g, guarded_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->authenticated = true;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_counts(conn_guard *g, struct conn_guard_counts *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->closed;
    pthread_mutex_unlock(&g->mu);
}
