/* SPDX-License-Identifier: MIT */
/*
 * errand.h — the public C API of liberrand: submit background task runs to an errand server,
 * check on them, fetch their results (the client), and run them (the worker runtime).
 *
 * Conventions, everywhere in this header:
 *  - Functions return 0 (ERRAND_OK) or a negative ERRAND_E* code; errand_strerror() names it.
 *    Those that take an `errand_error *err` (may be NULL) also fill it with a message that
 *    says what was wrong, the offending field when there is one, and the HTTP status when the
 *    server answered.
 *  - JSON crosses this API as text (UTF-8, NUL-terminated), so callers pick their own JSON
 *    library. Text that liberrand returns is malloc'd and freed by the caller with
 *    errand_free(); handles come in _new/_free pairs.
 *  - A function that fails leaves its out-parameters NULL and never calls a callback.
 *  - A zero-initialised options or definition struct (`= {0}`, or designated initialisers
 *    naming only the fields you set) means the defaults, field by field: each field's
 *    comment says what its 0 or NULL means. Yes/no settings are an errand_choice, whose
 *    zero is ERRAND_DEFAULT. The *_options_init() functions just zero the struct.
 *  - Settings not given in an options struct come from the environment (ERRAND_API_URL,
 *    ERRAND_API_KEY, ERRAND_LOCAL_STORAGE_PATH, ERRAND_RESULTS_PERSIST_BY_DEFAULT,
 *    ERRAND_LOGGING_LOG_PRINTS), then from built-in defaults; see docs/configuration.md.
 *  - Thread safety: an errand_client may be used from one thread at a time (make one per
 *    thread, they are cheap); an errand_worker is driven by the thread that calls
 *    errand_worker_serve(), and errand_worker_stop() may be called from any thread or from a
 *    signal handler.
 */
#ifndef ERRAND_ERRAND_H
#define ERRAND_ERRAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ERRAND_API marks the functions below, liberrand's whole public API. liberrand is compiled
 * with hidden visibility and linked with a version script (src/liberrand.map), so these are
 * the only symbols that liberrand.so exports; the rest of the library (its JSON helpers, its
 * logger, its test hooks) stays inside it. Outside the library's own build the macro is empty:
 * a program that includes this header sees plain declarations, in C and in C++. */
#if defined(ERRAND_BUILDING_LIBERRAND) && defined(__GNUC__)
#define ERRAND_API __attribute__((visibility("default")))
#else
#define ERRAND_API
#endif

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

enum {
    ERRAND_OK = 0,
    ERRAND_EINVAL = -1,       /* a bad argument or bad input; err->field names it */
    ERRAND_ENOMEM = -2,       /* out of memory */
    ERRAND_EIO = -3,          /* a file or network read/write failed */
    ERRAND_ENOTFOUND = -4,    /* no such task run (HTTP 404) */
    ERRAND_ECONFLICT = -5,    /* the request conflicts with the run's state or lease (409) */
    ERRAND_EUNAVAILABLE = -6, /* the errand server could not be reached, or answered 503 */
    ERRAND_ETIMEDOUT = -7,    /* a wait ran out of time */
    ERRAND_EAUTH = -8,        /* the server refused the API key (401), or its scope (403) */
    ERRAND_ESERVER = -9,      /* the server answered with an unexpected status (5xx) */
    ERRAND_ESTORE = -10,      /* the store (database) failed */
    ERRAND_ETOOBIG = -11,     /* a body or value exceeds a configured limit (413) */
    ERRAND_ECANCELLED = -12,  /* the run was cancelled */
    ERRAND_EFAILED = -13,     /* the run ended FAILED or CRASHED; err->message says why */
};

#define ERRAND_ERROR_MESSAGE_MAX 512
#define ERRAND_ERROR_FIELD_MAX 64

typedef struct errand_error {
    int code;                               /* one of the ERRAND_E* values, or 0 */
    int http_status;                        /* the server's HTTP status, 0 if none */
    char message[ERRAND_ERROR_MESSAGE_MAX]; /* what went wrong, in words */
    char field[ERRAND_ERROR_FIELD_MAX];     /* the input field at fault, "" if none */
} errand_error;

/* A short static description of an ERRAND_E* code ("not found", ...). */
ERRAND_API const char *errand_strerror(int code);

/* The library version, "MAJOR.MINOR.PATCH". */
ERRAND_API const char *errand_version(void);

/* Frees text and arrays returned by liberrand. NULL is fine. */
ERRAND_API void errand_free(void *p);

/* A yes/no setting of an options struct whose zero leaves the choice to the level below it
 * (a run's submission, then its task's definition, then the worker, then the environment:
 * each field says which). To say no, say ERRAND_NO: a 0 or false is ERRAND_DEFAULT. Any
 * other value is refused with ERRAND_EINVAL. */
typedef enum errand_choice {
    ERRAND_DEFAULT = 0, /* no say: the level below decides */
    ERRAND_YES = 1,
    ERRAND_NO = 2,
} errand_choice;

/* ---------------------------------------------------------------------------------------- */
/* Task-run states (as in Prefect: a type, plus a display name such as "AwaitingRetry")      */

typedef enum errand_state {
    ERRAND_STATE_SCHEDULED = 0, /* waiting for its time or a worker (Scheduled, AwaitingRetry) */
    ERRAND_STATE_PENDING,       /* claimed by a worker, under lease, not yet started */
    ERRAND_STATE_RUNNING,
    ERRAND_STATE_COMPLETED,  /* final (Completed, Cached) */
    ERRAND_STATE_FAILED,     /* final: the task failed and no retries remain */
    ERRAND_STATE_CRASHED,    /* final: the worker vanished and no attempts remain */
    ERRAND_STATE_CANCELLING, /* cancel requested while a worker holds the run */
    ERRAND_STATE_CANCELLED,  /* final */
} errand_state;

/* "SCHEDULED", "PENDING", ... */
ERRAND_API const char *errand_state_type_name(errand_state s);
ERRAND_API bool errand_state_is_final(errand_state s);

/* ---------------------------------------------------------------------------------------- */
/* Task definitions: what a task is called, its version and its run policy. Used on both     */
/* sides: errand_delay() submits with these defaults, errand_worker_add_task() serves it.    */

typedef enum errand_cache_policy {
    ERRAND_CACHE_NONE = 0,
    /* key = SHA-256 of task name, version and canonical parameters (Prefect's
       INPUTS + TASK_SOURCE): a second run with the same inputs answers from the first. */
    ERRAND_CACHE_INPUTS_AND_VERSION = 1,
} errand_cache_policy;

typedef struct errand_task_ctx errand_task_ctx;

/* A task function. Runs on a worker thread with the run's parameters (a JSON object as text).
 * On success: return 0 and set *result_json to malloc'd JSON text (NULL means JSON null).
 * On failure: return non-zero, after errand_task_fail() to say why (else a generic message).
 * Whatever the function prints to stdout goes to the run's logs when log prints are on. */
typedef int (*errand_task_fn)(errand_task_ctx *ctx, const char *params_json, char **result_json,
                              void *userdata);

/* Zero-initialised apart from name (and fn, to serve it), a definition has the defaults:
 * `errand_task_def def = {.name = "shout", .fn = shout};`. */
typedef struct errand_task_def {
    const char *name;    /* required: "create_structured_output" */
    const char *version; /* part of the cache key; NULL = "1" */
    int retries;         /* extra attempts after a failure; 0 = none (the server's default) */
    const double *retry_delays; /* seconds before each retry; the last repeats; NULL = at once */
    size_t n_retry_delays;      /* entries in retry_delays; 0 = none */
    double retry_jitter_factor; /* each delay is stretched by up to this fraction at random;
                                   0 = no jitter */
    double timeout_seconds;     /* 0 = no timeout */
    errand_cache_policy cache_policy; /* 0 = ERRAND_CACHE_NONE */
    double cache_expiration_seconds;  /* 0 = cached results never expire */
    /* Persist each run's result to the result storage: ERRAND_DEFAULT = as the worker does
       (errand_worker_options.persist_by_default); a run's own persist_result and the task's
       errand_task_persist_result() override it. */
    errand_choice persist_result;
    errand_task_fn fn; /* for serving; unused when only submitting */
    void *userdata;    /* passed to fn; may be NULL */
} errand_task_def;

/* Fills `out` (n entries) with exponential backoff delays: factor * 2^i seconds, like
 * Prefect's exponential_backoff(backoff_factor). Returns ERRAND_EINVAL on bad arguments. */
ERRAND_API int errand_exponential_backoff(double factor, size_t n, double *out);

/* The cache key of ERRAND_CACHE_INPUTS_AND_VERSION: 64 hex characters + NUL into out. */
ERRAND_API int errand_cache_key_inputs(const char *task, const char *version,
                                       const char *params_json, char out[65], errand_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Client                                                                                    */

typedef struct errand_client errand_client;

/* Options of a client. Zero-initialise for the defaults; NULL options mean the same. */
typedef struct errand_client_options {
    const char *api_url; /* NULL = ERRAND_API_URL, default http://127.0.0.1:4200/api; or a
                            comma-separated list of servers sharing one store: the client
                            starts at one drawn at random and moves to the next when one
                            cannot be reached or answers 503 */
    const char *api_key; /* NULL = ERRAND_API_KEY (unset: none); sent as "Authorization:
                            Bearer KEY" */
    long timeout_ms;     /* per request, 0 = 30000; waits add their own time */
    const char *local_storage_path; /* unused: results are read through the server */
    /* How long a submission is retried while the server cannot be reached or answers 503
     * (a restart, a deploy, the server's memory budget), with backoff: 0 = 10000 ms,
     * negative = not retried. A retried submission carries an idempotency key, so it is
     * stored once: the caller's, or one liberrand adds ("errand-retry-", the time in ms as 12
     * hex digits, 20 random hex digits: keys sort by time, as the store's index likes). */
    long submit_retry_ms;
} errand_client_options;

ERRAND_API int errand_client_new(const errand_client_options *opt, errand_client **out,
                                 errand_error *err);
ERRAND_API void errand_client_free(errand_client *c);

/* A snapshot of one task run, as the server described it. */
typedef struct errand_run errand_run;

ERRAND_API const char *errand_run_id(const errand_run *r);
ERRAND_API const char *errand_run_task(const errand_run *r);
ERRAND_API errand_state errand_run_state(const errand_run *r);
ERRAND_API const char *errand_run_state_name(const errand_run *r); /* "Completed", "Cached", ... */
ERRAND_API const char *errand_run_message(const errand_run *r);    /* the state's message, or "" */
ERRAND_API int errand_run_attempt(const errand_run *r);
/* The whole run as the server sent it (JSON object text); owned by the run. */
ERRAND_API const char *errand_run_json(const errand_run *r);
ERRAND_API void errand_run_free(errand_run *r);

/* Options of one submission. Zero-initialise for the defaults (the server's, see
 * docs/api.md), or call errand_submit_options_init(); NULL options mean the same. */
typedef struct errand_submit_options {
    const char *idempotency_key; /* a second submission with this key returns the first run;
                                    NULL = none (liberrand may add one to retry, see
                                    errand_client_options.submit_retry_ms) */
    int64_t scheduled_at_ms;     /* Unix ms; 0 = now */
    double delay_seconds;        /* alternative to scheduled_at_ms; 0 = none */
    int priority;                /* higher runs first; 0 = the default */
    const char *const *tags;     /* NULL = none */
    size_t n_tags;               /* entries in tags; 0 = none */
    int retries;                 /* extra attempts after a failure; 0 = none, which is the
                                    server's default; negative is refused */
    const double *retry_delays;  /* seconds before each retry; the last repeats; NULL = at once */
    size_t n_retry_delays;       /* entries in retry_delays; 0 = none */
    double retry_jitter_factor;  /* 0 = no jitter */
    double timeout_seconds;      /* 0 = none */
    const char *cache_key;       /* NULL = no caching */
    double cache_expiration_seconds; /* 0 = never expires */
    /* Persist the result to the result storage: ERRAND_DEFAULT = as the task's definition
       says, else the worker's default (persist_by_default). */
    errand_choice persist_result;
} errand_submit_options;

/* Zeroes *opt: the defaults. */
ERRAND_API void errand_submit_options_init(errand_submit_options *opt);

/* Submits one run of `task` with parameters `params_json` (a JSON object, NULL = {}).
 * On 0 the run is durably stored; *out (optional) receives the run. */
ERRAND_API int errand_submit(errand_client *c, const char *task, const char *params_json,
                             const errand_submit_options *opt, errand_run **out, errand_error *err);

/* One element of a batch submission. */
typedef struct errand_submission {
    const char *task;
    const char *params_json;
    const errand_submit_options *options; /* NULL = defaults (as zeroed options) */
} errand_submission;

/* Submits n runs in one request, all or nothing. out (optional) receives a malloc'd array of
 * n runs in the same order; free each with errand_run_free() and the array with errand_free().
 * Without out the server is asked for the ids alone (Prefer: return=minimal) and the answer
 * is not read: 0 means every run was stored. */
ERRAND_API int errand_submit_batch(errand_client *c, const errand_submission *subs, size_t n,
                                   errand_run ***out, errand_error *err);

/* Dependencies (docs/api.md, "Dependencies"), since ABI 1.2 (ERRAND_0.3). A run submitted
 * with upstream runs waits (SCHEDULED, state name "Waiting"; no worker gets it) until every
 * one of them is COMPLETED, then starts as any run does. If one ends FAILED, CRASHED or
 * CANCELLED it does not start: it ends CANCELLED, state name "UpstreamFailed", with a message
 * naming that run, and so do the runs waiting for it in turn — unless allow_upstream_failure
 * is set, in which case it starts once every upstream run has ended, however.
 *
 * Data flows downstream through the parameters: a value {"$result": "<run id>"} anywhere in
 * params_json is replaced by that run's result when it completes (null when it did not and
 * allow_upstream_failure is set), and the run waits for it as if it were in wait_for. In a
 * batch, "runs[N]" names the batch's own run N (an earlier one), in wait_for and in
 * {"$result": ...}, so a chain or a fan-in is one request. At most 100 upstream runs. */
typedef struct errand_dependencies {
    const char *const *wait_for; /* run ids (or "runs[N]" in a batch); NULL = none */
    size_t n_wait_for;           /* entries in wait_for */
    bool allow_upstream_failure; /* start even when an upstream run does not complete */
} errand_dependencies;

/* errand_submit with dependencies (NULL = none). */
ERRAND_API int errand_submit_after(errand_client *c, const char *task, const char *params_json,
                                   const errand_submit_options *opt,
                                   const errand_dependencies *deps, errand_run **out,
                                   errand_error *err);
/* errand_submit_batch with dependencies: deps holds n entries, deps[i] for subs[i] (NULL =
 * none for all). */
ERRAND_API int errand_submit_batch_after(errand_client *c, const errand_submission *subs,
                                         const errand_dependencies *deps, size_t n,
                                         errand_run ***out, errand_error *err);

/* What a client sets on the server for the runs to come, since ABI 1.2 (ERRAND_0.3). The
 * server checks every value and refuses a bad one with ERRAND_EINVAL naming the field. */

/* Webhooks (docs/api.md, "Webhooks"). Every run of `task` that reaches a final state
 * (COMPLETED, FAILED, CRASHED, CANCELLED; a cache hit too) is POSTed as JSON, the run as
 * errand_run_json() gives it, to `url` (an absolute http:// or https:// URL), until the
 * receiver answers 2xx: retried with backoff, signed with the server's ERRAND_WEBHOOK_SECRET.
 * A submission's own webhook_url (HTTP API) wins. url NULL removes the task's webhook
 * (ERRAND_ENOTFOUND when it has none). */
ERRAND_API int errand_webhook_set(errand_client *c, const char *task, const char *url,
                                  errand_error *err);

/* Concurrency limits (docs/api.md, "Concurrency and rate limits"): at most max_running runs
 * of the task, or carrying the tag, hold a lease at once, across every worker and server;
 * 0 removes the limit. */
typedef enum errand_limit_kind { ERRAND_LIMIT_TAG = 0, ERRAND_LIMIT_TASK = 1 } errand_limit_kind;
ERRAND_API int errand_limit_set(errand_client *c, errand_limit_kind kind, const char *name,
                                int max_running, errand_error *err);
/* A task's rate limit: at most max_starts runs start per per_seconds (<= 0: 1 s), spaced
 * evenly; max_starts 0 removes it. */
ERRAND_API int errand_rate_limit_set(errand_client *c, const char *task, int max_starts,
                                     double per_seconds, errand_error *err);

/* Schedules (docs/api.md, "Schedules"): creates or replaces the schedule that schedule_json
 * describes — the body of POST /api/schedules, e.g.
 * {"name": "nightly", "task": "report", "cron": "30 2 * * *", "time_zone": "Europe/Berlin"}.
 * *answer_json (optional; free with errand_free) gets the schedule as stored, with its next
 * tick. */
ERRAND_API int errand_schedule_set(errand_client *c, const char *schedule_json, char **answer_json,
                                   errand_error *err);
/* Deletes the schedule (its runs stay); ERRAND_ENOTFOUND when there is none. */
ERRAND_API int errand_schedule_delete(errand_client *c, const char *name, errand_error *err);
/* Pauses (no tick fires) or resumes (from the next tick on) the schedule. */
ERRAND_API int errand_schedule_pause(errand_client *c, const char *name, bool paused,
                                     errand_error *err);

/* Submits a run of a defined task with its defaults (retries, timeout, cache key from its
 * cache policy, persistence): the C spelling of Prefect's `task.delay(...)`. */
ERRAND_API int errand_delay(errand_client *c, const errand_task_def *task, const char *params_json,
                            errand_run **out, errand_error *err);

/* Trace context (W3C Trace Context, https://www.w3.org/TR/trace-context/), since ABI 1.1
 * (ERRAND_0.2). Each thread has a current trace context, like OpenTelemetry's: a
 * `traceparent` value, "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" in lower case.
 * Every errand_submit, errand_submit_batch (each element) and errand_delay made on a thread
 * that has one sends it as the submission's "traceparent" (docs/api.md): the run is stored
 * with it, the task sees it, and its subtasks inherit it. A web application calls
 * errand_trace_set() with its incoming request's traceparent header before it submits.
 *
 * Inside a task, the worker runtime sets the task thread's current trace context (or the
 * isolated child process's) to a *child* of the run's traceparent: the same trace id and
 * flags, a new random parent id — the task's own span — so the runs a task submits belong to
 * the same trace, with the task as their parent. The previous context of the worker's thread
 * is restored when the task returns. Exec tasks get the child in the environment variable
 * TRACEPARENT, and `errand submit` sends $TRACEPARENT.
 *
 * errand_trace_set copies traceparent into thread-local storage; NULL clears it. A value that
 * is not a valid version-00 traceparent (upper-case hex, all-zero ids, another length,
 * another version) leaves the current context as it was and returns ERRAND_EINVAL.
 * errand_trace_get returns the thread's current context, or NULL; the string stays valid on
 * that thread until the next errand_trace_set there. */
ERRAND_API int errand_trace_set(const char *traceparent);
ERRAND_API const char *errand_trace_get(void);

ERRAND_API int errand_get(errand_client *c, const char *run_id, errand_run **out,
                          errand_error *err);

/* Waits until the run is final or timeout_seconds pass (then returns ERRAND_ETIMEDOUT and
 * still fills *out with the latest snapshot). */
ERRAND_API int errand_wait(errand_client *c, const char *run_id, double timeout_seconds,
                           errand_run **out, errand_error *err);

/* Requests cancellation; *out (optional) is the run after the request. */
ERRAND_API int errand_cancel(errand_client *c, const char *run_id, errand_run **out,
                             errand_error *err);

/* Runs a FAILED, CRASHED or CANCELLED run again, as a new run of the same task, parameters
 * and options whose "retry_of" is run_id (POST /api/task_runs/{id}/retry); *out (optional)
 * is the new run. Each call makes a new run. ERRAND_ECONFLICT when the run is not over, or
 * COMPLETED (submit it again instead). */
ERRAND_API int errand_retry(errand_client *c, const char *run_id, errand_run **out,
                            errand_error *err);

/* The result of a COMPLETED run as JSON text (from the run itself, or from the server's
 * GET /api/task_runs/{id}/result when it was persisted and not inlined: a client never opens
 * a file a run names). A FAILED/CRASHED run gives ERRAND_EFAILED with its message; a run not
 * final yet gives ERRAND_ECONFLICT. */
ERRAND_API int errand_result(errand_client *c, const errand_run *r, char **result_json,
                             errand_error *err);

/* Any API call: method "GET"/"POST", path below the API URL ("/task_runs?state=FAILED"),
 * body JSON text or NULL. Returns 0 when the server answered (any status), with *status and
 * *response (malloc'd); used by the CLI for listings. */
ERRAND_API int errand_request(errand_client *c, const char *method, const char *path,
                              const char *body, int *status, char **response, errand_error *err);

/* Turns a non-2xx answer of errand_request() into an error, as every other call does: the
 * status mapped to an ERRAND_E* code (400 EINVAL, 401 EAUTH, 404 ENOTFOUND, 409 ECONFLICT,
 * 413 ETOOBIG, 503 EUNAVAILABLE, other 5xx ESERVER), the message and field of the body's
 * {"error": {...}} when it has one. Returns the code. */
ERRAND_API int errand_error_from_response(int status, const char *body, errand_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Worker runtime                                                                            */

typedef struct errand_worker errand_worker;

/* Options of a worker. Zero-initialise for the defaults (the environment's, then built-in),
 * or call errand_worker_options_init(); NULL options mean the same. */
typedef struct errand_worker_options {
    const char *api_url;            /* NULL = ERRAND_API_URL; a list as for clients */
    const char *api_key;            /* NULL = ERRAND_API_KEY */
    const char *name;               /* NULL = "<hostname>-<pid>" */
    int concurrency;                /* runs at once; 0 = ERRAND_WORKER_CONCURRENCY (10) */
    double lease_seconds;           /* 0 = the server's default */
    const char *local_storage_path; /* NULL = ERRAND_LOCAL_STORAGE_PATH */
    /* Persist the results of runs whose submission and task definition leave it to the
       worker: ERRAND_DEFAULT = ERRAND_RESULTS_PERSIST_BY_DEFAULT (default false). */
    errand_choice persist_by_default;
    /* Send what C tasks print on stdout (and exec tasks on stderr) to the run's logs:
       ERRAND_DEFAULT = ERRAND_LOGGING_LOG_PRINTS (default false). */
    errand_choice log_prints;
    double grace_seconds; /* on stop, how long running tasks may finish; 0 = 30 */
    bool handle_signals;  /* SIGTERM/SIGINT call errand_worker_stop(); false = the
                             signals are left alone (errand_serve() sets it) */
    int prefetch;         /* runs claimed beyond concurrency, waiting for a slot (0 = none): saves a
                             claim round trip per run for short tasks; on stop they are handed back */
    /* Process isolation: each run of a C task runs in a child process, so a segfault, abort
       or runaway allocation ends that run (FAILED, with the signal in the message, retried
       per its policy) and the worker lives on; a timeout, cancel or stop kills the child
       (SIGTERM, which errand_task_should_stop() sees, then SIGKILL 2 s later). Every
       errand_task_* call works the same. The child is a fork of the process as it was when
       serve() started (forked then, while it had one thread, by a small fork server): it sees
       the tasks' userdata and globals as they were then, not later changes. false = runs on
       the worker's threads. */
    bool isolate;
    /* Limits of every task process (exec tasks, and C tasks when isolated); 0 = none. Memory:
       data the process may allocate beyond what it starts with (RLIMIT_DATA). CPU: seconds
       of CPU time (RLIMIT_CPU), then SIGXCPU. */
    size_t memory_limit_bytes;
    double cpu_limit_seconds;
    /* Where persisted results go: NULL = ERRAND_RESULT_STORAGE (default "local", i.e.
       local_storage_path), or "s3://bucket/prefix" for an S3-compatible store reached at
       s3_endpoint_url (NULL = ERRAND_S3_ENDPOINT_URL), signed for s3_region (NULL =
       AWS_REGION) with the access key s3_access_key_id / s3_secret_access_key (NULL =
       AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Clients read every result through the
       server, which needs the same storage settings. */
    const char *result_storage;
    const char *s3_endpoint_url;
    const char *s3_region;
    const char *s3_access_key_id;
    const char *s3_secret_access_key;
} errand_worker_options;

/* Zeroes *opt: the defaults. */
ERRAND_API void errand_worker_options_init(errand_worker_options *opt);

ERRAND_API int errand_worker_new(const errand_worker_options *opt, errand_worker **out,
                                 errand_error *err);

/* Serves a C task. The definition is copied; fn must be set. */
ERRAND_API int errand_worker_add_task(errand_worker *w, const errand_task_def *task,
                                      errand_error *err);

/* Serves task `name` by running `command` (through /bin/sh -c) per run: parameters JSON on
 * stdin, result JSON on stdout; an exit status other than 0 fails the run with the tail of
 * stderr as its message. */
ERRAND_API int errand_worker_add_exec(errand_worker *w, const char *name, const char *command,
                                      errand_error *err);

/* How many runs may wait in errand_task_wait() with their slot lent to another run (see
 * "Subtasks" below): 0 = none (a waiting run keeps its slot), at most 10000. Without this
 * call, ERRAND_WORKER_MAX_WAITING (default 32). The worker runs concurrency + max_waiting
 * threads. Call before serve(). A function rather than an options field, so that programs
 * built against an older errand.h (a smaller errand_worker_options) keep working. Since ABI
 * 1.2. */
ERRAND_API int errand_worker_set_max_waiting(errand_worker *w, int max_waiting, errand_error *err);

/* Claims and runs task runs until errand_worker_stop(); then stops claiming, lets running
 * tasks finish within the grace period and hands unstarted runs back. Returns 0 after a
 * clean stop. */
ERRAND_API int errand_worker_serve(errand_worker *w, errand_error *err);

/* Asks serve() to stop. Async-signal-safe; callable from any thread. */
ERRAND_API void errand_worker_stop(errand_worker *w);

/* Counters since start (for benchmarks and status lines). */
typedef struct errand_worker_stats {
    uint64_t claimed, completed, failed, running;
} errand_worker_stats;
ERRAND_API void errand_worker_get_stats(errand_worker *w, errand_worker_stats *out);

ERRAND_API void errand_worker_free(errand_worker *w);

/* Serves the given tasks until SIGTERM/SIGINT: the C spelling of Prefect's serve(). */
ERRAND_API int errand_serve(const errand_task_def *tasks, size_t n,
                            const errand_worker_options *opt, errand_error *err);

/* Inside a task function. */
ERRAND_API const char *errand_task_run_id(const errand_task_ctx *ctx);
ERRAND_API int errand_task_attempt(const errand_task_ctx *ctx); /* 1 on the first attempt */
/* True once the run was cancelled or its timeout passed: a long task checks this and returns. */
ERRAND_API bool errand_task_should_stop(const errand_task_ctx *ctx);
/* The traceparent the run was submitted with (its own, not the task's child span that
 * errand_trace_get() returns inside the task), or NULL when it has none. Valid during the
 * call. Since ABI 1.1. */
ERRAND_API const char *errand_task_traceparent(const errand_task_ctx *ctx);

typedef enum errand_log_level {
    ERRAND_LOG_DEBUG = 10,
    ERRAND_LOG_INFO = 20,
    ERRAND_LOG_WARNING = 30,
    ERRAND_LOG_ERROR = 40,
} errand_log_level;

/* Adds a line to the run's logs (shipped to the server in batches). */
ERRAND_API void errand_task_log(errand_task_ctx *ctx, errand_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the failure message; with retryable false the run fails at once, whatever retries
 * remain (for errors that a retry cannot fix, such as a rejected API key). */
ERRAND_API void errand_task_fail(errand_task_ctx *ctx, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Asks for this run's result to be persisted to the result storage (overrides defaults). */
ERRAND_API void errand_task_persist_result(errand_task_ctx *ctx, bool persist);

/* Subtasks, since ABI 1.2 (ERRAND_0.3). A task submits runs and waits for their outcome
 * without a client of its own, and without the deadlock of a worker whose every slot is held
 * by runs waiting for subtasks that no slot is left to run: a worker with concurrency 1
 * whose task waits for ten subtasks of the same task runs them all.
 *
 * errand_task_submit is errand_submit through the worker's own connection settings (its
 * api_url list and api_key); the subtask carries the task's trace context (a child of the
 * run's span, see errand_trace_set). *out (optional) receives the new run.
 *
 * errand_task_wait waits until the run run_id is final (COMPLETED, FAILED, CRASHED,
 * CANCELLED, CACHED) and fills *out (optional; read its result with errand_result() through
 * a client, or errand_run_json()). While it waits, the calling run *lends its slot*: the
 * worker may claim and start another run in its place; when the wait ends the task goes on
 * at once, the worker possibly over its concurrency for a moment (it starts nothing new
 * until it is below it again). Up to max_waiting runs of a worker wait this way
 * (errand_worker_set_max_waiting), each costing a thread of the worker;
 * past that a wait keeps its slot, as errand_wait on a client would, and the worker logs a
 * warning once. The waiting run is still RUNNING: its lease is kept alive.
 * timeout_seconds <= 0 waits with no limit of its own; past a positive one it returns
 * ERRAND_ETIMEDOUT (with the latest snapshot in *out). The run's own cancel or timeout, or
 * the end of a stopping worker's grace period, ends the wait at once with ERRAND_ECANCELLED;
 * the task should then return.
 * A subtask that fails is not an error of the wait: its state says so.
 *
 * Both work in isolated mode too (the child makes the requests; the worker lends the slot).
 * Both need ctx from a worker's task call; anything else gives ERRAND_EINVAL. */
ERRAND_API int errand_task_submit(errand_task_ctx *ctx, const char *task, const char *params_json,
                                  const errand_submit_options *opt, errand_run **out,
                                  errand_error *err);
ERRAND_API int errand_task_wait(errand_task_ctx *ctx, const char *run_id, double timeout_seconds,
                                errand_run **out, errand_error *err);

#ifdef __cplusplus
}
#endif
#endif
