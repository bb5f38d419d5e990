/* SPDX-License-Identifier: MIT */
/*
 * s3.c — the S3 calls of the result storage (see s3.h): one libcurl handle per call, signed
 * by libcurl with SigV4, the payload hash computed with OpenSSL.
 */
#include "client/s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"

#define S3_CONNECT_TIMEOUT_MS 10000L
/* A transfer slower than a byte a second for this long is given up. */
#define S3_STALL_SECONDS 30L
/* How much of an error answer is kept, to find its Code and Message. */
#define S3_ERROR_BODY_MAX 4096
#define S3_BUCKET_MIN 3
#define S3_BUCKET_MAX 63
#define S3_PREFIX_MAX 512
#define S3_REGION_MAX 32
#define SHA256_HEX_LEN 64
#define HTTP_NOT_FOUND 404
#define HTTP_FORBIDDEN 403
#define HTTP_UNAUTHORIZED 401

bool s3_is_url(const char *url)
{
    return url && strncmp(url, S3_URL_SCHEME, strlen(S3_URL_SCHEME)) == 0;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool valid_bucket(const char *b, size_t n)
{
    if (n < S3_BUCKET_MIN || n > S3_BUCKET_MAX || !is_lower_alnum(b[0]) ||
        !is_lower_alnum(b[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(b[i]) && b[i] != '.' && b[i] != '-')
            return false;
    return true;
}

/* Letters, digits, '.', '_', '-' and single '/' between segments; no "." or ".." segment. */
static bool valid_prefix(const char *p)
{
    size_t n = strlen(p);
    if (n > S3_PREFIX_MAX)
        return false;
    const char *seg = p;
    for (size_t i = 0; i <= n; i++) {
        char c = p[i];
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(p + i - seg);
            if (len == 0 && n > 0)
                return false;
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            seg = p + i + 1;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_region(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > S3_REGION_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(r[i]) && r[i] != '-')
            return false;
    return true;
}

int s3_location_init(struct s3_location *loc, const char *url, const char *endpoint,
                     const char *region, const char *access_key_id, const char *secret_access_key,
                     errand_error *err)
{
    memset(loc, 0, sizeof *loc);
    if (!s3_is_url(url))
        return error_set(err, ERRAND_EINVAL, "result_storage",
                         "the result storage '%s' is not an s3://bucket/prefix URL",
                         url ? url : "");
    const char *b = url + strlen(S3_URL_SCHEME), *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (!valid_bucket(b, blen))
        return error_set(err, ERRAND_EINVAL, "result_storage",
                         "the result storage '%s' must name a bucket of 3 to 63 lower-case "
                         "letters, digits, '.' or '-': s3://bucket/prefix",
                         url);
    const char *prefix = slash ? slash + 1 : "";
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    if (!region || !*region)
        region = S3_DEFAULT_REGION;
    if (!valid_region(region))
        return error_set(err, ERRAND_EINVAL, "aws_region",
                         "AWS_REGION '%s' must be a region name such as us-east-1", region);
    if (endpoint && *endpoint && strncmp(endpoint, "http://", 7) != 0 &&
        strncmp(endpoint, "https://", 8) != 0)
        return error_set(err, ERRAND_EINVAL, "s3_endpoint_url",
                         "ERRAND_S3_ENDPOINT_URL '%s' must start with http:// or https://",
                         endpoint);
    if (!access_key_id || !*access_key_id || !secret_access_key || !*secret_access_key)
        return error_set(err, ERRAND_EINVAL, "aws_access_key_id",
                         "results in %s need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", url);
    loc->bucket = mem_strndup(b, blen);
    loc->prefix = mem_strndup(prefix, plen);
    loc->region = mem_strdup(region);
    loc->endpoint = endpoint && *endpoint ? mem_strdup(endpoint)
                                          : mem_printf("https://s3.%s.amazonaws.com", region);
    loc->access_key_id = mem_strdup(access_key_id);
    loc->secret_access_key = mem_strdup(secret_access_key);
    if (!loc->bucket || !loc->prefix || !loc->region || !loc->endpoint || !loc->access_key_id ||
        !loc->secret_access_key) {
        s3_location_clear(loc);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    size_t elen = strlen(loc->endpoint);
    while (elen > 0 && loc->endpoint[elen - 1] == '/')
        loc->endpoint[--elen] = '\0';
    if (!valid_prefix(loc->prefix)) {
        s3_location_clear(loc);
        return error_set(err, ERRAND_EINVAL, "result_storage",
                         "the prefix of the result storage '%s' may hold letters, digits, '.', "
                         "'_', '-' and '/' between names",
                         url);
    }
    return 0;
}

void s3_location_clear(struct s3_location *loc)
{
    mem_free(loc->endpoint);
    mem_free(loc->region);
    mem_free(loc->bucket);
    mem_free(loc->prefix);
    mem_free(loc->access_key_id);
    if (loc->secret_access_key)
        memset(loc->secret_access_key, 0, strlen(loc->secret_access_key));
    mem_free(loc->secret_access_key);
    memset(loc, 0, sizeof *loc);
}

char *s3_result_key(const struct s3_location *loc, const char *run_id)
{
    return mem_printf("%s%s%s.json", loc->prefix, loc->prefix[0] ? "/" : "", run_id);
}

char *s3_ref(const struct s3_location *loc, const char *key)
{
    return mem_printf(S3_URL_SCHEME "%s/%s", loc->bucket, key);
}

/* --- one request ------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct transfer {
    CURL *easy;
    int fd; /* where a 2xx body goes; -1 = nowhere */
    off_t max, got;
    bool too_big, write_failed;
    char error_body[S3_ERROR_BODY_MAX + 1]; /* a non-2xx body, cut short */
    size_t error_len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300 || t->fd < 0) {
        size_t room = S3_ERROR_BODY_MAX - t->error_len, k = n < room ? n : room;
        memcpy(t->error_body + t->error_len, data, k);
        t->error_len += k;
        t->error_body[t->error_len] = '\0';
        return n;
    }
    if (t->got + (off_t)n > t->max) {
        t->too_big = true;
        return 0;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(t->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            t->write_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    t->got += (off_t)n;
    return n;
}

static void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < mdlen && i * 2 < SHA256_HEX_LEN; i++)
        snprintf(out + i * 2, 3, "%02x", md[i]);
    out[SHA256_HEX_LEN] = '\0';
}

/* The text between <tag> and </tag> in an S3 error document, into out ("" if none). */
static void xml_field(const char *xml, const char *tag, char *out, size_t n)
{
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    out[0] = '\0';
    const char *a = strstr(xml, open);
    const char *b = a ? strstr(a, close) : NULL;
    if (a && b)
        snprintf(out, n, "%.*s", (int)(b - a - (ptrdiff_t)strlen(open)), a + strlen(open));
}

/* The public code for an S3 answer's status. */
static int status_code(long status)
{
    if (status == HTTP_NOT_FOUND)
        return ERRAND_ENOTFOUND;
    if (status == HTTP_FORBIDDEN || status == HTTP_UNAUTHORIZED)
        return ERRAND_EAUTH;
    return ERRAND_EIO;
}

/* Runs method on <endpoint>/<bucket>[/<key>] with body (may be NULL); *status its answer. */
static int request(const struct s3_location *loc, const char *method, const char *key,
                   const void *body, size_t body_len, struct transfer *t, long *status,
                   errand_error *err)
{
    *status = 0;
    char *url = key ? mem_printf("%s/%s/%s", loc->endpoint, loc->bucket, key)
                    : mem_printf("%s/%s", loc->endpoint, loc->bucket);
    char *sigv4 = mem_printf("aws:amz:%s:s3", loc->region);
    char hash[SHA256_HEX_LEN + 1], hash_header[sizeof "x-amz-content-sha256: " + SHA256_HEX_LEN];
    pthread_once(&curl_once, curl_init_once);
    sha256_hex(body ? body : "", body ? body_len : 0, hash);
    snprintf(hash_header, sizeof hash_header, "x-amz-content-sha256: %s", hash);
    struct curl_slist *headers = curl_slist_append(NULL, hash_header);
    struct curl_slist *h = headers ? curl_slist_append(headers, "Expect:") : NULL;
    if (h && body)
        h = curl_slist_append(h, "Content-Type: application/json");
    t->easy = curl_easy_init();
    int rc = 0;
    if (!url || !sigv4 || !h || !t->easy) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, loc->access_key_id);
    curl_easy_setopt(e, CURLOPT_PASSWORD, loc->secret_access_key);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, S3_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, S3_STALL_SECONDS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        }
    }
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (t->too_big) {
        rc = error_set(err, ERRAND_ETOOBIG, NULL, "s3://%s/%s is larger than %lld bytes",
                       loc->bucket, key ? key : "", (long long)t->max);
    } else if (t->write_failed) {
        rc = error_set(err, ERRAND_EIO, NULL, "cannot write s3://%s/%s to a file: %s", loc->bucket,
                       key ? key : "", strerror(errno));
    } else if (cc != CURLE_OK) {
        rc = error_set(err, ERRAND_EUNAVAILABLE, NULL, "cannot reach the S3 endpoint %s: %s",
                       loc->endpoint, curl_easy_strerror(cc));
    }
done:
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
    curl_slist_free_all(headers);
    mem_free(url);
    mem_free(sigv4);
    return rc;
}

/* The error for a non-2xx answer, with the store's own code and message. */
static int answer_error(const struct s3_location *loc, const char *key, long status,
                        const struct transfer *t, const char *what, errand_error *err)
{
    char code[128], message[512];
    xml_field(t->error_body, "Code", code, sizeof code);
    xml_field(t->error_body, "Message", message, sizeof message);
    return error_set(err, status_code(status), NULL, "%s s3://%s/%s: HTTP %ld%s%s%s%s", what,
                     loc->bucket, key ? key : "", status, code[0] ? " " : "", code,
                     message[0] ? ": " : "", message);
}

int s3_put(const struct s3_location *loc, const char *key, const void *data, size_t len,
           errand_error *err)
{
    struct transfer t = {.fd = -1};
    long status = 0;
    int rc = request(loc, "PUT", key, data, len, &t, &status, err);
    if (rc == 0 && (status < 200 || status >= 300))
        rc = answer_error(loc, key, status, &t, "cannot store", err);
    return rc;
}

int s3_get(const struct s3_location *loc, const char *key, int fd, off_t max, off_t *size,
           errand_error *err)
{
    struct transfer t = {.fd = fd, .max = max};
    long status = 0;
    int rc = request(loc, "GET", key, NULL, 0, &t, &status, err);
    if (rc == 0 && (status < 200 || status >= 300))
        rc = answer_error(loc, key, status, &t, "cannot read", err);
    *size = rc == 0 ? t.got : 0;
    return rc;
}

int s3_delete(const struct s3_location *loc, const char *key, errand_error *err)
{
    struct transfer t = {.fd = -1};
    long status = 0;
    int rc = request(loc, "DELETE", key, NULL, 0, &t, &status, err);
    if (rc == 0 && status != HTTP_NOT_FOUND && (status < 200 || status >= 300))
        rc = answer_error(loc, key, status, &t, "cannot delete", err);
    return rc;
}

int s3_check_bucket(const struct s3_location *loc, errand_error *err)
{
    struct transfer t = {.fd = -1};
    long status = 0;
    int rc = request(loc, "HEAD", NULL, NULL, 0, &t, &status, err);
    if (rc < 0 || (status >= 200 && status < 300))
        return rc;
    /* A HEAD answer has no body: say what its status means. */
    return error_set(err, status_code(status), NULL, "the bucket s3://%s at %s: HTTP %ld%s",
                     loc->bucket, loc->endpoint, status,
                     status == HTTP_NOT_FOUND   ? " (no such bucket)"
                     : status == HTTP_FORBIDDEN ? " (the credentials are refused)"
                                                : "");
}
