/*
 * auth.h — the API-key check: with ERRAND_API_KEY set, requests must carry
 * "Authorization: Bearer <key>".
 */
#ifndef ERRAND_SERVER_AUTH_H
#define ERRAND_SERVER_AUTH_H

#include <stdbool.h>

/* True when api_key is empty (no authentication), or when the Authorization header value
 * (NULL when absent) is "Bearer <api_key>". */
bool auth_allows(const char *api_key, const char *authorization);

#endif
