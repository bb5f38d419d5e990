/* SPDX-License-Identifier: MIT */
/*
 * task_def.c — fills the shared create_structured_output definition (see task_def.h).
 */
#include "task_def.h"

#include <string.h>

int so_task_init(so_task *t, errand_task_fn fn, void *userdata)
{
    memset(t, 0, sizeof *t);
    int rc = errand_exponential_backoff(SO_TASK_BACKOFF_FACTOR_SECONDS, SO_TASK_RETRIES,
                                        t->retry_delays);
    if (rc != ERRAND_OK)
        return rc;
    t->def.name = SO_TASK_NAME;
    t->def.version = SO_TASK_VERSION;
    t->def.retries = SO_TASK_RETRIES;
    t->def.retry_delays = t->retry_delays;
    t->def.n_retry_delays = SO_TASK_RETRIES;
    t->def.retry_jitter_factor = SO_TASK_RETRY_JITTER_FACTOR;
    t->def.timeout_seconds = SO_TASK_TIMEOUT_SECONDS;
    t->def.cache_policy = ERRAND_CACHE_INPUTS_AND_VERSION;
    t->def.cache_expiration_seconds = 0; /* like the seed: a cached answer never expires */
    t->def.persist_result = ERRAND_YES;  /* PREFECT_RESULTS_PERSIST_BY_DEFAULT=true */
    t->def.fn = fn;
    t->def.userdata = userdata;
    return ERRAND_OK;
}
