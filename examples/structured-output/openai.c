/* SPDX-License-Identifier: MIT */
/*
 * openai.c — one structured-output call to a chat-completions endpoint (see openai.h).
 * The response body is collected into a buffer capped at OPENAI_MAX_RESPONSE_BYTES; error
 * bodies are read in OpenAI's shape {"error": {"message", "type", "code"}} and, for servers
 * that answer {"error": "text"} or plain text, as that text.
 */
#include "openai.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPENAI_MAX_RESPONSE_BYTES (4L * 1024 * 1024)
#define OPENAI_CONNECT_TIMEOUT_MS 10000L
#define OPENAI_BODY_EXCERPT 200
#define OPENAI_USER_AGENT "errand-structured-output/" ERRAND_EXAMPLE_VERSION
#define HTTP_OK 200
#define HTTP_REQUEST_TIMEOUT 408
#define HTTP_CONFLICT 409
#define HTTP_TOO_MANY_REQUESTS 429
#define HTTP_SERVER_ERROR 500
#define MS_PER_SECOND 1000L

#ifndef ERRAND_EXAMPLE_VERSION
#define ERRAND_EXAMPLE_VERSION "0"
#endif

static void copy_env(char *dst, size_t cap, const char *name, const char *fallback)
{
    const char *v = getenv(name);
    snprintf(dst, cap, "%s", v && *v ? v : fallback);
}

int openai_config_from_env(openai_config *cfg, char *why, size_t why_len)
{
    memset(cfg, 0, sizeof *cfg);
    const char *base = getenv("OPENAI_BASE_URL");
    cfg->base_url_set = base && *base;
    copy_env(cfg->base_url, sizeof cfg->base_url, "OPENAI_BASE_URL", OPENAI_DEFAULT_BASE_URL);
    size_t n = strlen(cfg->base_url);
    while (n > 0 && cfg->base_url[n - 1] == '/')
        cfg->base_url[--n] = '\0';
    copy_env(cfg->api_key, sizeof cfg->api_key, "OPENAI_API_KEY", "");
    copy_env(cfg->model, sizeof cfg->model, "OPENAI_MODEL", OPENAI_DEFAULT_MODEL);
    cfg->timeout_seconds = OPENAI_DEFAULT_TIMEOUT_SECONDS;
    const char *t = getenv("OPENAI_TIMEOUT_SECONDS");
    if (t && *t) {
        char *end;
        errno = 0;
        long v = strtol(t, &end, 10);
        if (errno || *end || v <= 0) {
            snprintf(why, why_len,
                     "OPENAI_TIMEOUT_SECONDS must be a positive whole number of "
                     "seconds, got '%s'",
                     t);
            return -1;
        }
        cfg->timeout_seconds = v;
    }
    if (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0) {
        snprintf(why, why_len, "OPENAI_BASE_URL must start with http:// or https://, got '%s'",
                 cfg->base_url);
        return -1;
    }
    return 0;
}

bool openai_config_usable(const openai_config *cfg)
{
    return cfg->api_key[0] != '\0' || cfg->base_url_set;
}

void openai_answer_clear(openai_answer *a)
{
    free(a->content);
    memset(a, 0, sizeof *a);
}

static void set_outcome(openai_answer *a, openai_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_outcome(openai_answer *a, openai_outcome o, const char *fmt, ...)
{
    a->outcome = o;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->message, sizeof a->message, fmt, ap);
    va_end(ap);
}

/* ---- transfer ------------------------------------------------------------------------ */

typedef struct body_buf {
    char *data;
    size_t len;
    bool too_big;
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > (size_t)OPENAI_MAX_RESPONSE_BYTES) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const openai_request *req = arg;
    return req->should_stop && req->should_stop(req->stop_arg) ? 1 : 0;
}

static char *request_body(const openai_config *cfg, const openai_request *req)
{
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s, s:{s:s, s:O, s:b}}}",
                             "model", cfg->model, "messages", "role", "system", "content",
                             req->system_prompt, "role", "user", "content", req->user_prompt,
                             "response_format", "type", "json_schema", "json_schema", "name",
                             req->schema_name, "schema", req->schema, "strict", req->strict);
    if (!body)
        return NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* ---- reading answers ----------------------------------------------------------------- */

/* The endpoint's own words for an error: error.message (+ type/code), or the body text. */
static void error_text(const body_buf *b, char *out, size_t cap, const char **code_out)
{
    *code_out = "";
    json_t *root = b->data ? json_loads(b->data, 0, NULL) : NULL;
    json_t *err = root ? json_object_get(root, "error") : NULL;
    if (json_is_object(err) && json_is_string(json_object_get(err, "message"))) {
        const char *type = json_string_value(json_object_get(err, "type"));
        const char *code = json_string_value(json_object_get(err, "code"));
        int n = snprintf(out, cap, "%s", json_string_value(json_object_get(err, "message")));
        if (n >= 0 && (size_t)n < cap && (type || code))
            snprintf(out + n, cap - (size_t)n, " (type %s, code %s)", type ? type : "-",
                     code ? code : "-");
        if (code && strcmp(code, "insufficient_quota") == 0)
            *code_out = "insufficient_quota";
    } else if (json_is_string(err)) {
        snprintf(out, cap, "%s", json_string_value(err));
    } else if (b->data && b->len) {
        snprintf(out, cap, "%.*s", OPENAI_BODY_EXCERPT, b->data);
    } else {
        snprintf(out, cap, "(empty body)");
    }
    json_decref(root);
}

static bool status_is_retryable(long status, const char *code)
{
    if (status == HTTP_TOO_MANY_REQUESTS)
        return strcmp(code, "insufficient_quota") != 0; /* no quota left: waiting won't help */
    return status == HTTP_REQUEST_TIMEOUT || status == HTTP_CONFLICT || status >= HTTP_SERVER_ERROR;
}

static void read_completion(const body_buf *b, const char *url, openai_answer *out)
{
    json_error_t jerr;
    json_t *root = json_loads(b->data ? b->data : "", 0, &jerr);
    if (!root) {
        set_outcome(out, OPENAI_RETRYABLE, "%s answered 200 with a body that is not JSON: %s", url,
                    jerr.text);
        return;
    }
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *message = json_object_get(choice, "message");
    json_t *refusal = json_object_get(message, "refusal");
    json_t *content = json_object_get(message, "content");
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (json_is_string(refusal) && json_string_length(refusal) > 0) {
        set_outcome(out, OPENAI_FATAL, "the model refused: %s", json_string_value(refusal));
    } else if (!json_is_string(content)) {
        set_outcome(out, OPENAI_RETRYABLE,
                    "%s answered without choices[0].message.content (finish_reason %s)", url,
                    finish ? finish : "missing");
    } else if (finish && strcmp(finish, "length") == 0) {
        set_outcome(out, OPENAI_RETRYABLE,
                    "the model's answer was cut off at its token limit (finish_reason length)");
    } else {
        out->content = strdup(json_string_value(content));
        if (out->content)
            out->outcome = OPENAI_OK;
        else
            set_outcome(out, OPENAI_RETRYABLE, "out of memory reading the answer");
    }
    json_decref(root);
}

void openai_chat(const openai_config *cfg, const openai_request *req, openai_answer *out)
{
    memset(out, 0, sizeof *out);
    char url[OPENAI_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/chat/completions", cfg->base_url);
    char auth[OPENAI_KEY_MAX + 32];
    char errbuf[CURL_ERROR_SIZE] = "";
    body_buf body = {0};
    struct curl_slist *headers = NULL;
    char *payload = request_body(cfg, req);
    CURL *curl = curl_easy_init();
    if (!payload || !curl) {
        set_outcome(out, OPENAI_RETRYABLE, "out of memory preparing the request");
        goto done;
    }
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    if (cfg->api_key[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
        headers = curl_slist_append(headers, auth);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, OPENAI_USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, OPENAI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cfg->timeout_seconds * MS_PER_SECOND);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)req);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->http_status);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        set_outcome(out, OPENAI_STOPPED, "stopped before %s answered", url);
    } else if (body.too_big) {
        set_outcome(out, OPENAI_RETRYABLE, "%s answered more than %ld bytes", url,
                    OPENAI_MAX_RESPONSE_BYTES);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        set_outcome(out, OPENAI_RETRYABLE, "%s did not answer within %ld s", url,
                    cfg->timeout_seconds);
    } else if (rc != CURLE_OK) {
        set_outcome(out, OPENAI_RETRYABLE, "could not reach %s: %s", url,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (out->http_status != HTTP_OK) {
        char text[OPENAI_MESSAGE_MAX / 2];
        const char *code;
        error_text(&body, text, sizeof text, &code);
        set_outcome(out,
                    status_is_retryable(out->http_status, code) ? OPENAI_RETRYABLE : OPENAI_FATAL,
                    "%s answered %ld: %s", url, out->http_status, text);
    } else {
        read_completion(&body, url, out);
    }
done:
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    free(payload);
    free(body.data);
}
