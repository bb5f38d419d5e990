/* SPDX-License-Identifier: MIT */
/*
 * result_store.h — persisted results: the rule that decides whether a run's result is
 * persisted, and writing it to the result storage: the local one as <dir>/<run id>.json,
 * referenced as "local://" + the absolute path, or an S3 bucket (core/s3.h), referenced as
 * "s3://<bucket>/<prefix>/<run id>.json". Clients read it back through the server.
 */
#ifndef ERRAND_WORKER_RESULT_STORE_H
#define ERRAND_WORKER_RESULT_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/result_ref.h"
#include "client/s3.h"
#include "errand/errand.h"

/* Each choice is -1 (no say), 0 or 1. The first that has a say wins: the task's own call to
 * errand_task_persist_result(), then the run's persist_result as submitted, then the task
 * definition's, then the worker's default. */
bool result_should_persist(int task_choice, int run_choice, int def_choice, bool by_default);

/* Writes json (len bytes) for run_id: to s3 as "<prefix>/<run id>.json" when s3 is not
 * NULL (referenced as "s3://<bucket>/<key>"), else under the absolute directory dir (created
 * when missing); *ref receives the reference (mem_free it). */
int result_store_write(const char *dir, const struct s3_location *s3, const char *run_id,
                       const char *json, size_t len, char **ref, errand_error *err);

#endif
