/* SPDX-License-Identifier: MIT */
/*
 * report_wire.h — the JSON the reporter exchanges with the server (docs/api.md, worker
 * protocol): report items (state reports and log lines), the bodies of POST /workers/report
 * and POST /workers/heartbeat, and reading their per-item answers. Pure: no I/O, no locks;
 * unit-tested in tests/unit/test_worker_report_wire.c.
 */
#ifndef ERRAND_WORKER_REPORT_WIRE_H
#define ERRAND_WORKER_REPORT_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"
#include "worker/wrun.h"

/* Longest log line and failure message shipped; longer ones are cut (with "..."). */
#define REPORT_LOG_MESSAGE_MAX 8192
#define REPORT_MESSAGE_MAX 4096

enum report_kind {
    ITEM_REPORT, /* a state report */
    ITEM_LOG,    /* a log line */
    ITEM_HOLD,   /* not sent: tells the reporter thread to start holding run's lease */
};

struct report_item {
    struct report_item *next;
    enum report_kind kind;
    bool dead;      /* a RUNNING report made redundant by the outcome: skipped */
    bool converted; /* an outcome the server refused, now reported as FAILED with its reason */
    size_t weight;  /* estimated bytes in a request body */
    int answer;     /* the item's status in the server's answer, 0 until answered */

    /* ITEM_REPORT, ITEM_HOLD */
    struct wrun *run; /* a reference */
    errand_state state;
    char *message;    /* FAILED / CANCELLED: why, or NULL */
    bool retryable;   /* FAILED */
    json_t *result;   /* COMPLETED: the inline result (any JSON), or NULL = not inlined */
    char *result_ref; /* COMPLETED: "local:///...", or NULL */

    /* ITEM_LOG */
    char *run_id;
    int64_t timestamp_ms; /* Unix ms */
    int level;            /* errand_log_level */
    char *text;
};

/* A state report of run (takes a new reference of it; steals result). NULL on no memory. */
struct report_item *report_item_state(struct wrun *run, errand_state state, const char *message,
                                      bool retryable, json_t *result, const char *result_ref);
/* An ITEM_HOLD of run (takes a new reference). NULL on no memory. */
struct report_item *report_item_hold(struct wrun *run);
/* A log line of run run_id. NULL on no memory. */
struct report_item *report_item_log(const char *run_id, int64_t timestamp_ms, int level,
                                    const char *text);
void report_item_free(struct report_item *it);
/* Frees a chain linked through next. */
void report_items_free(struct report_item *chain);

/* True for the states that end this worker's hold on the run (all but RUNNING). */
bool report_state_is_final(errand_state s);

/* "debug" | "info" | "warning" | "error" for an errand_log_level (nearest below). */
const char *report_level_name(int level);

/* The body of POST /workers/report for a chain of items (dead and hold ones skipped), with
 * batch_id (the request's id, the same when it is sent again; NULL = none); mem_free it.
 * NULL on no memory. */
char *report_body(const char *worker, const char *batch_id, const struct report_item *chain);

/* The server's answer (HTTP status 200 or 409, and its body) into the answer of each live
 * state report. A 200 says every item applied (docs/api.md), so the body is not read; a 409
 * lists each item's status, {"reports": [{"id","status","state"}, ...]}, matched in order
 * (the server answers in the order it applied them). Items the answer does not cover keep
 * answer 0. */
void report_read_answer(struct report_item *chain, long http_status, const char *body);

/* The body of POST /workers/heartbeat for n runs; lease_seconds 0 = server default. */
char *heartbeat_body(const char *worker, struct wrun *const *runs, size_t n, int lease_seconds);

/* Reads {"leases": [{"id","status","cancel"}, ...]}: status[i] (0 when not covered) and
 * cancel[i] for runs[i], matched by id. */
void heartbeat_read_answer(const char *body, struct wrun *const *runs, size_t n, int *status,
                           bool *cancel);

#endif
