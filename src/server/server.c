/* SPDX-License-Identifier: MIT */
/*
 * server.c — `errand server start` (see server.h): wiring and lifecycle.
 *
 * Start-up: SIGINT/SIGTERM are blocked before any thread exists (the store's writer, the
 * sweeper, libmicrohttpd's threads all inherit the mask), so only this thread receives
 * them, synchronously, in sigwait — no async-signal-safety concerns anywhere. SIGPIPE is
 * ignored: a client that hangs up mid-reply must not kill the server. Then the store (which
 * creates what it needs, such as a SQLite file's directory), the lease sweeper, and last the
 * HTTP daemon, so nothing is served before everything behind it is ready. The "listening"
 * log line, with the real port, is how scripts and tests find a server started on port 0.
 *
 * Shutdown, in order: answer every new request 503 (the listening socket closes with the
 * HTTP server);
 * wake every long-poll so it answers now (claims with what they have, /wait with the current
 * state) instead of after its timeout, and end every event stream; stop the HTTP server, which
 * first waits, bounded, for the requests in flight to be answered; stop the sweeper; close the
 * store (which commits what is pending). Each step is logged. Start-up failures log what to do and
 * return 1.
 */
#include "server/server.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "client/s3.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/handlers.h"
#include "server/event_feed.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "store/store.h"
#include "server/scheduler.h"
#include "server/webhook_sender.h"
#include "server/sweeper.h"

/* glibc's malloc gives freed memory back to the kernel past a trim threshold and serves
 * large blocks with mmap. Request bodies (up to ERRAND_MAX_BODY_BYTES), batch JSON and
 * SQLite pages are allocated and freed thousands of times a second on many connection
 * threads, so the defaults made the server spend a fifth of its time in sysmalloc and page
 * faults. Never mmapping below MALLOC_MMAP_MIN_BYTES and keeping up to MALLOC_KEEP_BYTES free
 * at the top of each arena removes that cost (measured: the same bench figures as keeping
 * 64 MiB) while an arena still shrinks after a burst, instead of holding its peak. */
#define MALLOC_MMAP_MIN_BYTES (64 * 1024 * 1024)
#define MALLOC_KEEP_BYTES (8 * 1024 * 1024)
#define MALLOC_TOP_PAD_BYTES (1024 * 1024)
/* glibc gives each thread that meets a locked arena a new one, up to 8 per core: under
 * errand bench the connection, reader and writer threads spread the same work over ~16
 * arenas, each keeping its own free memory (peak RSS 70-80 MiB on 2 cores). Four arenas keep
 * the peak at 52-54 MiB at the same throughput (two: 47-51 MiB, 5-10 % slower; one: 12 %
 * slower). MALLOC_ARENA_MAX or GLIBC_TUNABLES in the environment win. */
#define MALLOC_ARENAS 4
/* Housekeeping: how often, and how much request work in flight (budget.h) makes a burst
 * after which memory is given back. A load of small requests makes no burst: once
 * LOAD_REQUESTS requests have been served since memory was last given back, it is given back
 * after QUIET_SECONDS in a row with fewer requests a second than idle workers' claim
 * long-polls and a dashboard make. */
#define HOUSEKEEPING_INTERVAL_S 1
#define TRIM_AFTER_WORK_BYTES (8 * 1024 * 1024)
#define LOAD_REQUESTS 200
#define QUIET_REQUESTS_PER_S 20
#define QUIET_SECONDS 5
/* Descriptors kept for the store's files, logs and child processes besides connections. */
#define DESCRIPTORS_RESERVED 256

/* Raises the soft descriptor limit to the hard one and returns how many connections it
 * leaves room for: max_connections, or fewer (with a warning) when the hard limit is lower. */
static int fit_descriptor_limit(int max_connections)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return max_connections;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    if (lim.rlim_cur == RLIM_INFINITY ||
        lim.rlim_cur >= (rlim_t)max_connections + DESCRIPTORS_RESERVED)
        return max_connections;
    int fit = lim.rlim_cur > DESCRIPTORS_RESERVED * 2 ? (int)(lim.rlim_cur - DESCRIPTORS_RESERVED)
                                                      : (int)(lim.rlim_cur / 2);
    log_warn("fewer connections than ERRAND_MAX_CONNECTIONS",
             "max_connections=%d allowed=%d "
             "hint=\"the descriptor limit (ulimit -n) is %llu; raise it (LimitNOFILE= in a "
             "systemd unit, ulimits in compose) or lower ERRAND_MAX_CONNECTIONS\"",
             max_connections, fit, (unsigned long long)lim.rlim_cur);
    return fit;
}

/* A wake-up another server sent through the store (store_on_signal): wakes the long-polls
 * it concerns here, as this server's own changes do. */
static void signal_from_store(void *arg, enum store_signal sig, const char *key)
{
    notify *n = arg;
    enum notify_topic topic = sig == STORE_SIGNAL_RUNS_DUE ? NOTIFY_RUNS_DUE : NOTIFY_RUN_FINAL;
    if (key)
        notify_signal_key(n, topic, key);
    else
        notify_signal(n, topic);
}

static int open_store(const struct settings *s, store **st, errand_error *err)
{
    const char *url = settings_str(s, SET_DATABASE_URL);
    struct store_options opt = {
        .sync = settings_str(s, SET_DATABASE_SYNC),
        .pool_size = (int)settings_int(s, SET_DATABASE_POOL_SIZE),
        .default_lease_seconds = (int)settings_int(s, SET_LEASE_SECONDS),
        .max_redeliveries = (int)settings_int(s, SET_MAX_REDELIVERIES),
    };
    return store_open(url, &opt, st, err);
}

/* The URL with any password replaced by "****", for logs (postgresql://user:pw@host/db). */
static void redact_url(const char *url, char out[SETTINGS_STR_MAX])
{
    const char *scheme_end = strstr(url, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
    if (!colon) {
        snprintf(out, SETTINGS_STR_MAX, "%s", url);
        return;
    }
    snprintf(out, SETTINGS_STR_MAX, "%.*s:****%s", (int)(colon - url), url, at);
}

/* Gives memory back to the system: the store's page caches (refilled from the OS's file
 * cache when needed), then the allocator's free memory (malloc_trim). */
static void give_memory_back(store *st, const char *message, size_t peak)
{
    store_release_memory(st);
    malloc_trim(0);
    log_debug(message, "peak_work_bytes=%zu", peak);
}

/* Waits for SIGINT or SIGTERM; meanwhile, once a second, gives memory back once a burst of
 * request work has passed, or a load of small requests has been followed by a quiet spell. */
static int wait_for_stop(const sigset_t *stop_set, http_server *http, store *st, const metrics *m)
{
    struct timespec tick = {.tv_sec = HOUSEKEEPING_INTERVAL_S, .tv_nsec = 0};
    bool burst = false;
    int quiet_ticks = 0;
    uint64_t requests = metrics_get(m, METRIC_HTTP_REQUESTS);
    uint64_t given_back_at = requests; /* the request count when memory was last given back */
    for (;;) {
        int sig = sigtimedwait(stop_set, NULL, &tick);
        if (sig > 0)
            return sig;
        if (errno != EAGAIN && errno != EINTR)
            return SIGTERM; /* cannot wait for signals: stop cleanly rather than spin */
        size_t peak = http_server_work_peak(http);
        uint64_t now = metrics_get(m, METRIC_HTTP_REQUESTS);
        bool quiet = now - requests < QUIET_REQUESTS_PER_S * HOUSEKEEPING_INTERVAL_S;
        requests = now;
        burst |= peak >= TRIM_AFTER_WORK_BYTES;
        quiet_ticks = quiet ? quiet_ticks + 1 : 0;
        if (burst && http_server_work_now(http) < TRIM_AFTER_WORK_BYTES / 4) {
            give_memory_back(st, "memory given back after a burst", peak);
            burst = false;
            given_back_at = now;
        } else if (now - given_back_at >= LOAD_REQUESTS &&
                   quiet_ticks * HOUSEKEEPING_INTERVAL_S >= QUIET_SECONDS) {
            give_memory_back(st, "memory given back after a load", peak);
            given_back_at = now;
        }
    }
}

/* Swallows stop signals still pending, so restoring the caller's mask cannot kill us. */
static void drain_signals(const sigset_t *set)
{
    struct timespec zero = {0, 0};
    while (sigtimedwait(set, NULL, &zero) > 0)
        ;
}

/* ERRAND_RESULT_STORAGE: "local" keeps ERRAND_LOCAL_STORAGE_PATH; s3://... moves results to a
 * bucket, whose settings must be whole (else the server does not start). A bucket that does
 * not answer is only logged: the store may be back before a result is asked for. */
static int use_result_storage(const struct settings *s, result_storage *results)
{
    const char *url = settings_str(s, SET_RESULT_STORAGE);
    errand_error err;
    if (strcmp(url, "local") == 0)
        return 0;
    struct s3_location loc;
    if (!s3_is_url(url)) {
        log_error("cannot start the server",
                  "error=\"ERRAND_RESULT_STORAGE must be local or "
                  "s3://bucket/prefix, got '%s'\"",
                  url);
        return ERRAND_EINVAL;
    }
    if (s3_location_init(&loc, url, settings_str(s, SET_S3_ENDPOINT_URL),
                         settings_str(s, SET_S3_REGION), settings_str(s, SET_S3_ACCESS_KEY_ID),
                         settings_str(s, SET_S3_SECRET_ACCESS_KEY), &err) < 0) {
        log_error("cannot start the server", "error=\"%s\"", err.message);
        return err.code;
    }
    if (s3_check_bucket(&loc, &err) < 0)
        log_warn("the result storage does not answer", "storage=%s error=\"%s\"", url, err.message);
    else
        log_info("result storage", "storage=%s endpoint=%s", url, loc.endpoint);
    result_storage_use_s3(results, &loc);
    return 0;
}

int server_run(const struct settings *s)
{
    errand_error err;
    error_clear(&err);
    mem_install_json();
    mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES);
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_MIN_BYTES);
    mallopt(M_TOP_PAD, MALLOC_TOP_PAD_BYTES);
    if (!getenv("MALLOC_ARENA_MAX") && !getenv("GLIBC_TUNABLES"))
        mallopt(M_ARENA_MAX, MALLOC_ARENAS);
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    store *st = NULL;
    notify *n = NULL;
    event_feed *feed = NULL;
    metrics *m = NULL;
    readiness *ready = NULL;
    result_storage *results = NULL;
    sweeper *sw = NULL;
    scheduler *sc = NULL;
    webhook_sender *hooks = NULL;
    http_server *http = NULL;
    const char *host = settings_str(s, SET_SERVER_HOST);
    char url[SETTINGS_STR_MAX];
    redact_url(settings_str(s, SET_DATABASE_URL), url);

    if (open_store(s, &st, &err) < 0) {
        log_error("cannot open the store", "url=%s error=\"%s\" hint=\"%s\"", url, err.message,
                  "set ERRAND_DATABASE_URL or --database-url to sqlite:///path/errand.db or "
                  "postgresql://user@host/db");
        goto done;
    }
    n = notify_new();
    m = metrics_new();
    ready = readiness_new();
    if (result_storage_new(settings_str(s, SET_LOCAL_STORAGE_PATH), &results, &err) < 0 || !n ||
        !m || !ready) {
        log_error("cannot start the server", "error=\"out of memory\"");
        goto done;
    }
    if (use_result_storage(s, results) < 0)
        goto done;
    store_on_signal(st, signal_from_store, n);
    struct store_observer observer;
    metrics_store_observer(m, &observer);
    store_observe(st, &observer);
    struct event_feed_options fopt = {
        .capacity = (size_t)settings_int(s, SET_EVENTS_BUFFER),
        .poll_ms = (int)settings_int(s, SET_POLL_RECHECK_MS),
    };
    if (event_feed_start(st, &fopt, &feed, &err) < 0) {
        log_error("cannot start the event feed", "error=\"%s\"", err.message);
        goto done;
    }
    struct scheduler_config sched = {
        .interval_ms = (int)settings_int(s, SET_SCHEDULER_INTERVAL_MS),
        .late_ms = settings_int(s, SET_SCHEDULE_LATE_SECONDS) * MS_PER_S,
        .clock_offset_ms = settings_int(s, SET_SCHEDULER_CLOCK_OFFSET) * MS_PER_S,
    };
    if (scheduler_start(st, n, &sched, &sc, &err) < 0) {
        log_error("cannot start the scheduler", "error=\"%s\"", err.message);
        goto done;
    }
    struct webhook_config hook_cfg = {
        .interval_ms = (int)settings_int(s, SET_WEBHOOK_INTERVAL_MS),
        .timeout_ms = settings_int(s, SET_WEBHOOK_TIMEOUT_SECONDS) * MS_PER_S,
        .max_attempts = (int)settings_int(s, SET_WEBHOOK_MAX_ATTEMPTS),
        .retry_ms = settings_int(s, SET_WEBHOOK_RETRY_SECONDS) * MS_PER_S,
        .secret = settings_str(s, SET_WEBHOOK_SECRET),
    };
    if (webhook_sender_start(st, m, &hook_cfg, &hooks, &err) < 0) {
        log_error("cannot start the webhook sender", "error=\"%s\"", err.message);
        goto done;
    }
    struct handler_ctx ctx = {
        .st = st,
        .notify = n,
        .events = feed,
        .metrics = m,
        .readiness = ready,
        .results = results,
        .default_lease_seconds = (int)settings_int(s, SET_LEASE_SECONDS),
        .poll_recheck_ms = (int)settings_int(s, SET_POLL_RECHECK_MS),
        .scheduler = sc,
        .scheduler_clock_offset_ms = sched.clock_offset_ms,
    };
    struct sweeper_config sweep = {
        .interval_ms = (int)settings_int(s, SET_SWEEP_INTERVAL_MS),
        .retention_ms = settings_int(s, SET_RETENTION_SECONDS) * MS_PER_S,
        .worker_retention_ms = settings_int(s, SET_WORKER_RETENTION_SECONDS) * MS_PER_S,
        .events_retention_ms = settings_int(s, SET_EVENTS_RETENTION_SECONDS) * MS_PER_S,
        .events_max = settings_int(s, SET_EVENTS_MAX),
        .results = results,
    };
    if (sweeper_start(st, n, m, &sweep, &sw, &err) < 0) {
        log_error("cannot start the lease sweeper", "error=\"%s\"", err.message);
        goto done;
    }
    struct http_server_options hopt = {
        .host = host,
        .port = (int)settings_int(s, SET_SERVER_PORT),
        .max_connections = (int)settings_int(s, SET_MAX_CONNECTIONS),
        .max_body_bytes = (size_t)settings_int(s, SET_MAX_BODY_BYTES),
        .max_inflight_bytes = (size_t)settings_int(s, SET_MAX_INFLIGHT_BYTES),
        .api_key = settings_str(s, SET_API_KEY),
        .submit_keys = settings_str(s, SET_API_KEYS_SUBMIT),
        .worker_keys = settings_str(s, SET_API_KEYS_WORKER),
        .read_keys = settings_str(s, SET_API_KEYS_READ),
        .idle_timeout_ms = settings_int(s, SET_HTTP_IDLE_TIMEOUT_MS),
        .unauth_per_address = (int)settings_int(s, SET_HTTP_UNAUTH_PER_ADDRESS),
        .handler_threads = (int)settings_int(s, SET_HANDLER_THREADS),
    };
    hopt.max_connections = fit_descriptor_limit(hopt.max_connections);
    int port = 0;
    if (http_server_start(&hopt, &ctx, &http, &port, &err) < 0) {
        log_error("cannot start the HTTP server", "host=%s port=%d error=\"%s\"", host, hopt.port,
                  err.message);
        goto done;
    }
    log_info("listening", "host=%s port=%d", host, port);

    int sig = wait_for_stop(&stop_set, http, st, m);
    log_info("shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_quiesce(http);
    log_info("refusing new requests (503)", "host=%s port=%d", host, port);
    notify_shutdown(n);
    event_feed_shutdown(feed);
    http_server_stop(http);
    http = NULL;
    log_info("http server stopped", "port=%d", port);
    status = 0;

done:
    if (n)
        notify_shutdown(n);
    event_feed_shutdown(feed);
    http_server_stop(http);
    event_feed_free(feed);
    scheduler_stop(sc);
    webhook_sender_stop(hooks);
    if (sw) {
        sweeper_stop(sw);
        log_info("lease sweeper stopped", "interval_ms=%lld",
                 settings_int(s, SET_SWEEP_INTERVAL_MS));
    }
    if (st) {
        store_close(st);
        log_info("store closed", "url=%s", url);
    }
    notify_free(n);
    metrics_free(m);
    readiness_free(ready);
    result_storage_free(results);
    drain_signals(&stop_set);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (status == 0)
        log_info("server stopped", "status=%d", status);
    return status;
}
