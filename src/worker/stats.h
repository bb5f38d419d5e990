/* SPDX-License-Identifier: MIT */
/*
 * stats.h — the worker's counters (errand_worker_get_stats), updated by the poller
 * (claimed), executor threads (running) and whoever reports an outcome (completed, failed).
 * Atomics, so no lock.
 */
#ifndef ERRAND_WORKER_STATS_H
#define ERRAND_WORKER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct worker_counters {
    _Atomic uint64_t claimed;
    _Atomic uint64_t completed;
    _Atomic uint64_t failed;
    _Atomic uint64_t running;
};

#endif
