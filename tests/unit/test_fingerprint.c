/* SPDX-License-Identifier: MIT */
/*
 * test_fingerprint.c — failure messages that differ only in numbers, ids and spacing share a
 * fingerprint; different messages do not; the cut never splits a UTF-8 character.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/fingerprint.h"

static void same(const char *a, const char *b)
{
    char fa[FINGERPRINT_MAX], fb[FINGERPRINT_MAX];
    failure_fingerprint(a, fa);
    failure_fingerprint(b, fb);
    if (strcmp(fa, fb) != 0)
        fail_msg("'%s' -> '%s' and '%s' -> '%s' differ", a, fa, b, fb);
}

static void differ(const char *a, const char *b)
{
    char fa[FINGERPRINT_MAX], fb[FINGERPRINT_MAX];
    failure_fingerprint(a, fa);
    failure_fingerprint(b, fb);
    if (strcmp(fa, fb) == 0)
        fail_msg("'%s' and '%s' share '%s'", a, b, fa);
}

static void numbers_ids_and_spaces_do_not_count(void **state)
{
    (void)state;
    same("timeout after 30.2 s on run 0193a1c4-5e7b-7c01-8d2a-3b9f1e0c4a55",
         "timeout after 29,8 s on run 01a234c0-2633-7301-880d-be746bdba7fb");
    same("HTTP 503 from api.example.com (attempt 3)", "HTTP 502  from api.example.com (attempt 1)");
    same("exit status 1: boom\n", "exit status 2: boom");
    same("object at 0xdeadbeef12 freed", "object at 0x00c0ffee99 freed");
    differ("connection refused", "connection reset");
    differ("HTTP 503 from a.example", "HTTP 503 from b.example");
    differ("", "x");
    char out[FINGERPRINT_MAX];
    failure_fingerprint(NULL, out);
    assert_string_equal(out, "");
    failure_fingerprint("decaf beef cafe", out); /* short words stay words */
    assert_string_equal(out, "decaf beef cafe");
    failure_fingerprint("took 1200 ms", out);
    assert_string_equal(out, "took # ms");
}

static void long_messages_are_cut_on_a_character(void **state)
{
    (void)state;
    char msg[1000], out[FINGERPRINT_MAX];
    for (size_t i = 0; i + 2 < sizeof msg; i += 2)
        memcpy(msg + i, "\xc3\xa9", 2); /* é, two bytes each */
    msg[sizeof msg - 2] = '\0';
    failure_fingerprint(msg, out);
    size_t n = strlen(out);
    assert_true(n <= FINGERPRINT_MAX - 1);
    assert_int_equal(n % 2, 0);
    assert_int_equal((unsigned char)out[n - 2], 0xc3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_ids_and_spaces_do_not_count),
        cmocka_unit_test(long_messages_are_cut_on_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
