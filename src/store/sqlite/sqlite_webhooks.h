/* SPDX-License-Identifier: MIT */
/*
 * sqlite_webhooks.h — what the SQLite store's transactions do for webhooks
 * (store/webhook_row.h): a submission's own URL kept with its run, and a run's delivery
 * written in the transaction that ends it.
 *
 * Writer thread only.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_WEBHOOKS_H
#define ERRAND_STORE_SQLITE_SQLITE_WEBHOOKS_H

#include <stdint.h>

#include "store/sqlite/sqlite_conn.h"

/* Keeps url as the webhook of the new run run_id, until the run is deleted (a run that ends
 * again, after a late report revived it, is called back again). */
int sqlite_webhook_run_set(struct sqlite_conn *c, const char *run_id, const char *url,
                           errand_error *err);
/* Run run_id of task just reached a final state: writes its delivery, due at now_ms, to its
 * own URL or else its task's, when it has either. */
int sqlite_webhook_run_ended(struct sqlite_conn *c, const char *run_id, const char *task,
                             int64_t now_ms, errand_error *err);
/* Forgets the URL of run run_id (it is deleted). */
int sqlite_webhook_run_forget(struct sqlite_conn *c, const char *run_id, errand_error *err);

#endif
