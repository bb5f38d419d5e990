/* SPDX-License-Identifier: MIT */
/*
 * sqlite_deps.h — dependencies between runs in the SQLite store (store/run_deps.h): the
 * upstream runs of a new run, registered at submit, and the settling of a run's dependants
 * when it ends, in the transaction that ends it.
 *
 * Writer thread only.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_DEPS_H
#define ERRAND_STORE_SQLITE_SQLITE_DEPS_H

#include <stdint.h>

#include "store/run_deps.h"
#include "store/run_transition.h"
#include "store/sqlite/sqlite_conn.h"

/* The plan for a new run whose spec has wait_for (store/run_deps.h), each upstream read on
 * the writer's connection. */
int sqlite_deps_plan(struct sqlite_conn *c, const struct run_spec *spec, const char *const *ids,
                     size_t n_ids, struct run_deps_plan *out, errand_error *err);

/* Records the plan's edges from the new run `id` (after its insert). */
int sqlite_deps_register(struct sqlite_conn *c, const char *id, const struct run_deps_plan *p,
                         errand_error *err);

/* Run id just ended (its final state is written): settles the runs waiting for it, and in
 * turn the dependants of those that this ends, tallying into counts. */
int sqlite_deps_run_ended(struct sqlite_conn *c, const char *id, struct run_count_delta *counts,
                          int64_t now_ms, errand_error *err);

#endif
