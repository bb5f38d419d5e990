/* SPDX-License-Identifier: MIT */
/*
 * budget.c — the memory budget (see budget.h): one atomic counter, reserved with a
 * compare-and-swap loop so that concurrent requests never overshoot the limit together.
 */
#include "server/budget.h"

#include <stdatomic.h>
#include <stdint.h>

#include "core/mem.h"

struct budget {
    size_t limit;
    atomic_size_t used;
    atomic_size_t peak;
};

budget *budget_new(size_t limit)
{
    budget *b = mem_calloc(1, sizeof *b);
    if (b) {
        b->limit = limit;
        atomic_init(&b->used, 0);
        atomic_init(&b->peak, 0);
    }
    return b;
}

void budget_free(budget *b)
{
    mem_free(b);
}

size_t budget_cost(size_t body_bytes)
{
    if (body_bytes > (SIZE_MAX - BUDGET_PER_REQUEST) / BUDGET_PER_BODY_BYTE)
        return SIZE_MAX;
    return BUDGET_PER_REQUEST + body_bytes * BUDGET_PER_BODY_BYTE;
}

static void note_peak(budget *b, size_t now)
{
    size_t peak = atomic_load(&b->peak);
    while (now > peak && !atomic_compare_exchange_weak(&b->peak, &peak, now))
        ;
}

bool budget_take(budget *b, size_t bytes)
{
    size_t used = atomic_load(&b->used);
    for (;;) {
        bool fits = used == 0 || (bytes <= b->limit && used <= b->limit - bytes);
        if (!fits)
            return false;
        size_t next = bytes > SIZE_MAX - used ? SIZE_MAX : used + bytes;
        if (atomic_compare_exchange_weak(&b->used, &used, next)) {
            note_peak(b, next);
            return true;
        }
    }
}

void budget_give(budget *b, size_t bytes)
{
    atomic_fetch_sub(&b->used, bytes);
}

size_t budget_used(const budget *b)
{
    return atomic_load(&b->used);
}

size_t budget_peak_reset(budget *b)
{
    return atomic_exchange(&b->peak, atomic_load(&b->used));
}
