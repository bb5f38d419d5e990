/* SPDX-License-Identifier: MIT */
/*
 * run_finals.c — outcomes kept until their commit (see run_finals.h).
 */
#include "store/run_finals.h"

#include "core/mem.h"
#include "core/state.h"

#define RUN_FINALS_FIRST_CAP 16

void run_finals_add(struct run_finals *f, const char *task, errand_state type, bool cached,
                    int64_t ran_ms)
{
    const struct store_observer *o = f->observer;
    if (!o || !o->run_final || !o->task_key)
        return;
    if (f->n == f->cap) {
        size_t want = f->cap ? 2 * f->cap : RUN_FINALS_FIRST_CAP;
        struct run_final *more = mem_realloc(f->items, want * sizeof *more);
        if (!more)
            return;
        f->items = more;
        f->cap = want;
    }
    f->items[f->n++] = (struct run_final){o->task_key(o->arg, task), type, cached, ran_ms};
}

void run_finals_flush(struct run_finals *f)
{
    const struct store_observer *o = f->observer;
    for (size_t i = 0; o && i < f->n; i++)
        o->run_final(o->arg, f->items[i].key, f->items[i].type, f->items[i].cached,
                     f->items[i].ran_ms);
    f->n = 0;
}

void run_finals_free(struct run_finals *f)
{
    mem_free(f->items);
    f->items = NULL;
    f->n = f->cap = 0;
}

void run_finals_transition(struct run_finals *f, const char *task, errand_state cur_state,
                           int64_t state_ms, errand_state next, int64_t now_ms)
{
    if (!f->observer || !state_is_final(next) || state_is_final(cur_state))
        return;
    bool attempt = cur_state == ERRAND_STATE_PENDING || cur_state == ERRAND_STATE_RUNNING;
    int64_t ran = attempt && state_ms > 0 && now_ms >= state_ms ? now_ms - state_ms : -1;
    run_finals_add(f, task, next, false, ran);
}
