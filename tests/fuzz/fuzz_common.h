/* SPDX-License-Identifier: MIT */
/*
 * fuzz_common.h — what the libFuzzer harnesses of tests/fuzz share: a contract check that
 * aborts (so libFuzzer records the input as a crash, with a message saying which contract
 * broke), the error-struct contract every parser promises, and the allocation-failure
 * budget derived from the input.
 *
 * Allocation failures: after the plain pass, each harness parses the same value again with
 * mem_fail_after(budget) armed, so the out-of-memory paths of the parsers run on every kind
 * of input the fuzzer reaches and LeakSanitizer checks that they free what they took. The
 * budget is a hash of the input, so a crashing input replays exactly; it is disarmed before
 * the harness returns, so no state carries over to the next input.
 */
#ifndef ERRAND_FUZZ_COMMON_H
#define ERRAND_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "core/json.h"
#include "errand/errand.h"

/* Allocations that may succeed before the armed pass starts failing; the parsers make a few
 * dozen at most per body, so this reaches every allocation site of small inputs. */
#define FUZZ_OOM_BUDGET_SPAN 48u
/* Fixed clock, so a finding replays identically. 2025-11-29T10:25:19.123Z */
#define FUZZ_NOW_MS 1764411919123LL

#define FUZZ_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz contract broken at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* What every parser promises on failure: a negative code that it also stored, a message,
 * and NUL-terminated text fields (the server copies them into the response). */
static inline void fuzz_check_error(int rc, const errand_error *err, const char *what)
{
    FUZZ_CHECK(rc < 0, "%s returned %d", what, rc);
    FUZZ_CHECK(err->code == rc, "%s returned %d but err->code is %d", what, rc, err->code);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL,
               "%s: err->message is not terminated", what);
    FUZZ_CHECK(memchr(err->field, '\0', sizeof err->field) != NULL,
               "%s: err->field is not terminated", what);
    FUZZ_CHECK(err->message[0] != '\0', "%s failed with %d and no message", what, rc);
}

/* Parses the fuzz input as a request body. NULL when it is not JSON, after checking that the
 * failure reads as bad JSON (nothing fails allocations at this point, so never as OOM). */
static inline json_t *fuzz_parse_body(const uint8_t *data, size_t size)
{
    errand_error err;
    error_clear(&err);
    json_t *v = json_parse_text((const char *)data, size, &err);
    if (!v) {
        fuzz_check_error(err.code, &err, "json_parse_text");
        FUZZ_CHECK(err.code == ERR_INVALID_JSON, "json_parse_text: code %d (%s)", err.code,
                   err.message);
    }
    return v;
}

/* FNV-1a of the input, folded into [0, FUZZ_OOM_BUDGET_SPAN). */
static inline long fuzz_oom_budget(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return (long)(h % FUZZ_OOM_BUDGET_SPAN);
}

#endif
