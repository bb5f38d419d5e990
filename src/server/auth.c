/*
 * auth.c — API keys and their scopes (see auth.h).
 */
#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/mem.h"

#define BEARER_SCHEME "Bearer"
#define DIGEST_LEN 32 /* SHA-256 */
#define KEY_MAX 1024

struct key {
    unsigned char digest[DIGEST_LEN];
    unsigned scopes;
};

struct auth_keys {
    struct key *keys;
    size_t n;
};

static bool digest(const char *s, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != DIGEST_LEN)
        return false;
    memcpy(out, md, DIGEST_LEN);
    return true;
}

/* Adds each key of the comma-separated list with scopes; setting names it in errors. */
static int add_list(auth_keys *k, const char *list, unsigned scopes, const char *setting,
                    errand_error *err)
{
    if (!list || !*list)
        return 0;
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len > KEY_MAX || memchr(p, ' ', len))
            return error_set(err, ERRAND_EINVAL, setting,
                             "%s: each key must be 1-%d characters without spaces, separated "
                             "by commas",
                             setting, KEY_MAX);
        struct key *grown = mem_realloc(k->keys, (k->n + 1) * sizeof *grown);
        if (!grown)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        k->keys = grown;
        if (!digest(p, len, k->keys[k->n].digest))
            return error_set(err, ERRAND_EIO, NULL, "cannot hash the API keys");
        k->keys[k->n++].scopes = scopes;
        if (!end)
            return 0;
        p = end + 1;
    }
}

int auth_keys_new(const char *admin, const char *submit, const char *worker, const char *read,
                  auth_keys **out, errand_error *err)
{
    *out = NULL;
    auth_keys *k = mem_calloc(1, sizeof *k);
    if (!k)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = 0;
    /* The admin key is one key, commas and all, as it always was. */
    if (admin && *admin) {
        k->keys = mem_calloc(1, sizeof *k->keys);
        if (!k->keys || !digest(admin, strlen(admin), k->keys[0].digest))
            rc = error_set(err, ERRAND_ENOMEM, NULL, "cannot hash the API key");
        else
            k->keys[k->n++].scopes = AUTH_ALL;
    }
    if (rc == 0)
        rc = add_list(k, submit, AUTH_READ | AUTH_SUBMIT, "ERRAND_API_KEYS_SUBMIT", err);
    if (rc == 0)
        rc = add_list(k, worker, AUTH_WORK, "ERRAND_API_KEYS_WORKER", err);
    if (rc == 0)
        rc = add_list(k, read, AUTH_READ, "ERRAND_API_KEYS_READ", err);
    if (rc < 0) {
        auth_keys_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void auth_keys_free(auth_keys *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k->keys, k->n * sizeof *k->keys);
    mem_free(k->keys);
    mem_free(k);
}

bool auth_enabled(const auth_keys *k)
{
    return k && k->n > 0;
}

unsigned auth_granted(const auth_keys *k, const char *authorization)
{
    if (!auth_enabled(k))
        return AUTH_ALL;
    if (!authorization)
        return 0;
    size_t scheme_len = strlen(BEARER_SCHEME);
    /* The scheme is case-insensitive (RFC 7235); at least one space follows it. */
    if (strncasecmp(authorization, BEARER_SCHEME, scheme_len) != 0 ||
        authorization[scheme_len] != ' ')
        return 0;
    const char *given = authorization + scheme_len;
    while (*given == ' ')
        given++;
    unsigned char md[DIGEST_LEN];
    if (!digest(given, strlen(given), md))
        return 0;
    unsigned granted = 0;
    for (size_t i = 0; i < k->n; i++) /* every key, match or not: the time says nothing */
        granted |= CRYPTO_memcmp(md, k->keys[i].digest, DIGEST_LEN) == 0 ? k->keys[i].scopes : 0;
    return granted;
}

const char *auth_scope_name(unsigned scope)
{
    switch (scope) {
    case AUTH_READ:
        return "read";
    case AUTH_SUBMIT:
        return "submit";
    case AUTH_WORK:
        return "worker";
    default:
        return "admin";
    }
}
