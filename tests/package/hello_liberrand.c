/* SPDX-License-Identifier: MIT */
/*
 * hello_liberrand.c — the program the package test (tests/package/run.sh) builds against the
 * installed liberrand-dev, with `pkg-config --cflags --libs errand` (and once more against
 * the static library): it prints liberrand's version, submits a run of errand.noop to the
 * server of ERRAND_API_URL, waits for it and prints its state and result:
 *   liberrand 0.1.0
 *   Completed {"from":"hello_liberrand"}
 * Exits 1, saying why, when any call fails.
 */
#include <errand/errand.h>
#include <stdio.h>

static int fail(const char *what, const errand_error *err)
{
    fprintf(stderr, "hello_liberrand: %s: %s\n", what, err->message);
    return 1;
}

int main(void)
{
    errand_error err = {0};
    errand_client *client = NULL;
    errand_run *run = NULL, *done = NULL;
    char *result = NULL;
    int rc = 1;

    printf("liberrand %s\n", errand_version());
    if (errand_client_new(NULL, &client, &err) != 0)
        return fail("client", &err);
    if (errand_submit(client, "errand.noop", "{\"from\": \"hello_liberrand\"}", NULL, &run, &err))
        rc = fail("submit", &err);
    else if (errand_wait(client, errand_run_id(run), 30, &done, &err))
        rc = fail("wait", &err);
    else if (errand_result(client, done, &result, &err))
        rc = fail("result", &err);
    else {
        printf("%s %s\n", errand_run_state_name(done), result);
        rc = 0;
    }
    errand_free(result);
    errand_run_free(done);
    errand_run_free(run);
    errand_client_free(client);
    return rc;
}
