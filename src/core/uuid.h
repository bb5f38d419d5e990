/* SPDX-License-Identifier: MIT */
/*
 * uuid.h — task-run ids (UUIDv7: time-ordered, so the newest-first listing and its keyset
 * cursor follow creation order) and random tokens (lease tokens), from OpenSSL's CSPRNG.
 */
#ifndef ERRAND_CORE_UUID_H
#define ERRAND_CORE_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN 37 /* 36 characters + NUL */

/* A new UUIDv7 for time unix_ms, lower-case canonical text; 0 or ERRAND_EIO. */
int uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN]);

/* The random bytes one UUIDv7 takes. */
#define UUID_V7_RANDOM_BYTES 10
/* uuid_v7 with its random bytes given: for many ids at once, whose randomness is drawn in one
 * random_bytes call (each call to the CSPRNG costs far more than the bytes it returns). */
void uuid_v7_from(int64_t unix_ms, const unsigned char rnd[UUID_V7_RANDOM_BYTES],
                  char out[UUID_STR_LEN]);

/* n bytes from OpenSSL's CSPRNG; 0 or ERRAND_EIO. */
int random_bytes(unsigned char *out, size_t n);
/* The n bytes at in as 2*n lower-case hex characters + NUL into out. in may be the second
 * half of out (in == out + n): byte i is read before anything is written over it. */
void hex_from_bytes(const unsigned char *in, size_t n, char *out);

/* True when s is a canonical UUID (8-4-4-4-12 hex, either case). */
bool uuid_is_valid(const char *s);

/* The smallest UUIDv7 of the millisecond unix_ms (clamped to 0 .. 2^48 - 1): every id made
 * at or after that instant sorts at or above it, every earlier one below (lower-case text
 * order, as the store keeps ids). For listings by time. */
void uuid_v7_floor(int64_t unix_ms, char out[UUID_STR_LEN]);

/* nbytes random bytes as 2*nbytes hex characters + NUL into out; 0 or ERRAND_EIO. */
int token_random_hex(size_t nbytes, char *out);

/* Whether the first n bytes of a secret token and a presented one are equal, in a time that
 * does not depend on where they differ (so a lease token cannot be guessed byte by byte).
 * Both must hold n bytes. */
bool token_equal_n(const char *secret, const char *given, size_t n);
/* The same for NUL-terminated tokens (their lengths are not secret); false when either is
 * NULL. */
bool token_equal(const char *secret, const char *given);

/* A uniform random double in [0, 1). */
double random_unit(void);

#endif
