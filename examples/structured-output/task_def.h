/* SPDX-License-Identifier: MIT */
/*
 * task_def.h — the one definition of the create_structured_output task, shared by the API
 * (which submits runs of it with errand_delay) and the task worker (which serves it with
 * errand_worker_add_task). Both sides must agree on the name and version, since they make
 * the cache key, and the API's copy decides the run policy the server applies: retries with
 * exponential backoff, the timeout, caching by inputs + version, persisted results — the
 * options the seed's @task decorator and compose.yaml set.
 */
#ifndef SO_TASK_DEF_H
#define SO_TASK_DEF_H

#include "errand/errand.h"

#define SO_TASK_NAME "create_structured_output"
/* Bump when the task's behaviour changes: cached results of the old version stop matching. */
#define SO_TASK_VERSION "1"
/* Extra attempts after a retryable failure (rate limit, 5xx, network, a malformed answer). */
#define SO_TASK_RETRIES 3
/* Delays before the retries: 2 s, 4 s, 8 s (errand_exponential_backoff), each stretched by up
 * to 20 % at random so that replicas throttled together do not retry together. */
#define SO_TASK_BACKOFF_FACTOR_SECONDS 2.0
#define SO_TASK_RETRY_JITTER_FACTOR 0.2
/* One attempt may take this long before the worker stops it (a slow local model included). */
#define SO_TASK_TIMEOUT_SECONDS 300.0

/* The definition plus the storage its retry delays point into; keep it alive while the
 * definition is in use (for the process's lifetime, in both binaries). */
typedef struct so_task {
    errand_task_def def;
    double retry_delays[SO_TASK_RETRIES];
} so_task;

/* Fills t. fn/userdata may be NULL on the submitting side. Returns 0 or an ERRAND_E* code. */
int so_task_init(so_task *t, errand_task_fn fn, void *userdata);

#endif
