/* SPDX-License-Identifier: MIT */
/*
 * client.c — errand_client: its life (settings for what the options leave out, one HTTP
 * connection) and the calls every other client module makes through it, plus the raw
 * errand_request() the CLI uses for listings.
 */
#include "client/client.h"

#include <curl/curl.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/settings.h"

/* Submissions: how long they are retried by default while the server is away, and the
 * backoff between tries. */
#define SUBMIT_RETRY_DEFAULT_MS 10000
#define SUBMIT_BACKOFF_MIN_MS 50
#define SUBMIT_BACKOFF_MAX_MS 1000

int errand_client_new(const errand_client_options *opt, errand_client **out, errand_error *err)
{
    if (!out)
        return error_set(err, ERRAND_EINVAL, "out", "errand_client_new needs an out pointer");
    *out = NULL;
    error_clear(err);
    http_global_init();
    errand_client_options none = {0};
    if (!opt)
        opt = &none;
    if (opt->timeout_ms < 0)
        return error_set(err, ERRAND_EINVAL, "timeout_ms",
                         "timeout_ms must be 0 (default) or positive, got %ld", opt->timeout_ms);

    struct settings *s = NULL;
    if (!opt->api_url || !opt->api_key) {
        s = mem_alloc(sizeof *s);
        if (!s)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory loading settings");
        int rc = settings_load(s, err);
        if (rc) {
            mem_free(s);
            return rc;
        }
    }
    const char *url = opt->api_url ? opt->api_url : settings_str(s, SET_API_URL);
    const char *key = opt->api_key ? opt->api_key : settings_str(s, SET_API_KEY);

    int rc = ERRAND_ENOMEM;
    errand_client *c = mem_calloc(1, sizeof *c);
    if (!c) {
        error_set(err, rc, NULL, "out of memory creating a client");
        goto fail;
    }
    rc = http_conn_new(url, key, opt->timeout_ms, &c->conn, err);
    if (rc)
        goto fail;
    c->submit_retry_ms = opt->submit_retry_ms < 0    ? 0
                         : opt->submit_retry_ms == 0 ? SUBMIT_RETRY_DEFAULT_MS
                                                     : opt->submit_retry_ms;
    mem_free(s);
    *out = c;
    return 0;
fail:
    errand_client_free(c);
    mem_free(s);
    return rc;
}

int client_call_retrying(errand_client *c, const char *method, const char *path, const json_t *body,
                         json_t **out, errand_error *err)
{
    int64_t deadline = clock_mono_ms() + c->submit_retry_ms;
    int64_t backoff = SUBMIT_BACKOFF_MIN_MS;
    for (;;) {
        int rc = client_call(c, method, path, body, 0, out, err);
        int64_t now = clock_mono_ms();
        if (rc != ERRAND_EUNAVAILABLE || now + backoff > deadline)
            return rc;
        clock_sleep_ms(backoff);
        backoff = backoff * 2 < SUBMIT_BACKOFF_MAX_MS ? backoff * 2 : SUBMIT_BACKOFF_MAX_MS;
    }
}

void errand_client_free(errand_client *c)
{
    if (!c)
        return;
    http_conn_free(c->conn);
    mem_free(c);
}

int client_call(errand_client *c, const char *method, const char *path, const json_t *body,
                long extra_ms, json_t **out, errand_error *err)
{
    return client_call_fd(c, method, path, body, extra_ms, -1, out, err);
}

int client_call_fd(errand_client *c, const char *method, const char *path, const json_t *body,
                   long extra_ms, int cancel_fd, json_t **out, errand_error *err)
{
    if (out)
        *out = NULL;
    char *text = NULL;
    if (body) {
        text = json_compact(body);
        if (!text)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory encoding a request");
    }
    struct http_response resp;
    /* A caller that takes no answer gets a minimal one where the server offers it. */
    int rc = out || cancel_fd >= 0
                 ? http_perform(c->conn, method, path, text, extra_ms, cancel_fd, &resp, err)
                 : http_perform_minimal(c->conn, method, path, text, extra_ms, &resp, err);
    mem_free(text);
    if (rc)
        return rc;
    if (resp.status < 200 || resp.status >= 300) {
        rc = http_status_error(resp.status, resp.body, err);
        http_response_clear(&resp);
        return rc;
    }
    if (out) {
        json_error_t jerr;
        *out = json_loadb(resp.body, resp.len, 0, &jerr);
        if (!*out) {
            rc = error_set(err, ERRAND_ESERVER, NULL,
                           "the errand server answered %s %s with invalid JSON: %s", method, path,
                           jerr.text);
            if (err)
                err->http_status = (int)resp.status;
        }
    }
    http_response_clear(&resp);
    return rc;
}

char *client_run_path(const char *id, const char *suffix)
{
    char *esc = curl_easy_escape(NULL, id, 0);
    if (!esc)
        return NULL;
    char *path = mem_printf("/task_runs/%s%s", esc, suffix ? suffix : "");
    curl_free(esc);
    return path;
}

int errand_error_from_response(int status, const char *body, errand_error *err)
{
    return http_status_error(status, body, err);
}

int errand_request(errand_client *c, const char *method, const char *path, const char *body,
                   int *status, char **response, errand_error *err)
{
    if (status)
        *status = 0;
    if (response)
        *response = NULL;
    error_clear(err);
    if (!c || !method || !path)
        return error_set(err, ERRAND_EINVAL,
                         !c        ? "client"
                         : !method ? "method"
                                   : "path",
                         "errand_request needs a client, a method and a path");
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
        strcmp(method, "DELETE") != 0 && strcmp(method, "PATCH") != 0)
        return error_set(err, ERRAND_EINVAL, "method",
                         "method must be GET, POST, PUT, PATCH or DELETE, got '%s'", method);
    if (path[0] != '/')
        return error_set(err, ERRAND_EINVAL, "path", "path must start with '/', got '%s'", path);
    struct http_response resp;
    int rc = http_perform(c->conn, method, path, body, 0, -1, &resp, err);
    if (rc)
        return rc;
    if (status)
        *status = (int)resp.status;
    if (response) {
        *response = resp.body;
        resp.body = NULL;
    }
    http_response_clear(&resp);
    return 0;
}
