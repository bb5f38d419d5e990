/* SPDX-License-Identifier: MIT */
/*
 * auth.h — API keys and what each may do. With any key configured, every request but the
 * health probes must carry "Authorization: Bearer <key>", checked before anything else of
 * the request is looked at (an unauthenticated caller learns nothing but 401). Keys come in
 * scopes, so a leaked key gives away no more than its holder needed:
 *
 *   ERRAND_API_KEY           admin: everything
 *   ERRAND_API_KEYS_SUBMIT   web apps: submit, cancel and read runs
 *   ERRAND_API_KEYS_WORKER   workers: claim, heartbeat and report
 *   ERRAND_API_KEYS_READ     dashboards: read only
 *
 * The three lists are comma-separated (several keys, for rotation). A presented key is
 * hashed once (SHA-256) and compared with every configured key's digest with CRYPTO_memcmp,
 * without stopping at a match, so the time taken tells nothing about the keys.
 */
#ifndef ERRAND_SERVER_AUTH_H
#define ERRAND_SERVER_AUTH_H

#include <stdbool.h>

#include "errand/errand.h"

/* What a request needs (a route's scope), and what a key grants (a set of them). */
enum auth_scope {
    AUTH_PUBLIC = 0, /* nothing: the health probes */
    AUTH_READ = 1,   /* read runs, logs, workers, metrics */
    AUTH_SUBMIT = 2, /* submit and cancel runs */
    AUTH_WORK = 4,   /* the worker protocol */
};
#define AUTH_ALL (AUTH_READ | AUTH_SUBMIT | AUTH_WORK)

typedef struct auth_keys auth_keys;

/* The keys of each scope (NULL or "" = none; lists are comma-separated). A key of the
 * admin or any list is 1-1024 characters without spaces or commas; EINVAL names the setting. */
int auth_keys_new(const char *admin, const char *submit, const char *worker, const char *read,
                  auth_keys **out, errand_error *err);
void auth_keys_free(auth_keys *k);

/* Whether any key is configured (else every request is allowed). */
bool auth_enabled(const auth_keys *k);

/* The scopes the request's Authorization header value (NULL when absent) grants: AUTH_ALL
 * when no key is configured, 0 when the header names no configured key. */
unsigned auth_granted(const auth_keys *k, const char *authorization);

/* The scopes key itself grants (the login of the dashboard), as auth_granted does for an
 * Authorization header: AUTH_ALL when no key is configured, 0 for an unknown key. */
unsigned auth_key_scopes(const auth_keys *k, const char *key);

/* Sessions: the dashboard's login exchanges a key for a token kept in a cookie (a browser's
 * EventSource cannot send headers, and a key must not sit in URLs or page storage). A token
 * is "v1.<expires>.<key id>.<mac>": the key id is the start of the key's SHA-256, the mac an
 * HMAC-SHA-256 over the rest under a secret derived from every configured key. So servers
 * with the same keys accept each other's sessions; a session grants what its key grants now
 * (a key removed from the configuration ends its sessions); changing the keys ends all. */
#define AUTH_SESSION_MAX 128
/* The cookie that carries the token, and the header a cookie-authenticated change must carry
 * (a cross-site form or image cannot send it). */
#define AUTH_SESSION_COOKIE "errand_session"
#define AUTH_CSRF_HEADER "X-Errand-CSRF"
/* Writes a token for key valid until expires_s (Unix seconds) into out; returns the scopes it
 * grants, 0 (nothing written) when the key is not configured. */
unsigned auth_session_issue(const auth_keys *k, const char *key, long long expires_s,
                            char out[AUTH_SESSION_MAX]);
/* The scopes token grants at now_s: 0 when malformed, forged, expired or its key is gone. */
unsigned auth_session_granted(const auth_keys *k, const char *token, long long now_s);

/* The scope's name for messages: "read", "submit", "worker". */
const char *auth_scope_name(unsigned scope);

#endif
