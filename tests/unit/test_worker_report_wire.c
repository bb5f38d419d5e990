/* SPDX-License-Identifier: MIT */
/*
 * test_worker_report_wire.c — the worker's side of the wire protocol: claim answers parsed
 * into runs, the stop and outcome flags of a run, report and heartbeat bodies (what each
 * state carries, dead and hold items skipped, long or non-UTF-8 text made safe) and reading
 * the per-item answers back, plus splitting output into lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "worker/line_buffer.h"
#include "worker/poller.h"
#include "worker/report_wire.h"
#include "worker/wrun.h"

#define ID1 "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"
#define ID2 "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b22"

static const char *CLAIM =
    "{\"runs\": [{\"id\": \"" ID1 "\", \"task\": \"t\", \"parameters\": {\"a\": 1},"
    " \"attempt\": 2, \"max_attempts\": 3, \"lease_token\": \"tok1\", \"lease_expires\": \"x\","
    " \"timeout_seconds\": 1.5, \"persist_result\": true, \"cache_key\": null},"
    " {\"id\": \"" ID2 "\", \"task\": \"u\", \"parameters\": {}, \"attempt\": 1,"
    " \"max_attempts\": 1, \"lease_token\": \"tok2\", \"timeout_seconds\": null,"
    " \"persist_result\": null}], \"lease_seconds\": 12}";

static void claim_answer_becomes_runs(void **state)
{
    (void)state;
    struct wrun **runs = NULL;
    size_t n = 0;
    int lease = 0;
    errand_error err;
    assert_int_equal(poller_parse_claim(CLAIM, &runs, &n, &lease, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lease, 12);
    assert_string_equal(runs[0]->id, ID1);
    assert_string_equal(runs[0]->task, "t");
    assert_string_equal(runs[0]->lease_token, "tok1");
    assert_string_equal(runs[0]->params, "{\"a\":1}");
    assert_int_equal(runs[0]->attempt, 2);
    assert_int_equal(runs[0]->max_attempts, 3);
    assert_true(runs[0]->timeout_seconds == 1.5);
    assert_int_equal(runs[0]->persist_result, 1);
    assert_true(runs[1]->timeout_seconds == 0);
    assert_int_equal(runs[1]->persist_result, -1);
    for (size_t i = 0; i < n; i++)
        wrun_unref(runs[i]);
    mem_free(runs);

    assert_int_equal(poller_parse_claim("{\"runs\": [{\"id\": \"x\", \"task\": \"t\"}]}", &runs, &n,
                                        &lease, &err),
                     ERRAND_ESERVER);
    assert_string_equal(err.field, "lease_token");
    assert_int_equal(poller_parse_claim("{}", &runs, &n, &lease, &err), ERRAND_ESERVER);
    assert_int_equal(poller_parse_claim("nope", &runs, &n, &lease, &err), ERRAND_ESERVER);
    assert_null(runs);
}

static struct wrun *one_run(const char *id, const char *token)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"id\":\"%s\",\"task\":\"t\",\"lease_token\":\"%s\",\"parameters\":{}}", id, token);
    json_t *v = json_loads(text, 0, NULL);
    struct wrun *r = NULL;
    errand_error err;
    assert_int_equal(wrun_from_claim(v, &r, &err), 0);
    json_decref(v);
    return r;
}

static void first_stop_reason_wins_and_outcome_is_taken_once(void **state)
{
    (void)state;
    struct wrun *r = one_run(ID1, "tok");
    assert_int_equal(wrun_stop_reason(r), STOP_NONE);
    assert_true(wrun_request_stop(r, STOP_CANCEL));
    assert_false(wrun_request_stop(r, STOP_TIMEOUT));
    assert_int_equal(wrun_stop_reason(r), STOP_CANCEL);
    assert_true(wrun_take_outcome(r));
    assert_false(wrun_take_outcome(r));
    wrun_unref(r);
}

static void report_body_carries_what_each_state_needs(void **state)
{
    (void)state;
    struct wrun *a = one_run(ID1, "tok1");
    struct wrun *b = one_run(ID2, "tok2");
    struct report_item *running =
        report_item_state(a, ERRAND_STATE_RUNNING, NULL, true, NULL, NULL);
    struct report_item *dead = report_item_state(b, ERRAND_STATE_RUNNING, NULL, false, NULL, NULL);
    dead->dead = true;
    struct report_item *hold = report_item_hold(b);
    struct report_item *done = report_item_state(a, ERRAND_STATE_COMPLETED, NULL, false,
                                                 json_pack("{s:i}", "x", 1), "local:///r.json");
    struct report_item *failed =
        report_item_state(b, ERRAND_STATE_FAILED, "boom", false, NULL, NULL);
    struct report_item *log = report_item_log(ID1, 1795947919123LL, ERRAND_LOG_WARNING, "hi");
    running->next = dead;
    dead->next = hold;
    hold->next = done;
    done->next = failed;
    failed->next = log;
    char *body = report_body("w1", "b-1", running);
    assert_non_null(body);
    json_t *v = json_loads(body, 0, NULL);
    char *canon = json_canonical(v);
    assert_string_equal(
        canon,
        "{\"batch_id\":\"b-1\",\"logs\":[{\"id\":\"" ID1
        "\",\"level\":\"warning\",\"message\":\"hi\",\"timestamp\":"
        "\"2026-11-29T10:25:19.123Z\"}],\"reports\":["
        "{\"id\":\"" ID1 "\",\"lease_token\":\"tok1\",\"state\":\"RUNNING\"},"
        "{\"id\":\"" ID1 "\",\"lease_token\":\"tok1\",\"result\":{\"x\":1},\"result_ref\":"
        "\"local:///r.json\",\"state\":\"COMPLETED\"},"
        "{\"id\":\"" ID2 "\",\"lease_token\":\"tok2\",\"message\":\"boom\",\"retryable\":false,"
        "\"state\":\"FAILED\"}],\"worker\":\"w1\"}");
    mem_free(canon);
    json_decref(v);
    mem_free(body);

    /* a 409's answers are matched in order over the live reports */
    report_read_answer(running, 409,
                       "{\"reports\":[{\"id\":\"" ID1 "\",\"status\":200},"
                       "{\"id\":\"" ID1 "\",\"status\":409},"
                       "{\"id\":\"" ID2 "\",\"status\":200}]}");
    assert_int_equal(running->answer, 200);
    assert_int_equal(dead->answer, 0);
    assert_int_equal(done->answer, 409);
    assert_int_equal(failed->answer, 200);

    /* a 200 applied every item: its body is not read (not even when it says otherwise) */
    running->answer = done->answer = failed->answer = 0;
    report_read_answer(running, 200, "{\"reports\":[]}");
    assert_int_equal(running->answer, 200);
    assert_int_equal(dead->answer, 0);
    assert_int_equal(done->answer, 200);
    assert_int_equal(failed->answer, 200);
    assert_int_equal(hold->answer, 0);
    report_items_free(running);
    wrun_unref(a);
    wrun_unref(b);
}

static void text_is_bounded_and_made_valid(void **state)
{
    (void)state;
    char long_text[REPORT_LOG_MESSAGE_MAX * 2];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    struct report_item *log = report_item_log(ID1, 0, ERRAND_LOG_DEBUG, long_text);
    assert_int_equal(strlen(log->text), REPORT_LOG_MESSAGE_MAX);
    assert_string_equal(log->text + REPORT_LOG_MESSAGE_MAX - 3, "...");
    struct report_item *bad = report_item_log(ID1, 0, ERRAND_LOG_ERROR, "caf\xe9 \xff!");
    log->next = bad;
    char *body = report_body("w", NULL, log);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"caf? ?!\""));
    assert_non_null(strstr(body, "\"level\":\"debug\""));
    assert_non_null(strstr(body, "\"level\":\"error\""));
    mem_free(body);
    report_items_free(log);
    assert_string_equal(report_level_name(ERRAND_LOG_INFO), "info");
    assert_string_equal(report_level_name(25), "info");
    assert_string_equal(report_level_name(5), "debug");
}

static void heartbeat_body_and_answer(void **state)
{
    (void)state;
    struct wrun *runs[2] = {one_run(ID1, "tok1"), one_run(ID2, "tok2")};
    char *body = heartbeat_body("w", runs, 2, 30);
    assert_string_equal(body, "{\"worker\":\"w\",\"leases\":[{\"id\":\"" ID1 "\",\"lease_token\":"
                              "\"tok1\"},{\"id\":\"" ID2 "\",\"lease_token\":\"tok2\"}],"
                              "\"lease_seconds\":30}");
    mem_free(body);
    body = heartbeat_body("w", runs, 1, 0);
    assert_null(strstr(body, "lease_seconds"));
    mem_free(body);
    /* A run that waited says whether it waits now (its limit slot goes back meanwhile). */
    atomic_store(&runs[0]->waiting, WRUN_WAITING);
    atomic_store(&runs[1]->waiting, WRUN_RESUMED);
    body = heartbeat_body("w", runs, 2, 0);
    assert_string_equal(body, "{\"worker\":\"w\",\"leases\":[{\"id\":\"" ID1 "\",\"lease_token\":"
                              "\"tok1\",\"waiting\":true},{\"id\":\"" ID2 "\",\"lease_token\":"
                              "\"tok2\",\"waiting\":false}]}");
    mem_free(body);
    int status[2];
    bool cancel[2];
    /* out of order: matched by id */
    heartbeat_read_answer("{\"leases\":[{\"id\":\"" ID2 "\",\"status\":409,\"cancel\":false},"
                          "{\"id\":\"" ID1 "\",\"status\":200,\"cancel\":true}]}",
                          runs, 2, status, cancel);
    assert_int_equal(status[0], 200);
    assert_true(cancel[0]);
    assert_int_equal(status[1], 409);
    assert_false(cancel[1]);
    heartbeat_read_answer("garbage", runs, 2, status, cancel);
    assert_int_equal(status[0], 0);
    assert_false(cancel[1]);
    wrun_unref(runs[0]);
    wrun_unref(runs[1]);
}

struct lines {
    char got[8][LINE_BUFFER_MAX];
    size_t lens[8];
    int n;
};

static void collect(void *ctx, const char *line, size_t len)
{
    struct lines *l = ctx;
    if (l->n < 8) {
        memcpy(l->got[l->n], line, len + 1);
        l->lens[l->n++] = len;
    }
}

static void output_is_split_into_lines(void **state)
{
    (void)state;
    static struct line_buffer lb;
    static struct lines l;
    lb.len = 0;
    line_buffer_feed(&lb, "one\r\ntw", 7, collect, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.got[0], "one");
    line_buffer_feed(&lb, "o\n\nthree", 8, collect, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.got[1], "two");
    assert_string_equal(l.got[2], "");
    line_buffer_flush(&lb, collect, &l);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.got[3], "three");
    line_buffer_flush(&lb, collect, &l);
    assert_int_equal(l.n, 4);
    /* a line longer than the buffer comes in pieces */
    static char big[LINE_BUFFER_MAX + 10];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    line_buffer_feed(&lb, big, sizeof big, collect, &l);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.lens[4], LINE_BUFFER_MAX - 1);
    assert_int_equal(l.lens[5], sizeof big - 1 - (LINE_BUFFER_MAX - 1));
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_answer_becomes_runs),
        cmocka_unit_test(first_stop_reason_wins_and_outcome_is_taken_once),
        cmocka_unit_test(report_body_carries_what_each_state_needs),
        cmocka_unit_test(text_is_bounded_and_made_valid),
        cmocka_unit_test(heartbeat_body_and_answer),
        cmocka_unit_test(output_is_split_into_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
