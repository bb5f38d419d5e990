/* SPDX-License-Identifier: MIT */
/*
 * worker_request.h — validated bodies of the worker protocol (docs/api.md, "Worker
 * protocol"): claim, heartbeat and report, checked as strictly as submissions (unknown
 * fields refused, types and ranges checked, errors naming the field such as
 * "reports[2].state"). Strings in the parsed structs are borrowed from the JSON body, which
 * must outlive them, except a report's result (its compact text, owned); the arrays and
 * results are mem_alloc'd and freed by the _clear functions.
 */
#ifndef ERRAND_SERVER_WORKER_REQUEST_H
#define ERRAND_SERVER_WORKER_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wire_limits.h"
#include "errand/errand.h"
#include "store/store.h"

#define CLAIM_LIMIT_DEFAULT 1
#define CLAIM_WAIT_MAX_S 60
#define CLAIM_WAIT_DEFAULT_S 10
#define LEASE_TOKEN_MAX 128

/* The fields each body and each array item may have (NULL-terminated; anything else is
 * refused with unknown_field): claim, heartbeat and its leases[], report and its reports[]
 * and logs[]. Exported so that test_openapi can hold them against docs/openapi.json. */
extern const char *const worker_claim_fields[];
extern const char *const worker_heartbeat_fields[];
extern const char *const worker_lease_fields[];
extern const char *const worker_report_fields[];
extern const char *const worker_report_item_fields[];
extern const char *const worker_log_fields[];

struct claim_body {
    struct claim_request req; /* req.tasks points at tasks */
    const char **tasks;
    double wait_seconds;
};

struct heartbeat_body {
    const char *worker;
    struct lease_ref *leases;
    size_t n_leases;
    int lease_seconds;
};

struct report_body {
    const char *worker;
    const char *batch_id;       /* NULL when absent */
    struct run_report *reports; /* each result is compact JSON text owned by the body */
    size_t n_reports;
    struct log_entry *logs;
    size_t n_logs;
};

/* lease_seconds defaults to default_lease_seconds (ERRAND_LEASE_SECONDS). */
int worker_parse_claim(const json_t *body, int default_lease_seconds, struct claim_body *out,
                       errand_error *err);
int worker_parse_heartbeat(const json_t *body, int default_lease_seconds,
                           struct heartbeat_body *out, errand_error *err);
/* Log entries without a timestamp get now_ms. */
int worker_parse_report(const json_t *body, int64_t now_ms, struct report_body *out,
                        errand_error *err);

void worker_claim_clear(struct claim_body *b);
void worker_heartbeat_clear(struct heartbeat_body *b);
void worker_report_clear(struct report_body *b);

#endif
