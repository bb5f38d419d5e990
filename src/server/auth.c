/* SPDX-License-Identifier: MIT */
/*
 * auth.c — API keys and their scopes (see auth.h).
 */
#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
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
    unsigned char session_secret[DIGEST_LEN]; /* SHA-256 of a label and every key's digest */
};

#define SESSION_VERSION "v1"
#define SESSION_SECRET_LABEL "errand-session-v1"
#define KEY_ID_BYTES 8

static bool digest(const char *s, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != DIGEST_LEN)
        return false;
    memcpy(out, md, DIGEST_LEN);
    return true;
}

/* The scopes of the key whose digest is md (all keys compared, match or not). */
static unsigned scopes_of_digest(const auth_keys *k, const unsigned char md[DIGEST_LEN])
{
    unsigned granted = 0;
    for (size_t i = 0; i < k->n; i++)
        granted |= CRYPTO_memcmp(md, k->keys[i].digest, DIGEST_LEN) == 0 ? k->keys[i].scopes : 0;
    return granted;
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
    if (rc == 0) { /* the session secret: every key's digest under a label */
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned int len = 0;
        bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
                  EVP_DigestUpdate(md, SESSION_SECRET_LABEL, strlen(SESSION_SECRET_LABEL)) == 1;
        for (size_t i = 0; ok && i < k->n; i++)
            ok = EVP_DigestUpdate(md, k->keys[i].digest, DIGEST_LEN) == 1;
        ok = ok && EVP_DigestFinal_ex(md, k->session_secret, &len) == 1 && len == DIGEST_LEN;
        EVP_MD_CTX_free(md);
        if (!ok)
            rc = error_set(err, ERRAND_EIO, NULL, "cannot derive the session secret");
    }
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
    OPENSSL_cleanse(k->session_secret, sizeof k->session_secret);
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
    return scopes_of_digest(k, md); /* every key, match or not: the time says nothing */
}

unsigned auth_key_scopes(const auth_keys *k, const char *key)
{
    if (!auth_enabled(k))
        return AUTH_ALL;
    unsigned char md[DIGEST_LEN];
    if (!key || !*key || strlen(key) > KEY_MAX || !digest(key, strlen(key), md))
        return 0;
    return scopes_of_digest(k, md);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The mac of a token's signed part, as hex. */
static bool session_mac(const auth_keys *k, const char *signed_part, size_t len,
                        char out[2 * DIGEST_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), k->session_secret, DIGEST_LEN, (const unsigned char *)signed_part, len,
              mac, &mac_len) ||
        mac_len != DIGEST_LEN)
        return false;
    hex(mac, DIGEST_LEN, out);
    return true;
}

unsigned auth_session_issue(const auth_keys *k, const char *key, long long expires_s,
                            char out[AUTH_SESSION_MAX])
{
    out[0] = '\0';
    unsigned char md[DIGEST_LEN];
    if (!auth_enabled(k) || !key || !*key || strlen(key) > KEY_MAX || !digest(key, strlen(key), md))
        return 0;
    unsigned scopes = scopes_of_digest(k, md);
    if (!scopes)
        return 0;
    char id[2 * KEY_ID_BYTES + 1], mac[2 * DIGEST_LEN + 1];
    hex(md, KEY_ID_BYTES, id);
    int n = snprintf(out, AUTH_SESSION_MAX, SESSION_VERSION ".%lld.%s", expires_s, id);
    if (n < 0 || n >= AUTH_SESSION_MAX - (int)sizeof mac - 1 ||
        !session_mac(k, out, (size_t)n, mac)) {
        out[0] = '\0';
        return 0;
    }
    snprintf(out + n, (size_t)(AUTH_SESSION_MAX - n), ".%s", mac);
    return scopes;
}

unsigned auth_session_granted(const auth_keys *k, const char *token, long long now_s)
{
    if (!auth_enabled(k) || !token)
        return 0;
    size_t len = strlen(token);
    const char *mac_dot = strrchr(token, '.');
    if (len >= AUTH_SESSION_MAX || !mac_dot || strncmp(token, SESSION_VERSION ".", 3) != 0)
        return 0;
    char want[2 * DIGEST_LEN + 1];
    size_t signed_len = (size_t)(mac_dot - token);
    if (strlen(mac_dot + 1) != 2 * DIGEST_LEN || !session_mac(k, token, signed_len, want) ||
        CRYPTO_memcmp(want, mac_dot + 1, 2 * DIGEST_LEN) != 0)
        return 0;
    /* Signed by us: "v1.<expires>.<key id>" is well formed. */
    char *end = NULL;
    long long expires = strtoll(token + 3, &end, 10);
    if (!end || *end != '.' || expires <= now_s)
        return 0;
    const char *id = end + 1;
    unsigned granted = 0;
    for (size_t i = 0; i < k->n; i++) {
        char key_id[2 * KEY_ID_BYTES + 1];
        hex(k->keys[i].digest, KEY_ID_BYTES, key_id);
        if ((size_t)(mac_dot - id) == 2 * KEY_ID_BYTES && memcmp(key_id, id, 2 * KEY_ID_BYTES) == 0)
            granted |= k->keys[i].scopes;
    }
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
