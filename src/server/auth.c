/*
 * auth.c — bearer-key comparison. Both keys are hashed with SHA-256 and the digests compared
 * with CRYPTO_memcmp, so the time taken depends neither on where the first differing byte
 * is nor on the length of the expected key.
 */
#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#define BEARER_SCHEME "Bearer"

static bool digest(const char *s, unsigned char out[EVP_MAX_MD_SIZE])
{
    unsigned int len = 0;
    return EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL) == 1;
}

bool auth_allows(const char *api_key, const char *authorization)
{
    if (!api_key || !*api_key)
        return true;
    if (!authorization)
        return false;
    size_t scheme_len = strlen(BEARER_SCHEME);
    /* The scheme is case-insensitive (RFC 7235); at least one space follows it. */
    if (strncasecmp(authorization, BEARER_SCHEME, scheme_len) != 0 ||
        authorization[scheme_len] != ' ')
        return false;
    const char *given = authorization + scheme_len;
    while (*given == ' ')
        given++;
    unsigned char want_md[EVP_MAX_MD_SIZE], given_md[EVP_MAX_MD_SIZE];
    if (!digest(api_key, want_md) || !digest(given, given_md))
        return false;
    return CRYPTO_memcmp(want_md, given_md, EVP_MD_get_size(EVP_sha256())) == 0;
}
