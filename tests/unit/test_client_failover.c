/* SPDX-License-Identifier: MIT */
/*
 * test_client_failover.c — ERRAND_API_URL as a comma-separated list of servers, through the
 * public API against a real errand server (live_server.h) and a loopback port that refuses
 * connections: whichever server a client or a worker starts at (drawn at random), requests
 * reach the one that answers; a list of dead servers fails naming one; malformed lists are
 * refused naming api_url.
 */
#include "live_server.h"
#include "refusing_port.h"

#include "errand/errand.h"

#define WAIT_FINAL_S 30.0
#define CLIENTS 24 /* each starts at a server drawn at random: both orders come up */

static errand_client *client_for(const char *urls)
{
    errand_client_options opt = {.api_url = urls, .api_key = "", .local_storage_path = "/tmp"};
    errand_client *c = NULL;
    errand_error err;
    if (errand_client_new(&opt, &c, &err) != 0)
        fail_msg("errand_client_new(%s): %s", urls, err.message);
    return c;
}

static int task_double(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)ud;
    json_t *p = json_loads(params, 0, NULL);
    long long n = json_integer_value(json_object_get(p, "n"));
    json_decref(p);
    char *r = malloc(64);
    snprintf(r, 64, "{\"doubled\": %lld}", 2 * n);
    *result = r;
    return 0;
}

static void requests_reach_the_server_that_answers(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    char dead[64], lists[3][256];
    int fd = refusing_port(dead, sizeof dead);
    snprintf(lists[0], sizeof lists[0], "%s,%s", dead, ls.api_url);
    snprintf(lists[1], sizeof lists[1], "%s,%s", ls.api_url, dead);
    snprintf(lists[2], sizeof lists[2], " %s/ ,\t%s/", dead, ls.api_url); /* spaces, slashes */
    for (int i = 0; i < CLIENTS; i++) {
        errand_client *c = client_for(lists[i % 3]);
        errand_run *run = NULL, *again = NULL;
        errand_error err;
        /* A first request that nothing retries: it goes on to the next server at once when
           the first one refuses the connection. Not found = the live server answered. */
        assert_int_equal(errand_get(c, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &again, &err),
                         ERRAND_ENOTFOUND);
        if (errand_submit(c, "failover.seen", "{}", NULL, &run, &err) != 0)
            fail_msg("submit through %s: %s", lists[i % 3], err.message);
        assert_int_equal(errand_get(c, errand_run_id(run), &again, &err), 0);
        assert_string_equal(errand_run_id(again), errand_run_id(run));
        errand_run_free(run);
        errand_run_free(again);
        errand_client_free(c);
    }

    /* A worker given the list claims and reports through the live server too. */
    errand_worker_options wopt = {.api_url = lists[0], .api_key = ""};
    struct served s = {0};
    errand_error err;
    assert_int_equal(errand_worker_new(&wopt, &s.w, &err), 0);
    errand_task_def def = {.name = "failover.double", .fn = task_double};
    assert_int_equal(errand_worker_add_task(s.w, &def, &err), 0);
    served_start(&s);
    errand_client *c = client_for(lists[1]);
    errand_run *run = NULL, *done = NULL;
    assert_int_equal(errand_submit(c, "failover.double", "{\"n\": 21}", NULL, &run, &err), 0);
    if (errand_wait(c, errand_run_id(run), WAIT_FINAL_S, &done, &err) != 0)
        fail_msg("waiting: %s", err.message);
    assert_int_equal(errand_run_state(done), ERRAND_STATE_COMPLETED);
    char *result = NULL;
    assert_int_equal(errand_result(c, done, &result, &err), 0);
    assert_string_equal(result, "{\"doubled\":42}");
    errand_free(result);
    errand_run_free(run);
    errand_run_free(done);
    errand_client_free(c);
    served_stop(&s);
    live_stop(&ls);
    close(fd);
}

static void a_list_of_dead_servers_fails_naming_one(void **state)
{
    (void)state;
    char a[64], b[64], list[160];
    int fa = refusing_port(a, sizeof a), fb = refusing_port(b, sizeof b);
    snprintf(list, sizeof list, "%s,%s", a, b);
    errand_client *c = client_for(list);
    errand_run *r = NULL;
    errand_error err;
    assert_int_equal(errand_get(c, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &r, &err),
                     ERRAND_EUNAVAILABLE);
    assert_null(r);
    assert_non_null(strstr(err.message, "cannot reach errand server at http://127.0.0.1:"));
    assert_non_null(strstr(err.message, "Connection refused"));
    errand_client_free(c);
    close(fa);
    close(fb);
}

static void malformed_lists_are_refused(void **state)
{
    (void)state;
    char many[2048] = "";
    for (int i = 0; i < 17; i++) /* one more than HTTP_MAX_SERVERS */
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shttp://127.0.0.1:%d/api",
                 i ? "," : "", 4200 + i);
    const char *bad[] = {"http://a:1/api,,http://b:1/api",
                         "http://a:1/api,ftp://b:1/api",
                         ",",
                         "http://a:1/api, ",
                         "http://",
                         many};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errand_client_options opt = {.api_url = bad[i], .api_key = "", .local_storage_path = ""};
        errand_client *c = (errand_client *)1;
        errand_error err;
        assert_int_equal(errand_client_new(&opt, &c, &err), ERRAND_EINVAL);
        assert_null(c);
        assert_string_equal(err.field, "api_url");
        errand_worker_options wopt = {.api_url = bad[i], .api_key = ""};
        errand_worker *w = (errand_worker *)1;
        assert_int_equal(errand_worker_new(&wopt, &w, &err), ERRAND_EINVAL);
        assert_null(w);
        assert_string_equal(err.field, "api_url");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(requests_reach_the_server_that_answers, setup, teardown),
        cmocka_unit_test(a_list_of_dead_servers_fails_naming_one),
        cmocka_unit_test(malformed_lists_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
