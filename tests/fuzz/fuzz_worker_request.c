/* SPDX-License-Identifier: MIT */
/*
 * fuzz_worker_request.c — libFuzzer harness for the worker-protocol bodies (claim,
 * heartbeat, report; server/worker_request.h). The bytes go through json_parse_text as the
 * handlers' bodies do, and the value is offered to all three parsers, so one corpus covers
 * them all (a claim body is a refused heartbeat body, which exercises the refusals too).
 *
 * On success it checks what the store is promised: counts and ranges within the documented
 * limits, ids that are UUIDs, states and log levels from the allowed sets, a result only with
 * COMPLETED; and it reads every borrowed string before the body is freed, so ASan sees any
 * pointer that does not point into the body. Each input is then parsed once more with
 * allocations failing (fuzz_common.h).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "fuzz_common.h"
#include "server/field.h"
#include "server/submission.h"
#include "server/worker_request.h"

#define FUZZ_DEFAULT_LEASE_SECONDS 30 /* ERRAND_LEASE_SECONDS default */

/* Touches every byte of s, so a pointer outside a live allocation trips ASan. */
static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static void check_text(const char *s, size_t min, size_t max, const char *what)
{
    FUZZ_CHECK(s != NULL || min == 0, "%s is NULL", what);
    if (!s)
        return;
    touch(s);
    size_t len = field_utf8_len(s);
    FUZZ_CHECK(len >= min && len <= max, "%s has %zu characters, allowed %zu..%zu", what, len,
               min, max);
}

static void check_claim(const struct claim_body *b)
{
    check_text(b->req.worker, 1, WIRE_WORKER_NAME_MAX, "claim worker");
    FUZZ_CHECK(b->req.tasks == b->tasks, "claim req.tasks does not point at tasks");
    FUZZ_CHECK(b->req.n_tasks >= 1 && b->req.n_tasks <= WIRE_WORKER_TASKS_MAX, "claim of %zu tasks",
               b->req.n_tasks);
    for (size_t i = 0; i < b->req.n_tasks; i++)
        check_text(b->tasks[i], 1, WIRE_TASK_NAME_MAX, "claim task");
    FUZZ_CHECK(b->req.limit >= 1 && b->req.limit <= WIRE_CLAIM_LIMIT_MAX, "claim limit %d",
               b->req.limit);
    FUZZ_CHECK(b->req.lease_seconds >= WIRE_LEASE_SECONDS_MIN &&
                   b->req.lease_seconds <= WIRE_LEASE_SECONDS_MAX,
               "claim lease_seconds %d", b->req.lease_seconds);
    FUZZ_CHECK(isfinite(b->wait_seconds) && b->wait_seconds >= 0 &&
                   b->wait_seconds <= CLAIM_WAIT_MAX_S,
               "claim wait_seconds %g", b->wait_seconds);
}

static void check_heartbeat(const struct heartbeat_body *b)
{
    check_text(b->worker, 1, WIRE_WORKER_NAME_MAX, "heartbeat worker");
    FUZZ_CHECK(b->n_leases <= WIRE_HEARTBEAT_LEASES_MAX, "heartbeat of %zu leases", b->n_leases);
    FUZZ_CHECK(b->lease_seconds >= WIRE_LEASE_SECONDS_MIN &&
                   b->lease_seconds <= WIRE_LEASE_SECONDS_MAX,
               "heartbeat lease_seconds %d", b->lease_seconds);
    for (size_t i = 0; i < b->n_leases; i++) {
        FUZZ_CHECK(b->leases[i].id && uuid_is_valid(b->leases[i].id), "lease id not a UUID");
        check_text(b->leases[i].lease_token, 1, LEASE_TOKEN_MAX, "lease_token");
    }
}

static void check_report(const struct report_body *b)
{
    check_text(b->worker, 1, WIRE_WORKER_NAME_MAX, "report worker");
    FUZZ_CHECK(b->n_reports <= WIRE_REPORTS_MAX, "%zu reports", b->n_reports);
    FUZZ_CHECK(b->n_logs <= WIRE_REPORT_LOGS_MAX, "%zu logs", b->n_logs);
    for (size_t i = 0; i < b->n_reports; i++) {
        const struct run_report *r = &b->reports[i];
        FUZZ_CHECK(r->id && uuid_is_valid(r->id), "report id not a UUID");
        check_text(r->lease_token, 1, LEASE_TOKEN_MAX, "report lease_token");
        FUZZ_CHECK(r->state == ERRAND_STATE_RUNNING || r->state == ERRAND_STATE_COMPLETED ||
                       r->state == ERRAND_STATE_FAILED || r->state == ERRAND_STATE_CANCELLED ||
                       r->state == ERRAND_STATE_SCHEDULED,
                   "report state %d", (int)r->state);
        FUZZ_CHECK((!r->result && !r->result_ref) || r->state == ERRAND_STATE_COMPLETED,
                   "result with state %d", (int)r->state);
        check_text(r->result_ref, 0, WIRE_RESULT_REF_MAX, "result_ref");
        check_text(r->message, 0, WIRE_MESSAGE_MAX, "report message");
        if (r->result) { /* the compact text of the result: JSON that reads back */
            json_t *v = json_loads(r->result, JSON_DECODE_ANY, NULL);
            FUZZ_CHECK(v != NULL, "result text does not parse: %.64s", r->result);
            json_decref(v);
        }
    }
    for (size_t i = 0; i < b->n_logs; i++) {
        const struct log_entry *l = &b->logs[i];
        FUZZ_CHECK(l->id && uuid_is_valid(l->id), "log id not a UUID");
        FUZZ_CHECK(l->level == ERRAND_LOG_DEBUG || l->level == ERRAND_LOG_INFO ||
                       l->level == ERRAND_LOG_WARNING || l->level == ERRAND_LOG_ERROR,
                   "log level %d", l->level);
        FUZZ_CHECK(l->message != NULL, "log without message");
        check_text(l->message, 0, WIRE_MESSAGE_MAX, "log message");
    }
}

/* Offers v to the three parsers; check = verify accepted bodies (off while allocations
 * fail, since the checks themselves may allocate). */
static void parse_all(const json_t *v, int check)
{
    errand_error err;
    int rc;

    struct claim_body claim;
    error_clear(&err);
    if ((rc = worker_parse_claim(v, FUZZ_DEFAULT_LEASE_SECONDS, &claim, &err)) == 0) {
        if (check)
            check_claim(&claim);
        worker_claim_clear(&claim);
    } else {
        fuzz_check_error(rc, &err, "worker_parse_claim");
    }

    struct heartbeat_body hb;
    error_clear(&err);
    if ((rc = worker_parse_heartbeat(v, FUZZ_DEFAULT_LEASE_SECONDS, &hb, &err)) == 0) {
        if (check)
            check_heartbeat(&hb);
        worker_heartbeat_clear(&hb);
    } else {
        fuzz_check_error(rc, &err, "worker_parse_heartbeat");
    }

    struct report_body rb;
    error_clear(&err);
    if ((rc = worker_parse_report(v, FUZZ_NOW_MS, &rb, &err)) == 0) {
        if (check)
            check_report(&rb);
        worker_report_clear(&rb);
    } else {
        fuzz_check_error(rc, &err, "worker_parse_report");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = fuzz_parse_body(data, size);
    if (!v)
        return 0;
    parse_all(v, 1);
    mem_fail_after(fuzz_oom_budget(data, size));
    parse_all(v, 0);
    mem_fail_after(-1);
    json_decref(v);
    return 0;
}
