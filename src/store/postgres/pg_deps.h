/* SPDX-License-Identifier: MIT */
/*
 * pg_deps.h — dependencies between runs in the PostgreSQL store (store/run_deps.h): the
 * upstream runs of a new run, locked, read and registered at submit, and the settling of a
 * run's dependants when it ends, in the transaction that ends it (pg_deps.c says why it is
 * safe with several servers on one database).
 *
 * Used on one connection by the thread that holds it.
 */
#ifndef ERRAND_STORE_POSTGRES_PG_DEPS_H
#define ERRAND_STORE_POSTGRES_PG_DEPS_H

#include <stdint.h>

#include "store/postgres/pg_conn.h"
#include "store/run_deps.h"
#include "store/run_spec.h"

/* The plan for a new run whose spec has wait_for (store/run_deps.h; batch references resolve
 * against the batch's earlier runs, inserted already), each upstream locked while read: the
 * locks hold until the commit (see pg_deps.c). */
int pg_deps_plan(struct pg_conn *c, const struct run_spec *spec, const char *const *ids,
                 size_t n_ids, struct run_deps_plan *out, errand_error *err);

/* Records the plan's edges from the new run `id` (after its insert). */
int pg_deps_register(struct pg_conn *c, const char *id, const struct run_deps_plan *p,
                     errand_error *err);

/* Run id, which others wait for, is moving into a final state at now_ms (pg_transition_queue
 * calls it): noted on c, settled by pg_deps_settle. */
int pg_deps_ended(struct pg_conn *c, const char *id, int64_t now_ms, errand_error *err);

/* Settles the dependants of the runs noted on c (their final states written), and in turn
 * the dependants of those this ends; writes the counters it changed. Called once the op's
 * transitions are flushed, before COMMIT (store_pg_commit). */
int pg_deps_settle(struct pg_conn *c, errand_error *err);

#endif
