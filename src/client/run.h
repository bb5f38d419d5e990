/* SPDX-License-Identifier: MIT */
/*
 * run.h — errand_run, a client-side snapshot of one task run: the parsed task-run object as
 * the server sent it (docs/api.md), its compact text, and the fields the accessors return.
 */
#ifndef ERRAND_CLIENT_RUN_H
#define ERRAND_CLIENT_RUN_H

#include <jansson.h>

#include "errand/errand.h"

struct errand_run {
    json_t *root;                                 /* the task-run object */
    char *text;                                   /* compact JSON of root */
    const char *id, *task, *state_name, *message; /* point into root */
    errand_state state;
    int attempt;
};

/* Wraps a task-run object (takes a new reference of it). Fails with ERRAND_ESERVER when the
 * object lacks an id or a known state type. */
int run_wrap(json_t *obj, errand_run **out, errand_error *err);

#endif
