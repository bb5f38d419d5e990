/* SPDX-License-Identifier: MIT */
/*
 * handlers_session.c — the dashboard's login (auth.h, "Sessions"):
 *   GET    /api/session  whether a key is needed, and what this request may do;
 *   POST   /api/session  {"key": "..."} → a session cookie (HttpOnly, SameSite=Strict,
 *                        expiring after SESSION_TTL_S) granting what the key grants;
 *   DELETE /api/session  ends it (the cookie is cleared).
 * All three are public (a browser without a session must reach the login). POST and DELETE
 * need the X-Errand-CSRF header like every change made with a session, so another site
 * cannot log a browser in or out. The key is never logged nor echoed.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "server/auth.h"
#include "server/field.h"
#include "server/handlers.h"
#include "server/query.h"

#define SESSION_TTL_S (12 * 60 * 60)
#define SESSION_COOKIE_ATTRS "; Path=/; HttpOnly; SameSite=Strict"
#define COOKIE_MAX 256

static json_t *scope_names(unsigned scopes)
{
    json_t *a = json_array();
    static const unsigned each[] = {AUTH_READ, AUTH_SUBMIT, AUTH_WORK};
    for (size_t i = 0; a && i < sizeof each / sizeof each[0]; i++)
        if (scopes & each[i])
            json_array_append_new(a, json_string(auth_scope_name(each[i])));
    return a;
}

static int session_answer(struct http_reply *reply, const struct http_request *req, unsigned scopes,
                          long long expires_s, char *cookie, errand_error *err)
{
    json_t *body = json_pack("{s:b, s:b, s:o}", "auth_required", http_auth_required(req),
                             "authenticated", scopes != 0, "scopes", scope_names(scopes));
    if (body && expires_s > 0) {
        char when[CLOCK_RFC3339_LEN];
        clock_format_rfc3339(expires_s * MS_PER_S, when);
        json_object_set_new(body, "expires", json_string(when));
    }
    if (!body) {
        mem_free(cookie);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    http_reply_json(reply, HTTP_OK, body);
    reply->set_cookie = cookie;
    return 0;
}

static char *cookie_text(const char *value, int max_age)
{
    char *c = mem_alloc(COOKIE_MAX);
    if (c)
        snprintf(c, COOKIE_MAX, AUTH_SESSION_COOKIE "=%s; Max-Age=%d" SESSION_COOKIE_ATTRS, value,
                 max_age);
    return c;
}

static int need_csrf_header(const struct http_request *req, errand_error *err)
{
    if (http_header(req, AUTH_CSRF_HEADER))
        return 0;
    return error_set(err, ERR_FORBIDDEN, AUTH_CSRF_HEADER,
                     "logging in or out needs the %s header (cross-site requests cannot send "
                     "it)",
                     AUTH_CSRF_HEADER);
}

int handle_session_get(const struct handler_ctx *ctx, const struct http_request *req,
                       struct http_reply *reply, errand_error *err)
{
    (void)ctx;
    int rc = query_none(req, err);
    if (rc < 0)
        return rc;
    return session_answer(reply, req, req->granted, 0, NULL, err);
}

const char *const session_login_fields[] = {"key", NULL};

int handle_session_login(const struct handler_ctx *ctx, const struct http_request *req,
                         struct http_reply *reply, errand_error *err)
{
    (void)ctx;
    json_t *body = NULL;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = need_csrf_header(req, err)) < 0 ||
        (rc = http_request_json(req, &body, err)) < 0)
        return rc;
    const char *key = json_string_value(json_object_get(body, "key"));
    if ((rc = field_require_object(body, NULL, err)) < 0 ||
        (rc = json_check_fields(body, NULL, session_login_fields, err)) < 0) {
        json_decref(body);
        return rc;
    }
    if (!key) {
        json_decref(body);
        return error_set(err, ERRAND_EINVAL, "key",
                         "the body must be {\"key\": \"<an API key of this server>\"}");
    }
    if (!http_auth_required(req)) {
        json_decref(body);
        return session_answer(reply, req, AUTH_ALL, 0, NULL, err);
    }
    long long expires = clock_now_ms() / MS_PER_S + SESSION_TTL_S;
    char token[AUTH_SESSION_MAX];
    unsigned scopes = http_session_issue(req, key, expires, token, sizeof token);
    json_decref(body); /* the key goes with it */
    if (!scopes)
        return error_set(err, ERR_UNAUTHORIZED, "key", "that is not one of the server's keys");
    char *cookie = cookie_text(token, SESSION_TTL_S);
    if (!cookie)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return session_answer(reply, req, scopes, expires, cookie, err);
}

int handle_session_logout(const struct handler_ctx *ctx, const struct http_request *req,
                          struct http_reply *reply, errand_error *err)
{
    (void)ctx;
    int rc;
    if ((rc = query_none(req, err)) < 0 || (rc = need_csrf_header(req, err)) < 0)
        return rc;
    char *cookie = cookie_text("", 0);
    if (!cookie)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return session_answer(reply, req, http_auth_required(req) ? 0 : AUTH_ALL, 0, cookie, err);
}
