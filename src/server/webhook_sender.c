/* SPDX-License-Identifier: MIT */
/*
 * webhook_sender.c — the webhook sender thread (see webhook_sender.h). A take's calls are made
 * together on one libcurl multi handle, so a slow receiver delays the others by at most the
 * timeout. A failed store write is logged; the delivery stays in the store and its hold ends,
 * so it is called again: at least once, never lost.
 */
#include "server/webhook_sender.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/json_writer.h"
#include "server/run_json.h"
#include "server/webhook_signature.h"

/* What a failed call records as its error, at most. */
#define CALL_ERROR_MAX CURL_ERROR_SIZE

struct webhook_sender {
    store *st;
    metrics *m;
    struct webhook_config cfg;
    char *secret; /* NULL = unsigned */
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;
    bool stop;
};

/* One call under way. */
struct call {
    const struct webhook_delivery *d;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    long status;                /* the answer's, 0 = none */
    char error[CALL_ERROR_MAX]; /* libcurl's, when it failed */
    bool gone;                  /* the run was deleted: nothing to send */
};

int64_t webhook_retry_delay_ms(int64_t retry_ms, int attempt)
{
    int64_t d = retry_ms > 0 ? retry_ms : 1;
    for (int i = 1; i < attempt && d < WEBHOOK_RETRY_MAX_MS; i++)
        d *= 2;
    return d < WEBHOOK_RETRY_MAX_MS ? d : WEBHOOK_RETRY_MAX_MS;
}

/* The answer's body is not kept: a receiver says what it wants with its status. */
static size_t discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr, (void)arg;
    return size * n;
}

/* The run of c's delivery as JSON, read now: the body of its call. */
static int render(webhook_sender *ws, struct call *c, errand_error *err)
{
    struct run_row run;
    int rc = store_get_run(ws->st, c->d->run_id, &run, err);
    if (rc == ERRAND_ENOTFOUND) {
        c->gone = true;
        return 0;
    }
    if (rc < 0)
        return rc;
    struct jw w = {0};
    run_json_write(&w, &run);
    run_row_clear(&run);
    if (!(c->body = jw_finish(&w)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

/* Appends the header line printf(fmt, ...) to c's request. */
__attribute__((format(printf, 2, 3))) static bool add_header(struct call *c, const char *fmt, ...)
{
    char line[WEBHOOK_SIGNATURE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct curl_slist *h = curl_slist_append(c->headers, line);
    if (h)
        c->headers = h;
    return h != NULL;
}

/* Prepares c's request: the run's JSON, POSTed with the delivery's headers. */
static int prepare(webhook_sender *ws, struct call *c, errand_error *err)
{
    int rc = render(ws, c, err);
    if (rc < 0 || c->gone)
        return rc;
    size_t len = strlen(c->body);
    bool ok = add_header(c, "Content-Type: application/json") &&
              add_header(c, "User-Agent: errand/%s", ERRAND_VERSION) &&
              add_header(c, "Errand-Event: task_run.final") &&
              add_header(c, "Errand-Delivery: %" PRId64, c->d->id) &&
              add_header(c, "Errand-Attempt: %d", c->d->attempt) &&
              add_header(c, "Expect:"); /* no 100-continue round trip */
    if (ok && ws->secret) {
        char sig[WEBHOOK_SIGNATURE_MAX];
        ok = webhook_signature(ws->secret, clock_now_ms() / MS_PER_S, c->body, len, sig) == 0 &&
             add_header(c, "Errand-Signature: %s", sig);
    }
    if (!ok || !(c->easy = curl_easy_init()))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    curl_easy_setopt(c->easy, CURLOPT_URL, c->d->url);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)ws->cfg.timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    return 0;
}

/* Makes every prepared call of calls at once; each gets its status or its error. */
static void call_all(struct call *calls, size_t n)
{
    CURLM *multi = curl_multi_init();
    if (!multi) {
        for (size_t i = 0; i < n; i++)
            snprintf(calls[i].error, sizeof calls[i].error, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (calls[i].easy)
            curl_multi_add_handle(multi, calls[i].easy);
    int running = 0;
    do {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    } while (running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)))
        if (msg->msg == CURLMSG_DONE) {
            struct call *c = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
            else if (!c->error[0])
                snprintf(c->error, sizeof c->error, "%s", curl_easy_strerror(msg->data.result));
        }
    for (size_t i = 0; i < n; i++)
        if (calls[i].easy)
            curl_multi_remove_handle(multi, calls[i].easy);
    curl_multi_cleanup(multi);
}

/* Records the outcome of c in the store. */
static void settle(webhook_sender *ws, struct call *c)
{
    const struct webhook_delivery *d = c->d;
    errand_error err;
    error_clear(&err);
    int rc;
    if (c->gone) {
        log_info("webhook delivery dropped: its run was deleted", "delivery=%" PRId64 " run=%s",
                 d->id, d->run_id);
        rc = store_webhook_done(ws->st, d->id, &err);
    } else if (c->status >= 200 && c->status < 300) {
        metrics_add(ws->m, METRIC_WEBHOOK_CALLS, 1);
        rc = store_webhook_done(ws->st, d->id, &err);
    } else {
        char why[CALL_ERROR_MAX + 32];
        if (c->status)
            snprintf(why, sizeof why, "HTTP %ld", c->status);
        else
            snprintf(why, sizeof why, "%s", c->error[0] ? c->error : "no answer");
        if (c->easy)
            metrics_add(ws->m, METRIC_WEBHOOK_CALLS, 1);
        metrics_add(ws->m, METRIC_WEBHOOK_FAILURES, 1);
        if (d->attempt >= ws->cfg.max_attempts) {
            metrics_add(ws->m, METRIC_WEBHOOKS_ABANDONED, 1);
            log_warn("webhook delivery given up",
                     "delivery=%" PRId64 " run=%s url=%s attempts=%d error=\"%s\"", d->id,
                     d->run_id, d->url, d->attempt, why);
            rc = store_webhook_done(ws->st, d->id, &err);
        } else {
            int64_t delay = webhook_retry_delay_ms(ws->cfg.retry_ms, d->attempt);
            log_info("webhook call failed; trying again",
                     "delivery=%" PRId64 " run=%s url=%s attempt=%d retry_in_ms=%" PRId64
                     " error=\"%s\"",
                     d->id, d->run_id, d->url, d->attempt, delay, why);
            rc = store_webhook_retry(ws->st, d->id, d->attempt, clock_now_ms() + delay, why, &err);
        }
    }
    if (rc < 0)
        log_warn("webhook outcome not recorded; the delivery is taken again when its hold ends",
                 "delivery=%" PRId64 " error=\"%s\"", d->id, err.message);
}

/* Takes and calls one batch; the number taken, or -1 when the store failed. */
static int run_once(webhook_sender *ws)
{
    errand_error err;
    error_clear(&err);
    struct webhook_delivery_list due;
    int64_t now = clock_now_ms();
    int64_t hold = now + ws->cfg.timeout_ms + WEBHOOK_HOLD_MARGIN_MS;
    if (store_webhook_take(ws->st, now, hold, WEBHOOK_BATCH, &due, &err) < 0) {
        log_warn("reading the due webhook deliveries failed", "error=\"%s\"", err.message);
        return -1;
    }
    struct call *calls = due.n ? mem_calloc(due.n, sizeof *calls) : NULL;
    if (due.n && !calls) {
        webhook_delivery_list_clear(&due);
        return -1; /* held, then due again */
    }
    for (size_t i = 0; i < due.n; i++) {
        calls[i].d = &due.items[i];
        error_clear(&err);
        if (prepare(ws, &calls[i], &err) < 0)
            snprintf(calls[i].error, sizeof calls[i].error, "%.200s", err.message);
    }
    call_all(calls, due.n);
    for (size_t i = 0; i < due.n; i++) {
        settle(ws, &calls[i]);
        if (calls[i].easy)
            curl_easy_cleanup(calls[i].easy);
        curl_slist_free_all(calls[i].headers);
        mem_free(calls[i].body);
    }
    mem_free(calls);
    int taken = (int)due.n;
    webhook_delivery_list_clear(&due);
    return taken;
}

static void *sender_main(void *arg)
{
    webhook_sender *ws = arg;
    pthread_mutex_lock(&ws->lock);
    while (!ws->stop) {
        pthread_mutex_unlock(&ws->lock);
        int taken;
        do /* a full take: more may be due */
            taken = run_once(ws);
        while (taken == WEBHOOK_BATCH);
        int64_t until_ms = clock_mono_ms() + ws->cfg.interval_ms;
        struct timespec until = {.tv_sec = until_ms / MS_PER_S,
                                 .tv_nsec = (until_ms % MS_PER_S) * NS_PER_MS};
        pthread_mutex_lock(&ws->lock);
        while (!ws->stop)
            if (pthread_cond_timedwait(&ws->wake, &ws->lock, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&ws->lock);
    return NULL;
}

int webhook_sender_start(store *st, metrics *m, const struct webhook_config *cfg,
                         webhook_sender **out, errand_error *err)
{
    *out = NULL;
    if (cfg->interval_ms <= 0)
        return 0;
    webhook_sender *ws = mem_calloc(1, sizeof *ws);
    if (!ws || (cfg->secret && cfg->secret[0] && !(ws->secret = mem_strdup(cfg->secret)))) {
        mem_free(ws);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    ws->st = st;
    ws->m = m;
    ws->cfg = *cfg;
    ws->cfg.secret = NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ws->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&ws->lock, NULL);
    int rc = pthread_create(&ws->thread, NULL, sender_main, ws);
    if (rc != 0) {
        pthread_cond_destroy(&ws->wake);
        pthread_mutex_destroy(&ws->lock);
        mem_free(ws->secret);
        mem_free(ws);
        return error_set(err, ERRAND_EIO, NULL, "cannot start the webhook sender (error %d)", rc);
    }
    *out = ws;
    return 0;
}

void webhook_sender_stop(webhook_sender *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->stop = true;
    pthread_cond_signal(&ws->wake);
    pthread_mutex_unlock(&ws->lock);
    pthread_join(ws->thread, NULL);
    pthread_cond_destroy(&ws->wake);
    pthread_mutex_destroy(&ws->lock);
    mem_free(ws->secret);
    mem_free(ws);
}
