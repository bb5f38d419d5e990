/* SPDX-License-Identifier: MIT */
/*
 * webhook_sender.h — the webhook sender: one thread per server that makes the calls of the
 * deliveries the store holds (store/webhook_row.h). Every server runs one and none is in
 * charge: each takes due deliveries from the store (a take holds a delivery for the length
 * of a call, so two servers do not call at once), POSTs each run as JSON — the task-run
 * object of GET /api/task_runs/{id}, as it is when the call is made — to its URL, all of a
 * take's calls at once, and records the outcome: a 2xx answer ends the delivery; anything
 * else (another status, no answer within the timeout, a refused connection) tries it again
 * after retry_ms, doubled at each failure up to WEBHOOK_RETRY_MAX_MS, until max_attempts
 * calls failed, when it is given up and logged.
 *
 * A delivery is made at least once: a server that dies during a call leaves it held until
 * the hold ends, then another server (or this one, restarted) calls again. Each call says
 * which delivery it is (the Errand-Delivery header), so a receiver can ignore a repeat;
 * with a secret, each is signed (server/webhook_signature.h).
 */
#ifndef ERRAND_SERVER_WEBHOOK_SENDER_H
#define ERRAND_SERVER_WEBHOOK_SENDER_H

#include <stdint.h>

#include "errand/errand.h"
#include "server/metrics.h"
#include "store/store.h"

/* Deliveries taken per look; a full take is followed by another look at once. */
#define WEBHOOK_BATCH 32
/* The longest wait between two calls of one delivery. */
#define WEBHOOK_RETRY_MAX_MS (3600 * 1000LL)
/* A take holds a delivery for the call's timeout and this much more. */
#define WEBHOOK_HOLD_MARGIN_MS 5000

typedef struct webhook_sender webhook_sender;

struct webhook_config {
    int interval_ms;    /* how often due deliveries are looked for; 0: no sender */
    int64_t timeout_ms; /* of one call */
    int max_attempts;   /* calls made before a delivery is given up */
    int64_t retry_ms;   /* the wait after the first failed call */
    const char *secret; /* signs each call; NULL or "" = unsigned */
};

/* The wait after failed call number attempt (1, 2, …): retry_ms doubled attempt - 1 times,
 * at most WEBHOOK_RETRY_MAX_MS. */
int64_t webhook_retry_delay_ms(int64_t retry_ms, int attempt);

/* Starts the thread (none when cfg->interval_ms is 0: *out is then NULL, which every function
 * below takes). The store and metrics must outlive webhook_sender_stop(); the secret is
 * copied. */
int webhook_sender_start(store *st, metrics *m, const struct webhook_config *cfg,
                         webhook_sender **out, errand_error *err);
/* Stops the thread after the calls under way (each within its timeout). */
void webhook_sender_stop(webhook_sender *ws);

#endif
