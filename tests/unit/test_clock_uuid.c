/* SPDX-License-Identifier: MIT */
/*
 * test_clock_uuid.c — RFC 3339 formatting and parsing (round trips, offsets, fractions,
 * rejects), the clocks, UUIDv7 layout and ordering, and the random helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "core/clock.h"
#include "core/uuid.h"

/* 2026-11-29T10:25:19.123Z */
#define SAMPLE_MS INT64_C(1795947919123)
#define N_IDS 5000
#define TOKEN_BYTES 16

static void format_gives_utc_with_milliseconds(void **state)
{
    (void)state;
    char buf[CLOCK_RFC3339_LEN];
    clock_format_rfc3339(SAMPLE_MS, buf);
    assert_string_equal(buf, "2026-11-29T10:25:19.123Z");
    clock_format_rfc3339(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    clock_format_rfc3339(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void parse_round_trips_format(void **state)
{
    (void)state;
    const int64_t samples[] = {0,
                               1,
                               999,
                               SAMPLE_MS,
                               INT64_C(951782400000) /* 2000-02-29 */,
                               INT64_C(253402300799999) /* 9999-12-31T23:59:59.999 */};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char buf[CLOCK_RFC3339_LEN];
        int64_t back = -42;
        clock_format_rfc3339(samples[i], buf);
        assert_true(clock_parse_rfc3339(buf, &back));
        assert_int_equal(back, samples[i]);
    }
}

static void parse_accepts_offsets_and_fractions(void **state)
{
    (void)state;
    int64_t ms;
    assert_true(clock_parse_rfc3339("2026-11-29T10:25:19Z", &ms));
    assert_int_equal(ms, SAMPLE_MS - 123);
    assert_true(clock_parse_rfc3339("2026-11-29t10:25:19.123z", &ms));
    assert_int_equal(ms, SAMPLE_MS);
    assert_true(clock_parse_rfc3339("2026-11-29T11:25:19.123+01:00", &ms));
    assert_int_equal(ms, SAMPLE_MS);
    assert_true(clock_parse_rfc3339("2026-11-29T05:10:19.123-05:15", &ms));
    assert_int_equal(ms, SAMPLE_MS);
    assert_true(clock_parse_rfc3339("2026-11-29T10:25:19.1Z", &ms));
    assert_int_equal(ms, SAMPLE_MS - 23);
    assert_true(clock_parse_rfc3339("2026-11-29T10:25:19.12Z", &ms));
    assert_int_equal(ms, SAMPLE_MS - 3);
    /* Digits beyond milliseconds are truncated. */
    assert_true(clock_parse_rfc3339("2026-11-29T10:25:19.123999999Z", &ms));
    assert_int_equal(ms, SAMPLE_MS);
    assert_true(clock_parse_rfc3339("2024-02-29T00:00:00Z", &ms));
}

static void parse_rejects_malformed_and_out_of_range(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "garbage",
        "2026-11-29",
        "2026-11-29T10:25:19",   /* no zone */
        "2026-11-29 10:25:19Z",  /* space separator */
        "2026-11-29T10:25:19.Z", /* empty fraction */
        "2026-11-29T10:25:19ZZ", /* trailing garbage */
        "2026-11-29T10:25:19Z ",
        "2026-13-01T00:00:00Z", /* month 13 */
        "2026-00-01T00:00:00Z",
        "2026-02-29T00:00:00Z", /* not a leap year */
        "2026-04-31T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-29T24:00:00Z",
        "2026-11-29T10:60:00Z",
        "2026-11-29T10:25:61Z",
        "2026-11-29T10:25:19+24:00",
        "2026-11-29T10:25:19+01:60",
        "2026-11-29T10:25:19+0100",
        "26-11-29T10:25:19Z",
        "2026-1-29T10:25:19Z",
        "+2026-11-29T10:25:19Z",
        "2026-11-29T10:25:1aZ",
        "9999-12-31T23:59:59-01:00", /* the offset carries it past year 9999 */
        "0000-01-01T00:00:00+01:00", /* ... or before year 0 */
        "9999-12-31T23:59:60Z",      /* a leap second past the last printable instant */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 7;
        if (clock_parse_rfc3339(bad[i], &ms))
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(ms, 7);
    }
    int64_t ms;
    assert_false(clock_parse_rfc3339(NULL, &ms));
    /* The edges themselves parse, and print back the same. */
    char text[CLOCK_RFC3339_LEN];
    assert_true(clock_parse_rfc3339("9999-12-31T23:59:59.999Z", &ms));
    assert_true(ms == CLOCK_MAX_MS);
    clock_format_rfc3339(ms, text);
    assert_string_equal(text, "9999-12-31T23:59:59.999Z");
    assert_true(clock_parse_rfc3339("0000-01-01T00:00:00Z", &ms));
    assert_true(ms == CLOCK_MIN_MS);
}

static void clocks_move_forward(void **state)
{
    (void)state;
    int64_t wall = clock_now_ms();
    assert_true(wall > SAMPLE_MS - INT64_C(5) * 365 * 24 * 3600 * 1000);
    int64_t m0 = clock_mono_ms();
    clock_sleep_ms(20);
    int64_t m1 = clock_mono_ms();
    assert_true(m1 - m0 >= 20);
    clock_sleep_ms(0);
    clock_sleep_ms(-5);
}

static int hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

static void uuid_v7_has_version_variant_and_time(void **state)
{
    (void)state;
    char id[UUID_STR_LEN];
    assert_int_equal(uuid_v7(SAMPLE_MS, id), 0);
    assert_int_equal(strlen(id), 36);
    assert_true(uuid_is_valid(id));
    assert_int_equal(id[14], '7');
    int variant = hexval(id[19]);
    assert_int_equal(variant >> 2, 2); /* binary 10xx */
    /* The first 48 bits are the Unix time in ms. */
    int64_t ts = 0;
    for (int i = 0; i < 13; i++) {
        if (id[i] == '-')
            continue;
        ts = ts * 16 + hexval(id[i]);
    }
    assert_true(ts >= SAMPLE_MS); /* may run ahead only if the same ms was used before */
    assert_true(ts < SAMPLE_MS + 1000);
    for (int i = 0; i < 36; i++)
        assert_false(isupper((unsigned char)id[i]));
}

static void uuid_v7_ids_strictly_increase_within_a_millisecond(void **state)
{
    (void)state;
    static char ids[N_IDS][UUID_STR_LEN];
    int64_t now = clock_now_ms();
    for (int i = 0; i < N_IDS; i++)
        assert_int_equal(uuid_v7(now, ids[i]), 0);
    for (int i = 1; i < N_IDS; i++)
        if (strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %d '%s' is not after '%s'", i, ids[i], ids[i - 1]);
    /* A clock step back does not break the order either. */
    char earlier[UUID_STR_LEN];
    assert_int_equal(uuid_v7(now - 10000, earlier), 0);
    assert_true(strcmp(earlier, ids[N_IDS - 1]) > 0);
}

/* The random bytes handed in are the ones the id carries: rand_a's seed, then rand_b. */
static void uuid_v7_from_uses_the_bytes_given(void **state)
{
    (void)state;
    const unsigned char rnd[UUID_V7_RANDOM_BYTES] = {0x00, 0x05, 0xff, 0xee, 0xdd,
                                                     0xcc, 0xbb, 0xaa, 0x99, 0x88};
    char id[UUID_STR_LEN], next[UUID_STR_LEN];
    int64_t later = clock_now_ms() + 3600 * 1000; /* a millisecond no id has used yet */
    uuid_v7_from(later, rnd, id);
    assert_true(uuid_is_valid(id));
    assert_memory_equal(id + 14, "7005-bfee-ddccbbaa9988", 22); /* variant bits over 0xff */
    uuid_v7_from(later, rnd, next);                             /* the same millisecond counts up */
    assert_memory_equal(next + 14, "7006-bfee-ddccbbaa9988", 22);
    unsigned char a[32] = {0}, b[32] = {0};
    assert_int_equal(random_bytes(a, sizeof a), 0);
    assert_int_equal(random_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

static void uuid_is_valid_checks_shape(void **state)
{
    (void)state;
    assert_true(uuid_is_valid("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"));
    assert_true(uuid_is_valid("01938F2E-7C1A-7B3E-9A55-2F1C0E6D4B21"));
    assert_false(uuid_is_valid(NULL));
    assert_false(uuid_is_valid(""));
    assert_false(uuid_is_valid("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b2"));
    assert_false(uuid_is_valid("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b211"));
    assert_false(uuid_is_valid("01938f2e7c1a-7b3e-9a55-2f1c0e6d4b21-"));
    assert_false(uuid_is_valid("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4g21"));
    assert_false(uuid_is_valid("../../etc/passwd"));
}

static void token_random_hex_gives_distinct_hex(void **state)
{
    (void)state;
    char a[2 * TOKEN_BYTES + 1], b[2 * TOKEN_BYTES + 1];
    assert_int_equal(token_random_hex(TOKEN_BYTES, a), 0);
    assert_int_equal(token_random_hex(TOKEN_BYTES, b), 0);
    assert_int_equal(strlen(a), 2 * TOKEN_BYTES);
    for (size_t i = 0; i < strlen(a); i++)
        assert_true(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
    assert_string_not_equal(a, b);
    /* A claim's tokens at once (128 of 16 bytes), encoded where the bytes were drawn: every
     * character hex, and no 32-character token repeated. */
    static char big[2 * 128 * 16 + 1];
    assert_int_equal(token_random_hex(128 * 16, big), 0);
    assert_int_equal(strlen(big), 2 * 128 * 16);
    for (size_t i = 0; i < strlen(big); i++)
        assert_true(isxdigit((unsigned char)big[i]) && !isupper((unsigned char)big[i]));
    for (size_t i = 0; i < 128; i++)
        for (size_t j = i + 1; j < 128; j++)
            assert_memory_not_equal(big + 32 * i, big + 32 * j, 32);
    char empty[1];
    assert_int_equal(token_random_hex(0, empty), 0);
    assert_string_equal(empty, "");
}

static void token_equal_compares_whole_tokens(void **state)
{
    (void)state;
    assert_true(token_equal("abc123", "abc123"));
    assert_false(token_equal("abc123", "abc124"));
    assert_false(token_equal("abc123", "abc12"));   /* a prefix is not the token */
    assert_false(token_equal("abc123", "abc1234")); /* nor is a longer one */
    assert_false(token_equal("abc123", ""));
    assert_false(token_equal("abc123", NULL));
    assert_false(token_equal(NULL, "abc123"));
    assert_true(token_equal_n("abc:expired", "abc", 3));
    assert_false(token_equal_n("abd:expired", "abc", 3));
}

static void random_unit_stays_in_range(void **state)
{
    (void)state;
    double lo = 1, hi = 0;
    for (int i = 0; i < 1000; i++) {
        double r = random_unit();
        assert_true(r >= 0.0 && r < 1.0);
        if (r < lo)
            lo = r;
        if (r > hi)
            hi = r;
    }
    assert_true(lo < 0.1 && hi > 0.9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_gives_utc_with_milliseconds),
        cmocka_unit_test(parse_round_trips_format),
        cmocka_unit_test(parse_accepts_offsets_and_fractions),
        cmocka_unit_test(parse_rejects_malformed_and_out_of_range),
        cmocka_unit_test(clocks_move_forward),
        cmocka_unit_test(uuid_v7_has_version_variant_and_time),
        cmocka_unit_test(uuid_v7_ids_strictly_increase_within_a_millisecond),
        cmocka_unit_test(uuid_v7_from_uses_the_bytes_given),
        cmocka_unit_test(uuid_is_valid_checks_shape),
        cmocka_unit_test(token_random_hex_gives_distinct_hex),
        cmocka_unit_test(token_equal_compares_whole_tokens),
        cmocka_unit_test(random_unit_stays_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
