/* SPDX-License-Identifier: MIT */
/*
 * test_client_errors.c — how the client turns answers into public codes (HTTP status
 * mapping, the server's message and field copied), an unreachable server named in the
 * message, bad client options, and errand_result() on every kind of run: inline result,
 * persisted result (local:// and plain paths, and the fallback to the client's own storage
 * path), failed, cancelled and unfinished runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "refusing_port.h"

#include "client/http.h"
#include "client/run.h"
#include "core/mem.h"

/* errand_error_from_response() is the public face of the client's own status mapping. */
static void statuses_map_to_public_codes(void **state)
{
    (void)state;
    errand_error err;
    const char *body = "{\"error\": {\"code\": \"invalid_field\", \"message\": \"field 'priority' "
                       "must be an integer, got string\", \"field\": \"priority\"}}";
    assert_int_equal(errand_error_from_response(400, body, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "field 'priority' must be an integer, got string");
    assert_string_equal(err.field, "priority");
    assert_int_equal(err.http_status, 400);
    assert_int_equal(err.code, ERRAND_EINVAL);

    struct {
        int status;
        int code;
    } cases[] = {{401, ERRAND_EAUTH},   {404, ERRAND_ENOTFOUND},    {409, ERRAND_ECONFLICT},
                 {413, ERRAND_ETOOBIG}, {503, ERRAND_EUNAVAILABLE}, {500, ERRAND_ESERVER},
                 {502, ERRAND_ESERVER}, {405, ERRAND_EINVAL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(errand_error_from_response(cases[i].status, "not json", &err),
                         cases[i].code);
        assert_int_equal(err.http_status, cases[i].status);
        assert_string_equal(err.field, "");
        assert_non_null(strstr(err.message, "HTTP"));
    }
    assert_int_equal(errand_error_from_response(404,
                                                "{\"error\":{\"code\":\"not_found\",\"message\":"
                                                "\"no task run abc\"}}",
                                                &err),
                     ERRAND_ENOTFOUND);
    assert_string_equal(err.message, "no task run abc");
}

static void unreachable_server_is_named_in_the_message(void **state)
{
    (void)state;
    char url[64];
    int fd = refusing_port(url, sizeof url);

    errand_client_options opt = {.api_url = url, .api_key = "", .local_storage_path = "/tmp"};
    errand_client *c = NULL;
    errand_error err;
    assert_int_equal(errand_client_new(&opt, &c, &err), 0);
    errand_run *r = NULL;
    assert_int_equal(errand_get(c, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &r, &err),
                     ERRAND_EUNAVAILABLE);
    assert_null(r);
    char expected[128];
    snprintf(expected, sizeof expected, "cannot reach errand server at %s: Connection refused",
             url);
    assert_string_equal(err.message, expected);
    int status = -1;
    char *resp = (char *)"x";
    assert_int_equal(errand_request(c, "GET", "/health", NULL, &status, &resp, &err),
                     ERRAND_EUNAVAILABLE);
    assert_int_equal(status, 0);
    assert_null(resp);
    assert_int_equal(errand_request(c, "BREW", "/health", NULL, &status, &resp, &err),
                     ERRAND_EINVAL);
    assert_string_equal(err.field, "method");
    errand_client_free(c);
    close(fd);
}

static void bad_client_options_are_refused(void **state)
{
    (void)state;
    errand_client *c = (errand_client *)1;
    errand_error err;
    errand_client_options opt = {.api_url = "ftp://x", .api_key = "", .local_storage_path = ""};
    assert_int_equal(errand_client_new(&opt, &c, &err), ERRAND_EINVAL);
    assert_null(c);
    assert_string_equal(err.field, "api_url");
    opt.api_url = "http://127.0.0.1:1/api";
    opt.timeout_ms = -5;
    assert_int_equal(errand_client_new(&opt, &c, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "timeout_ms");
}

/* A run snapshot from JSON text. */
static errand_run *run_of(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    errand_run *r = NULL;
    errand_error err;
    assert_int_equal(run_wrap(v, &r, &err), 0);
    json_decref(v);
    return r;
}

static errand_client *offline_client(const char *storage)
{
    errand_client_options opt = {
        .api_url = "http://127.0.0.1:1/api", .api_key = "", .local_storage_path = storage};
    errand_client *c = NULL;
    errand_error err;
    assert_int_equal(errand_client_new(&opt, &c, &err), 0);
    return c;
}

#define RUN_ID "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"
#define RUN_HEAD "{\"id\":\"" RUN_ID "\",\"task\":\"t\",\"attempt\":2,"

static void result_comes_inline_or_from_the_server(void **state)
{
    (void)state;
    char dir[] = "/tmp/errand-test-result-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/%s.json", dir, RUN_ID);
    FILE *f = fopen(path, "w");
    fputs("{ \"big\" : [1, 2] }\n", f);
    fclose(f);
    errand_client *c = offline_client(dir);
    errand_error err;
    char *res = NULL;

    errand_run *r = run_of(RUN_HEAD "\"state\":{\"type\":\"COMPLETED\",\"name\":\"Cached\","
                                    "\"message\":\"\"},\"result\":{\"answer\":42}}");
    assert_string_equal(errand_run_id(r), RUN_ID);
    assert_string_equal(errand_run_task(r), "t");
    assert_int_equal(errand_run_attempt(r), 2);
    assert_string_equal(errand_run_state_name(r), "Cached");
    assert_int_equal(errand_run_state(r), ERRAND_STATE_COMPLETED);
    assert_int_equal(errand_result(c, r, &res, &err), 0);
    assert_string_equal(res, "{\"answer\":42}");
    errand_free(res);
    errand_run_free(r);

    /* A persisted result is read from the server, never from the file the run names, even
       when that file is right here: this client has no server, so it fails. */
    char text[512];
    snprintf(text, sizeof text,
             RUN_HEAD "\"state\":{\"type\":\"COMPLETED\",\"name\":\"Completed\"},"
                      "\"result\":null,\"result_ref\":\"local://%s\"}",
             path);
    r = run_of(text);
    assert_int_equal(errand_result(c, r, &res, &err), ERRAND_EUNAVAILABLE);
    assert_null(res);
    errand_run_free(r);
    /* completed without any result: JSON null */
    r = run_of(RUN_HEAD "\"state\":{\"type\":\"COMPLETED\"}}");
    assert_int_equal(errand_result(c, r, &res, &err), 0);
    assert_string_equal(res, "null");
    errand_free(res);
    errand_run_free(r);

    unlink(path);
    rmdir(dir);
    errand_client_free(c);
}

static void result_of_unsuccessful_runs_says_why(void **state)
{
    (void)state;
    errand_client *c = offline_client("");
    errand_error err;
    char *res = (char *)"x";
    errand_run *r = run_of(RUN_HEAD "\"state\":{\"type\":\"FAILED\",\"message\":\"boom\"}}");
    assert_int_equal(errand_result(c, r, &res, &err), ERRAND_EFAILED);
    assert_null(res);
    assert_string_equal(err.message, "boom");
    errand_run_free(r);
    r = run_of(RUN_HEAD "\"state\":{\"type\":\"CRASHED\",\"message\":\"lease expired\"}}");
    assert_int_equal(errand_result(c, r, &res, &err), ERRAND_EFAILED);
    errand_run_free(r);
    r = run_of(RUN_HEAD "\"state\":{\"type\":\"CANCELLED\"}}");
    assert_int_equal(errand_result(c, r, &res, &err), ERRAND_ECANCELLED);
    errand_run_free(r);
    r = run_of(RUN_HEAD "\"state\":{\"type\":\"RUNNING\",\"name\":\"Running\"}}");
    assert_int_equal(errand_result(c, r, &res, &err), ERRAND_ECONFLICT);
    assert_non_null(strstr(err.message, "Running"));
    errand_run_free(r);

    json_t *bad = json_loads("{\"id\":\"x\",\"state\":{\"type\":\"NOPE\"}}", 0, NULL);
    assert_int_equal(run_wrap(bad, &r, &err), ERRAND_ESERVER);
    assert_null(r);
    json_decref(bad);
    errand_client_free(c);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(statuses_map_to_public_codes),
        cmocka_unit_test(unreachable_server_is_named_in_the_message),
        cmocka_unit_test(bad_client_options_are_refused),
        cmocka_unit_test(result_comes_inline_or_from_the_server),
        cmocka_unit_test(result_of_unsuccessful_runs_says_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
