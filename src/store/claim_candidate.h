/* SPDX-License-Identifier: MIT */
/*
 * claim_candidate.h — a run a claim may hand out, as both backends gather them: read from
 * the ready queue in claim order, admitted or held back by the limits, then moved to PENDING
 * under a new lease and handed out.
 */
#ifndef ERRAND_STORE_CLAIM_CANDIDATE_H
#define ERRAND_STORE_CLAIM_CANDIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "store/run_row.h"
#include "store/store.h"

#define LEASE_TOKEN_BYTES 16 /* 128 random bits, 32 hex characters */

struct claim_candidate {
    int64_t rowid; /* the backend's row key, where it has one */
    char *tags;    /* JSON array text (owned), read for the limits; NULL when none */
    int priority;
    int64_t scheduled_at;
    int n_states;
    bool claimed;
    char token[2 * LEASE_TOKEN_BYTES + 1];
    struct run_row row; /* owned strings; the claim object once claimed */
};

/* Claim order: higher priority first, then earlier due, then id (qsort's comparator). */
int claim_candidate_cmp(const void *a, const void *b);

/* Makes a candidate whose row and tags point into a query's result its own: copies the
 * row's strings and the tags (unless none: NULL or "[]"). On failure nothing is left owned. */
int claim_candidate_own(struct claim_candidate *cd, const char *tags, errand_error *err);

/* Frees the n candidates' strings. */
void claim_candidates_clear(struct claim_candidate *cand, size_t n);

/* After the commit: moves the rows of the n_claimed candidates claimed (of n) to out, in
 * candidate order. A claimed run whose answer cannot be built is not lost: its lease runs
 * out and the sweeper hands it out again. */
int claim_candidates_hand_out(struct claim_candidate *cand, size_t n, size_t n_claimed,
                              struct run_list *out, errand_error *err);

#endif
