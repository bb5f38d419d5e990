/* SPDX-License-Identifier: MIT */
/*
 * run_deps.h — dependencies between runs (the submission's wait_for), the part every backend
 * shares: how a batch reference resolves, what an upstream's end does to a run waiting for
 * it, and how an upstream's result reaches the parameters that refer to it.
 *
 * The model (docs/api.md, "Dependencies"; docs/architecture.md):
 *  - A run submitted with upstream runs that are not all final waits: state SCHEDULED, name
 *    "Waiting", in neither the ready queue nor the delayed set (claims never see it), with a
 *    count of the upstream runs it still waits for and one edge (upstream, downstream) per
 *    such run in the store.
 *  - The transaction that moves a run into a final state, whatever moves it (a report, a
 *    cancel, an expired lease), also settles its dependants, in the same commit, so there
 *    is no polling: COMPLETED (or any end, with allow_upstream_failure) counts one upstream
 *    down and, at zero, puts the run in the ready queue ("Scheduled", or the delayed set if
 *    its time has not come) and wakes the claims of its task; any other end, without
 *    allow_upstream_failure, ends the dependant CANCELLED/"UpstreamFailed" with a message
 *    naming the upstream run, which in turn settles that run's own dependants.
 *  - A parameter value {"$result": "<reference>"} takes the upstream's result when that
 *    upstream ends (so retention deleting the upstream later takes nothing away); the
 *    reference is also a wait_for entry. An upstream that did not complete gives null (only
 *    with allow_upstream_failure); one whose result was persisted but not inlined cannot be
 *    passed, and its dependant ends FAILED saying so.
 *  - A batch may refer to its own earlier runs as "runs[N]"; the store resolves them to ids,
 *    so a chain or a fan-in is one request. Only earlier runs: a batch cannot make a cycle,
 *    and a run that exists can only be waited for by later ones.
 */
#ifndef ERRAND_STORE_RUN_DEPS_H
#define ERRAND_STORE_RUN_DEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "errand/errand.h"
#include "store/run_spec.h"

#define RUN_DEPS_NAME_WAITING "Waiting"
#define RUN_DEPS_NAME_UPSTREAM_FAILED "UpstreamFailed"
#define RUN_DEPS_MESSAGE_MAX 512
/* The spelling of a reference to an earlier run of the same batch. */
#define RUN_DEPS_BATCH_REF_FMT "runs[%zu]"
/* The key of a parameter value that takes an upstream's result. */
#define RUN_DEPS_RESULT_KEY "$result"

/* Whether ref is a batch reference "runs[N]" (N in decimal, no sign or leading zero), and
 * its N. */
bool run_deps_batch_ref(const char *ref, size_t *index);

/* A spec's wait_for (array of references) or result_refs (array of [path, reference]) with
 * every batch reference replaced by ids[N]; *out (mem_free) is new JSON text. A batch
 * reference at or past n is ERRAND_EINVAL (the server checks them first). */
int run_deps_resolve(const char *refs_json, bool pairs, const char *const *ids, size_t n,
                     char **out, errand_error *err);

/* parameters with each {"$result": ...} of result_refs (resolved) naming its run by id, as
 * stored; *out (mem_free) new JSON text. */
int run_deps_name_refs(const char *parameters, const char *result_refs, char **out,
                       errand_error *err);

/* How a new run with upstream runs starts, planned in two halves around the backend's own
 * reading (and, on PostgreSQL, locking) of the upstream runs: run_deps_plan_begin resolves
 * the references, the backend reads each upstream of upstream_ids, run_deps_plan_apply
 * decides. */
struct run_deps_plan {
    char *wait_for;    /* resolved references: ids (mem_free) */
    char *result_refs; /* resolved [path, id] pairs, or NULL (mem_free) */
    char *parameters;  /* with the results of completed upstream runs filled in, or NULL when
                          unchanged (mem_free) */
    char (*upstream_ids)[UUID_STR_LEN]; /* the ids of wait_for, n_upstream of them (mem_free) */
    size_t n_upstream;
    errand_state state; /* SCHEDULED, or CANCELLED/FAILED when an upstream already ended so */
    const char *name;   /* "Waiting", "Scheduled", "UpstreamFailed", "Failed" */
    char message[RUN_DEPS_MESSAGE_MAX];
    int pending;                 /* upstream runs not final yet */
    char (*edges)[UUID_STR_LEN]; /* those runs' ids, pending of them (mem_free) */
};
void run_deps_plan_clear(struct run_deps_plan *p);

/* An upstream run as the backend read it (strings borrowed for the call). */
struct run_deps_upstream {
    bool found;
    errand_state state;
    const char *result;
    const char *result_ref;
};

/* The first half for a spec with wait_for: batch references resolved against ids (the
 * batch's earlier runs), the results' places named by id, upstream_ids filled. */
int run_deps_plan_begin(const struct run_spec *spec, const char *const *ids, size_t n_ids,
                        struct run_deps_plan *out, errand_error *err);
/* The second half: ups[i] is upstream_ids[i] as read. One that does not exist is
 * ERRAND_EINVAL naming wait_for; those not final become edges; those final already are
 * applied as their end would be, in wait_for order (the first end named decides). */
int run_deps_plan_apply(const struct run_spec *spec, const struct run_deps_upstream *ups,
                        struct run_deps_plan *out, errand_error *err);

/* "waiting for N upstream run(s)". */
void run_deps_waiting_message(int pending, char *buf, size_t size);

/* What an upstream's end does to one run waiting for it. */
enum run_deps_outcome {
    RUN_DEPS_WAIT,    /* still waiting for others: pending - 1 of them */
    RUN_DEPS_RELEASE, /* the last one: into the ready queue */
    RUN_DEPS_CANCEL,  /* the upstream did not complete: CANCELLED/"UpstreamFailed" */
    RUN_DEPS_FAIL,    /* its result cannot be passed on: FAILED */
};
struct run_deps_step {
    enum run_deps_outcome outcome;
    char *parameters; /* the parameters with the upstream's result filled in (mem_free), or
                         NULL when unchanged */
    int pending;      /* upstream runs still waited for afterwards */
    char message[RUN_DEPS_MESSAGE_MAX];
};

/* The dependant (parameters and result_refs as stored, allow, pending upstreams before this
 * one) of upstream `upstream`, which ended in state `state` with `result` (JSON text or NULL)
 * and `result_ref` (or NULL). */
int run_deps_upstream_ended(const char *parameters, const char *result_refs, bool allow,
                            int pending, const char *upstream, errand_state state,
                            const char *result, const char *result_ref, struct run_deps_step *out,
                            errand_error *err);

#endif
