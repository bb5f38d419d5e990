/* SPDX-License-Identifier: MIT */
/*
 * poller.c — the claim loop (see poller.h).
 */
#include "worker/poller.h"

#include <poll.h>
#include <pthread.h>

#include "client/http.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/uuid.h"
#include "core/wire_limits.h"

#define POLLER_RETRY_MIN_MS 100
#define POLLER_RETRY_MAX_MS 5000
#define HTTP_OK 200
#define REQUEST_ID_BYTES 16

struct poller {
    struct poller_config cfg;
    http_conn *conn;
    json_t *tasks; /* the served names, as a JSON array */
    pthread_t thread;
    bool started;
};

int poller_parse_claim(const char *body, struct wrun ***runs, size_t *n, int *lease_seconds,
                       errand_error *err)
{
    *runs = NULL;
    *n = 0;
    *lease_seconds = 0;
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    if (!root)
        return error_set(err, ERRAND_ESERVER, NULL, "the claim answer is not JSON: %s", jerr.text);
    json_t *arr = json_object_get(root, "runs");
    json_t *lease = json_object_get(root, "lease_seconds");
    if (!json_is_array(arr)) {
        json_decref(root);
        return error_set(err, ERRAND_ESERVER, "runs", "the claim answer has no 'runs' array");
    }
    if (json_is_integer(lease))
        *lease_seconds = (int)json_integer_value(lease);
    size_t m = json_array_size(arr);
    struct wrun **out = mem_calloc(m ? m : 1, sizeof *out);
    if (!out) {
        json_decref(root);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory reading a claim");
    }
    for (size_t i = 0; i < m; i++) {
        int rc = wrun_from_claim(json_array_get(arr, i), &out[i], err);
        if (rc) {
            for (size_t j = 0; j < i; j++)
                wrun_unref(out[j]);
            mem_free(out);
            json_decref(root);
            return rc;
        }
    }
    json_decref(root);
    *runs = out;
    *n = m;
    return 0;
}

/* Sleeps ms unless the stop pipe becomes readable first. */
static void pause_unless_stopped(const poller *p, long ms)
{
    struct pollfd pf = {.fd = p->cfg.stop_fd, .events = POLLIN};
    poll(&pf, 1, (int)ms);
}

static char *claim_body(const poller *p, size_t limit, const char *request_id)
{
    json_t *body = json_object();
    if (!body)
        return NULL;
    int bad = json_object_set_new(body, "worker", json_string(p->cfg.worker_name));
    bad |= json_object_set(body, "tasks", p->tasks);
    bad |= json_object_set_new(body, "limit", json_integer((json_int_t)limit));
    bad |= json_object_set_new(body, "wait_seconds", json_integer(POLLER_WAIT_SECONDS));
    if (request_id[0])
        bad |= json_object_set_new(body, "request_id", json_string(request_id));
    if (p->cfg.lease_seconds > 0)
        bad |= json_object_set_new(body, "lease_seconds", json_integer(p->cfg.lease_seconds));
    char *text = bad ? NULL : json_compact(body);
    json_decref(body);
    return text;
}

/* Whether a claim answer came too late to act on: the request took longer than a lease and
 * the lease it gave has already run out by this machine's clock. The run may already be
 * redelivered to another worker: starting it here would run it twice. (Both tests: a long
 * round trip alone is a normal long-poll with a short lease, and a skewed clock alone must
 * not make a worker drop every claim.) */
static bool claim_came_too_late(const struct wrun *run, int64_t round_trip_ms, int lease_seconds)
{
    return lease_seconds > 0 && round_trip_ms > (int64_t)lease_seconds * MS_PER_S &&
           run->lease_expires_ms > 0 && run->lease_expires_ms < clock_now_ms();
}

/* Takes the claimed runs: leases to the reporter, runs to the queue (runs[] is reused). */
static void accept_runs(poller *p, struct wrun **runs, size_t n, int64_t round_trip_ms,
                        int lease_seconds)
{
    const struct poller_config *cfg = &p->cfg;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct wrun *run = runs[i];
        if (claim_came_too_late(run, round_trip_ms, lease_seconds)) {
            log_warn("a claim answer came after its lease ran out; not running the run",
                     "run=%s task=%s round_trip_ms=%lld", run->id, run->task,
                     (long long)round_trip_ms);
            wrun_unref(run);
            continue;
        }
        run->entry = task_table_find(cfg->tasks, run->task);
        reporter_hold(cfg->reporter, run);
        if (!run->entry) {
            /* The server gave us a task we did not ask for: hand it back untouched. */
            log_warn("claimed a run of a task this worker does not serve; handing it back",
                     "run=%s task=%s", run->id, run->task);
            if (wrun_take_outcome(run))
                reporter_final(cfg->reporter, run, ERRAND_STATE_SCHEDULED, NULL, false, NULL, NULL);
            wrun_unref(run);
            continue;
        }
        runs[kept++] = run;
    }
    atomic_fetch_add(&cfg->stats->claimed, kept);
    run_queue_push_many(cfg->queue, runs, kept);
}

static void *poller_main(void *arg)
{
    poller *p = arg;
    const struct poller_config *cfg = &p->cfg;
    long backoff = POLLER_RETRY_MIN_MS;
    bool failing = false;
    /* A claim keeps its request id until it is answered, so a claim whose answer was lost
       (the server died between its commit and its reply) is sent again under the same id
       and gets the same runs back at once, instead of leaving them to a lease expiry. */
    char request_id[2 * REQUEST_ID_BYTES + 1] = "";
    while (!atomic_load(cfg->stopping)) {
        size_t free_slots = run_queue_wait_free(cfg->queue);
        if (free_slots == 0 || atomic_load(cfg->stopping))
            break;
        size_t limit = free_slots < WIRE_CLAIM_LIMIT_MAX ? free_slots : WIRE_CLAIM_LIMIT_MAX;
        if (!request_id[0] && token_random_hex(REQUEST_ID_BYTES, request_id) < 0)
            request_id[0] = '\0'; /* no id: the claim still works, without the repeat */
        char *body = claim_body(p, limit, request_id);
        int64_t sent_ms = clock_mono_ms();
        struct http_response resp = {0};
        errand_error err;
        int rc = body ? http_perform(p->conn, "POST", "/workers/claim", body,
                                     POLLER_WAIT_SECONDS * MS_PER_S, cfg->stop_fd, &resp, &err)
                      : error_set(&err, ERRAND_ENOMEM, NULL, "out of memory building a claim");
        mem_free(body);
        if (rc == ERRAND_ECANCELLED)
            break;
        if (!rc && resp.status != HTTP_OK)
            rc = http_status_error(resp.status, resp.body, &err);
        struct wrun **runs = NULL;
        size_t n = 0;
        int lease = 0;
        if (!rc)
            rc = poller_parse_claim(resp.body, &runs, &n, &lease, &err);
        http_response_clear(&resp);
        if (rc) {
            if (!failing)
                log_warn("cannot claim task runs; retrying", "worker=%s error=\"%s\"",
                         cfg->worker_name, err.message);
            failing = true;
            pause_unless_stopped(p, backoff);
            backoff = backoff * 2 < POLLER_RETRY_MAX_MS ? backoff * 2 : POLLER_RETRY_MAX_MS;
            continue;
        }
        request_id[0] = '\0'; /* answered: the next claim is a new one */
        if (failing)
            log_info("claiming task runs again", "worker=%s", cfg->worker_name);
        failing = false;
        backoff = POLLER_RETRY_MIN_MS;
        if (lease > 0)
            reporter_set_lease_seconds(cfg->reporter, lease);
        accept_runs(p, runs, n, clock_mono_ms() - sent_ms, lease);
        mem_free(runs);
    }
    return NULL;
}

int poller_start(const struct poller_config *cfg, poller **out, errand_error *err)
{
    *out = NULL;
    poller *p = mem_calloc(1, sizeof *p);
    if (!p)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory starting the poller");
    p->cfg = *cfg;
    p->tasks = json_array();
    for (size_t i = 0; p->tasks && i < cfg->tasks->n; i++)
        if (json_array_append_new(p->tasks, json_string(cfg->tasks->items[i]->name))) {
            json_decref(p->tasks);
            p->tasks = NULL;
        }
    int rc = p->tasks ? http_conn_new(cfg->api_url, cfg->api_key, 0, &p->conn, err)
                      : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (!rc && pthread_create(&p->thread, NULL, poller_main, p))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "cannot start the poller thread");
    if (rc) {
        poller_free(p);
        return rc;
    }
    p->started = true;
    *out = p;
    return 0;
}

void poller_join(poller *p)
{
    if (p && p->started) {
        pthread_join(p->thread, NULL);
        p->started = false;
    }
}

void poller_free(poller *p)
{
    if (!p)
        return;
    poller_join(p);
    http_conn_free(p->conn);
    json_decref(p->tasks);
    mem_free(p);
}
