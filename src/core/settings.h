/* SPDX-License-Identifier: MIT */
/*
 * settings.h — errand's configuration: one struct, filled from built-in defaults, then the
 * environment (ERRAND_*), then command-line flags (--database-url ...). One table in
 * settings.c names every setting once (env name, flag, default, help), and drives parsing,
 * `errand config` and the docs. No other module calls getenv() for ERRAND_* settings.
 */
#ifndef ERRAND_CORE_SETTINGS_H
#define ERRAND_CORE_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "errand/errand.h"

#define SETTINGS_STR_MAX 1024

enum setting_source { SETTING_DEFAULT = 0, SETTING_ENV, SETTING_FLAG };

/* The largest ERRAND_DATABASE_POOL_SIZE. */
#define DATABASE_POOL_SIZE_MAX 256

enum setting_id {
    SET_HOME,                     /* ERRAND_HOME, default ~/.errand */
    SET_API_URL,                  /* ERRAND_API_URL, default http://127.0.0.1:4200/api */
    SET_API_KEY,                  /* ERRAND_API_KEY, default "" (no auth) */
    SET_SERVER_HOST,              /* ERRAND_SERVER_API_HOST, default 127.0.0.1 */
    SET_SERVER_PORT,              /* ERRAND_SERVER_API_PORT, default 4200 (0 = any free port) */
    SET_DATABASE_URL,             /* ERRAND_DATABASE_URL, default sqlite://$ERRAND_HOME/errand.db
                                     (= sqlite:///abs/path when ERRAND_HOME is absolute) */
    SET_DATABASE_SYNC,            /* ERRAND_DATABASE_SYNC: full|normal|off, default full */
    SET_DATABASE_POOL_SIZE,       /* ERRAND_DATABASE_POOL_SIZE: PostgreSQL connections, 8 */
    SET_LOCAL_STORAGE_PATH,       /* ERRAND_LOCAL_STORAGE_PATH, default $ERRAND_HOME/storage */
    SET_RESULT_STORAGE,           /* ERRAND_RESULT_STORAGE: local | s3://bucket/prefix */
    SET_S3_ENDPOINT_URL,          /* ERRAND_S3_ENDPOINT_URL, default https://s3.amazonaws.com */
    SET_S3_REGION,                /* AWS_REGION, default us-east-1 */
    SET_S3_ACCESS_KEY_ID,         /* AWS_ACCESS_KEY_ID */
    SET_S3_SECRET_ACCESS_KEY,     /* AWS_SECRET_ACCESS_KEY */
    SET_RESULTS_PERSIST,          /* ERRAND_RESULTS_PERSIST_BY_DEFAULT, default false */
    SET_LOG_PRINTS,               /* ERRAND_LOGGING_LOG_PRINTS, default false */
    SET_LOG_LEVEL,                /* ERRAND_LOGGING_LEVEL, default info */
    SET_LOG_FORMAT,               /* ERRAND_LOGGING_FORMAT: logfmt|json, default logfmt */
    SET_LEASE_SECONDS,            /* ERRAND_LEASE_SECONDS, default 30 */
    SET_API_KEYS_SUBMIT,          /* ERRAND_API_KEYS_SUBMIT: keys that submit and read */
    SET_API_KEYS_WORKER,          /* ERRAND_API_KEYS_WORKER: keys that claim and report */
    SET_API_KEYS_READ,            /* ERRAND_API_KEYS_READ: keys that only read */
    SET_MAX_REDELIVERIES,         /* ERRAND_MAX_REDELIVERIES, default 5 */
    SET_SWEEP_INTERVAL_MS,        /* ERRAND_SWEEP_INTERVAL_MS, default 500 */
    SET_POLL_RECHECK_MS,          /* ERRAND_POLL_RECHECK_MS, default 1000 */
    SET_RETENTION_SECONDS,        /* ERRAND_RETENTION_SECONDS, default 604800 (7 days; 0 = keep) */
    SET_WORKER_RETENTION_SECONDS, /* ERRAND_WORKER_RETENTION_SECONDS, default 86400 (0 = keep) */
    SET_MAX_BODY_BYTES,           /* ERRAND_MAX_BODY_BYTES, default 1048576 */
    SET_MAX_INFLIGHT_BYTES,       /* ERRAND_MAX_INFLIGHT_BYTES, default 67108864 (64 MiB) */
    SET_MAX_CONNECTIONS,          /* ERRAND_MAX_CONNECTIONS, default 10000 */
    SET_HTTP_IDLE_TIMEOUT_MS,     /* ERRAND_HTTP_IDLE_TIMEOUT_MS, default 10000 */
    SET_HTTP_UNAUTH_PER_ADDRESS,  /* ERRAND_HTTP_UNAUTH_PER_ADDRESS, default 64 */
    SET_HANDLER_THREADS,          /* ERRAND_HANDLER_THREADS, default 64 */
    SET_RESULT_INLINE_MAX,        /* ERRAND_RESULT_INLINE_MAX_BYTES, default 65536 */
    SET_WORKER_CONCURRENCY,       /* ERRAND_WORKER_CONCURRENCY, default 10 */
    SET_WORKER_MAX_WAITING,       /* ERRAND_WORKER_MAX_WAITING, default 32 */
    SET_EVENTS_BUFFER,            /* ERRAND_EVENTS_BUFFER, default 4096 */
    SET_EVENTS_RETENTION_SECONDS, /* ERRAND_EVENTS_RETENTION_SECONDS, default 3600 */
    SET_EVENTS_MAX,               /* ERRAND_EVENTS_MAX, default 1000000 */
    SET_SCHEDULER_INTERVAL_MS,    /* ERRAND_SCHEDULER_INTERVAL_MS, default 1000 (0 = none) */
    SET_SCHEDULE_LATE_SECONDS,    /* ERRAND_SCHEDULE_LATE_SECONDS, default 60 */
    SET_SCHEDULER_CLOCK_OFFSET,   /* ERRAND_SCHEDULER_CLOCK_OFFSET_SECONDS, default 0 */
    SET_WEBHOOK_SECRET,           /* ERRAND_WEBHOOK_SECRET, default "" (unsigned) */
    SET_WEBHOOK_INTERVAL_MS,      /* ERRAND_WEBHOOK_INTERVAL_MS, default 500 (0 = none) */
    SET_WEBHOOK_TIMEOUT_SECONDS,  /* ERRAND_WEBHOOK_TIMEOUT_SECONDS, default 10 */
    SET_WEBHOOK_MAX_ATTEMPTS,     /* ERRAND_WEBHOOK_MAX_ATTEMPTS, default 10 */
    SET_WEBHOOK_RETRY_SECONDS,    /* ERRAND_WEBHOOK_RETRY_SECONDS, default 10 */
    SET_COUNT
};

enum setting_type { SETTING_STRING, SETTING_INT, SETTING_BOOL };

struct setting_def {
    enum setting_id id;
    const char *env;  /* "ERRAND_DATABASE_URL" */
    const char *flag; /* "database-url" (used as --database-url) */
    enum setting_type type;
    const char *fallback; /* default as text; "$HOME"-style expansion done in settings.c */
    long long min, max;   /* for SETTING_INT */
    bool secret;          /* printed as "****" by `errand config` */
    const char *help;
};

struct settings {
    char str[SET_COUNT][SETTINGS_STR_MAX]; /* every value as text */
    long long num[SET_COUNT];              /* parsed value for INT and BOOL (0/1) */
    enum setting_source source[SET_COUNT];
};

/* The table, SET_COUNT entries in enum order. */
const struct setting_def *settings_table(void);
const struct setting_def *settings_find_flag(const char *flag); /* "database-url" -> def */

/* Defaults, then the environment (getenv). Fails with a message naming the variable and the
 * bad value, e.g. ERRAND_SERVER_API_PORT=abc. Dependent defaults (database URL and storage
 * path under ERRAND_HOME) follow ERRAND_HOME unless set themselves. */
int settings_load(struct settings *s, errand_error *err);

/* Sets one value from a flag (source SETTING_FLAG) or env; validates it. */
int settings_set(struct settings *s, enum setting_id id, const char *value,
                 enum setting_source source, errand_error *err);

static inline const char *settings_str(const struct settings *s, enum setting_id id)
{
    return s->str[id];
}
static inline long long settings_int(const struct settings *s, enum setting_id id)
{
    return s->num[id];
}
static inline bool settings_bool(const struct settings *s, enum setting_id id)
{
    return s->num[id] != 0;
}

/* Parses "true/false/1/0/yes/no/on/off" (case-insensitive); false if not one of them. */
bool settings_parse_bool(const char *text, bool *out);

/* `errand config`: a table of NAME VALUE SOURCE (secrets masked), or a JSON object when
 * as_json. */
void settings_print(const struct settings *s, FILE *out, bool as_json);

#endif
