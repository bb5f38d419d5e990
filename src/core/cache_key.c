/* SPDX-License-Identifier: MIT */
/*
 * cache_key.c — cache keys of the INPUTS + VERSION policy (Prefect's INPUTS + TASK_SOURCE):
 * hex SHA-256 over three parts, task name, task version (NULL = "1") and the canonical JSON
 * of the parameters (sorted keys, compact; NULL = "{}"). Each part is preceded by its length
 * as 8 big-endian bytes, so ("ab", "c") and ("a", "bc") can never hash the same bytes.
 * Also the public errand_cache_key_inputs(), which takes the parameters as text.
 */
#include "core/cache_key.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

#define CACHE_KEY_DEFAULT_VERSION "1"
#define CACHE_KEY_EMPTY_PARAMS "{}"
#define LENGTH_PREFIX_BYTES 8
#define SHA256_BYTES 32

static int digest_part(EVP_MD_CTX *ctx, const char *data, size_t len)
{
    unsigned char prefix[LENGTH_PREFIX_BYTES];
    uint64_t n = (uint64_t)len;
    for (int i = 0; i < LENGTH_PREFIX_BYTES; i++)
        prefix[i] = (unsigned char)(n >> (8 * (LENGTH_PREFIX_BYTES - 1 - i)));
    return EVP_DigestUpdate(ctx, prefix, sizeof prefix) == 1 &&
           EVP_DigestUpdate(ctx, data, len) == 1;
}

int cache_key_inputs(const char *task, const char *version, const json_t *params,
                     char out[CACHE_KEY_LEN], errand_error *err)
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\0';
    if (!task || !task[0])
        return error_set(err, ERRAND_EINVAL, "task", "a cache key needs a task name, got none");
    if (params && !json_is_object(params))
        return error_set(err, ERRAND_EINVAL, "parameters",
                         "parameters must be a JSON object, got %s", json_type_label(params));
    if (!version)
        version = CACHE_KEY_DEFAULT_VERSION;

    char *canon = NULL;
    const char *params_text = CACHE_KEY_EMPTY_PARAMS;
    if (params) {
        canon = json_canonical(params);
        if (!canon)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory computing a cache key");
        params_text = canon;
    }

    int rc = 0;
    unsigned char md[SHA256_BYTES];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory computing a cache key");
        goto done;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || !digest_part(ctx, task, strlen(task)) ||
        !digest_part(ctx, version, strlen(version)) ||
        !digest_part(ctx, params_text, strlen(params_text)) ||
        EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != SHA256_BYTES) {
        rc = error_set(err, ERRAND_EIO, NULL, "SHA-256 failed while computing a cache key");
        goto done;
    }
    for (size_t i = 0; i < SHA256_BYTES; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[2 * SHA256_BYTES] = '\0';

done:
    EVP_MD_CTX_free(ctx);
    mem_free(canon);
    return rc;
}

int errand_cache_key_inputs(const char *task, const char *version, const char *params_json,
                            char out[65], errand_error *err)
{
    if (!out)
        return error_set(err, ERRAND_EINVAL, "out", "no output buffer for the cache key");
    out[0] = '\0';
    json_t *params = NULL;
    if (params_json) {
        errand_error perr;
        params = json_parse_text(params_json, strlen(params_json), &perr);
        if (!params) {
            /* ERR_INVALID_JSON stays inside liberrand; callers see ERRAND_EINVAL. */
            int code = perr.code == ERRAND_ENOMEM ? ERRAND_ENOMEM : ERRAND_EINVAL;
            return error_set(err, code, "params_json", "params_json: %s", perr.message);
        }
    }
    int rc = cache_key_inputs(task, version, params, out, err);
    json_decref(params);
    return rc;
}
