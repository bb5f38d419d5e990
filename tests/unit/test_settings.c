/* SPDX-License-Identifier: MIT */
/*
 * test_settings.c — configuration: defaults, environment over defaults, flags over the
 * environment, validation messages that name the variable or flag and the bad value,
 * ERRAND_HOME-derived defaults, and `errand config` output (table and JSON).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/settings.h"

#define TEST_HOME "/home/tester"

/* Each test starts from a clean environment: no ERRAND_* and a known HOME. */
static int clean_env(void **state)
{
    (void)state;
    const struct setting_def *t = settings_table();
    for (int i = 0; i < SET_COUNT; i++)
        unsetenv(t[i].env);
    setenv("HOME", TEST_HOME, 1);
    return 0;
}

static void table_has_one_row_per_setting_in_order(void **state)
{
    (void)state;
    const struct setting_def *t = settings_table();
    for (int i = 0; i < SET_COUNT; i++) {
        assert_int_equal(t[i].id, i);
        assert_non_null(t[i].env);
        /* errand's own, or the AWS names every S3 tool reads (the S3 result storage's) */
        assert_true(strncmp(t[i].env, "ERRAND_", 7) == 0 || strncmp(t[i].env, "AWS_", 4) == 0);
        assert_non_null(t[i].flag);
        assert_non_null(t[i].help);
        assert_ptr_equal(settings_find_flag(t[i].flag), &t[i]);
    }
    assert_ptr_equal(settings_find_flag("--port"), &t[SET_SERVER_PORT]);
    assert_ptr_equal(settings_find_flag("database-url"), &t[SET_DATABASE_URL]);
    assert_null(settings_find_flag("no-such-flag"));
    assert_null(settings_find_flag(NULL));
}

static void defaults(void **state)
{
    (void)state;
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_string_equal(settings_str(&s, SET_HOME), TEST_HOME "/.errand");
    assert_string_equal(settings_str(&s, SET_API_URL), "http://127.0.0.1:4200/api");
    assert_string_equal(settings_str(&s, SET_API_KEY), "");
    assert_string_equal(settings_str(&s, SET_SERVER_HOST), "127.0.0.1");
    assert_int_equal(settings_int(&s, SET_SERVER_PORT), 4200);
    assert_string_equal(settings_str(&s, SET_DATABASE_URL),
                        "sqlite://" TEST_HOME "/.errand/errand.db");
    assert_string_equal(settings_str(&s, SET_DATABASE_SYNC), "full");
    assert_string_equal(settings_str(&s, SET_LOCAL_STORAGE_PATH), TEST_HOME "/.errand/storage");
    assert_false(settings_bool(&s, SET_RESULTS_PERSIST));
    assert_false(settings_bool(&s, SET_LOG_PRINTS));
    assert_string_equal(settings_str(&s, SET_LOG_LEVEL), "info");
    assert_int_equal(settings_int(&s, SET_LEASE_SECONDS), 30);
    assert_int_equal(settings_int(&s, SET_SWEEP_INTERVAL_MS), 500);
    assert_int_equal(settings_int(&s, SET_MAX_BODY_BYTES), 1048576);
    assert_int_equal(settings_int(&s, SET_MAX_CONNECTIONS), 10000);
    assert_int_equal(settings_int(&s, SET_HANDLER_THREADS), 64);
    assert_int_equal(settings_int(&s, SET_RESULT_INLINE_MAX), 65536);
    assert_int_equal(settings_int(&s, SET_WORKER_CONCURRENCY), 10);
    for (int i = 0; i < SET_COUNT; i++)
        assert_int_equal(s.source[i], SETTING_DEFAULT);
}

static void home_falls_back_to_tmp_without_home(void **state)
{
    (void)state;
    unsetenv("HOME");
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_string_equal(settings_str(&s, SET_HOME), "/tmp/.errand");
    assert_string_equal(settings_str(&s, SET_DATABASE_URL), "sqlite:///tmp/.errand/errand.db");
}

static void environment_overrides_defaults(void **state)
{
    (void)state;
    setenv("ERRAND_SERVER_API_PORT", "0", 1);
    setenv("ERRAND_API_KEY", "s3cret", 1);
    setenv("ERRAND_RESULTS_PERSIST_BY_DEFAULT", "YES", 1);
    setenv("ERRAND_LOGGING_LEVEL", "WARN", 1);
    setenv("ERRAND_DATABASE_SYNC", "Normal", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_int_equal(settings_int(&s, SET_SERVER_PORT), 0);
    assert_int_equal(s.source[SET_SERVER_PORT], SETTING_ENV);
    assert_string_equal(settings_str(&s, SET_API_KEY), "s3cret");
    assert_true(settings_bool(&s, SET_RESULTS_PERSIST));
    assert_string_equal(settings_str(&s, SET_RESULTS_PERSIST), "true");
    assert_string_equal(settings_str(&s, SET_LOG_LEVEL), "warning");
    assert_string_equal(settings_str(&s, SET_DATABASE_SYNC), "normal");
    assert_int_equal(s.source[SET_SERVER_HOST], SETTING_DEFAULT);
}

static void flags_override_environment(void **state)
{
    (void)state;
    setenv("ERRAND_SERVER_API_PORT", "5000", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_int_equal(settings_set(&s, SET_SERVER_PORT, "6000", SETTING_FLAG, &err), 0);
    assert_int_equal(settings_int(&s, SET_SERVER_PORT), 6000);
    assert_string_equal(settings_str(&s, SET_SERVER_PORT), "6000");
    assert_int_equal(s.source[SET_SERVER_PORT], SETTING_FLAG);
}

static void errand_home_moves_dependent_defaults(void **state)
{
    (void)state;
    setenv("ERRAND_HOME", "/srv/errand", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_string_equal(settings_str(&s, SET_DATABASE_URL), "sqlite:///srv/errand/errand.db");
    assert_string_equal(settings_str(&s, SET_LOCAL_STORAGE_PATH), "/srv/errand/storage");
    assert_int_equal(s.source[SET_DATABASE_URL], SETTING_DEFAULT);

    /* --home later moves them again ... */
    assert_int_equal(settings_set(&s, SET_HOME, "/data/e", SETTING_FLAG, &err), 0);
    assert_string_equal(settings_str(&s, SET_DATABASE_URL), "sqlite:///data/e/errand.db");
    assert_string_equal(settings_str(&s, SET_LOCAL_STORAGE_PATH), "/data/e/storage");

    /* ... but never one that was set itself. */
    assert_int_equal(settings_set(&s, SET_DATABASE_URL, "sqlite:///x.db", SETTING_FLAG, &err), 0);
    assert_int_equal(settings_set(&s, SET_HOME, "/other", SETTING_FLAG, &err), 0);
    assert_string_equal(settings_str(&s, SET_DATABASE_URL), "sqlite:///x.db");
    assert_string_equal(settings_str(&s, SET_LOCAL_STORAGE_PATH), "/other/storage");
}

static void env_set_dependents_do_not_follow_home(void **state)
{
    (void)state;
    setenv("ERRAND_HOME", "/srv/errand", 1);
    setenv("ERRAND_LOCAL_STORAGE_PATH", "/mnt/results", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_string_equal(settings_str(&s, SET_LOCAL_STORAGE_PATH), "/mnt/results");
    assert_string_equal(settings_str(&s, SET_DATABASE_URL), "sqlite:///srv/errand/errand.db");
}

static void bad_env_value_names_the_variable(void **state)
{
    (void)state;
    struct settings s;
    errand_error err;
    setenv("ERRAND_SERVER_API_PORT", "abc", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_string_equal(err.message,
                        "ERRAND_SERVER_API_PORT must be an integer between 0 and 65535, got 'abc'");
    assert_string_equal(err.field, "ERRAND_SERVER_API_PORT");

    const char *bad_ports[] = {"65536", "-1", "", "12x", " 80", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        setenv("ERRAND_SERVER_API_PORT", bad_ports[i], 1);
        if (settings_load(&s, &err) != ERRAND_EINVAL)
            fail_msg("port '%s' was accepted", bad_ports[i]);
    }
    unsetenv("ERRAND_SERVER_API_PORT");

    setenv("ERRAND_DATABASE_SYNC", "sometimes", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_string_equal(err.message,
                        "ERRAND_DATABASE_SYNC must be one of full, normal, off, got 'sometimes'");
    unsetenv("ERRAND_DATABASE_SYNC");

    const char *bad_pools[] = {"0", "257", "many"};
    for (size_t i = 0; i < sizeof bad_pools / sizeof bad_pools[0]; i++) {
        setenv("ERRAND_DATABASE_POOL_SIZE", bad_pools[i], 1);
        if (settings_load(&s, &err) != ERRAND_EINVAL)
            fail_msg("pool size '%s' was accepted", bad_pools[i]);
        assert_string_equal(err.field, "ERRAND_DATABASE_POOL_SIZE");
    }
    setenv("ERRAND_DATABASE_POOL_SIZE", "256", 1);
    assert_int_equal(settings_load(&s, &err), 0);
    assert_int_equal(settings_int(&s, SET_DATABASE_POOL_SIZE), 256);
    unsetenv("ERRAND_DATABASE_POOL_SIZE");

    setenv("ERRAND_LOGGING_LEVEL", "loud", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "ERRAND_LOGGING_LEVEL must be one of"));
    unsetenv("ERRAND_LOGGING_LEVEL");

    setenv("ERRAND_LOGGING_LOG_PRINTS", "maybe", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "ERRAND_LOGGING_LOG_PRINTS must be true or false"));
    assert_non_null(strstr(err.message, "got 'maybe'"));
    unsetenv("ERRAND_LOGGING_LOG_PRINTS");

    setenv("ERRAND_API_URL", "", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "ERRAND_API_URL must not be empty");
    unsetenv("ERRAND_API_URL");

    setenv("ERRAND_LEASE_SECONDS", "0", 1);
    assert_int_equal(settings_load(&s, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "ERRAND_LEASE_SECONDS");
}

static void bad_flag_value_names_the_flag(void **state)
{
    (void)state;
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_int_equal(settings_set(&s, SET_SERVER_PORT, "abc", SETTING_FLAG, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "--port must be an integer between 0 and 65535, got 'abc'");
    assert_string_equal(err.field, "--port");
    /* A refused value leaves the old one in place. */
    assert_int_equal(settings_int(&s, SET_SERVER_PORT), 4200);
    assert_int_equal(s.source[SET_SERVER_PORT], SETTING_DEFAULT);
    assert_int_equal(settings_set(&s, SET_SERVER_PORT, NULL, SETTING_FLAG, &err), ERRAND_EINVAL);
    assert_string_equal(err.message, "--port needs a value");

    char long_value[SETTINGS_STR_MAX + 10];
    memset(long_value, 'a', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    assert_int_equal(settings_set(&s, SET_API_URL, long_value, SETTING_FLAG, &err), ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "--api-url is too long"));
}

static void parse_bool_spellings(void **state)
{
    (void)state;
    const char *yes[] = {"true", "TRUE", "1", "yes", "On"};
    const char *no[] = {"false", "False", "0", "no", "OFF"};
    for (size_t i = 0; i < 5; i++) {
        bool b = false;
        assert_true(settings_parse_bool(yes[i], &b));
        assert_true(b);
        assert_true(settings_parse_bool(no[i], &b));
        assert_false(b);
    }
    bool b = true;
    assert_false(settings_parse_bool("", &b));
    assert_false(settings_parse_bool("2", &b));
    assert_false(settings_parse_bool("truee", &b));
    assert_false(settings_parse_bool(NULL, &b));
    assert_true(b);
}

/* Runs settings_print into a string (free with free()). */
static char *print_to_string(const struct settings *s, bool as_json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    settings_print(s, f, as_json);
    fclose(f);
    /* A copy: GCC 12 wrongly flags later uses of an open_memstream buffer as dangling. */
    char *copy = strdup(buf);
    free(buf);
    return copy;
}

static void print_table_masks_secrets_and_shows_sources(void **state)
{
    (void)state;
    setenv("ERRAND_API_KEY", "s3cret", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    assert_int_equal(settings_set(&s, SET_SERVER_PORT, "0", SETTING_FLAG, &err), 0);
    char *out = print_to_string(&s, false);
    assert_null(strstr(out, "s3cret"));
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "SOURCE"));
    /* Every line has its columns aligned: VALUE starts at the same offset. */
    const char *value_col = strstr(out, "VALUE");
    size_t value_off = (size_t)(value_col - out);
    char *line = out;
    int rows = 0;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (rows > 0) {
            assert_true(line[value_off - 1] == ' ' && line[value_off - 2] == ' ');
            assert_true(line[value_off] != ' ');
        }
        rows++;
        line = nl ? nl + 1 : NULL;
    }
    assert_int_equal(rows, SET_COUNT + 1);
    char *key_line = strstr(out, "ERRAND_API_KEY ");
    assert_non_null(key_line);
    assert_non_null(strstr(key_line, "****"));
    char *port_line = strstr(out, "ERRAND_SERVER_API_PORT ");
    assert_true(strncmp(strchr(port_line, '\n') - 4, "flag", 4) == 0);
    char *url_line = strstr(out, "ERRAND_API_URL ");
    assert_true(strncmp(strchr(url_line, '\n') - 7, "default", 7) == 0);
    assert_true(strncmp(strchr(key_line, '\n') - 3, "env", 3) == 0);
    free(out);
}

static void print_json_types_values(void **state)
{
    (void)state;
    setenv("ERRAND_API_KEY", "s3cret", 1);
    struct settings s;
    errand_error err;
    assert_int_equal(settings_load(&s, &err), 0);
    char *out = print_to_string(&s, true);
    json_error_t jerr;
    json_t *root = json_loads(out, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), SET_COUNT);
    json_t *port = json_object_get(root, "ERRAND_SERVER_API_PORT");
    assert_true(json_is_integer(json_object_get(port, "value")));
    assert_int_equal(json_integer_value(json_object_get(port, "value")), 4200);
    assert_string_equal(json_string_value(json_object_get(port, "source")), "default");
    json_t *persist = json_object_get(root, "ERRAND_RESULTS_PERSIST_BY_DEFAULT");
    assert_true(json_is_false(json_object_get(persist, "value")));
    json_t *key = json_object_get(root, "ERRAND_API_KEY");
    assert_string_equal(json_string_value(json_object_get(key, "value")), "****");
    assert_string_equal(json_string_value(json_object_get(key, "source")), "env");
    assert_null(strstr(out, "s3cret"));
    json_decref(root);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(table_has_one_row_per_setting_in_order, clean_env),
        cmocka_unit_test_setup(defaults, clean_env),
        cmocka_unit_test_setup(home_falls_back_to_tmp_without_home, clean_env),
        cmocka_unit_test_setup(environment_overrides_defaults, clean_env),
        cmocka_unit_test_setup(flags_override_environment, clean_env),
        cmocka_unit_test_setup(errand_home_moves_dependent_defaults, clean_env),
        cmocka_unit_test_setup(env_set_dependents_do_not_follow_home, clean_env),
        cmocka_unit_test_setup(bad_env_value_names_the_variable, clean_env),
        cmocka_unit_test_setup(bad_flag_value_names_the_flag, clean_env),
        cmocka_unit_test_setup(parse_bool_spellings, clean_env),
        cmocka_unit_test_setup(print_table_masks_secrets_and_shows_sources, clean_env),
        cmocka_unit_test_setup(print_json_types_values, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
