/* SPDX-License-Identifier: MIT */
/*
 * cache_key.h — cache keys of the INPUTS + VERSION policy: SHA-256 (OpenSSL EVP) over the
 * task name, the task version and the canonical JSON of the parameters, each part
 * length-prefixed so no two different inputs can share a byte stream.
 */
#ifndef ERRAND_CORE_CACHE_KEY_H
#define ERRAND_CORE_CACHE_KEY_H

#include <jansson.h>

#include "errand/errand.h"

#define CACHE_KEY_LEN 65 /* 64 hex + NUL */

int cache_key_inputs(const char *task, const char *version, const json_t *params,
                     char out[CACHE_KEY_LEN], errand_error *err);

#endif
