/* SPDX-License-Identifier: MIT */
/*
 * test_s3_location.c — reading ERRAND_RESULT_STORAGE=s3://bucket/prefix and its settings
 * (core/s3.h): bucket and prefix, the endpoint's default and trailing slashes, the keys and
 * references of results; every malformed part refused naming its setting. (The calls
 * themselves are tested against a real S3-protocol server in tests/e2e/test_s3.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/mem.h"
#include "client/s3.h"

#define RUN_ID "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"

static void a_location_is_read_whole(void **state)
{
    (void)state;
    struct s3_location loc;
    errand_error err;
    assert_int_equal(s3_location_init(&loc, "s3://my-results.eu/app/runs/",
                                      "http://127.0.0.1:9000/", "eu-west-1", "AKID", "SECRET",
                                      &err),
                     0);
    assert_string_equal(loc.bucket, "my-results.eu");
    assert_string_equal(loc.prefix, "app/runs");
    assert_string_equal(loc.endpoint, "http://127.0.0.1:9000");
    assert_string_equal(loc.region, "eu-west-1");
    char *key = s3_result_key(&loc, RUN_ID), *ref = s3_ref(&loc, key);
    assert_string_equal(key, "app/runs/" RUN_ID ".json");
    assert_string_equal(ref, "s3://my-results.eu/app/runs/" RUN_ID ".json");
    mem_free(key);
    mem_free(ref);
    s3_location_clear(&loc);
    assert_null(loc.bucket);

    /* No prefix; the region's AWS endpoint when none is given. */
    assert_int_equal(s3_location_init(&loc, "s3://bucket", NULL, NULL, "AKID", "SECRET", &err), 0);
    assert_string_equal(loc.prefix, "");
    assert_string_equal(loc.region, "us-east-1");
    assert_string_equal(loc.endpoint, "https://s3.us-east-1.amazonaws.com");
    key = s3_result_key(&loc, RUN_ID);
    assert_string_equal(key, RUN_ID ".json");
    mem_free(key);
    s3_location_clear(&loc);
}

static void malformed_parts_are_refused_by_name(void **state)
{
    (void)state;
    struct {
        const char *url, *endpoint, *region, *key_id, *secret, *field, *words;
    } bad[] = {
        {"local", NULL, NULL, "a", "b", "result_storage", "not an s3://bucket/prefix URL"},
        {"s3://", NULL, NULL, "a", "b", "result_storage", "must name a bucket"},
        {"s3://ab/x", NULL, NULL, "a", "b", "result_storage", "must name a bucket"},
        {"s3://Upper/x", NULL, NULL, "a", "b", "result_storage", "must name a bucket"},
        {"s3://b_b/x", NULL, NULL, "a", "b", "result_storage", "must name a bucket"},
        {"s3://bucket/a//b", NULL, NULL, "a", "b", "result_storage", "prefix"},
        {"s3://bucket/a/../b", NULL, NULL, "a", "b", "result_storage", "prefix"},
        {"s3://bucket/a b", NULL, NULL, "a", "b", "result_storage", "prefix"},
        {"s3://bucket/a%2f", NULL, NULL, "a", "b", "result_storage", "prefix"},
        {"s3://bucket/x", "ftp://h", NULL, "a", "b", "s3_endpoint_url", "http://"},
        {"s3://bucket/x", NULL, "EU West", "a", "b", "aws_region", "region"},
        {"s3://bucket/x", NULL, NULL, "", "b", "aws_access_key_id", "AWS_ACCESS_KEY_ID"},
        {"s3://bucket/x", NULL, NULL, "a", NULL, "aws_access_key_id", "AWS_SECRET_ACCESS_KEY"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct s3_location loc;
        errand_error err;
        assert_int_equal(s3_location_init(&loc, bad[i].url, bad[i].endpoint, bad[i].region,
                                          bad[i].key_id, bad[i].secret, &err),
                         ERRAND_EINVAL);
        assert_string_equal(err.field, bad[i].field);
        if (!strstr(err.message, bad[i].words))
            fail_msg("%s: '%s' does not say '%s'", bad[i].url, err.message, bad[i].words);
        assert_null(loc.bucket);
    }
    assert_true(s3_is_url("s3://b"));
    assert_false(s3_is_url("S3://b"));
    assert_false(s3_is_url(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_location_is_read_whole),
        cmocka_unit_test(malformed_parts_are_refused_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
