/* SPDX-License-Identifier: MIT */
/*
 * webhook_signature.c — signing a webhook call (see webhook_signature.h): OpenSSL's HMAC
 * (EVP_MAC), fed the timestamp and dot, then the body, so the body is not copied.
 */
#include "server/webhook_signature.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

int webhook_signature(const char *secret, int64_t unix_s, const char *body, size_t len,
                      char out[WEBHOOK_SIGNATURE_MAX])
{
    char stamp[24];
    int n = snprintf(stamp, sizeof stamp, "%" PRId64 ".", unix_s);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC *kind = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = kind ? EVP_MAC_CTX_new(kind) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
             EVP_MAC_update(ctx, (const unsigned char *)stamp, (size_t)n) &&
             EVP_MAC_update(ctx, (const unsigned char *)body, len) &&
             EVP_MAC_final(ctx, mac, &mac_len, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(kind);
    if (!ok || mac_len != 32)
        return -1;
    int at = snprintf(out, WEBHOOK_SIGNATURE_MAX, "t=%" PRId64 ",v1=", unix_s);
    for (size_t i = 0; i < mac_len; i++)
        snprintf(out + at + 2 * i, 3, "%02x", mac[i]);
    return 0;
}
