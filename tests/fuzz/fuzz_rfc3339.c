/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rfc3339.c — libFuzzer harness for clock_parse_rfc3339, which reads the scheduled_at
 * of submissions and the timestamps of worker log lines. The input is copied into a
 * NUL-terminated buffer of exactly its size (the parser's contract is a C string, and ASan
 * then sees any read past the terminator).
 *
 * Property: a time the parser accepts is a time the server can write back —
 * clock_format_rfc3339 of the parsed milliseconds reads back to the same milliseconds, and
 * the formatted text is canonical (formatting it again gives the same text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    int64_t ms = 0;
    if (clock_parse_rfc3339(text, &ms)) {
        char formatted[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(ms, formatted);
        FUZZ_CHECK(memchr(formatted, '\0', sizeof formatted) != NULL, "format not terminated");

        int64_t back = 0;
        FUZZ_CHECK(clock_parse_rfc3339(formatted, &back),
                   "'%s' parsed to %lld ms, formatted as '%s', which does not parse", text,
                   (long long)ms, formatted);
        FUZZ_CHECK(back == ms, "'%s' parsed to %lld ms, formatted as '%s', which parses to %lld",
                   text, (long long)ms, formatted, (long long)back);

        char again[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(back, again);
        FUZZ_CHECK(strcmp(formatted, again) == 0, "'%s' formats back as '%s'", formatted, again);
    }
    free(text);
    return 0;
}
