/* SPDX-License-Identifier: MIT */
/*
 * conn_guard.c — closing idle, slow and unauthenticated connections (see conn_guard.h).
 *
 * The connections are a doubly linked list in accept order, under one mutex; a pass walks it
 * twice (connections are at most ERRAND_MAX_CONNECTIONS): once to count the unauthenticated
 * waiting connections, in all and per address (an open-addressing table made for the pass),
 * once to close the oldest beyond the caps: an attacker's connections are the ones that wait.
 */
#include "server/conn_guard.h"

#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

/* A summary line of what the guard closed, at most this often. */
#define LOG_INTERVAL_MS 10000
#define FNV64_OFFSET 14695981039346656037ull
#define FNV64_PRIME 1099511628211ull

struct guarded_conn {
    guarded_conn *prev, *next;
    int fd;
    uint64_t address_key;
    int64_t waiting_since_ms; /* 0: busy */
    bool authenticated;
    bool worker;  /* a request carried a key with the worker scope */
    bool closing; /* the guard shut its socket down */
};

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    bool stop;
    struct conn_guard_limits limits;
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

/* Unauthenticated waiting connections per client address, for one pass. */
struct address_count {
    uint64_t key; /* 0: empty */
    int n;
};

struct address_counts {
    struct address_count *slots;
    size_t mask;
};

static int *address_count(struct address_counts *t, uint64_t key)
{
    key = key ? key : 1; /* 0 marks an empty slot */
    for (size_t i = (size_t)key & t->mask;; i = (i + 1) & t->mask) {
        if (t->slots[i].key == key || !t->slots[i].key) {
            t->slots[i].key = key;
            return &t->slots[i].n;
        }
    }
}

static bool unauth_waiting(const guarded_conn *c)
{
    return !c->closing && c->waiting_since_ms && !c->authenticated;
}

void conn_guard_sweep(conn_guard *g, int64_t now_ms)
{
    pthread_mutex_lock(&g->mu);
    size_t n_unauth = 0, n_open = 0;
    for (guarded_conn *c = g->head; c; c = c->next) {
        n_open += !c->closing;
        if (c->closing || !c->waiting_since_ms)
            continue;
        if (now_ms - c->waiting_since_ms > g->limits.idle_ms) {
            shut(c);
            g->closed.idle++;
        } else if (!c->authenticated) {
            n_unauth++;
        }
    }
    /* Per address, when that cap can be passed at all (a table at most half full). */
    struct address_counts t = {0};
    int per_address = g->limits.unauth_per_address;
    if (per_address > 0 && n_unauth > (size_t)per_address) {
        size_t cap = 2;
        while (cap < 2 * n_unauth)
            cap *= 2;
        if ((t.slots = mem_calloc(cap, sizeof *t.slots)))
            t.mask = cap - 1;
        for (guarded_conn *c = g->head; t.slots && c; c = c->next)
            if (unauth_waiting(c))
                (*address_count(&t, c->address_key))++;
    }
    size_t cap_all = (size_t)g->limits.unauth_cap;
    for (guarded_conn *c = g->head; c; c = c->next) {
        if (!unauth_waiting(c))
            continue;
        int *of_address = t.slots ? address_count(&t, c->address_key) : NULL;
        if (n_unauth > cap_all) {
            g->closed.over_cap++;
        } else if (of_address && *of_address > per_address) {
            g->closed.over_address_cap++;
        } else {
            continue;
        }
        shut(c);
        n_open--;
        n_unauth--;
        if (of_address)
            (*of_address)--;
    }
    mem_free(t.slots);
    /* The workers' reserve: the oldest waiting connections of others make room. */
    size_t keep_free = (size_t)g->limits.worker_reserve;
    size_t most = (size_t)g->limits.max_connections;
    for (guarded_conn *c = g->head; c && keep_free && n_open + keep_free > most; c = c->next) {
        if (c->closing || !c->waiting_since_ms || c->worker)
            continue;
        shut(c);
        n_open--;
        g->closed.for_workers++;
    }
    struct conn_guard_counts now = g->closed, before = g->logged;
    bool log_now = (now.idle != before.idle || now.over_cap != before.over_cap ||
                    now.over_address_cap != before.over_address_cap ||
                    now.for_workers != before.for_workers) &&
                   now_ms - g->logged_at_ms >= LOG_INTERVAL_MS;
    if (log_now) {
        g->logged = now;
        g->logged_at_ms = now_ms;
    }
    pthread_mutex_unlock(&g->mu);
    if (log_now)
        log_warn("closed idle or slow connections",
                 "idle=%llu unauthenticated_over_cap=%llu unauthenticated_over_address_cap=%llu "
                 "for_workers_reserve=%llu",
                 (unsigned long long)(now.idle - before.idle),
                 (unsigned long long)(now.over_cap - before.over_cap),
                 (unsigned long long)(now.over_address_cap - before.over_address_cap),
                 (unsigned long long)(now.for_workers - before.for_workers));
}

uint64_t conn_guard_address_key(const struct sockaddr *addr)
{
    const unsigned char *ip = NULL;
    size_t len = 0;
    if (addr && addr->sa_family == AF_INET) {
        ip = (const unsigned char *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr;
        len = sizeof(struct in_addr);
    } else if (addr && addr->sa_family == AF_INET6) {
        ip = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
        len = sizeof(struct in6_addr);
    }
    uint64_t h = FNV64_OFFSET; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ ip[i]) * FNV64_PRIME;
    return len ? h : 0;
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

int conn_guard_start(const struct conn_guard_limits *limits, conn_guard **out, errand_error *err)
{
    *out = NULL;
    conn_guard *g = mem_calloc(1, sizeof *g);
    if (!g)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    g->limits = *limits;
    if (g->limits.unauth_cap < 1)
        g->limits.unauth_cap = 1;
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

guarded_conn *conn_guard_open(conn_guard *g, int fd, uint64_t address_key, int64_t now_ms)
{
    guarded_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->address_key = address_key;
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

void conn_guard_authenticated(conn_guard *g, guarded_conn *c, bool worker)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->authenticated = true;
    c->worker |= worker;
    pthread_mutex_unlock(&g->mu);
}

void conn_guard_counts(conn_guard *g, struct conn_guard_counts *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->closed;
    pthread_mutex_unlock(&g->mu);
}
