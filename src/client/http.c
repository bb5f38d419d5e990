/* SPDX-License-Identifier: MIT */
/*
 * http.c — the libcurl side of liberrand (see http.h).
 *
 * Every request goes through a private multi handle holding the connection's one easy handle,
 * so the same code path serves plain calls and cancellable long polls: curl_multi_poll() can
 * wait on an extra file descriptor (the worker's stop pipe) next to curl's own sockets. The
 * multi handle keeps the connection cache, so keep-alive reuse works across requests.
 */
#include "client/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"

/* How long one curl_multi_poll() may sleep; curl wakes earlier for its own timers. */
#define HTTP_POLL_SLICE_MS 1000

struct http_conn {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    struct curl_slist *headers_minimal; /* the same, and Prefer: return=minimal */
    char **urls;                        /* the servers, in the order given */
    size_t n_urls;
    size_t current; /* the one requests go to, until it fails */
    char *base_url; /* urls[current] */
    long timeout_ms;
    /* the answer being received (owned by the thread performing the request) */
    char *buf;
    size_t len, cap;
    bool too_big;
    bool answer_started;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_init_once(void)
{
    mem_install_json();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_init(void)
{
    pthread_once(&http_once, http_init_once);
}

/* Whether the n bytes at url start with http:// or https://. */
static bool has_http_scheme(const char *url, size_t n)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (n > strlen(schemes[i]) && strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            return true;
    return false;
}

/* The next entry of a comma-separated list at *p, without the spaces around it: its start
 * and length; *p moves past its comma. False at the end of the list. */
static bool next_entry(const char **p, const char **start, size_t *len)
{
    if (!*p)
        return false;
    const char *s = *p, *comma = strchr(s, ',');
    const char *end = comma ? comma : s + strlen(s);
    *p = comma ? comma + 1 : NULL;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *start = s;
    *len = (size_t)(end - s);
    return true;
}

bool http_url_is_valid(const char *urls)
{
    const char *p = urls, *start;
    size_t len, n = 0;
    while (next_entry(&p, &start, &len)) {
        if (!has_http_scheme(start, len))
            return false;
        n++;
    }
    return n > 0 && n <= HTTP_MAX_SERVERS;
}

/* Where a connection starts in its list of n servers: drawn at random, so that clients and
 * workers given the same list spread over its servers. */
static size_t first_server(size_t n)
{
    unsigned v = 0;
    if (n < 2)
        return 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
        v = (unsigned)getpid() ^ (unsigned)time(NULL);
    return v % n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_conn *c = userdata;
    size_t n = size * nmemb;
    c->answer_started = true;
    if (c->len + n + 1 > (size_t)HTTP_RESPONSE_MAX_BYTES) {
        c->too_big = true;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = mem_realloc(c->buf, cap);
        if (!p)
            return 0;
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_conn *c = userdata;
    (void)data;
    c->answer_started = true;
    return size * nmemb;
}

/* The headers of every request (the key's, when there is one), and prefer when not NULL;
 * NULL when out of memory. */
static struct curl_slist *request_headers(const char *api_key, const char *prefer)
{
    struct curl_slist *list = curl_slist_append(NULL, "Content-Type: application/json");
    bool ok = list && curl_slist_append(list, "Accept: application/json") &&
              curl_slist_append(list, "Expect:");
    if (ok && api_key && *api_key) {
        char *auth = mem_printf("Authorization: Bearer %s", api_key);
        ok = auth && curl_slist_append(list, auth);
        mem_free(auth);
    }
    if (ok && prefer)
        ok = curl_slist_append(list, prefer) != NULL;
    if (!ok) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

int http_conn_new(const char *base_url, const char *api_key, long timeout_ms, http_conn **out,
                  errand_error *err)
{
    *out = NULL;
    http_global_init();
    if (!base_url || !*base_url)
        return error_set(err, ERRAND_EINVAL, "api_url",
                         "the API URL is empty; set "
                         "ERRAND_API_URL, e.g. http://127.0.0.1:4200/api");
    if (!http_url_is_valid(base_url))
        return error_set(err, ERRAND_EINVAL, "api_url",
                         "the API URL '%s' must be a URL starting with http:// or https://, or "
                         "a comma-separated list of at most %d of them",
                         base_url, HTTP_MAX_SERVERS);
    http_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating an HTTP connection");
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    if (!(c->urls = mem_calloc(HTTP_MAX_SERVERS, sizeof *c->urls)))
        goto nomem;
    const char *p = base_url, *start;
    size_t len;
    while (next_entry(&p, &start, &len)) {
        while (len > 0 && start[len - 1] == '/')
            len--;
        if (!(c->urls[c->n_urls++] = mem_strndup(start, len)))
            goto nomem;
    }
    c->current = first_server(c->n_urls);
    c->base_url = c->urls[c->current];

    if (!(c->headers = request_headers(api_key, NULL)) ||
        !(c->headers_minimal = request_headers(api_key, "Prefer: return=minimal")))
        goto nomem;

    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->easy || !c->multi)
        goto nomem;
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     c->timeout_ms < HTTP_CONNECT_TIMEOUT_MS ? c->timeout_ms
                                                             : HTTP_CONNECT_TIMEOUT_MS);
    *out = c;
    return 0;
nomem:
    http_conn_free(c);
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating an HTTP connection");
}

void http_conn_free(http_conn *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->headers_minimal);
    for (size_t i = 0; i < c->n_urls; i++)
        mem_free(c->urls[i]);
    mem_free(c->urls);
    mem_free(c->buf);
    mem_free(c);
}

const char *http_conn_base_url(const http_conn *c)
{
    return c->base_url;
}

void http_response_clear(struct http_response *r)
{
    if (!r)
        return;
    mem_free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = 0;
}

static void set_method(http_conn *c, const char *method, const char *body)
{
    CURL *e = c->easy;
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method);
}

/* The reason a transfer failed, in words a user can act on. */
static void describe_failure(http_conn *c, CURLcode rc, long timeout_ms, char *out, size_t n)
{
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(out, n, "no answer within %ld ms", timeout_ms);
        return;
    }
    if (rc == CURLE_COULDNT_CONNECT) {
        long os_errno = 0;
        curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno) {
            char buf[128];
            snprintf(out, n, "%s", strerror_r((int)os_errno, buf, sizeof buf));
            return;
        }
    }
    snprintf(out, n, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
}

/* One attempt at the current server. *never_sent: the server could not be reached at all
 * (no connection), so nothing of the request got to it. */
static int perform_once(http_conn *c, const char *method, const char *path, const char *body,
                        long extra_ms, int cancel_fd, bool minimal, struct http_response *resp,
                        bool *never_sent, errand_error *err)
{
    *never_sent = false;
    resp->status = 0;
    resp->body = NULL;
    resp->len = 0;
    char *url = mem_printf("%s%s", c->base_url, path);
    if (!url)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory building a request");
    c->len = 0;
    c->too_big = false;
    c->answer_started = false;
    c->errbuf[0] = '\0';
    long timeout_ms = c->timeout_ms + (extra_ms > 0 ? extra_ms : 0);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, minimal ? c->headers_minimal : c->headers);
    set_method(c, method, body);

    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) {
        mem_free(url);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot start a request to %s", c->base_url);
    }
    bool cancelled = false;
    int running = 1;
    CURLMcode mc = CURLM_OK;
    while (running) {
        mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK || !running)
            break;
        struct curl_waitfd wfd = {.fd = cancel_fd, .events = CURL_WAIT_POLLIN, .revents = 0};
        /* Once the answer is arriving it is read to the end, so stop watching the fd
           (it stays readable after a stop and would make the poll spin). */
        bool watch = cancel_fd >= 0 && !c->answer_started;
        mc =
            curl_multi_poll(c->multi, watch ? &wfd : NULL, watch ? 1 : 0, HTTP_POLL_SLICE_MS, NULL);
        if (mc != CURLM_OK)
            break;
        if (watch && (wfd.revents & CURL_WAIT_POLLIN) && !c->answer_started) {
            cancelled = true;
            break;
        }
    }
    CURLcode rc = CURLE_OK;
    int left = 0;
    CURLMsg *msg;
    bool done = false;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy) {
            rc = msg->data.result;
            done = true;
        }
    }
    curl_multi_remove_handle(c->multi, c->easy);

    int ret = 0;
    if (cancelled) {
        ret = error_set(err, ERRAND_ECANCELLED, NULL, "request to %s%s abandoned: stopping",
                        c->base_url, path);
    } else if (mc != CURLM_OK) {
        ret = error_set(err, ERRAND_EIO, NULL, "request to %s failed: %s", c->base_url,
                        curl_multi_strerror(mc));
    } else if (!done) {
        ret = error_set(err, ERRAND_EIO, NULL, "request to %s ended without a result", c->base_url);
    } else if (c->too_big) {
        ret = error_set(err, ERRAND_ETOOBIG, NULL, "the answer of %s%s is larger than %ld bytes",
                        c->base_url, path, HTTP_RESPONSE_MAX_BYTES);
    } else if (rc != CURLE_OK) {
        *never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
        char reason[CURL_ERROR_SIZE + 64];
        describe_failure(c, rc, timeout_ms, reason, sizeof reason);
        ret = error_set(err, ERRAND_EUNAVAILABLE, NULL, "cannot reach errand server at %s: %s",
                        c->base_url, reason);
    } else {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->body = mem_strndup(c->buf ? c->buf : "", c->len);
        if (!resp->body) {
            resp->status = 0;
            ret = error_set(err, ERRAND_ENOMEM, NULL, "out of memory reading an answer");
        } else {
            resp->len = c->len;
        }
    }
    mem_free(url);
    return ret;
}

static int perform(http_conn *c, const char *method, const char *path, const char *body,
                   long extra_ms, int cancel_fd, bool minimal, struct http_response *resp,
                   errand_error *err)
{
    for (size_t tried = 1;; tried++) {
        bool never_sent = false;
        int rc = perform_once(c, method, path, body, extra_ms, cancel_fd, minimal, resp,
                              &never_sent, err);
        bool failed = rc == ERRAND_EUNAVAILABLE || (rc == 0 && resp->status == 503);
        if (!failed || c->n_urls < 2)
            return rc;
        /* Requests go to the next server from now on. One that reached this server (it may
           have acted on it) is left to the caller, who knows whether it is safe to send again;
           one that never got there goes to the next server at once. */
        c->current = (c->current + 1) % c->n_urls;
        c->base_url = c->urls[c->current];
        if (!never_sent || tried == c->n_urls)
            return rc;
    }
}

int http_perform(http_conn *c, const char *method, const char *path, const char *body,
                 long extra_ms, int cancel_fd, struct http_response *resp, errand_error *err)
{
    return perform(c, method, path, body, extra_ms, cancel_fd, false, resp, err);
}

int http_perform_minimal(http_conn *c, const char *method, const char *path, const char *body,
                         long extra_ms, struct http_response *resp, errand_error *err)
{
    return perform(c, method, path, body, extra_ms, -1, true, resp, err);
}

int http_status_error(long status, const char *body, errand_error *err)
{
    int code;
    if (status == 400)
        code = ERRAND_EINVAL;
    else if (status == 401 || status == 403)
        code = ERRAND_EAUTH;
    else if (status == 404)
        code = ERRAND_ENOTFOUND;
    else if (status == 409)
        code = ERRAND_ECONFLICT;
    else if (status == 413)
        code = ERRAND_ETOOBIG;
    else if (status == 503)
        code = ERRAND_EUNAVAILABLE;
    else if (status >= 500)
        code = ERRAND_ESERVER;
    else
        code = ERRAND_EINVAL;

    const char *message = NULL, *field = NULL;
    json_t *root = body && *body ? json_loads(body, 0, NULL) : NULL;
    json_t *e = root ? json_object_get(root, "error") : NULL;
    if (json_is_object(e)) {
        message = json_string_value(json_object_get(e, "message"));
        field = json_string_value(json_object_get(e, "field"));
    }
    if (message && *message)
        error_set(err, code, field, "%s", message);
    else
        error_set(err, code, field, "the errand server answered HTTP %ld", status);
    if (err)
        err->http_status = (int)status;
    json_decref(root);
    return code;
}
