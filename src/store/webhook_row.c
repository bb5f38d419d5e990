/* SPDX-License-Identifier: MIT */
/*
 * webhook_row.c — freeing webhook rows.
 */
#include "store/webhook_row.h"

#include "core/mem.h"

void task_webhook_list_clear(struct task_webhook_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->items[i].task);
        mem_free(l->items[i].url);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

void webhook_delivery_list_clear(struct webhook_delivery_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->items[i].url);
        mem_free(l->items[i].last_error);
    }
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}
