/* SPDX-License-Identifier: MIT */
/*
 * choice.h — errand_choice (errand.h) inside liberrand: checking a caller's value, and
 * resolving it against the level below (a definition, the worker, the environment). The
 * zero, ERRAND_DEFAULT, has no say, so a zero-initialised options struct means the defaults.
 */
#ifndef ERRAND_CORE_CHOICE_H
#define ERRAND_CORE_CHOICE_H

#include <stdbool.h>

#include "errand/errand.h"

/* 0 when c is ERRAND_DEFAULT, ERRAND_YES or ERRAND_NO; else ERRAND_EINVAL naming field (a
 * stale -1, once the "default" of these fields, is told to become 0). */
int choice_check(errand_choice c, const char *field, errand_error *err);

/* The answer of c: ERRAND_YES true, ERRAND_NO false, ERRAND_DEFAULT the level below's. */
bool choice_resolve(errand_choice c, bool below);

/* c as the -1 (no say) / 0 / 1 that the worker's persistence rule and the wire's
 * null / false / true use. */
int choice_tristate(errand_choice c);

#endif
