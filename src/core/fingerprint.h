/* SPDX-License-Identifier: MIT */
/*
 * fingerprint.h — what makes two failure messages "the same failure": the message with its
 * numbers and long hexadecimal runs (ids, addresses, timings) replaced by '#', whitespace
 * collapsed, cut to FINGERPRINT_MAX - 1 bytes (on a character boundary). The dashboard groups
 * FAILED and CRASHED runs by task and fingerprint, so "timeout after 30.2 s on run 0193..."
 * and "timeout after 29.8 s on run 0194..." are one group with two runs.
 */
#ifndef ERRAND_CORE_FINGERPRINT_H
#define ERRAND_CORE_FINGERPRINT_H

#define FINGERPRINT_MAX 161

/* The fingerprint of message (NULL = "") into out. */
void failure_fingerprint(const char *message, char out[FINGERPRINT_MAX]);

#endif
