/* SPDX-License-Identifier: MIT */
/*
 * webhook_row.h — webhooks as the store keeps them: the URL a task's runs are reported to
 * when they end (one per task; a submission may name its own, which wins), and the
 * deliveries waiting to be made. A delivery is written in the commit that ends its run, so
 * a crash between the run's end and the call loses nothing; the server's webhook sender
 * (server/webhook_sender.c) takes due deliveries, makes the calls and records each outcome
 * (docs/architecture.md, Webhooks).
 */
#ifndef ERRAND_STORE_WEBHOOK_ROW_H
#define ERRAND_STORE_WEBHOOK_ROW_H

#include <stddef.h>
#include <stdint.h>

/* The longest URL a webhook may have. */
#define WEBHOOK_URL_MAX 2048

struct task_webhook {
    char *task;
    char *url;
    int64_t created, updated; /* Unix ms */
};

struct task_webhook_list {
    struct task_webhook *items;
    size_t n;
};

struct webhook_delivery {
    int64_t id; /* unique in the store: the receiver's key to ignore a repeated call */
    char run_id[37];
    char *url;
    int attempt;      /* calls begun so far (a take begins one) */
    int64_t next_at;  /* Unix ms: when it is due; while a sender holds it, when its hold ends */
    char *last_error; /* why the last call failed, NULL = none yet */
    int64_t created;  /* Unix ms: when its run ended */
};

struct webhook_delivery_list {
    struct webhook_delivery *items;
    size_t n;
};

void task_webhook_list_clear(struct task_webhook_list *l);
void webhook_delivery_list_clear(struct webhook_delivery_list *l);

#endif
