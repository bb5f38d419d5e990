/* SPDX-License-Identifier: MIT */
/*
 * pg_limits.h — concurrency and rate limits in the PostgreSQL store (store.h, "concurrency
 * limits"), with the semantics of the SQLite store (sqlite_limits.h): what a claim may hand
 * out under them, the slots a claimed run takes, their release when its lease ends, the slots
 * a run waiting for its subtasks lends, and setting and listing limits. pg_limits.c says how
 * claims on several servers keep to a limit together.
 *
 * A claim's limits (struct pg_claim_limits) belong to the op that fills them, on one thread.
 */
#ifndef ERRAND_STORE_POSTGRES_PG_LIMITS_H
#define ERRAND_STORE_POSTGRES_PG_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/uuid.h"
#include "store/postgres/pg_conn.h"
#include "store/run_transition.h"
#include "store/store.h"

/* A claim that meets a tag limit looks this many times its limit into each task's ready
 * queue for runs it may hand out, past the ones the limit holds back (as SQLite's). */
#define PG_LIMITS_LOOKAHEAD 4

/* One limit as a claim sees it, from the moment its row is locked. */
struct pg_limit_slot {
    enum limit_kind kind;
    char name[RUN_TALLY_TASK_MAX];
    int max;      /* 0: no concurrency limit of that name */
    int64_t held; /* its limit_holders rows, counted once locked, plus this claim's admissions */
    bool rated;   /* a task's rate limit */
    double interval_ms;
    double next_at_locked; /* rate_next_at as locked */
    double next_at;        /* the earliest next start after this claim's admissions */
    int started;           /* claimed runs under the rate limit */
    bool loaded;           /* its row was looked for (a tag met before the tags are locked) */
};

/* The limits one claim met. */
struct pg_claim_limits {
    bool tasks_limited, tags_limited; /* a concurrency limit of that kind exists at all */
    bool rates;                       /* a rate limit exists */
    struct pg_limit_slot *slots;
    size_t n, cap;
    int64_t now_ms;
    int64_t held_until_ms; /* the earliest time a rate limit lets a held-back run go; 0 = none */
    bool oom;
    struct pg_array hold[3]; /* the slots the claimed runs take: kind, name, run id */
    struct pg_array holding; /* the claimed runs that took a slot */
};

/* Looks whether limits exist and, if the claim's tasks have task or rate limits, locks their
 * rows (FOR UPDATE, in name order) and counts their holders. */
int pg_limits_begin(struct pg_conn *c, struct pg_claim_limits *l, const char *const *tasks,
                    size_t n_tasks, int64_t now_ms, errand_error *err);
void pg_limits_end(struct pg_claim_limits *l);
/* Whether any limit may hold back a run (else the claim goes as without limits). */
bool pg_limits_any(const struct pg_claim_limits *l);
/* Whether task has no free slot left, or a rate limit that lets no run start now. */
bool pg_limits_task_full(struct pg_claim_limits *l, const char *task);
/* The tags (JSON array text) of a candidate: their limits are locked by pg_limits_lock_tags. */
void pg_limits_meet_tags(struct pg_claim_limits *l, const char *tags);
/* Locks the rows of the tag limits met (FOR UPDATE, in name order), then counts holders. */
int pg_limits_lock_tags(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err);
/* Whether a run of task with tags may be handed out: every limit it falls under has a free
 * slot (then counted as taken) and its rate lets it start. */
bool pg_limits_admit(struct pg_claim_limits *l, const char *task, const char *tags);
/* An admitted run was claimed: it takes its slots (written by pg_limits_write). */
void pg_limits_hold(struct pg_claim_limits *l, const char *run_id, const char *task,
                    const char *tags);
/* Writes the slots taken (limit_holders, holds_slots) and the rate limits moved on. */
int pg_limits_write(struct pg_conn *c, struct pg_claim_limits *l, errand_error *err);

/* The leases of runs ids (a column of run ids) ended: their slots are free, and the claims
 * on every server are woken. */
int pg_limits_release(struct pg_conn *c, struct pg_array *ids, errand_error *err);

/* A heartbeat's leases that say whether their runs wait for subtasks (lease_ref.waiting),
 * applied ones only (answers): a waiting run lends its slots, a resumed one takes them back. */
int pg_limits_heartbeat(struct pg_conn *c, const struct lease_ref *leases,
                        const char (*ids)[UUID_STR_LEN], const struct lease_answer *answers,
                        size_t n, int64_t now_ms, errand_error *err);

int store_pg_set_limit(store *st, enum limit_kind kind, const char *name, int max_running,
                       errand_error *err);
int store_pg_set_rate(store *st, const char *task, int max_starts, int64_t period_ms,
                      errand_error *err);
int store_pg_list_limits(store *st, struct limit_list *out, errand_error *err);

#endif
