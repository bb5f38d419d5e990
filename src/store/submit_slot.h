/* SPDX-License-Identifier: MIT */
/*
 * submit_slot.h — a submission's runs as both backends carry them through their writes.
 *
 * A slot is filled in two steps: before the op, on the caller's thread (its id, the texts
 * and the row it answers with if the run is created as SCHEDULED), so the store's writer
 * spends its time on SQL; then by the op (an idempotency or cache hit, how it starts when it
 * has upstream runs). An op that runs again (a retried transaction, a rolled-back
 * savepoint) clears what the last attempt found first.
 */
#ifndef ERRAND_STORE_SUBMIT_SLOT_H
#define ERRAND_STORE_SUBMIT_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"
#include "core/uuid.h"
#include "store/run_deps.h"
#include "store/run_row.h"
#include "store/run_spec.h"
#include "store/run_transition.h"

/* The message of a run created COMPLETED from a cache hit. */
#define SUBMIT_CACHE_MESSAGE_FMT "cached result of run %s"

struct submit_slot {
    char id[UUID_STR_LEN];
    char *delays_text;       /* JSON array text of the spec's retry delays */
    json_t *tags;            /* the spec's tags as an array of strings, NULL when none */
    struct run_row prebuilt; /* the answer if the run is created as SCHEDULED (owned) */
    struct run_row answer;   /* the answer read by the op (idempotency or cache hit) */
    bool answered;           /* answer is set */
    bool created;
    bool cached; /* cache hit: the fields below are owned copies */
    char *cache_message;
    char *cache_result;
    char *cache_result_ref;
    int64_t cache_expires_at;
    struct run_deps_plan deps; /* how it starts, when it has upstream runs */
    bool has_deps;
};

/* A submission as the op sees it: specs[i] is submitted through slots[i]. */
struct submit_op {
    const struct run_spec *specs;
    struct submit_slot *slots;
    size_t n;
    int64_t now_ms;
    struct run_count_delta counts;
};

/* Allocates n slots and fills what needs no database, for specs (ids are UUIDv7 of now_ms).
 * *out is set even when it fails part way, for submit_slots_free. */
int submit_slots_new(const struct run_spec *specs, size_t n, int64_t now_ms,
                     struct submit_slot **out, errand_error *err);
void submit_slots_free(struct submit_slot *slots, size_t n);

/* After the commit: moves each slot's answer (the row the op read, else the prebuilt one)
 * to rows_out[i], and tells in created[i] (when not NULL) whether its run was created; no
 * allocation, so nothing can fail once the runs are stored. */
void submit_slots_hand_out(struct submit_slot *slots, size_t n, struct run_row *rows_out,
                           bool *created);

/* Forgets what an op found for the slot (its answer, cache hit, dependencies plan). */
void submit_slot_clear_outputs(struct submit_slot *slot);

/* The row of a run this submission creates, from its spec (no read back); owned. */
int submit_slot_created_row(const struct run_spec *spec, const struct submit_slot *slot,
                            int64_t now_ms, struct run_row *out, errand_error *err);

#endif
