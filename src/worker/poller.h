/* SPDX-License-Identifier: MIT */
/*
 * poller.h — the worker's claim thread: long-polls POST /workers/claim for the served task
 * names, asking for exactly as many runs as there are free slots (never more than the
 * executors can start), and hands what it gets to the reporter (lease) and the run queue.
 * When no slot is free it sleeps until one is. Stopping never waits for a long poll: the
 * request is abandoned as soon as the stop pipe becomes readable, unless the answer is
 * already arriving (so runs the server claimed for us are not dropped on the floor).
 * Unreachable server: retries with a bounded backoff, logging once per outage.
 */
#ifndef ERRAND_WORKER_POLLER_H
#define ERRAND_WORKER_POLLER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "errand/errand.h"
#include "worker/reporter.h"
#include "worker/run_queue.h"
#include "worker/stats.h"
#include "worker/task_table.h"

/* Seconds one claim may wait on the server for work (the server allows 0-60). */
#define POLLER_WAIT_SECONDS 10

struct poller_config {
    const char *api_url;
    const char *api_key;
    const char *worker_name;
    int lease_seconds; /* 0 = the server's default */
    const struct task_table *tasks;
    struct run_queue *queue;
    reporter *reporter;
    struct worker_counters *stats;
    int stop_fd; /* readable once the worker stops */
    atomic_bool *stopping;
};

typedef struct poller poller;

int poller_start(const struct poller_config *cfg, poller **out, errand_error *err);
/* Waits for the thread to end (call after stopping is set and the queue's claims stopped). */
void poller_join(poller *p);
void poller_free(poller *p);

/* Parses a claim answer into runs (pure; unit-tested): *runs is a mem_alloc'd array of *n
 * references, *lease_seconds the granted lease (0 if absent). */
int poller_parse_claim(const char *body, struct wrun ***runs, size_t *n, int *lease_seconds,
                       errand_error *err);

#endif
