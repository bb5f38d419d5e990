/* SPDX-License-Identifier: MIT */
/*
 * openai.h — a client for one call of an OpenAI-compatible chat-completions endpoint
 * (POST {OPENAI_BASE_URL}/chat/completions) asking for structured output:
 *   {"model": M, "messages": [...], "response_format": {"type": "json_schema",
 *    "json_schema": {"name": N, "schema": S, "strict": B}}}
 * It sorts every outcome into the three a task needs to act on: an answer, a failure worth
 * retrying (429, 408/409, 5xx, network errors, timeouts), and a failure no retry can fix
 * (400, 401, 403, 404, an exhausted quota, a refusal), keeping the endpoint's own message.
 * Works with OpenAI and with local servers that speak the protocol (llama.cpp's
 * llama-server, Ollama, vLLM). Thread-safe: each call has its own curl handle.
 */
#ifndef SO_OPENAI_H
#define SO_OPENAI_H

#include <jansson.h>
#include <stdbool.h>

#define OPENAI_DEFAULT_BASE_URL "https://api.openai.com/v1"
#define OPENAI_DEFAULT_MODEL "gpt-4o-mini"
#define OPENAI_DEFAULT_TIMEOUT_SECONDS 120
#define OPENAI_URL_MAX 1024
#define OPENAI_KEY_MAX 512
#define OPENAI_MODEL_MAX 256
#define OPENAI_MESSAGE_MAX 1024

/* Read once at start-up from OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL and
 * OPENAI_TIMEOUT_SECONDS; immutable afterwards, so task threads share it freely. */
typedef struct openai_config {
    char base_url[OPENAI_URL_MAX]; /* without a trailing '/' */
    bool base_url_set;             /* OPENAI_BASE_URL was given (a local server, say) */
    char api_key[OPENAI_KEY_MAX];  /* "" = send no Authorization header */
    char model[OPENAI_MODEL_MAX];
    long timeout_seconds; /* for the whole HTTP exchange */
} openai_config;

/* Fills cfg from the environment. Returns 0, or -1 with why (e.g. a bad timeout value). */
int openai_config_from_env(openai_config *cfg, char *why, size_t why_len);

/* False when neither a key nor an endpoint of one's own is configured: every call to the
 * public API would then fail with 401, so the task fails at once and says what to set. */
bool openai_config_usable(const openai_config *cfg);

#define OPENAI_NOT_CONFIGURED_MESSAGE                                                              \
    "set OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"

typedef struct openai_request {
    const char *system_prompt;
    const char *user_prompt;
    const char *schema_name; /* [a-zA-Z0-9_-], at most 64 characters */
    json_t *schema;          /* the root must be an object schema */
    bool strict;
    /* Polled during the transfer; returning true aborts it (the run was cancelled). */
    bool (*should_stop)(void *arg);
    void *stop_arg;
} openai_request;

typedef enum openai_outcome {
    OPENAI_OK,        /* content holds the model's JSON text */
    OPENAI_RETRYABLE, /* a later attempt may succeed */
    OPENAI_FATAL,     /* the request itself is wrong or refused; retrying cannot help */
    OPENAI_STOPPED,   /* should_stop asked to abort */
} openai_outcome;

typedef struct openai_answer {
    openai_outcome outcome;
    long http_status;                 /* the endpoint's status, 0 if it never answered */
    char *content;                    /* malloc'd; OPENAI_OK only */
    char message[OPENAI_MESSAGE_MAX]; /* why, when not OPENAI_OK */
} openai_answer;

/* Makes the call. Never fails silently: *out always says what happened. */
void openai_chat(const openai_config *cfg, const openai_request *req, openai_answer *out);

void openai_answer_clear(openai_answer *a);

#endif
