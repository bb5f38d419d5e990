/* SPDX-License-Identifier: MIT */
/*
 * sqlite_limits.h — concurrency limits in the SQLite store (store.h, "concurrency limits"):
 * what a claim may hand out under them, the slots a claimed run takes, their release when its
 * lease ends, and setting and listing limits.
 *
 * A limit's free slots are its max_running less its limit_holders rows; a claim loads each
 * limit it meets once and counts its own claims into it, so one claim never overfills a
 * limit, and the single writer means no other claim runs meanwhile.
 *
 * A task's rate limit spaces its starts evenly, interval = period / max apart (as the
 * generic cell rate algorithm with no burst: rate_next_at is the earliest next start, moved
 * on by one interval at each start), so no window of one period ever holds more than max
 * starts; a claim starts at most one run of a rate-limited task, and says when the next may
 * go (claim_request.held_until_ms) so its long-poll looks again then.
 *
 * Writer thread only, but for store_sqlite_list_limits (a reader).
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_LIMITS_H
#define ERRAND_STORE_SQLITE_SQLITE_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/run_transition.h"
#include "store/sqlite/sqlite_conn.h"

/* A claim that meets a tag limit looks this many times its limit into each task's ready
 * queue for runs it may hand out, past the ones the limit holds back. */
#define SQLITE_LIMITS_LOOKAHEAD 4

struct limit_slot {
    enum limit_kind kind;
    char name[RUN_TALLY_TASK_MAX];
    int max; /* 0: no limit of that name */
    int64_t held;
};

/* A task's rate limit as one claim sees it. */
struct rate_slot {
    char task[RUN_TALLY_TASK_MAX];
    bool limited;
    double interval_ms, next_at; /* the earliest next start (Unix ms) */
};

/* The limits one claim met. */
struct claim_limits {
    bool tasks_limited, tags_limited; /* a concurrency limit of that kind exists at all */
    bool rates;                       /* a rate limit exists */
    struct limit_slot *slots;
    size_t n, cap;
    struct rate_slot *rates_v;
    size_t n_rates, cap_rates;
    int64_t now_ms;
    int64_t held_until_ms; /* the earliest time a rate limit lets a held-back run go; 0 = none */
};

int sqlite_limits_begin(struct sqlite_conn *c, struct claim_limits *l, int64_t now_ms,
                        errand_error *err);
void sqlite_limits_end(struct claim_limits *l);

/* Whether task has a limit and no free slot left, or a rate limit that lets no run start now
 * (a claim then skips the task). */
int sqlite_limits_task_full(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                            bool *full, errand_error *err);

/* Whether a run of task with tags (JSON array text) may be handed out now: every limit it
 * falls under has a free slot. *limited: it falls under one at least. */
int sqlite_limits_admit(struct sqlite_conn *c, struct claim_limits *l, const char *task,
                        const char *tags, bool *ok, bool *limited, errand_error *err);

/* The claimed run (rowid, id) takes a slot of every limit it falls under. */
int sqlite_limits_hold(struct sqlite_conn *c, struct claim_limits *l, int64_t rowid, const char *id,
                       const char *task, const char *tags, int64_t now_ms, errand_error *err);

/* cur's lease ended: its slots are free (and the claims waiting for them are woken). */
int sqlite_limits_release(struct sqlite_conn *c, const struct run_current *cur, errand_error *err);

/* A run's worker says it waits for subtasks (waiting) or no longer does: gives back the
 * slots it holds (holds_slots 1 -> 2) or takes them again (2 -> 1), waking the claims. */
int sqlite_limits_waiting(struct sqlite_conn *c, int64_t rowid, const char *id, const char *task,
                          const char *tags, int holds_slots, bool waiting, int64_t now_ms,
                          errand_error *err);

int store_sqlite_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                           errand_error *err);
int store_sqlite_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                          errand_error *err);
int store_sqlite_list_limits(store *st, struct limit_list *out, errand_error *err);

#endif
