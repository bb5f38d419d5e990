/* SPDX-License-Identifier: MIT */
/*
 * test_worker_request.c — validation of worker-protocol bodies (server/worker_request.c):
 * claim, heartbeat and report are checked as strictly as submissions — defaults, limits,
 * unknown fields, states and log levels, result only with COMPLETED, paths such as
 * "reports[1].state" — and fail cleanly when memory runs out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "server/worker_request.h"

#define NOW_MS 1764411919000LL
#define DEFAULT_LEASE 30
#define ID1 "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"
#define ID2 "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b22"

enum kind { CLAIM, HEARTBEAT, REPORT };

/* Parses text as a body of the given kind, clears what was parsed, returns the code. */
static int parse(enum kind k, const char *text, errand_error *err)
{
    json_error_t jerr;
    json_t *body = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!body)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    error_clear(err);
    int rc;
    if (k == CLAIM) {
        struct claim_body b;
        if ((rc = worker_parse_claim(body, DEFAULT_LEASE, &b, err)) == 0)
            worker_claim_clear(&b);
    } else if (k == HEARTBEAT) {
        struct heartbeat_body b;
        if ((rc = worker_parse_heartbeat(body, DEFAULT_LEASE, &b, err)) == 0)
            worker_heartbeat_clear(&b);
    } else {
        struct report_body b;
        if ((rc = worker_parse_report(body, NOW_MS, &b, err)) == 0)
            worker_report_clear(&b);
    }
    json_decref(body);
    return rc;
}

static void expect(enum kind k, const char *text, int code, const char *field)
{
    errand_error err;
    int rc = parse(k, text, &err);
    if (rc != code || (code != 0 && strcmp(err.field, field) != 0))
        fail_msg("%s: expected %d on '%s', got %d on '%s' (%s)", text, code, field, rc, err.field,
                 err.message);
}

static void claim_defaults(void **state)
{
    (void)state;
    json_t *body = json_loads("{\"worker\": \"w1\", \"tasks\": [\"a\", \"b\"]}", 0, NULL);
    struct claim_body b;
    errand_error err;
    assert_int_equal(worker_parse_claim(body, DEFAULT_LEASE, &b, &err), 0);
    assert_string_equal(b.req.worker, "w1");
    assert_int_equal(b.req.n_tasks, 2);
    assert_string_equal(b.req.tasks[1], "b");
    assert_int_equal(b.req.limit, CLAIM_LIMIT_DEFAULT);
    assert_int_equal(b.req.lease_seconds, DEFAULT_LEASE);
    assert_true(b.wait_seconds == CLAIM_WAIT_DEFAULT_S);
    worker_claim_clear(&b);
    json_decref(body);
}

static void claim_values_and_limits(void **state)
{
    (void)state;
    expect(CLAIM,
           "{\"worker\": \"w\", \"tasks\": [\"a\"], \"limit\": 1000, \"wait_seconds\": 0.5, "
           "\"lease_seconds\": 3600}",
           0, "");
    expect(CLAIM, "{\"tasks\": [\"a\"]}", ERR_MISSING_FIELD, "worker");
    expect(CLAIM, "{\"worker\": \"w\"}", ERR_MISSING_FIELD, "tasks");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": []}", ERRAND_EINVAL, "tasks");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\", 3]}", ERRAND_EINVAL, "tasks");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"\"]}", ERRAND_EINVAL, "tasks");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"limit\": 0}", ERRAND_EINVAL, "limit");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"limit\": 1001}", ERRAND_EINVAL,
           "limit");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"wait_seconds\": 61}", ERRAND_EINVAL,
           "wait_seconds");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"wait_seconds\": -1}", ERRAND_EINVAL,
           "wait_seconds");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"lease_seconds\": 0}", ERRAND_EINVAL,
           "lease_seconds");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"lease_seconds\": 3601}", ERRAND_EINVAL,
           "lease_seconds");
    expect(CLAIM, "{\"worker\": \"w\", \"tasks\": [\"a\"], \"lease\": 5}", ERR_UNKNOWN_FIELD,
           "lease");
    expect(CLAIM, "{\"worker\": 5, \"tasks\": [\"a\"]}", ERRAND_EINVAL, "worker");
}

static void heartbeat_items(void **state)
{
    (void)state;
    expect(HEARTBEAT, "{\"worker\": \"w\", \"leases\": []}", 0, "");
    expect(HEARTBEAT,
           "{\"worker\": \"w\", \"leases\": [{\"id\": \"" ID1 "\", \"lease_token\": \"ab\"}], "
           "\"lease_seconds\": 10}",
           0, "");
    expect(HEARTBEAT, "{\"worker\": \"w\"}", ERR_MISSING_FIELD, "leases");
    expect(HEARTBEAT,
           "{\"worker\": \"w\", \"leases\": [{\"id\": \"nope\", \"lease_token\": \"a\"}]}",
           ERRAND_EINVAL, "leases[0].id");
    expect(HEARTBEAT, "{\"worker\": \"w\", \"leases\": [{\"id\": \"" ID1 "\"}]}", ERR_MISSING_FIELD,
           "leases[0].lease_token");
    expect(HEARTBEAT,
           "{\"worker\": \"w\", \"leases\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"a\", \"x\": 1}]}",
           ERR_UNKNOWN_FIELD, "leases[0].x");
    expect(HEARTBEAT, "{\"worker\": \"w\", \"leases\": [7]}", ERRAND_EINVAL, "leases[0]");
}

static void report_parses_each_state(void **state)
{
    (void)state;
    json_t *body = json_loads(
        "{\"worker\": \"w\", \"reports\": ["
        "{\"id\": \"" ID1 "\", \"lease_token\": \"t\", \"state\": \"RUNNING\"},"
        "{\"id\": \"" ID1 "\", \"lease_token\": \"t\", \"state\": \"COMPLETED\", \"result\": null,"
        " \"result_ref\": \"local:///x.json\"},"
        "{\"id\": \"" ID2
        "\", \"lease_token\": \"t\", \"state\": \"FAILED\", \"message\": \"boom\","
        " \"retryable\": false},"
        "{\"id\": \"" ID2 "\", \"lease_token\": \"t\", \"state\": \"CANCELLED\"},"
        "{\"id\": \"" ID2 "\", \"lease_token\": \"t\", \"state\": \"SCHEDULED\"}],"
        " \"logs\": [{\"id\": \"" ID1 "\", \"level\": \"warning\", \"message\": \"\"},"
        "{\"id\": \"" ID1 "\", \"timestamp\": \"2026-11-29T10:25:19.123Z\", \"level\": \"debug\","
        " \"message\": \"hi\"}]}",
        0, NULL);
    struct report_body b;
    errand_error err;
    assert_int_equal(worker_parse_report(body, NOW_MS, &b, &err), 0);
    assert_int_equal(b.n_reports, 5);
    assert_int_equal(b.reports[0].state, ERRAND_STATE_RUNNING);
    assert_int_equal(b.reports[1].state, ERRAND_STATE_COMPLETED);
    assert_string_equal(b.reports[1].result, "null"); /* a null result is kept, not dropped */
    assert_string_equal(b.reports[1].result_ref, "local:///x.json");
    assert_int_equal(b.reports[2].state, ERRAND_STATE_FAILED);
    assert_string_equal(b.reports[2].message, "boom");
    assert_false(b.reports[2].retryable);
    assert_true(b.reports[3].retryable); /* default */
    assert_null(b.reports[3].result);
    assert_int_equal(b.reports[4].state, ERRAND_STATE_SCHEDULED);
    assert_int_equal(b.n_logs, 2);
    assert_int_equal(b.logs[0].level, ERRAND_LOG_WARNING);
    assert_true(b.logs[0].timestamp_ms == NOW_MS);
    assert_int_equal(b.logs[1].level, ERRAND_LOG_DEBUG);
    assert_true(b.logs[1].timestamp_ms == 1795947919123LL);
    worker_report_clear(&b);
    json_decref(body);
}

static void report_rejections(void **state)
{
    (void)state;
    expect(REPORT, "{\"worker\": \"w\"}", 0, "");
    expect(REPORT, "{\"reports\": []}", ERR_MISSING_FIELD, "worker");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"PENDING\"}]}",
           ERRAND_EINVAL, "reports[0].state");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"completed\"}]}",
           ERRAND_EINVAL, "reports[0].state");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"FAILED\", \"result\": 1}]}",
           ERRAND_EINVAL, "reports[0].result");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"RUNNING\", \"result_ref\": \"x\"}]}",
           ERRAND_EINVAL, "reports[0].result_ref");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"FAILED\", \"retryable\": \"no\"}]}",
           ERRAND_EINVAL, "reports[0].retryable");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1 "\", \"state\": \"RUNNING\"}]}",
           ERR_MISSING_FIELD, "reports[0].lease_token");
    expect(REPORT,
           "{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
           "\", \"lease_token\": \"t\", \"state\": \"RUNNING\", \"extra\": 1}]}",
           ERR_UNKNOWN_FIELD, "reports[0].extra");
    expect(REPORT,
           "{\"worker\": \"w\", \"logs\": [{\"id\": \"" ID1
           "\", \"level\": \"warn\", \"message\": \"m\"}]}",
           ERRAND_EINVAL, "logs[0].level");
    expect(REPORT, "{\"worker\": \"w\", \"logs\": [{\"id\": \"" ID1 "\", \"level\": \"info\"}]}",
           ERR_MISSING_FIELD, "logs[0].message");
    expect(REPORT,
           "{\"worker\": \"w\", \"logs\": [{\"id\": \"" ID1
           "\", \"level\": \"info\", \"message\": \"m\", \"timestamp\": \"now\"}]}",
           ERRAND_EINVAL, "logs[0].timestamp");
    expect(REPORT, "{\"worker\": \"w\", \"logs\": {}}", ERRAND_EINVAL, "logs");
    expect(REPORT, "{\"worker\": \"w\", \"status\": 1}", ERR_UNKNOWN_FIELD, "status");
}

static void report_array_limits(void **state)
{
    (void)state;
    json_t *reports = json_array();
    for (int i = 0; i <= WIRE_REPORTS_MAX; i++)
        json_array_append_new(reports, json_pack("{s:s, s:s, s:s}", "id", ID1, "lease_token", "t",
                                                 "state", "RUNNING"));
    json_t *body = json_pack("{s:s, s:o}", "worker", "w", "reports", reports);
    struct report_body b;
    errand_error err;
    assert_int_equal(worker_parse_report(body, NOW_MS, &b, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "reports");
    json_array_remove(reports, 0);
    assert_int_equal(worker_parse_report(body, NOW_MS, &b, &err), 0);
    worker_report_clear(&b);
    json_decref(body);
}

static void out_of_memory_fails_cleanly(void **state)
{
    (void)state;
    json_t *body = json_loads("{\"worker\": \"w\", \"reports\": [{\"id\": \"" ID1
                              "\", \"lease_token\": \"t\", \"state\": \"RUNNING\"}], \"logs\": "
                              "[{\"id\": \"" ID1 "\", \"level\": \"info\", \"message\": \"m\"}]}",
                              0, NULL);
    int rc = -1;
    for (long budget = 0; rc != 0; budget++) {
        struct report_body b;
        errand_error err;
        mem_fail_after(budget);
        rc = worker_parse_report(body, NOW_MS, &b, &err);
        mem_fail_after(-1);
        if (rc == 0)
            worker_report_clear(&b);
        else
            assert_int_equal(rc, ERRAND_ENOMEM);
        assert_true(budget < 10);
    }
    json_decref(body);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_defaults),
        cmocka_unit_test(claim_values_and_limits),
        cmocka_unit_test(heartbeat_items),
        cmocka_unit_test(report_parses_each_state),
        cmocka_unit_test(report_rejections),
        cmocka_unit_test(report_array_limits),
        cmocka_unit_test(out_of_memory_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
