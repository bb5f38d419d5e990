/* SPDX-License-Identifier: MIT */
/*
 * claim_candidate.c — the runs a claim may hand out, for both backends (claim_candidate.h).
 */
#include "store/claim_candidate.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"

int claim_candidate_cmp(const void *pa, const void *pb)
{
    const struct claim_candidate *a = pa, *b = pb;
    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->scheduled_at != b->scheduled_at)
        return a->scheduled_at < b->scheduled_at ? -1 : 1;
    return strcmp(a->row.id, b->row.id);
}

int claim_candidate_own(struct claim_candidate *cd, const char *tags, errand_error *err)
{
    cd->tags = NULL;
    if (tags && strcmp(tags, "[]") != 0 && !(cd->tags = mem_strdup(tags))) {
        memset(&cd->row, 0, sizeof cd->row);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int rc = run_row_own_strings(&cd->row, err);
    if (rc < 0) {
        memset(&cd->row, 0, sizeof cd->row);
        mem_free(cd->tags);
        cd->tags = NULL;
    }
    return rc;
}

void claim_candidates_clear(struct claim_candidate *cand, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        run_row_clear(&cand[i].row);
        mem_free(cand[i].tags);
        cand[i].tags = NULL;
    }
}

int claim_candidates_hand_out(struct claim_candidate *cand, size_t n, size_t n_claimed,
                              struct run_list *out, errand_error *err)
{
    if (n_claimed == 0)
        return 0;
    if (!(out->rows = mem_calloc(n_claimed, sizeof *out->rows)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!cand[i].claimed)
            continue;
        /* The row's lease token points into the candidate: own it with the rest. */
        struct run_row *r = &out->rows[out->n];
        *r = cand[i].row;
        memset(&cand[i].row, 0, sizeof cand[i].row);
        int rc = run_row_own_strings(r, err);
        if (rc < 0) {
            run_row_clear(r);
            return rc;
        }
        out->n++;
    }
    return 0;
}
