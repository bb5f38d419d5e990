/* SPDX-License-Identifier: MIT */
/*
 * schedule_row.c — freeing schedule rows, and the names of the catch-up policies.
 */
#include "store/schedule_row.h"

#include <string.h>

#include "core/mem.h"

void schedule_row_clear(struct schedule_row *r)
{
    mem_free(r->name);
    mem_free(r->task);
    mem_free(r->run_options);
    mem_free(r->cron);
    mem_free(r->time_zone);
    mem_free(r->last_run_id);
    memset(r, 0, sizeof *r);
}

void schedule_list_clear(struct schedule_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        schedule_row_clear(&l->items[i]);
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

const char *schedule_catch_up_name(enum schedule_catch_up c)
{
    return c == SCHEDULE_CATCH_UP_ONCE ? "once" : "skip";
}

bool schedule_catch_up_parse(const char *s, enum schedule_catch_up *out)
{
    if (s && strcmp(s, "skip") == 0)
        *out = SCHEDULE_CATCH_UP_SKIP;
    else if (s && strcmp(s, "once") == 0)
        *out = SCHEDULE_CATCH_UP_ONCE;
    else
        return false;
    return true;
}
