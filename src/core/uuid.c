/* SPDX-License-Identifier: MIT */
/*
 * uuid.c — UUIDv7 task-run ids (RFC 9562) and random tokens, from OpenSSL's CSPRNG.
 *
 * Layout of a UUIDv7 (128 bits, big-endian):
 *   48 bits unix_ts_ms | 4 bits version (7) | 12 bits rand_a | 2 bits variant (10) | 62 bits rand_b
 *
 * Ordering: ids must sort in creation order, also for ids made in the same millisecond
 * (the newest-first listing and its keyset cursor rely on it). So rand_a is a counter
 * (RFC 9562 section 6.2, method 1): on a new millisecond it is seeded at random in its lower
 * half (leaving room to count up), and within the same millisecond it goes up by one. If it
 * runs out, or the wall clock steps back, the embedded time is carried forward from the last
 * id, so ids made by one process are strictly increasing. The embedded time can thus run a
 * few milliseconds ahead of unix_ms under bursts of more than ~2048 ids per millisecond.
 * The (last_ms, counter) pair is guarded by uuid_lock.
 */
#include "core/uuid.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "errand/errand.h"

#define UUID_BYTES 16
#define UUID_TEXT_LEN 36
#define UUID_VERSION 7
#define RAND_A_BITS 12
#define RAND_A_MAX ((1u << RAND_A_BITS) - 1)
#define RAND_A_SEED_MASK (RAND_A_MAX >> 1) /* seed in the lower half: room to count up */
#define RAND_B_BYTES 8                     /* rnd holds 2 bytes for rand_a's seed, then rand_b */
_Static_assert(UUID_V7_RANDOM_BYTES == 2 + RAND_B_BYTES, "rand_a seed + rand_b");
#define UNIT_MANTISSA_BITS 53

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms = -1; /* guarded by uuid_lock */
static unsigned uuid_counter;     /* guarded by uuid_lock */

static const char HEX[] = "0123456789abcdef";

void hex_from_bytes(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

int random_bytes(unsigned char *out, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(out, chunk) != 1)
            return ERRAND_EIO;
        out += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

int uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN])
{
    unsigned char rnd[UUID_V7_RANDOM_BYTES];
    if (random_bytes(rnd, sizeof rnd) < 0) {
        out[0] = '\0';
        return ERRAND_EIO;
    }
    uuid_v7_from(unix_ms, rnd, out);
    return 0;
}

void uuid_v7_from(int64_t unix_ms, const unsigned char rnd[UUID_V7_RANDOM_BYTES],
                  char out[UUID_STR_LEN])
{
    if (unix_ms < 0)
        unix_ms = 0;

    pthread_mutex_lock(&uuid_lock);
    int64_t ms = unix_ms;
    unsigned counter;
    if (ms > uuid_last_ms) {
        counter = (((unsigned)rnd[0] << 8) | rnd[1]) & RAND_A_SEED_MASK;
    } else {
        /* Same millisecond, or the clock stepped back: count up from the last id. */
        ms = uuid_last_ms;
        counter = uuid_counter + 1;
        if (counter > RAND_A_MAX) {
            ms = uuid_last_ms + 1;
            counter = (((unsigned)rnd[0] << 8) | rnd[1]) & RAND_A_SEED_MASK;
        }
    }
    uuid_last_ms = ms;
    uuid_counter = counter;
    pthread_mutex_unlock(&uuid_lock);

    unsigned char b[UUID_BYTES];
    uint64_t t = (uint64_t)ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(t >> (8 * (5 - i)));
    b[6] = (unsigned char)((UUID_VERSION << 4) | ((counter >> 8) & 0x0f));
    b[7] = (unsigned char)(counter & 0xff);
    memcpy(b + 8, rnd + 2, RAND_B_BYTES);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */

    char hex[2 * UUID_BYTES + 1];
    hex_from_bytes(b, UUID_BYTES, hex);
    /* 8-4-4-4-12 */
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[UUID_TEXT_LEN] = '\0';
}

bool uuid_is_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < UUID_TEXT_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false; /* also catches a NUL before the end */
        }
    }
    return s[UUID_TEXT_LEN] == '\0';
}

int token_random_hex(size_t nbytes, char *out)
{
    /* One draw for the whole token (a claim's tokens are 2 KiB: a CSPRNG call per 64 bytes
     * was two fifths of a claim's CPU at light load). The bytes wait in the second half of
     * out: hex_from_bytes writes byte i's two characters at 2i, before byte nbytes + i, so
     * it never overwrites a byte it has yet to read. */
    unsigned char *raw = (unsigned char *)out + nbytes;
    if (random_bytes(raw, nbytes) < 0) {
        out[0] = '\0';
        return ERRAND_EIO;
    }
    hex_from_bytes(raw, nbytes, out);
    return 0;
}

double random_unit(void)
{
    unsigned char b[8];
    /* A CSPRNG failure here only affects retry jitter, so it degrades to "no jitter". */
    if (RAND_bytes(b, (int)sizeof b) != 1)
        return 0.0;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof b; i++)
        v = (v << 8) | b[i];
    v >>= 64 - UNIT_MANTISSA_BITS;
    return (double)v / (double)(UINT64_C(1) << UNIT_MANTISSA_BITS);
}

bool token_equal_n(const char *secret, const char *given, size_t n)
{
    return CRYPTO_memcmp(secret, given, n) == 0;
}

bool token_equal(const char *secret, const char *given)
{
    if (!secret || !given)
        return false;
    size_t n = strlen(secret);
    return strlen(given) == n && token_equal_n(secret, given, n);
}

void uuid_v7_floor(int64_t unix_ms, char out[UUID_STR_LEN])
{
    const int64_t max_ms = (INT64_C(1) << 48) - 1;
    uint64_t ms = (uint64_t)(unix_ms < 0 ? 0 : unix_ms > max_ms ? max_ms : unix_ms);
    snprintf(out, UUID_STR_LEN, "%08llx-%04llx-7000-8000-000000000000",
             (unsigned long long)(ms >> 16), (unsigned long long)(ms & 0xffff));
}
