/* SPDX-License-Identifier: MIT */
/*
 * reporter.c — batching reports and logs, holding leases with heartbeats (see reporter.h).
 *
 * Producers (executor threads, the poller, the watchdog) never take a lock on the hot path:
 * they push items onto an inbox, a lock-free stack (one compare-and-swap), and wake the
 * thread only when it sleeps. The thread takes the whole inbox at once and reverses it, which
 * gives the items in the order they were pushed. The pending queue and the retry batch are
 * the thread's own, so they need no lock either; leases reach the lease table through the
 * inbox too (ITEM_HOLD), in order with the run's reports.
 *
 * The thread's loop, each turn:
 *   0. move the inbox to the pending queue (holds go to the lease table)
 *   1. a failed batch waits for its retry time     -> resend it (nothing newer goes first)
 *   2. items are pending                           -> take a batch, send it
 *   3. stopping and nothing left                   -> end
 *   4. otherwise sleep until woken or the retry time.
 *
 * Heartbeats have a thread and a connection of their own, so a slow report (a busy server,
 * a large batch) never holds them up and cannot cost a lease; each heartbeat request gives up
 * after a third of the lease. The lease table is shared by the two threads under lease_mu;
 * the heartbeat thread sleeps on hb_wake until the next beat is due.
 *
 * Waking without lost wake-ups: the thread sets `sleeping` under mu and checks the inbox
 * before it waits; a producer pushes, then reads `sleeping` and, if set, signals under mu.
 * Both are sequentially consistent atomics, so one of the two always sees the other.
 */
#include "worker/reporter.h"

#include <pthread.h>
#include <string.h>

#include "client/http.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "worker/report_wire.h"
#include "worker/sync.h"

/* A batch stops growing at the server's limits on reports and log lines per request
 * (core/wire_limits.h) or at this many (estimated) bytes, well below the server's default body
 * limit of 1 MiB. A server with a lower limit answers 413: the byte limit is then halved (down
 * to REPORT_BATCH_MIN_BYTES) and the batch sent again in smaller parts. */
#define REPORT_BATCH_MAX_BYTES (512 * 1024)
#define REPORT_BATCH_MIN_BYTES (16 * 1024)
/* Leases per heartbeat request. */
#define HEARTBEATS_PER_LEASE 3
/* Heartbeat answers are also how a worker learns that a run was cancelled, so beat at least
 * this often even with a long lease: a cancel reaches a running task within about this. */
#define HEARTBEAT_MAX_INTERVAL_MS 1000
#define DEFAULT_LEASE_SECONDS 30
/* After a failed heartbeat, try again this soon (capped by the normal interval). */
#define HEARTBEAT_RETRY_MS 1000
/* A heartbeat request gives up after a third of the lease (this much of it is the
 * connection's own timeout, the rest is added per request). */
#define HEARTBEAT_TIMEOUT_BASE_MS 1000
/* Random bytes of a report batch's id (hex in the body). */
#define BATCH_ID_BYTES 12
/* Backoff between attempts at a batch that failed for a transient reason. */
#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 2000
/* Sleep when there is nothing to do at all (woken by any push). */
#define IDLE_WAIT_MS 60000

#define HTTP_OK 200
#define HTTP_BAD_REQUEST 400
#define HTTP_UNAUTHORIZED 401
#define HTTP_NOT_FOUND 404
#define HTTP_REQUEST_TIMEOUT 408
#define HTTP_CONFLICT 409
#define HTTP_TOO_LARGE 413
#define HTTP_TOO_MANY_REQUESTS 429
#define HTTP_SERVER_ERROR 500

enum send_result { SEND_OK, SEND_RETRY, SEND_SPLIT, SEND_DROP };

struct reporter {
    /* shared with producers */
    _Atomic(struct report_item *) inbox;
    atomic_bool sleeping;
    atomic_bool stopping;
    atomic_bool closed;
    atomic_size_t queued_logs;
    _Atomic uint64_t logs_dropped;
    atomic_int lease_seconds; /* granted by the server (claim answer) */
    pthread_mutex_t mu;       /* guards the sleep/wake hand-off and flush_deadline */
    pthread_cond_t wake;
    int64_t flush_deadline;

    /* the lease table: the reporter thread adds and drops, the heartbeat thread reads */
    pthread_mutex_t lease_mu; /* guards leases, n_leases, hb_due, hb_stop */
    pthread_cond_t hb_wake;   /* the heartbeat thread sleeps on it */
    bool hb_stop;
    http_conn *hb_conn; /* the heartbeats' own connection */
    pthread_t hb_thread;
    bool hb_started;

    /* the thread's own */
    struct report_item *head, *tail; /* pending, in order */
    struct wrun *leases;             /* the lease table, through wrun.lease_prev/next */
    size_t n_leases;
    int64_t hb_due;
    int lease_seconds_opt; /* requested in heartbeats; 0 = server default */
    size_t batch_max_bytes;
    /* While the server refuses a batch (400) for one of its items: the most items per batch,
     * halved at each refusal until the item is alone; 0 = no such cap. */
    size_t split_items;
    http_conn *conn;
    char *worker;
    pthread_t thread;
    bool started;
    bool failing;    /* the last delivery failed: log the recovery (reporter thread) */
    bool hb_failing; /* the same for heartbeats (heartbeat thread) */
    reporter_cancel_fn on_cancel;
    void *cb_ctx;
};

static int64_t lease_ms(reporter *r)
{
    int secs = atomic_load(&r->lease_seconds);
    return (int64_t)(secs > 0 ? secs : DEFAULT_LEASE_SECONDS) * MS_PER_S;
}

static int64_t heartbeat_interval_ms(reporter *r)
{
    int64_t interval = lease_ms(r) / HEARTBEATS_PER_LEASE;
    return interval < HEARTBEAT_MAX_INTERVAL_MS ? interval : HEARTBEAT_MAX_INTERVAL_MS;
}

int reporter_new(const struct reporter_config *cfg, reporter **out, errand_error *err)
{
    *out = NULL;
    reporter *r = mem_calloc(1, sizeof *r);
    if (!r)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory creating the reporter");
    atomic_init(&r->inbox, NULL);
    atomic_init(&r->sleeping, false);
    atomic_init(&r->stopping, false);
    atomic_init(&r->closed, false);
    atomic_init(&r->queued_logs, 0);
    atomic_init(&r->logs_dropped, 0);
    atomic_init(&r->lease_seconds, cfg->lease_seconds);
    if (pthread_mutex_init(&r->mu, NULL)) {
        mem_free(r);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the reporter's lock");
    }
    if (sync_cond_init(&r->wake)) {
        pthread_mutex_destroy(&r->mu);
        mem_free(r);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the reporter's condition");
    }
    if (pthread_mutex_init(&r->lease_mu, NULL) || sync_cond_init(&r->hb_wake)) {
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->mu);
        mem_free(r);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot create the lease table's lock");
    }
    r->lease_seconds_opt = cfg->lease_seconds;
    r->batch_max_bytes = REPORT_BATCH_MAX_BYTES;
    r->on_cancel = cfg->on_cancel;
    r->cb_ctx = cfg->cb_ctx;
    r->worker = mem_strdup(cfg->worker_name);
    int rc = r->worker ? http_conn_new(cfg->api_url, cfg->api_key, 0, &r->conn, err)
                       : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (!rc)
        rc = http_conn_new(cfg->api_url, cfg->api_key, HEARTBEAT_TIMEOUT_BASE_MS, &r->hb_conn, err);
    if (rc) {
        reporter_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* --- producers (any thread) ------------------------------------------------------------ */

static void push(reporter *r, struct report_item *it)
{
    if (atomic_load(&r->closed)) {
        report_item_free(it);
        return;
    }
    struct report_item *head = atomic_load(&r->inbox);
    do
        it->next = head;
    while (!atomic_compare_exchange_weak(&r->inbox, &head, it));
    if (atomic_load(&r->sleeping)) {
        pthread_mutex_lock(&r->mu);
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->mu);
    }
}

void reporter_waiting(reporter *r, struct wrun *run, bool waiting)
{
    atomic_store(&run->waiting, waiting ? WRUN_WAITING : WRUN_RESUMED);
    pthread_mutex_lock(&r->lease_mu); /* the server hears it now, not at the next beat */
    r->hb_due = clock_mono_ms();
    pthread_cond_signal(&r->hb_wake);
    pthread_mutex_unlock(&r->lease_mu);
}

void reporter_set_lease_seconds(reporter *r, int lease_seconds)
{
    if (lease_seconds > 0)
        atomic_store(&r->lease_seconds, lease_seconds);
}

void reporter_hold(reporter *r, struct wrun *run)
{
    struct report_item *it = report_item_hold(run);
    if (!it) {
        log_error("out of memory holding a lease; it may expire", "run=%s", run->id);
        return;
    }
    push(r, it);
}

void reporter_running(reporter *r, struct wrun *run)
{
    struct report_item *it = report_item_state(run, ERRAND_STATE_RUNNING, NULL, false, NULL, NULL);
    if (!it)
        return; /* a RUNNING report is optional: the outcome will still go out */
    atomic_store(&run->running_report, RUNNING_QUEUED);
    push(r, it);
}

void reporter_final(reporter *r, struct wrun *run, errand_state state, const char *message,
                    bool retryable, json_t *result, const char *result_ref)
{
    int queued = RUNNING_QUEUED;
    atomic_compare_exchange_strong(&run->running_report, &queued, RUNNING_DROPPED);
    struct report_item *it = report_item_state(run, state, message, retryable, result, result_ref);
    if (!it) {
        log_error("out of memory queueing a report; the run's lease will expire",
                  "run=%s state=%s%s", run->id, state_type_name(state), run->trace_field);
        return;
    }
    push(r, it);
}

void reporter_log(reporter *r, const char *run_id, int level, const char *text)
{
    if (atomic_fetch_add(&r->queued_logs, 1) >= REPORTER_LOG_BACKLOG_MAX) {
        atomic_fetch_sub(&r->queued_logs, 1);
        if (atomic_fetch_add(&r->logs_dropped, 1) == 0)
            log_warn("too many log lines waiting for the server; dropping new ones", "backlog=%d",
                     REPORTER_LOG_BACKLOG_MAX);
        return;
    }
    struct report_item *it = report_item_log(run_id, clock_now_ms(), level, text);
    if (!it) {
        atomic_fetch_sub(&r->queued_logs, 1);
        return;
    }
    push(r, it);
}

/* --- the lease table (under lease_mu) ---------------------------------------------------- */

static void lease_add(reporter *r, struct wrun *run)
{
    pthread_mutex_lock(&r->lease_mu);
    if (!run->held) {
        run->held = true;
        run->lease_prev = NULL;
        run->lease_next = r->leases;
        if (r->leases)
            r->leases->lease_prev = run;
        r->leases = wrun_ref(run);
        if (r->n_leases++ == 0) {
            r->hb_due = clock_mono_ms() + heartbeat_interval_ms(r);
            pthread_cond_signal(&r->hb_wake);
        }
    }
    pthread_mutex_unlock(&r->lease_mu);
}

static void lease_unlink(reporter *r, struct wrun *run)
{
    run->held = false;
    if (run->lease_prev)
        run->lease_prev->lease_next = run->lease_next;
    else
        r->leases = run->lease_next;
    if (run->lease_next)
        run->lease_next->lease_prev = run->lease_prev;
    run->lease_prev = run->lease_next = NULL;
    r->n_leases--;
}

static void lease_drop(reporter *r, struct wrun *run)
{
    pthread_mutex_lock(&r->lease_mu);
    bool held = run->held;
    if (held)
        lease_unlink(r, run);
    pthread_mutex_unlock(&r->lease_mu);
    if (held)
        wrun_unref(run);
}

static void lease_drop_all(reporter *r)
{
    pthread_mutex_lock(&r->lease_mu);
    while (r->leases) {
        struct wrun *run = r->leases;
        lease_unlink(r, run);
        wrun_unref(run);
    }
    pthread_mutex_unlock(&r->lease_mu);
}

/* The lease of run is gone (another attempt owns it): stop the task, drop its outcome. */
static void lease_lost(reporter *r, struct wrun *run, int status)
{
    wrun_request_stop(run, STOP_LEASE_LOST);
    if (wrun_take_outcome(run))
        log_warn("lease lost; the run's outcome will not be reported", "run=%s status=%d%s",
                 run->id, status, run->trace_field);
    lease_drop(r, run);
}

/* --- the thread ------------------------------------------------------------------------ */

/* Moves the inbox to the end of the pending queue, oldest first; holds go to the table. */
static void drain_inbox(reporter *r)
{
    struct report_item *stack = atomic_exchange(&r->inbox, NULL);
    struct report_item *fifo = NULL;
    while (stack) { /* reverse: the stack has the newest first */
        struct report_item *next = stack->next;
        stack->next = fifo;
        fifo = stack;
        stack = next;
    }
    while (fifo) {
        struct report_item *it = fifo;
        fifo = it->next;
        it->next = NULL;
        if (it->kind == ITEM_HOLD) {
            lease_add(r, it->run);
            report_item_free(it);
            continue;
        }
        if (r->tail)
            r->tail->next = it;
        else
            r->head = it;
        r->tail = it;
    }
}

/* Whether it would take the batch past the server's limits: reports and log lines per request
 * (core/wire_limits.h; a body past them is refused whole) or the byte budget. */
static bool batch_full(const reporter *r, const struct report_item *it, size_t reports, size_t logs,
                       size_t bytes)
{
    if (bytes + it->weight > r->batch_max_bytes)
        return true;
    if (r->split_items && reports + logs >= r->split_items)
        return true;
    return it->kind == ITEM_LOG ? logs >= WIRE_REPORT_LOGS_MAX : reports >= WIRE_REPORTS_MAX;
}

/* Takes the next batch off the pending queue. */
static struct report_item *take_batch(reporter *r)
{
    struct report_item *first = r->head, *last = NULL, *it = r->head;
    size_t reports = 0, bytes = 0, logs = 0;
    while (it && (reports + logs == 0 || !batch_full(r, it, reports, logs, bytes))) {
        if (it->kind == ITEM_LOG) {
            logs++;
        } else if (it->state == ERRAND_STATE_RUNNING) {
            /* Goes out now, unless the outcome was queued first (then it is redundant). */
            int queued = RUNNING_QUEUED;
            if (!atomic_compare_exchange_strong(&it->run->running_report, &queued, RUNNING_SENT))
                it->dead = true;
        }
        if (!it->dead) {
            if (it->kind != ITEM_LOG)
                reports++;
            bytes += it->weight;
        }
        last = it;
        it = it->next;
    }
    r->head = it;
    if (!it)
        r->tail = NULL;
    if (last)
        last->next = NULL;
    if (logs)
        atomic_fetch_sub(&r->queued_logs, logs);
    return first;
}

/* Puts a batch back at the head of the pending queue, in order (taken again, smaller). */
static void requeue_front(reporter *r, struct report_item *chain)
{
    struct report_item *last = chain;
    while (last->next)
        last = last->next;
    for (struct report_item *it = chain; it; it = it->next)
        if (it->kind == ITEM_LOG)
            atomic_fetch_add(&r->queued_logs, 1);
    last->next = r->head;
    r->head = chain;
    if (!r->tail)
        r->tail = last;
}

static bool transient_status(long status)
{
    return status >= HTTP_SERVER_ERROR || status == HTTP_UNAUTHORIZED ||
           status == HTTP_REQUEST_TIMEOUT || status == HTTP_TOO_MANY_REQUESTS;
}

/* *failing is the calling thread's own flag (reports and heartbeats each have one). */
static void note_recovered(reporter *r, bool *failing)
{
    if (*failing) {
        log_info("the errand server answers again", "worker=%s", r->worker);
        *failing = false;
    }
    uint64_t dropped = atomic_exchange(&r->logs_dropped, 0);
    if (dropped)
        log_warn("log lines were dropped while the server was slow or unreachable",
                 "worker=%s dropped=%llu", r->worker, (unsigned long long)dropped);
}

static void note_failure(reporter *r, bool *failing, const char *what, const errand_error *err)
{
    if (!*failing)
        log_warn("cannot reach the errand server; retrying", "worker=%s request=%s error=\"%s\"",
                 r->worker, what, err->message);
    *failing = true;
}

/* The items of a batch that go out (dead ones are skipped), and the first of them. */
static size_t live_items(struct report_item *chain, struct report_item **first)
{
    size_t n = 0;
    *first = NULL;
    for (struct report_item *it = chain; it; it = it->next) {
        if (it->dead)
            continue;
        if (!n)
            *first = it;
        n++;
    }
    return n;
}

/* The server refused a batch for something in it (400): never drop the outcomes it holds.
 * A batch of several items is sent again in halves until the refused item is alone; then an
 * outcome is reported instead as FAILED with the server's reason (once), and a RUNNING
 * report or a log line is dropped. */
static enum send_result refused_batch(reporter *r, struct report_item *chain,
                                      const errand_error *why)
{
    struct report_item *it;
    size_t n = live_items(chain, &it);
    if (n > 1) {
        r->split_items = n / 2;
        log_warn("the server refused a batch of reports; sending it in halves to find the item "
                 "it refuses",
                 "worker=%s items=%zu error=\"%s\"", r->worker, n, why->message);
        return SEND_SPLIT;
    }
    r->split_items = 0;
    if (!it)
        return SEND_DROP;
    if (it->kind == ITEM_LOG) {
        log_warn("the server refused a log line; dropped", "run=%s error=\"%s\"", it->run_id,
                 why->message);
        return SEND_DROP;
    }
    if (it->converted || !report_state_is_final(it->state)) {
        log_error("the server refused a report; dropped (the run's lease will expire)",
                  "run=%s state=%s error=\"%s\"", it->run->id, state_type_name(it->state),
                  why->message);
        return SEND_DROP;
    }
    char *message = mem_printf("the server refused this run's outcome (%s): %s",
                               state_type_name(it->state), why->message);
    if (!message)
        return SEND_RETRY;
    log_warn("the server refused a run's outcome; reporting it as FAILED with the reason",
             "run=%s state=%s error=\"%s\"", it->run->id, state_type_name(it->state), why->message);
    json_decref(it->result);
    it->result = NULL;
    mem_free(it->result_ref);
    it->result_ref = NULL;
    mem_free(it->message);
    it->message = message;
    it->state = ERRAND_STATE_FAILED;
    it->retryable = false;
    it->converted = true;
    return SEND_SPLIT; /* sent again, as the failure it now is */
}

/* Sends one batch. On SEND_OK each item's answer is filled. */
static enum send_result send_batch(reporter *r, struct report_item *chain, const char *body)
{
    struct http_response resp;
    errand_error err;
    int rc = http_perform(r->conn, "POST", "/workers/report", body, 0, -1, &resp, &err);
    if (rc) {
        note_failure(r, &r->failing, "report", &err);
        return SEND_RETRY;
    }
    enum send_result res;
    if (resp.status == HTTP_OK || resp.status == HTTP_CONFLICT) {
        note_recovered(r, &r->failing);
        report_read_answer(chain, resp.status, resp.body);
        res = SEND_OK;
    } else if (transient_status(resp.status)) {
        http_status_error(resp.status, resp.body, &err);
        note_failure(r, &r->failing, "report", &err);
        res = SEND_RETRY;
    } else if (resp.status == HTTP_TOO_LARGE && chain->next &&
               r->batch_max_bytes > REPORT_BATCH_MIN_BYTES) {
        r->batch_max_bytes /= 2;
        log_warn("the server refused a batch as too large; sending smaller ones",
                 "worker=%s batch_max_bytes=%zu", r->worker, r->batch_max_bytes);
        res = SEND_SPLIT;
    } else if (resp.status == HTTP_BAD_REQUEST) {
        note_recovered(r, &r->failing);
        http_status_error(resp.status, resp.body, &err);
        res = refused_batch(r, chain, &err);
    } else {
        http_status_error(resp.status, resp.body, &err);
        log_error("the errand server refused a batch of reports; dropped",
                  "status=%ld error=\"%s\"", resp.status, err.message);
        res = SEND_DROP;
    }
    http_response_clear(&resp);
    return res;
}

/* After a batch was answered or dropped: act on each item's answer, release finished
 * leases, free the items. */
static void finish_batch(reporter *r, struct report_item *chain)
{
    for (struct report_item *it = chain; it; it = it->next) {
        if (it->kind != ITEM_REPORT || it->dead)
            continue;
        if (it->answer == HTTP_CONFLICT || it->answer == HTTP_NOT_FOUND) {
            if (report_state_is_final(it->state))
                log_warn("the server refused a report: the lease is no longer ours",
                         "run=%s state=%s status=%d%s", it->run->id, state_type_name(it->state),
                         it->answer, it->run->trace_field);
            lease_lost(r, it->run, it->answer);
            continue;
        }
        if (it->answer != 0 && it->answer != HTTP_OK)
            log_warn("the server refused a report", "run=%s state=%s status=%d%s", it->run->id,
                     state_type_name(it->state), it->answer, it->run->trace_field);
        if (report_state_is_final(it->state))
            lease_drop(r, it->run);
    }
    report_items_free(chain);
}

/* Extends every held lease; acts on cancellations and lost leases. */
static void heartbeat_all(reporter *r)
{
    pthread_mutex_lock(&r->lease_mu);
    size_t n = r->n_leases;
    pthread_mutex_unlock(&r->lease_mu);
    int64_t interval = heartbeat_interval_ms(r);
    struct wrun **runs = mem_alloc(n * sizeof *runs);
    int *status = mem_alloc(n * sizeof *status);
    bool *cancel = mem_alloc(n * sizeof *cancel);
    if (!runs || !status || !cancel) {
        mem_free(runs);
        mem_free(status);
        mem_free(cancel);
        pthread_mutex_lock(&r->lease_mu);
        r->hb_due = clock_mono_ms() + HEARTBEAT_RETRY_MS;
        pthread_mutex_unlock(&r->lease_mu);
        return;
    }
    size_t i = 0;
    pthread_mutex_lock(&r->lease_mu);
    for (struct wrun *run = r->leases; run && i < n; run = run->lease_next)
        runs[i++] = wrun_ref(run);
    pthread_mutex_unlock(&r->lease_mu);
    n = i;
    long extra_ms = (long)(lease_ms(r) / 3) - HEARTBEAT_TIMEOUT_BASE_MS;
    bool ok = true;
    for (size_t off = 0; off < n; off += WIRE_HEARTBEAT_LEASES_MAX) {
        size_t m = n - off < WIRE_HEARTBEAT_LEASES_MAX ? n - off : WIRE_HEARTBEAT_LEASES_MAX;
        char *body = heartbeat_body(r->worker, runs + off, m, r->lease_seconds_opt);
        struct http_response resp = {0};
        errand_error err;
        int rc = body ? http_perform(r->hb_conn, "POST", "/workers/heartbeat", body,
                                     extra_ms > 0 ? extra_ms : 0, -1, &resp, &err)
                      : error_set(&err, ERRAND_ENOMEM, NULL, "out of memory");
        mem_free(body);
        if (!rc && resp.status != HTTP_OK && resp.status != HTTP_CONFLICT)
            rc = http_status_error(resp.status, resp.body, &err);
        if (rc) {
            note_failure(r, &r->hb_failing, "heartbeat", &err);
            http_response_clear(&resp);
            ok = false;
            continue;
        }
        note_recovered(r, &r->hb_failing);
        heartbeat_read_answer(resp.body, runs + off, m, status + off, cancel + off);
        http_response_clear(&resp);
        for (size_t j = off; j < off + m; j++) {
            if (status[j] == HTTP_CONFLICT || status[j] == HTTP_NOT_FOUND)
                lease_lost(r, runs[j], status[j]);
            else if (cancel[j] && wrun_request_stop(runs[j], STOP_CANCEL)) {
                log_info("cancel requested", "run=%s%s", runs[j]->id, runs[j]->trace_field);
                if (r->on_cancel)
                    r->on_cancel(runs[j], r->cb_ctx);
            }
        }
    }
    for (i = 0; i < n; i++)
        wrun_unref(runs[i]);
    mem_free(runs);
    mem_free(status);
    mem_free(cancel);
    pthread_mutex_lock(&r->lease_mu);
    r->hb_due =
        clock_mono_ms() + (ok || interval < HEARTBEAT_RETRY_MS ? interval : HEARTBEAT_RETRY_MS);
    pthread_mutex_unlock(&r->lease_mu);
}

/* Sleeps until deadline_ms, a push, or stop. */
static void sleep_until(reporter *r, int64_t deadline_ms)
{
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->sleeping, true);
    if (!atomic_load(&r->inbox) && !atomic_load(&r->stopping))
        sync_cond_wait_until(&r->wake, &r->mu, deadline_ms);
    atomic_store(&r->sleeping, false);
    pthread_mutex_unlock(&r->mu);
}

static int64_t flush_deadline(reporter *r)
{
    pthread_mutex_lock(&r->mu);
    int64_t d = r->flush_deadline;
    pthread_mutex_unlock(&r->mu);
    return d;
}

static void *reporter_main(void *arg)
{
    reporter *r = arg;
    struct report_item *retry = NULL;
    char *retry_body = NULL;
    int64_t retry_at = 0, backoff = RETRY_MIN_MS;

    for (;;) {
        /* stopping first, then the inbox: whatever was pushed before reporter_stop set the
         * flag is drained in this turn, so it cannot be left behind when the loop ends. */
        bool stopping = atomic_load(&r->stopping);
        drain_inbox(r);
        int64_t now = clock_mono_ms();
        int64_t flush_by = stopping ? flush_deadline(r) : 0;
        if (stopping && now >= flush_by && (retry || r->head)) {
            log_error("could not deliver every report before stopping; their leases will expire",
                      "worker=%s", r->worker);
            break;
        }
        struct report_item *batch = NULL;
        char *body = NULL;
        if (retry) {
            if (now < retry_at) {
                int64_t until = retry_at;
                if (stopping && flush_by < until)
                    until = flush_by;
                sleep_until(r, until);
                continue;
            }
            batch = retry;
            body = retry_body;
            retry = NULL;
            retry_body = NULL;
        } else if (r->head) {
            batch = take_batch(r);
        } else if (stopping) {
            break;
        } else {
            sleep_until(r, now + IDLE_WAIT_MS);
            continue;
        }

        if (!body) {
            /* A new id per batch; a batch sent again keeps its body, so its id. */
            char batch_id[2 * BATCH_ID_BYTES + 1];
            body = token_random_hex(BATCH_ID_BYTES, batch_id) == 0
                       ? report_body(r->worker, batch_id, batch)
                       : report_body(r->worker, NULL, batch);
        }
        enum send_result res = body ? send_batch(r, batch, body) : SEND_RETRY;
        if (res == SEND_RETRY) {
            retry = batch;
            retry_body = body;
            retry_at = clock_mono_ms() + backoff;
            backoff = backoff * 2 < RETRY_MAX_MS ? backoff * 2 : RETRY_MAX_MS;
        } else if (res == SEND_SPLIT) {
            mem_free(body);
            requeue_front(r, batch);
        } else {
            mem_free(body);
            backoff = RETRY_MIN_MS;
            finish_batch(r, batch);
        }
    }
    /* Ending: whatever is left will not be delivered; the server's lease expiry takes over. */
    atomic_store(&r->closed, true);
    drain_inbox(r);
    report_items_free(retry);
    mem_free(retry_body);
    report_items_free(r->head);
    r->head = r->tail = NULL;
    lease_drop_all(r);
    return NULL;
}

/* The heartbeat thread: beats every held lease when due, until reporter_stop. */
static void *heartbeat_main(void *arg)
{
    reporter *r = arg;
    pthread_mutex_lock(&r->lease_mu);
    while (!r->hb_stop) {
        int64_t now = clock_mono_ms();
        if (r->n_leases == 0 || now < r->hb_due) {
            sync_cond_wait_until(&r->hb_wake, &r->lease_mu,
                                 r->n_leases ? r->hb_due : now + IDLE_WAIT_MS);
            continue;
        }
        pthread_mutex_unlock(&r->lease_mu);
        heartbeat_all(r);
        pthread_mutex_lock(&r->lease_mu);
    }
    pthread_mutex_unlock(&r->lease_mu);
    return NULL;
}

int reporter_start(reporter *r, errand_error *err)
{
    if (pthread_create(&r->hb_thread, NULL, heartbeat_main, r))
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot start the heartbeat thread");
    r->hb_started = true;
    if (pthread_create(&r->thread, NULL, reporter_main, r))
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot start the reporter thread");
    r->started = true;
    return 0;
}

/* Stops the heartbeat thread (after the reporter thread: leases are beaten while the last
 * reports are flushed). */
static void heartbeat_stop(reporter *r)
{
    if (!r->hb_started)
        return;
    pthread_mutex_lock(&r->lease_mu);
    r->hb_stop = true;
    pthread_cond_signal(&r->hb_wake);
    pthread_mutex_unlock(&r->lease_mu);
    pthread_join(r->hb_thread, NULL);
    r->hb_started = false;
}

void reporter_stop(reporter *r, int64_t flush_ms)
{
    pthread_mutex_lock(&r->mu);
    r->flush_deadline = clock_mono_ms() + flush_ms;
    atomic_store(&r->stopping, true);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    if (r->started) {
        pthread_join(r->thread, NULL);
        r->started = false;
    }
    heartbeat_stop(r);
    atomic_store(&r->closed, true);
}

void reporter_free(reporter *r)
{
    if (!r)
        return;
    if (r->started || r->hb_started)
        reporter_stop(r, 0);
    report_items_free(atomic_exchange(&r->inbox, NULL));
    report_items_free(r->head);
    lease_drop_all(r);
    http_conn_free(r->conn);
    http_conn_free(r->hb_conn);
    pthread_cond_destroy(&r->hb_wake);
    pthread_mutex_destroy(&r->lease_mu);
    mem_free(r->worker);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}
