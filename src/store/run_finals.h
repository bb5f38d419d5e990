/* SPDX-License-Identifier: MIT */
/*
 * run_finals.h — the runs an open transaction moved into a final state, kept by the
 * connection until its commit, then told to the store's observer (store.h, struct
 * store_observer); forgotten when the transaction (or the op, to its mark) rolls back. So an
 * outcome is counted once, when it is in the database: a retried or failed transaction
 * counts nothing.
 *
 * Owned by one connection, used by the thread that holds it.
 */
#ifndef ERRAND_STORE_RUN_FINALS_H
#define ERRAND_STORE_RUN_FINALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct run_final {
    int key;           /* the observer's task_key of the run's task */
    errand_state type; /* COMPLETED, FAILED, CRASHED or CANCELLED */
    bool cached;       /* COMPLETED as a cache hit ("Cached") */
    int64_t ran_ms;    /* its last attempt's start (or claim) to the final state; -1 unknown */
};

struct run_finals {
    const struct store_observer *observer; /* NULL: nothing is kept */
    struct run_final *items;
    size_t n, cap;
};

/* Notes that a run of task reached final state type (nothing when no observer wants it;
 * dropped when out of memory: a metric, never a reason to fail a write). */
void run_finals_add(struct run_finals *f, const char *task, errand_state type, bool cached,
                    int64_t ran_ms);
/* After the commit: tells the observer of each, then empties the list. */
void run_finals_flush(struct run_finals *f);
/* The transaction rolled back (to the mark n): forgets what followed. */
static inline void run_finals_rewind(struct run_finals *f, size_t mark)
{
    if (mark < f->n)
        f->n = mark;
}
void run_finals_free(struct run_finals *f);

/* A run leaving cur_state for next at now_ms, its state entered at state_ms: noted when
 * next is final and cur_state is not. ran_ms is known when the run left PENDING or RUNNING
 * (the attempt started when it entered that state). */
void run_finals_transition(struct run_finals *f, const char *task, errand_state cur_state,
                           int64_t state_ms, errand_state next, int64_t now_ms);

#endif
