/* SPDX-License-Identifier: MIT */
/*
 * settings.c — every errand setting, named once in SETTINGS below (env name, flag, type,
 * default, limits, help). Loading applies defaults, then the environment, then flags
 * (settings_set with SETTING_FLAG); each value is validated with a message that names the
 * variable or flag and the bad value. `errand config` prints the result with its sources.
 *
 * Two defaults depend on ERRAND_HOME: the database URL and the local storage path. They are
 * written "$ERRAND_HOME/..." in the table and re-derived whenever ERRAND_HOME changes, as
 * long as they still hold their default. "$HOME" expands to the HOME variable, or to
 * SETTINGS_NO_HOME_DIR when HOME is unset. The database default is "sqlite://" + the path,
 * so an absolute ERRAND_HOME gives the store's absolute form sqlite:///home/me/.errand/errand.db.
 */
#include "core/settings.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

#define SETTINGS_NO_HOME_DIR "/tmp"
#define SETTINGS_SECRET_MASK "****"
#define SETTINGS_JSON_INDENT 2
#define VAR_HOME "$HOME"
#define VAR_ERRAND_HOME "$ERRAND_HOME"
#define PORT_MAX 65535
#define DAY_SECONDS 86400
#define CENTURY_SECONDS (100LL * 365 * DAY_SECONDS)
#define HOUR_MS 3600000
#define GIB (1024LL * 1024 * 1024)
#define MIN_BODY_BYTES 1024
#define MIN_INFLIGHT_BYTES (1024 * 1024)
/* A connection costs the server a descriptor and a few KiB, not a thread; the server lowers
 * the setting to what its descriptor limit allows. */
#define MAX_CONNECTIONS_LIMIT 1000000
#define MAX_HANDLER_THREADS 1024
#define MAX_EVENTS_BUFFER (1024 * 1024)
#define MAX_EVENTS_KEPT 1000000000000LL
#define MAX_CONCURRENCY 10000

static const struct setting_def SETTINGS[SET_COUNT] = {
    {SET_HOME, "ERRAND_HOME", "home", SETTING_STRING, "$HOME/.errand", 0, 0, false,
     "directory for errand's data; the database and result storage defaults live under it"},
    {SET_API_URL, "ERRAND_API_URL", "api-url", SETTING_STRING, "http://127.0.0.1:4200/api", 0, 0,
     false, "URL of the errand server API, for clients and workers"},
    {SET_API_KEY, "ERRAND_API_KEY", "api-key", SETTING_STRING, "", 0, 0, true,
     "API key: the server requires it as a Bearer token, clients send it; empty = no auth"},
    {SET_SERVER_HOST, "ERRAND_SERVER_API_HOST", "host", SETTING_STRING, "127.0.0.1", 0, 0, false,
     "address the server listens on"},
    {SET_SERVER_PORT, "ERRAND_SERVER_API_PORT", "port", SETTING_INT, "4200", 0, PORT_MAX, false,
     "port the server listens on (0 = any free port, printed in the 'listening' log line)"},
    {SET_DATABASE_URL, "ERRAND_DATABASE_URL", "database-url", SETTING_STRING,
     "sqlite://$ERRAND_HOME/errand.db", 0, 0, false,
     "store: sqlite:///path/to/file.db or postgresql://..."},
    {SET_DATABASE_SYNC, "ERRAND_DATABASE_SYNC", "database-sync", SETTING_STRING, "full", 0, 0,
     false, "SQLite durability: full (survives power loss), normal or off"},
    {SET_DATABASE_POOL_SIZE, "ERRAND_DATABASE_POOL_SIZE", "database-pool-size", SETTING_INT, "8", 1,
     DATABASE_POOL_SIZE_MAX, false,
     "PostgreSQL: connections a server opens for its requests (plus one that groups "
     "submissions and one that listens for other servers' wake-ups)"},
    {SET_LOCAL_STORAGE_PATH, "ERRAND_LOCAL_STORAGE_PATH", "local-storage-path", SETTING_STRING,
     "$ERRAND_HOME/storage", 0, 0, false, "directory where persisted task results are written"},
    {SET_RESULT_STORAGE, "ERRAND_RESULT_STORAGE", "result-storage", SETTING_STRING, "local", 0, 0,
     false,
     "where persisted results go: local (ERRAND_LOCAL_STORAGE_PATH) or s3://bucket/prefix "
     "(an S3-compatible object store)"},
    {SET_S3_ENDPOINT_URL, "ERRAND_S3_ENDPOINT_URL", "s3-endpoint-url", SETTING_STRING,
     "https://s3.amazonaws.com", 0, 0, false,
     "the S3 API's URL for s3:// result storage (your region's, or MinIO's, Ceph's...)"},
    {SET_S3_REGION, "AWS_REGION", "s3-region", SETTING_STRING, "us-east-1", 0, 0, false,
     "the region requests to s3:// result storage are signed for"},
    {SET_S3_ACCESS_KEY_ID, "AWS_ACCESS_KEY_ID", "s3-access-key-id", SETTING_STRING, "", 0, 0, true,
     "the access key id of s3:// result storage"},
    {SET_S3_SECRET_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", "s3-secret-access-key", SETTING_STRING, "",
     0, 0, true, "the secret access key of s3:// result storage"},
    {SET_RESULTS_PERSIST, "ERRAND_RESULTS_PERSIST_BY_DEFAULT", "results-persist-by-default",
     SETTING_BOOL, "false", 0, 1, false,
     "persist task results to local storage unless a task says otherwise"},
    {SET_LOG_PRINTS, "ERRAND_LOGGING_LOG_PRINTS", "log-prints", SETTING_BOOL, "false", 0, 1, false,
     "capture what tasks print to stdout into the run's logs"},
    {SET_LOG_LEVEL, "ERRAND_LOGGING_LEVEL", "log-level", SETTING_STRING, "info", 0, 0, false,
     "log level: debug, info, warning or error"},
    {SET_LOG_FORMAT, "ERRAND_LOGGING_FORMAT", "log-format", SETTING_STRING, "logfmt", 0, 0, false,
     "log line format: logfmt, or json (one JSON object a line)"},
    {SET_LEASE_SECONDS, "ERRAND_LEASE_SECONDS", "lease-seconds", SETTING_INT, "30", 1, DAY_SECONDS,
     false, "default lease of a claimed run; workers heartbeat well within it"},
    {SET_API_KEYS_SUBMIT, "ERRAND_API_KEYS_SUBMIT", "api-keys-submit", SETTING_STRING, "", 0, 0,
     true, "server: comma-separated keys that may submit, cancel and read runs (web apps)"},
    {SET_API_KEYS_WORKER, "ERRAND_API_KEYS_WORKER", "api-keys-worker", SETTING_STRING, "", 0, 0,
     true, "server: comma-separated keys that may only claim, heartbeat and report (workers)"},
    {SET_API_KEYS_READ, "ERRAND_API_KEYS_READ", "api-keys-read", SETTING_STRING, "", 0, 0, true,
     "server: comma-separated keys that may only read (dashboards)"},
    {SET_MAX_REDELIVERIES, "ERRAND_MAX_REDELIVERIES", "max-redeliveries", SETTING_INT, "5", 0, 1000,
     false,
     "how many times a run goes back to the queue without an outcome (its lease expired, or "
     "a stopping worker handed it back mid-run) before it ends CRASHED; apart from retries"},
    {SET_SWEEP_INTERVAL_MS, "ERRAND_SWEEP_INTERVAL_MS", "sweep-interval-ms", SETTING_INT, "500", 1,
     HOUR_MS, false,
     "how often the server expires leases and moves delayed runs that came due to the ready "
     "queue"},
    {SET_POLL_RECHECK_MS, "ERRAND_POLL_RECHECK_MS", "poll-recheck-ms", SETTING_INT, "1000", 1,
     HOUR_MS, false,
     "how often a long-poll (claim, wait) looks at the store without being woken: a fallback "
     "for changes made by another server sharing the store"},
    {SET_RETENTION_SECONDS, "ERRAND_RETENTION_SECONDS", "retention-seconds", SETTING_INT, "604800",
     0, CENTURY_SECONDS, false,
     "finished runs (with their history, logs and result files) are deleted this long after "
     "they finish; 0 = keep them for ever"},
    {SET_WORKER_RETENTION_SECONDS, "ERRAND_WORKER_RETENTION_SECONDS", "worker-retention-seconds",
     SETTING_INT, "86400", 0, CENTURY_SECONDS, false,
     "workers not seen for this long are dropped from the worker list; 0 = keep them"},
    {SET_MAX_BODY_BYTES, "ERRAND_MAX_BODY_BYTES", "max-body-bytes", SETTING_INT, "1048576",
     MIN_BODY_BYTES, GIB, false, "largest request body the server accepts (413 above it)"},
    {SET_MAX_INFLIGHT_BYTES, "ERRAND_MAX_INFLIGHT_BYTES", "max-inflight-bytes", SETTING_INT,
     "67108864", MIN_INFLIGHT_BYTES, GIB * 1024, false,
     "memory budget for request work in flight (bodies, parsed batches, answers): past it "
     "the server answers 503 with Retry-After instead of growing"},
    {SET_MAX_CONNECTIONS, "ERRAND_MAX_CONNECTIONS", "max-connections", SETTING_INT, "10000", 1,
     MAX_CONNECTIONS_LIMIT, false,
     "most HTTP connections the server holds at once (long-polls included; each costs a "
     "descriptor, not a thread)"},
    {SET_HTTP_IDLE_TIMEOUT_MS, "ERRAND_HTTP_IDLE_TIMEOUT_MS", "http-idle-timeout-ms", SETTING_INT,
     "10000", 100, HOUR_MS, false,
     "a connection waiting this long for a request's headers, the next piece of its body or "
     "its next request is closed (a long-poll being served is not waiting)"},
    {SET_HTTP_UNAUTH_PER_ADDRESS, "ERRAND_HTTP_UNAUTH_PER_ADDRESS", "http-unauth-per-address",
     SETTING_INT, "64", 0, MAX_CONNECTIONS_LIMIT, false,
     "most unauthenticated waiting connections kept from one client address (0 = no such "
     "cap, e.g. behind a reverse proxy that speaks for every client)"},
    {SET_HANDLER_THREADS, "ERRAND_HANDLER_THREADS", "handler-threads", SETTING_INT, "64", 1,
     MAX_HANDLER_THREADS, false,
     "threads that run request handlers: a write waiting for its commit holds one, a "
     "waiting long-poll none; concurrent writes commit together up to this many"},
    {SET_RESULT_INLINE_MAX, "ERRAND_RESULT_INLINE_MAX_BYTES", "result-inline-max-bytes",
     SETTING_INT, "65536", 0, GIB, false, "results up to this size are stored inline in the run"},
    {SET_WORKER_CONCURRENCY, "ERRAND_WORKER_CONCURRENCY", "concurrency", SETTING_INT, "10", 1,
     MAX_CONCURRENCY, false, "how many runs a worker executes at once"},
    {SET_WORKER_MAX_WAITING, "ERRAND_WORKER_MAX_WAITING", "max-waiting", SETTING_INT, "32", 0,
     MAX_CONCURRENCY, false,
     "how many of a worker's runs may wait for their subtasks with their slots lent to other "
     "runs (each costs a thread, or a Python process); past it a wait keeps its slot"},
    {SET_EVENTS_BUFFER, "ERRAND_EVENTS_BUFFER", "events-buffer", SETTING_INT, "4096", 16,
     MAX_EVENTS_BUFFER, false,
     "the newest state changes the server keeps in memory for GET /api/events: a client "
     "that reconnects within them resumes where it was, else it gets a reset event"},
    {SET_EVENTS_RETENTION_SECONDS, "ERRAND_EVENTS_RETENTION_SECONDS", "events-retention-seconds",
     SETTING_INT, "3600", 0, CENTURY_SECONDS, false,
     "state changes are kept in the store's change feed this long (the newest always); "
     "0 = keep them for ever"},
    {SET_EVENTS_MAX, "ERRAND_EVENTS_MAX", "events-max", SETTING_INT, "1000000", 0, MAX_EVENTS_KEPT,
     false,
     "at most this many state changes are kept in the store's change feed, however young "
     "(about 60 bytes each); 0 = no bound but the retention time"},
    {SET_SCHEDULER_INTERVAL_MS, "ERRAND_SCHEDULER_INTERVAL_MS", "scheduler-interval-ms",
     SETTING_INT, "1000", 0, HOUR_MS, false,
     "the scheduler fires each schedule's tick on time and looks at the schedules at least "
     "this often (how soon a schedule changed through another server is seen); 0 = this "
     "server fires no schedules"},
    {SET_SCHEDULE_LATE_SECONDS, "ERRAND_SCHEDULE_LATE_SECONDS", "schedule-late-seconds",
     SETTING_INT, "60", 1, CENTURY_SECONDS, false,
     "a schedule's tick not fired within this long of its time (every server was down) was "
     "missed: the schedule's catch_up policy decides (skip it, or one run for all missed)"},
    {SET_SCHEDULER_CLOCK_OFFSET, "ERRAND_SCHEDULER_CLOCK_OFFSET_SECONDS",
     "scheduler-clock-offset-seconds", SETTING_INT, "0", -CENTURY_SECONDS, CENTURY_SECONDS, false,
     "for tests and rehearsals only: the scheduler's clock (next ticks, firing) runs this "
     "far ahead of the wall clock (negative: behind); runs are still stamped with the wall "
     "clock"},
    {SET_WEBHOOK_SECRET, "ERRAND_WEBHOOK_SECRET", "webhook-secret", SETTING_STRING, "", 0, 0, true,
     "the shared secret webhook calls are signed with (HMAC-SHA256 in the Errand-Signature "
     "header); empty = calls are not signed"},
    {SET_WEBHOOK_INTERVAL_MS, "ERRAND_WEBHOOK_INTERVAL_MS", "webhook-interval-ms", SETTING_INT,
     "500", 0, HOUR_MS, false,
     "the webhook sender looks for due deliveries this often (a run's end is called back "
     "within about this long); 0 = this server makes no webhook calls"},
    {SET_WEBHOOK_TIMEOUT_SECONDS, "ERRAND_WEBHOOK_TIMEOUT_SECONDS", "webhook-timeout-seconds",
     SETTING_INT, "10", 1, 300, false,
     "a webhook call that has no answer within this long failed, and is tried again"},
    {SET_WEBHOOK_MAX_ATTEMPTS, "ERRAND_WEBHOOK_MAX_ATTEMPTS", "webhook-max-attempts", SETTING_INT,
     "10", 1, 100, false,
     "a webhook delivery is given up (and logged) after this many failed calls"},
    {SET_WEBHOOK_RETRY_SECONDS, "ERRAND_WEBHOOK_RETRY_SECONDS", "webhook-retry-seconds",
     SETTING_INT, "10", 1, 86400, false,
     "the wait before a failed webhook call is made again; it doubles with each failure, "
     "up to an hour"},
};

static const char *const DATABASE_SYNC_VALUES[] = {"full", "normal", "off", NULL};
static const char *const LOG_LEVEL_VALUES[] = {"debug", "info", "warning", "error", NULL};
static const char *const LOG_FORMAT_VALUES[] = {"logfmt", "json", NULL};

const struct setting_def *settings_table(void)
{
    return SETTINGS;
}

const struct setting_def *settings_find_flag(const char *flag)
{
    if (!flag)
        return NULL;
    if (strncmp(flag, "--", 2) == 0)
        flag += 2;
    for (int i = 0; i < SET_COUNT; i++)
        if (strcmp(SETTINGS[i].flag, flag) == 0)
            return &SETTINGS[i];
    return NULL;
}

bool settings_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on", NULL};
    static const char *const no[] = {"false", "0", "no", "off", NULL};
    if (!text)
        return false;
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static const char *source_word(enum setting_source src)
{
    switch (src) {
    case SETTING_ENV:
        return "env";
    case SETTING_FLAG:
        return "flag";
    default:
        return "default";
    }
}

/* The setting as the user spelled it: "--port" for a flag, "ERRAND_SERVER_API_PORT" else.
 * Points into a static table or into buf. */
static const char *setting_label(const struct setting_def *def, enum setting_source src, char *buf,
                                 size_t cap)
{
    if (src != SETTING_FLAG)
        return def->env;
    snprintf(buf, cap, "--%s", def->flag);
    return buf;
}

/* Index of text (case-insensitive) in a NULL-terminated list, or -1. */
static int find_choice(const char *const *choices, const char *text)
{
    for (int i = 0; choices[i]; i++)
        if (strcasecmp(choices[i], text) == 0)
            return i;
    return -1;
}

/* Expands the "$ERRAND_HOME" or "$HOME" inside a default (at most one) into out. */
static int expand_default(const struct settings *s, const char *fallback, char *out, size_t cap)
{
    const char *var = strstr(fallback, VAR_ERRAND_HOME);
    size_t var_len = strlen(VAR_ERRAND_HOME);
    const char *value = s->str[SET_HOME];
    if (!var) {
        const char *home = getenv("HOME");
        var = strstr(fallback, VAR_HOME);
        var_len = strlen(VAR_HOME);
        value = home && home[0] ? home : SETTINGS_NO_HOME_DIR;
    }
    int n;
    if (!var)
        n = snprintf(out, cap, "%s", fallback);
    else
        n = snprintf(out, cap, "%.*s%s%s", (int)(var - fallback), fallback, value, var + var_len);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Checks value against the setting's type and limits; writes its normal form into out. */
static int validate(const struct setting_def *def, const char *value, enum setting_source src,
                    char out[SETTINGS_STR_MAX], long long *num, errand_error *err)
{
    char flagbuf[ERRAND_ERROR_FIELD_MAX];
    const char *label = setting_label(def, src, flagbuf, sizeof flagbuf);

    if (strlen(value) >= SETTINGS_STR_MAX)
        return error_set(err, ERRAND_EINVAL, label, "%s is too long (%zu characters, at most %d)",
                         label, strlen(value), SETTINGS_STR_MAX - 1);
    *num = 0;
    switch (def->type) {
    case SETTING_INT: {
        char *end = NULL;
        errno = 0;
        long long v =
            value[0] == '-' || (value[0] >= '0' && value[0] <= '9') ? strtoll(value, &end, 10) : 0;
        if (!end || end == value || *end != '\0' || errno == ERANGE || v < def->min || v > def->max)
            return error_set(err, ERRAND_EINVAL, label,
                             "%s must be an integer between %lld and %lld, got '%s'", label,
                             def->min, def->max, value);
        *num = v;
        snprintf(out, SETTINGS_STR_MAX, "%lld", v);
        return 0;
    }
    case SETTING_BOOL: {
        bool b;
        if (!settings_parse_bool(value, &b))
            return error_set(err, ERRAND_EINVAL, label,
                             "%s must be true or false (also 1/0, yes/no, on/off), got '%s'", label,
                             value);
        *num = b;
        snprintf(out, SETTINGS_STR_MAX, "%s", b ? "true" : "false");
        return 0;
    }
    case SETTING_STRING:
        break;
    }

    const char *const *choices = def->id == SET_DATABASE_SYNC ? DATABASE_SYNC_VALUES
                                 : def->id == SET_LOG_LEVEL   ? LOG_LEVEL_VALUES
                                 : def->id == SET_LOG_FORMAT  ? LOG_FORMAT_VALUES
                                                              : NULL;
    if (choices) {
        int i = find_choice(choices, value);
        if (i < 0 && def->id == SET_LOG_LEVEL && strcasecmp(value, "warn") == 0)
            i = find_choice(choices, "warning");
        if (i < 0) {
            char listed[SETTINGS_STR_MAX] = "";
            for (size_t k = 0; choices[k]; k++)
                snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s%s",
                         k ? ", " : "", choices[k]);
            return error_set(err, ERRAND_EINVAL, label, "%s must be one of %s, got '%s'", label,
                             listed, value);
        }
        snprintf(out, SETTINGS_STR_MAX, "%s", choices[i]);
        return 0;
    }
    if (!value[0] && !def->secret) /* a key may be empty: none */
        return error_set(err, ERRAND_EINVAL, label, "%s must not be empty", label);
    snprintf(out, SETTINGS_STR_MAX, "%s", value);
    return 0;
}

/* Re-derives the defaults that live under ERRAND_HOME, unless they were set themselves. */
static int derive_from_home(struct settings *s, errand_error *err)
{
    static const enum setting_id dependents[] = {SET_DATABASE_URL, SET_LOCAL_STORAGE_PATH};
    for (size_t i = 0; i < sizeof dependents / sizeof dependents[0]; i++) {
        enum setting_id id = dependents[i];
        if (s->source[id] != SETTING_DEFAULT)
            continue;
        if (expand_default(s, SETTINGS[id].fallback, s->str[id], SETTINGS_STR_MAX) != 0)
            return error_set(err, ERRAND_EINVAL, SETTINGS[SET_HOME].env,
                             "%s is too long to hold the default of %s", SETTINGS[SET_HOME].env,
                             SETTINGS[id].env);
    }
    return 0;
}

int settings_set(struct settings *s, enum setting_id id, const char *value,
                 enum setting_source source, errand_error *err)
{
    if ((unsigned)id >= SET_COUNT)
        return error_set(err, ERRAND_EINVAL, NULL, "unknown setting %d", (int)id);
    const struct setting_def *def = &SETTINGS[id];
    if (!value) {
        char flagbuf[ERRAND_ERROR_FIELD_MAX];
        const char *label = setting_label(def, source, flagbuf, sizeof flagbuf);
        return error_set(err, ERRAND_EINVAL, label, "%s needs a value", label);
    }
    char normal[SETTINGS_STR_MAX];
    long long num = 0;
    int rc = validate(def, value, source, normal, &num, err);
    if (rc)
        return rc;
    memcpy(s->str[id], normal, SETTINGS_STR_MAX);
    s->num[id] = num;
    s->source[id] = source;
    if (id == SET_HOME)
        return derive_from_home(s, err);
    return 0;
}

int settings_load(struct settings *s, errand_error *err)
{
    memset(s, 0, sizeof *s);
    /* Defaults, in enum order: SET_HOME comes first, so "$ERRAND_HOME" expands. */
    for (int i = 0; i < SET_COUNT; i++) {
        char value[SETTINGS_STR_MAX];
        if (expand_default(s, SETTINGS[i].fallback, value, sizeof value) != 0)
            return error_set(err, ERRAND_EINVAL, "HOME",
                             "HOME is too long to hold the default of %s", SETTINGS[i].env);
        int rc = settings_set(s, (enum setting_id)i, value, SETTING_DEFAULT, err);
        if (rc)
            return rc;
    }
    for (int i = 0; i < SET_COUNT; i++) {
        const char *value = getenv(SETTINGS[i].env);
        if (!value)
            continue;
        int rc = settings_set(s, (enum setting_id)i, value, SETTING_ENV, err);
        if (rc)
            return rc;
    }
    return 0;
}

#define NONE_SHOWN "(none)"

static const char *display_value(const struct settings *s, int i)
{
    if (SETTINGS[i].secret && s->str[i][0])
        return SETTINGS_SECRET_MASK;
    return s->str[i];
}

/* The value as the table shows it: an empty one (no key) as NONE_SHOWN. */
static const char *table_value(const struct settings *s, int i)
{
    const char *v = display_value(s, i);
    return v[0] ? v : NONE_SHOWN;
}

static void print_json(const struct settings *s, FILE *out)
{
    mem_install_json();
    json_t *root = json_object();
    if (!root)
        goto fail;
    for (int i = 0; i < SET_COUNT; i++) {
        json_t *v;
        if (SETTINGS[i].type == SETTING_INT)
            v = json_integer(s->num[i]);
        else if (SETTINGS[i].type == SETTING_BOOL)
            v = json_boolean(s->num[i]);
        else
            v = json_string(display_value(s, i));
        json_t *entry = json_pack("{s:o?, s:s}", "value", v, "source", source_word(s->source[i]));
        if (!entry || json_object_set_new(root, SETTINGS[i].env, entry) != 0)
            goto fail;
    }
    if (json_dumpf(root, out, JSON_INDENT(SETTINGS_JSON_INDENT) | JSON_PRESERVE_ORDER) != 0)
        goto fail;
    fputc('\n', out);
    json_decref(root);
    return;
fail:
    json_decref(root);
    log_error("could not print the settings as JSON", "reason=%s", "out_of_memory");
}

void settings_print(const struct settings *s, FILE *out, bool as_json)
{
    if (as_json) {
        print_json(s, out);
        return;
    }
    static const char *const H_NAME = "NAME", *const H_VALUE = "VALUE", *const H_SOURCE = "SOURCE";
    int wname = (int)strlen(H_NAME), wvalue = (int)strlen(H_VALUE);
    for (int i = 0; i < SET_COUNT; i++) {
        int n = (int)strlen(SETTINGS[i].env);
        int v = (int)strlen(table_value(s, i));
        if (n > wname)
            wname = n;
        if (v > wvalue)
            wvalue = v;
    }
    fprintf(out, "%-*s  %-*s  %s\n", wname, H_NAME, wvalue, H_VALUE, H_SOURCE);
    for (int i = 0; i < SET_COUNT; i++)
        fprintf(out, "%-*s  %-*s  %s\n", wname, SETTINGS[i].env, wvalue, table_value(s, i),
                source_word(s->source[i]));
}
