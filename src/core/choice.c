/* SPDX-License-Identifier: MIT */
/*
 * choice.c — errand_choice checked and resolved (choice.h).
 */
#include "core/choice.h"

#include "core/error.h"

int choice_check(errand_choice c, const char *field, errand_error *err)
{
    if (c == ERRAND_DEFAULT || c == ERRAND_YES || c == ERRAND_NO)
        return 0;
    return error_set(err, ERRAND_EINVAL, field,
                     "%s must be ERRAND_DEFAULT (0), ERRAND_YES or ERRAND_NO, got %d%s", field,
                     (int)c, (int)c == -1 ? " (for the default, leave it 0)" : "");
}

bool choice_resolve(errand_choice c, bool below)
{
    if (c == ERRAND_YES)
        return true;
    if (c == ERRAND_NO)
        return false;
    return below;
}

int choice_tristate(errand_choice c)
{
    if (c == ERRAND_YES)
        return 1;
    if (c == ERRAND_NO)
        return 0;
    return -1;
}
