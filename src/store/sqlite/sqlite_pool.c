/* SPDX-License-Identifier: MIT */
/*
 * sqlite_pool.c — the read-only connection pool of the SQLite store (see sqlite_pool.h).
 * A fixed set, opened up front: a handful of readers keeps two cores busy, and opening
 * connections on demand would re-prepare every statement each time.
 */
#include "store/sqlite/sqlite_pool.h"

#include <pthread.h>

#include "core/error.h"
#include "core/mem.h"

struct sqlite_pool {
    pthread_mutex_t lock;
    pthread_cond_t available;
    int n;
    int n_free;
    struct sqlite_conn **all;  /* n connections, for close */
    struct sqlite_conn **free; /* stack of n_free idle connections */
};

int sqlite_pool_open(const char *path, int n, sqlite_pool **out, errand_error *err)
{
    *out = NULL;
    struct sqlite_pool *p = mem_calloc(1, sizeof *p);
    if (!p)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    p->all = mem_calloc((size_t)n, sizeof *p->all);
    p->free = mem_calloc((size_t)n, sizeof *p->free);
    int rc = 0;
    if (!p->all || !p->free) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if ((rc = sqlite_conn_open(path, SQLITE_CONN_READER, NULL, &p->all[i], err)) < 0)
            goto fail;
        p->n++;
        p->free[p->n_free++] = p->all[i];
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->available, NULL);
    *out = p;
    return 0;
fail:
    for (int i = 0; i < p->n; i++)
        sqlite_conn_close(p->all[i]);
    mem_free(p->all);
    mem_free(p->free);
    mem_free(p);
    return rc;
}

void sqlite_pool_close(sqlite_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        sqlite_conn_close(p->all[i]);
    pthread_cond_destroy(&p->available);
    pthread_mutex_destroy(&p->lock);
    mem_free(p->all);
    mem_free(p->free);
    mem_free(p);
}

struct sqlite_conn *sqlite_pool_acquire(sqlite_pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->n_free == 0)
        pthread_cond_wait(&p->available, &p->lock);
    struct sqlite_conn *c = p->free[--p->n_free];
    pthread_mutex_unlock(&p->lock);
    return c;
}

void sqlite_pool_release(sqlite_pool *p, struct sqlite_conn *c)
{
    sqlite_conn_reset_all(c);
    if (!sqlite3_get_autocommit(c->db)) /* a read transaction left open by an error path */
        sqlite_conn_run(c, SQL_ROLLBACK, NULL);
    pthread_mutex_lock(&p->lock);
    p->free[p->n_free++] = c;
    pthread_cond_signal(&p->available);
    pthread_mutex_unlock(&p->lock);
}

void sqlite_pool_release_memory(sqlite_pool *p)
{
    /* Under the lock, so no idle connection is taken meanwhile. */
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n_free; i++)
        sqlite3_db_release_memory(p->free[i]->db);
    pthread_mutex_unlock(&p->lock);
}
