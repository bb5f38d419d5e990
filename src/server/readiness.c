/* SPDX-License-Identifier: MIT */
/*
 * readiness.c — the cached readiness probe (see readiness.h). One caller at a time probes;
 * the others wait for its answer rather than probe again.
 */
#include "server/readiness.h"

#include <pthread.h>

#include "core/error.h"
#include "core/mem.h"

struct readiness {
    pthread_mutex_t mu;
    bool probed;
    int64_t at_ms;
    int rc;
    errand_error err;
};

readiness *readiness_new(void)
{
    readiness *r = mem_calloc(1, sizeof *r);
    if (r && pthread_mutex_init(&r->mu, NULL) != 0) {
        mem_free(r);
        return NULL;
    }
    return r;
}

void readiness_free(readiness *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}

int readiness_check(readiness *r, store *st, int64_t now_ms, errand_error *err)
{
    pthread_mutex_lock(&r->mu);
    if (!r->probed || now_ms - r->at_ms >= READINESS_CACHE_MS) {
        error_clear(&r->err);
        r->rc = store_ready(st, &r->err);
        r->at_ms = now_ms;
        r->probed = true;
    }
    int rc = r->rc;
    if (rc < 0 && err)
        *err = r->err;
    pthread_mutex_unlock(&r->mu);
    return rc;
}
