/* SPDX-License-Identifier: MIT */
/*
 * test_error_log.c — error.c (error_set/clear, wire code names and HTTP statuses of
 * docs/api.md, errand_strerror, errand_version) and log.c (logfmt line shape, quoting,
 * level filter, one line per event even for huge messages) and its JSON form (log_json.c:
 * every line one valid JSON object, typed members, cut at a member when too long).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/error.h"
#include "core/log.h"

#define CAPTURE_MAX 65536

static void error_set_fills_and_returns_code(void **state)
{
    (void)state;
    errand_error err;
    memset(&err, 0x55, sizeof err);
    assert_int_equal(error_set(&err, ERRAND_EINVAL, "priority", "bad %s %d", "value", 3),
                     ERRAND_EINVAL);
    assert_int_equal(err.code, ERRAND_EINVAL);
    assert_int_equal(err.http_status, 0);
    assert_string_equal(err.field, "priority");
    assert_string_equal(err.message, "bad value 3");
    error_set(&err, ERRAND_ENOTFOUND, NULL, NULL);
    assert_string_equal(err.field, "");
    assert_string_equal(err.message, "not found");
    assert_int_equal(error_set(NULL, ERRAND_EIO, NULL, "x"), ERRAND_EIO);
    /* Arguments may point into err itself. */
    error_set(&err, ERRAND_EINVAL, "f", "first");
    error_set(&err, ERRAND_EIO, err.field, "again: %s", err.message);
    assert_string_equal(err.message, "again: first");
    assert_string_equal(err.field, "f");
    error_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.message, "");
    assert_string_equal(err.field, "");
    error_clear(NULL);
}

static void error_set_truncates_safely(void **state)
{
    (void)state;
    errand_error err;
    char big[2 * ERRAND_ERROR_MESSAGE_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    error_set(&err, ERRAND_EINVAL, big, "%s", big);
    assert_int_equal(strlen(err.message), ERRAND_ERROR_MESSAGE_MAX - 1);
    assert_int_equal(strlen(err.field), ERRAND_ERROR_FIELD_MAX - 1);
}

static void codes_map_to_wire_names_and_statuses(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
        int status;
    } rows[] = {
        {ERRAND_EINVAL, "invalid_field", 400},
        {ERR_INVALID_JSON, "invalid_json", 400},
        {ERR_MISSING_FIELD, "missing_field", 400},
        {ERR_UNKNOWN_FIELD, "unknown_field", 400},
        {ERR_INVALID_PARAMETER, "invalid_parameter", 400},
        {ERRAND_EAUTH, "unauthorized", 401},
        {ERR_UNAUTHORIZED, "unauthorized", 401},
        {ERRAND_ENOTFOUND, "not_found", 404},
        {ERR_METHOD, "method_not_allowed", 405},
        {ERRAND_ECONFLICT, "conflict", 409},
        {ERR_STALE_LEASE, "stale_lease", 409},
        {ERRAND_ETOOBIG, "body_too_large", 413},
        {ERRAND_ESTORE, "store_error", 500},
        {ERRAND_ENOMEM, "out_of_memory", 500},
        {ERRAND_EIO, "io_error", 500},
        {ERRAND_EUNAVAILABLE, "unavailable", 503},
        {ERRAND_ETIMEDOUT, "timeout", 504},
        {-9999, "internal_error", 500},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_string_equal(error_code_name(rows[i].code), rows[i].name);
        assert_int_equal(error_http_status(rows[i].code), rows[i].status);
    }
}

static void strerror_and_version(void **state)
{
    (void)state;
    assert_string_equal(errand_strerror(ERRAND_EINVAL), "invalid argument");
    assert_string_equal(errand_strerror(ERRAND_ENOTFOUND), "not found");
    for (int c = ERRAND_EFAILED; c <= ERRAND_OK; c++)
        assert_string_not_equal(errand_strerror(c), "unknown error");
    assert_string_equal(errand_strerror(12345), "unknown error");
    assert_string_equal(errand_version(), ERRAND_VERSION);
    errand_free(NULL);
}

/* Runs fn with stderr redirected to a temporary file; returns what was written (free()). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *buf = calloc(1, CAPTURE_MAX);
    rewind(tmp);
    size_t n = fread(buf, 1, CAPTURE_MAX - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

static void log_some_lines(void)
{
    log_set_level(LOG_INFO);
    log_debug("hidden", "x=%d", 1);
    log_info("listening", "host=%s port=%d", "127.0.0.1", 4200);
    log_warn("say \"hi\"\nthere", NULL);
    log_error("bad fields", "err=%s", "line1\nline2");
}

static void log_writes_logfmt_lines_above_the_level(void **state)
{
    (void)state;
    char *out = capture_stderr(log_some_lines);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, " level=info msg=\"listening\" host=127.0.0.1 port=4200\n"));
    assert_non_null(strstr(out, " level=warning msg=\"say \\\"hi\\\"\\nthere\"\n"));
    assert_non_null(strstr(out, " level=error msg=\"bad fields\" err=line1 line2\n"));
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    free(out);
}

static void log_huge_lines(void)
{
    static char big[3 * 4096];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info(big, NULL);
    log_info("ok", "blob=%s", big);
}

static void log_truncates_long_lines_to_one_line_each(void **state)
{
    (void)state;
    char *out = capture_stderr(log_huge_lines);
    char *first_nl = strchr(out, '\n');
    assert_non_null(first_nl);
    assert_true(first_nl - out <= 4096);
    assert_int_equal(strncmp(first_nl - 3, "...", 3), 0);
    char *second = first_nl + 1;
    assert_non_null(strstr(second, "msg=\"ok\" blob=yyy"));
    char *second_nl = strchr(second, '\n');
    assert_non_null(second_nl);
    assert_true(second_nl - second <= 4096);
    assert_int_equal(strncmp(second_nl - 3, "...", 3), 0);
    assert_string_equal(second_nl + 1, "");
    free(out);
}

static void log_level_parsing(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("INFO"), LOG_INFO);
    assert_int_equal(log_level_parse("warning"), LOG_WARNING);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("loud"), -1);
    assert_int_equal(log_level_parse(NULL), -1);
    log_set_level(LOG_ERROR);
    assert_int_equal(log_get_level(), LOG_ERROR);
    log_set_level(LOG_INFO);
}

static void log_json_some_lines(void)
{
    log_set_level(LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    log_debug("hidden", "x=%d", 1);
    log_info("listening", "host=%s port=%d", "127.0.0.1", 4200);
    log_warn("say \"hi\"\nthere", NULL);
    log_error("odd fields",
              "reason=\"a \\\"b\\\" c\\\\d\" stale n=-1.5e3 v=1.2.3 ok=true run=%s err=%s",
              "0193a1c4-5e7b-7c01-8d2a-3b9f1e0c4a55", "line1\nline2");
    log_set_format(LOG_FORMAT_LOGFMT);
}

/* The lines of out parsed as JSON objects (each must parse); returns how many. */
static size_t parse_json_lines(char *out, json_t **lines, size_t max)
{
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o || !json_is_object(o))
            fail_msg("not a JSON object: %s (%s)", line, jerr.text);
        assert_true(n < max);
        lines[n++] = o;
    }
    return n;
}

static void log_writes_json_lines_when_asked(void **state)
{
    (void)state;
    char *out = capture_stderr(log_json_some_lines);
    json_t *l[4];
    assert_int_equal(parse_json_lines(out, l, 4), 3);
    assert_string_equal(json_string_value(json_object_get(l[0], "level")), "info");
    assert_string_equal(json_string_value(json_object_get(l[0], "msg")), "listening");
    assert_string_equal(json_string_value(json_object_get(l[0], "host")), "127.0.0.1");
    assert_true(json_is_integer(json_object_get(l[0], "port")));
    assert_int_equal(json_integer_value(json_object_get(l[0], "port")), 4200);
    assert_int_equal(strlen(json_string_value(json_object_get(l[0], "ts"))), 24);
    assert_string_equal(json_string_value(json_object_get(l[1], "msg")), "say \"hi\"\nthere");
    assert_int_equal(json_object_size(l[1]), 3);
    assert_string_equal(json_string_value(json_object_get(l[2], "reason")), "a \"b\" c\\d");
    assert_true(json_is_true(json_object_get(l[2], "stale")));
    assert_true(json_is_real(json_object_get(l[2], "n")));
    assert_true(json_real_value(json_object_get(l[2], "n")) == -1500.0);
    assert_string_equal(json_string_value(json_object_get(l[2], "v")), "1.2.3");
    assert_true(json_is_true(json_object_get(l[2], "ok")));
    assert_string_equal(json_string_value(json_object_get(l[2], "run")),
                        "0193a1c4-5e7b-7c01-8d2a-3b9f1e0c4a55");
    assert_string_equal(json_string_value(json_object_get(l[2], "err")), "line1");
    assert_true(json_is_true(json_object_get(l[2], "line2")));
    assert_null(json_object_get(l[2], "truncated"));
    for (int i = 0; i < 3; i++)
        json_decref(l[i]);
    free(out);
}

static void log_json_huge_lines(void)
{
    static char big[3 * 4096];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_set_format(LOG_FORMAT_JSON);
    log_info(big, NULL);
    log_info("ok", "small=1 blob=%s", big);
    log_info("ctl", "c=\"%s\"", "\x01\x1f");
    log_set_format(LOG_FORMAT_LOGFMT);
}

static void log_json_cuts_long_lines_at_a_member(void **state)
{
    (void)state;
    char *out = capture_stderr(log_json_huge_lines);
    for (char *p = out, *nl; (nl = strchr(p, '\n')); p = nl + 1)
        assert_true(nl - p < 4096);
    json_t *l[4];
    assert_int_equal(parse_json_lines(out, l, 4), 3);
    const char *msg = json_string_value(json_object_get(l[0], "msg"));
    assert_true(strlen(msg) > 3000 && strspn(msg, "y") == strlen(msg));
    assert_true(json_is_true(json_object_get(l[0], "truncated")));
    assert_string_equal(json_string_value(json_object_get(l[1], "msg")), "ok");
    assert_int_equal(json_integer_value(json_object_get(l[1], "small")), 1);
    assert_null(json_object_get(l[1], "blob"));
    assert_true(json_is_true(json_object_get(l[1], "truncated")));
    assert_string_equal(json_string_value(json_object_get(l[2], "c")), "\x01\x1f");
    for (int i = 0; i < 3; i++)
        json_decref(l[i]);
    free(out);
}

static void log_json_id_lines(void)
{
    log_set_format(LOG_FORMAT_JSON);
    log_info("traced", "trace_id=%s n=%s", "12345678901234567890123456789012", "12345");
    log_info("traced", "trace_id=%s", "4bf92f3577b34da6a3ce929d0e0e4736");
    log_info("traced", "trace_id=%s", "12e45678901234567890123456789012");
    log_set_format(LOG_FORMAT_LOGFMT);
}

/* A trace id may be all decimal digits, or read as a number with an exponent: a field named
 * *_id is a JSON string all the same, so a log pipeline can match it as one. */
static void log_json_keeps_ids_strings(void **state)
{
    (void)state;
    char *out = capture_stderr(log_json_id_lines);
    json_t *l[3];
    assert_int_equal(parse_json_lines(out, l, 3), 3);
    assert_string_equal(json_string_value(json_object_get(l[0], "trace_id")),
                        "12345678901234567890123456789012");
    assert_int_equal(json_integer_value(json_object_get(l[0], "n")), 12345);
    assert_string_equal(json_string_value(json_object_get(l[1], "trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(l[2], "trace_id")),
                        "12e45678901234567890123456789012");
    for (int i = 0; i < 3; i++)
        json_decref(l[i]);
    free(out);
}

static void log_format_parsing(void **state)
{
    (void)state;
    assert_int_equal(log_format_parse("logfmt"), LOG_FORMAT_LOGFMT);
    assert_int_equal(log_format_parse("JSON"), LOG_FORMAT_JSON);
    assert_int_equal(log_format_parse("xml"), -1);
    assert_int_equal(log_format_parse(NULL), -1);
    log_set_format(LOG_FORMAT_JSON);
    assert_int_equal(log_get_format(), LOG_FORMAT_JSON);
    log_set_format(LOG_FORMAT_LOGFMT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_set_fills_and_returns_code),
        cmocka_unit_test(error_set_truncates_safely),
        cmocka_unit_test(codes_map_to_wire_names_and_statuses),
        cmocka_unit_test(strerror_and_version),
        cmocka_unit_test(log_writes_logfmt_lines_above_the_level),
        cmocka_unit_test(log_truncates_long_lines_to_one_line_each),
        cmocka_unit_test(log_level_parsing),
        cmocka_unit_test(log_writes_json_lines_when_asked),
        cmocka_unit_test(log_json_cuts_long_lines_at_a_member),
        cmocka_unit_test(log_format_parsing),
        cmocka_unit_test(log_json_keeps_ids_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
