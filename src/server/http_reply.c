/* SPDX-License-Identifier: MIT */
/*
 * http_reply.c — sending a handler's reply (http.h's struct http_reply) through
 * libmicrohttpd: JSON, text, a file or a stream, with the headers every answer carries; and
 * the error body of an errand_error. For http.c (http_reply.h); handlers build replies with
 * http.h.
 */
#include "server/http_reply.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"

#define API_VERSION_HEADER "Errand-Api-Version"
#define CONTENT_SECURITY_POLICY                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
/* What a 503 overloaded asks the client to wait, in seconds. */
#define OVERLOADED_RETRY_AFTER "1"

/* --- replies -------------------------------------------------------------------------- */

void http_reply_json(struct http_reply *r, int status, json_t *body)
{
    *r = (struct http_reply){.status = body ? status : MHD_HTTP_INTERNAL_SERVER_ERROR,
                             .json = body,
                             .content_type = HTTP_CONTENT_JSON};
}

void http_reply_text(struct http_reply *r, int status, char *text, const char *content_type)
{
    *r = (struct http_reply){.status = text ? status : MHD_HTTP_INTERNAL_SERVER_ERROR,
                             .text = text,
                             .content_type = content_type};
}

void http_reply_file(struct http_reply *r, int status, int fd, uint64_t size,
                     const char *content_type)
{
    *r = (struct http_reply){
        .status = status, .fd = fd, .file_size = size, .content_type = content_type};
}

void http_reply_stream(struct http_reply *r, int status, const struct http_stream *stream,
                       const char *content_type)
{
    *r = (struct http_reply){.status = status, .stream = *stream, .content_type = content_type};
}

/* --- streams ---------------------------------------------------------------------------- */

/* Bytes a stream's read callback may write at once. */
#define STREAM_BLOCK_BYTES (8 * 1024)

struct http_stream_conn {
    struct MHD_Connection *conn;
    struct http_stream stream;
};

void http_stream_hold(http_stream_conn *sc)
{
    MHD_suspend_connection(sc->conn);
}

void http_stream_wake(http_stream_conn *sc)
{
    MHD_resume_connection(sc->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_stream_conn *sc = cls;
    ssize_t n = sc->stream.read(sc->stream.state, sc, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_free(void *cls)
{
    http_stream_conn *sc = cls;
    sc->stream.free(sc->stream.state);
    mem_free(sc);
}

/* A response that calls the stream's read as the connection drains (chunked). */
static struct MHD_Response *stream_response(struct MHD_Connection *conn, struct http_stream *s)
{
    http_stream_conn *sc = mem_calloc(1, sizeof *sc);
    if (!sc) {
        s->free(s->state);
        return NULL;
    }
    sc->conn = conn;
    sc->stream = *s;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES, stream_read, sc, stream_free);
    if (!resp) {
        stream_free(sc);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* proxies: do not buffer */
    return resp;
}

/* Adds errand's headers to resp and queues it. Every answer forbids content sniffing,
 * framing and any script, style or connection not from the server itself (the dashboard's
 * pages load only their own files; an API answer shown in a browser runs nothing). */
static enum MHD_Result queue_response(struct MHD_Connection *conn, int status,
                                      struct MHD_Response *resp, const char *content_type,
                                      const char *retry_after)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : HTTP_CONTENT_JSON);
    MHD_add_response_header(resp, API_VERSION_HEADER, HTTP_API_VERSION);
    MHD_add_response_header(resp, "Content-Security-Policy", CONTENT_SECURITY_POLICY);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* preference_applied: the Preference-Applied header (RFC 7240), or NULL. */
static enum MHD_Result queue(struct MHD_Connection *conn, int status, char *buf, size_t len,
                             const char *content_type, const char *retry_after,
                             const char *preference_applied)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, buf, mem_free);
    if (!resp)
        mem_free(buf);
    else if (preference_applied)
        MHD_add_response_header(resp, "Preference-Applied", preference_applied);
    return queue_response(conn, status, resp, content_type, retry_after);
}

/* Serialises json (compact) into a mem_alloc'd buffer. */
static char *dump_json(const json_t *json, size_t *len)
{
    size_t need = json_dumpb(json, NULL, 0, JSON_COMPACT | json_real_flags(json));
    char *buf = need ? mem_alloc(need) : NULL;
    if (!buf || json_dumpb(json, buf, need, JSON_COMPACT | json_real_flags(json)) != need) {
        mem_free(buf);
        return NULL;
    }
    *len = need;
    return buf;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, json_t *json,
                                 const char *retry_after)
{
    size_t len = 0;
    char *buf = json ? dump_json(json, &len) : NULL;
    json_decref(json);
    if (!buf) {
        static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":"
                                  "\"out of memory\",\"field\":null}}";
        return queue_response(
            conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
            MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT),
            HTTP_CONTENT_JSON, NULL);
    }
    return queue(conn, status, buf, len, HTTP_CONTENT_JSON, retry_after, NULL);
}

/* Makes r the error body of err ({"error": {"code", "message", "field"}}). */
void http_reply_error(struct http_reply *r, const errand_error *err)
{
    int code = err->code < 0 ? err->code : ERRAND_ESERVER;
    json_t *body =
        json_pack("{s:{s:s, s:s, s:o}}", "error", "code", error_code_name(code), "message",
                  err->message, "field", err->field[0] ? json_string(err->field) : json_null());
    *r = (struct http_reply){0};
    http_reply_json(r, error_http_status(code), body);
    r->retry_after = code == ERR_OVERLOADED ? OVERLOADED_RETRY_AFTER : NULL;
}

/* Serialises a JSON reply into its text, on the handler thread, so that the event thread
 * only queues bytes. A reply that cannot be serialised is left as it is (send_json then
 * answers 500 out_of_memory). */
void http_reply_serialise(struct http_reply *r)
{
    if (r->stream.read || r->set_cookie)
        return;
    size_t len = 0;
    char *text = r->json ? dump_json(r->json, &len) : NULL;
    if (!text)
        return;
    json_decref(r->json);
    r->json = NULL;
    r->text = text;
    r->text_len = len;
    r->content_type = HTTP_CONTENT_JSON;
}

enum MHD_Result http_reply_send(struct MHD_Connection *conn, struct http_reply *r)
{
    if (r->set_cookie) { /* only small JSON replies set one */
        size_t len = 0;
        char *buf = r->json ? dump_json(r->json, &len) : NULL;
        json_decref(r->json);
        r->json = NULL;
        if (!buf) {
            mem_free(r->set_cookie);
            r->set_cookie = NULL;
            return send_json(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
        }
        struct MHD_Response *resp =
            MHD_create_response_from_buffer_with_free_callback(len, buf, mem_free);
        if (!resp)
            mem_free(buf);
        else
            MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->set_cookie);
        mem_free(r->set_cookie);
        r->set_cookie = NULL;
        return queue_response(conn, r->status, resp, HTTP_CONTENT_JSON, NULL);
    }
    if (r->stream.read)
        return queue_response(conn, r->status, stream_response(conn, &r->stream), r->content_type,
                              NULL);
    if (r->fd > 0) { /* MHD owns the descriptor from here, even when it fails */
        struct MHD_Response *resp = MHD_create_response_from_fd64(r->file_size, r->fd);
        if (!resp)
            close(r->fd);
        return queue_response(conn, r->status, resp, r->content_type, NULL);
    }
    if (r->json || !r->text)
        return send_json(conn, r->status, r->json, r->retry_after);
    return queue(conn, r->status, r->text, r->text_len ? r->text_len : strlen(r->text),
                 r->content_type, r->retry_after, r->preference_applied);
}

enum MHD_Result http_reply_send_error(struct MHD_Connection *conn, const errand_error *err)
{
    struct http_reply r;
    http_reply_error(&r, err);
    return http_reply_send(conn, &r);
}

/* Frees what a reply holds (one that was never sent). */
void http_reply_clear(struct http_reply *r)
{
    json_decref(r->json);
    mem_free(r->text);
    if (r->fd > 0)
        close(r->fd);
    if (r->stream.read)
        r->stream.free(r->stream.state);
    mem_free(r->set_cookie);
    *r = (struct http_reply){0};
}
