/* SPDX-License-Identifier: MIT */
/*
 * webhook_signature.h — the signature of a webhook call: the header
 *
 *     Errand-Signature: t=<Unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>
 *
 * The receiver computes the same HMAC over the timestamp and the raw body it got, compares it
 * in constant time, and refuses a timestamp too far from its clock (a replayed call).
 */
#ifndef ERRAND_SERVER_WEBHOOK_SIGNATURE_H
#define ERRAND_SERVER_WEBHOOK_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

/* "t=1700000000,v1=" and 64 hex digits, and the terminating NUL. */
#define WEBHOOK_SIGNATURE_MAX 96

/* The header's value for body sent at unix_s, signed with secret; 0, or -1 when the hash
 * failed. */
int webhook_signature(const char *secret, int64_t unix_s, const char *body, size_t len,
                      char out[WEBHOOK_SIGNATURE_MAX]);

#endif
