/* SPDX-License-Identifier: MIT */
/*
 * cmd_health.c — `errand health`: is the errand server ready (GET /health/ready through
 * liberrand's client, so --api-url, --api-key and the failover over a list of servers work as
 * in every other command), or does any HTTP URL answer 2xx (--url, through libcurl, for the
 * services around errand). Container health checks and ops scripts call it, so it is bounded
 * in time and its exit status says exactly one thing: 0 healthy, 1 not, 2 a bad command line.
 *
 * The time bound: each request carries the timeout, which covers a server that accepts the
 * connection and never answers. But the client may try several servers of a list in turn, and
 * a name lookup does not always honour curl's timeout, so a watchdog timer (SIGALRM) ends the
 * process a moment after the timeout, whatever it is waiting for.
 */
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "commands.h"
#include "connect.h"
#include "output.h"

#define HEALTH_TIMEOUT_DEFAULT_S 5.0
#define HEALTH_TIMEOUT_MAX_S 3600.0
/* The watchdog fires this long after the timeout: the request's own timeout, which ends it
 * with a precise message and a clean exit, comes first whenever curl can keep to it. */
#define HEALTH_WATCHDOG_GRACE_MS 500
#define MS_PER_S 1000
#define US_PER_MS 1000
#define HEALTH_READY_PATH "/health/ready"
/* What --url --json keeps of an answer to print it; a health answer is a few bytes. */
#define HEALTH_URL_BODY_MAX_BYTES (1024 * 1024)
#define HEALTH_TARGET_MAX 1024
#define HEALTH_NAME_MAX 64 /* "errand health" */
#define HTTP_2XX_MIN 200
#define HTTP_2XX_END 300

/* The watchdog's message, written before the timer is armed and only read by its handler. */
static char watchdog_message[HEALTH_TARGET_MAX + 128];
static size_t watchdog_len;

static void on_watchdog(int sig)
{
    (void)sig;
    ssize_t ignored = write(STDERR_FILENO, watchdog_message, watchdog_len);
    (void)ignored;
    _exit(CLI_EXIT_FAILURE);
}

/* Ends the process, saying so, if the check is still going timeout_ms (plus the grace) from
 * now. Should the timer not be set, curl's timeout still bounds each request. */
static void watchdog_arm(const char *target, long timeout_ms, double timeout_s)
{
    snprintf(watchdog_message, sizeof watchdog_message,
             "errand health: %s: no answer within %g s\n", target, timeout_s);
    watchdog_len = strlen(watchdog_message);
    struct sigaction sa = {0};
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        return;
    long ms = timeout_ms + HEALTH_WATCHDOG_GRACE_MS;
    struct itimerval t = {0};
    t.it_value.tv_sec = ms / MS_PER_S;
    t.it_value.tv_usec = (ms % MS_PER_S) * US_PER_MS;
    setitimer(ITIMER_REAL, &t, NULL);
}

static void watchdog_disarm(void)
{
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
}

static bool is_http_url(const char *url)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(url, schemes[i], n) == 0 && url[n] != '\0')
            return true;
    }
    return false;
}

/* What the errand-server check asks, for messages: "http://h:4200/api/health/ready", or for
 * a list of servers "/health/ready at http://a/api,http://b/api". */
static void ready_target(const char *api_url, char *out, size_t size)
{
    size_t len = strlen(api_url);
    while (len > 0 && api_url[len - 1] == '/')
        len--;
    if (strchr(api_url, ','))
        snprintf(out, size, "%s at %.*s", HEALTH_READY_PATH, (int)len, api_url);
    else
        snprintf(out, size, "%.*s%s", (int)len, api_url, HEALTH_READY_PATH);
}

/* --- the errand server ------------------------------------------------------------------ */

/* Judges the answer of GET /health/ready: ready only on 2xx with {"status": "ready"}. */
static int judge_ready(const struct args *a, const char *api_url, const char *target, int status,
                       const char *body)
{
    char name[HEALTH_NAME_MAX];
    args_command_name(a->cmd, name, sizeof name);
    if (status < HTTP_2XX_MIN || status >= HTTP_2XX_END) {
        errand_error err = {0};
        errand_error_from_response(status, body, &err);
        fprintf(stderr, "%s: %s answered HTTP %d: %s\n", name, target, status, err.message);
        return CLI_EXIT_FAILURE;
    }
    json_error_t jerr;
    json_t *answer = json_loads(body ? body : "", 0, &jerr);
    const char *state = json_string_value(json_object_get(answer, "status"));
    if (!state || strcmp(state, "ready") != 0) {
        fprintf(stderr,
                "%s: %s answered HTTP %d without \"status\": \"ready\" (is it an errand "
                "server?)\n",
                name, target, status);
        json_decref(answer);
        return CLI_EXIT_FAILURE;
    }
    if (args_has(a, "json")) {
        out_json(answer);
    } else {
        const char *store = json_string_value(json_object_get(answer, "store"));
        printf("ready: store %s (%s)\n", store ? store : "unknown", api_url);
    }
    json_decref(answer);
    return CLI_EXIT_OK;
}

static int check_server(const struct args *a, double timeout_s, long timeout_ms)
{
    struct settings s;
    int status = args_load_settings(a, &s);
    if (status != CLI_EXIT_OK)
        return status;
    const char *api_url = settings_str(&s, SET_API_URL);
    errand_client_options opt = {0};
    opt.api_url = api_url;
    opt.api_key = settings_str(&s, SET_API_KEY);
    opt.timeout_ms = timeout_ms;
    errand_error err = {0};
    errand_client *c = NULL;
    if (errand_client_new(&opt, &c, &err) != 0)
        return out_error(a->cmd, &err); /* a bad API URL: CLI_EXIT_USAGE, as everywhere */

    char target[HEALTH_TARGET_MAX];
    ready_target(api_url, target, sizeof target);
    watchdog_arm(target, timeout_ms, timeout_s);
    int http_status = 0;
    char *body = NULL;
    int rc = errand_request(c, "GET", HEALTH_READY_PATH, NULL, &http_status, &body, &err);
    watchdog_disarm();
    if (rc != 0) {
        out_error(a->cmd, &err); /* names the server and why it could not be reached */
        status = CLI_EXIT_FAILURE;
    } else {
        status = judge_ready(a, api_url, target, http_status, body);
    }
    errand_free(body);
    errand_client_free(c);
    return status;
}

/* --- any URL ---------------------------------------------------------------------------- */

struct url_answer {
    bool keep; /* --json: the body is printed */
    char *body;
    size_t len;
    bool too_big;
};

static size_t on_url_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct url_answer *ans = userdata;
    size_t n = size * nmemb;
    if (!ans->keep)
        return n;
    if (ans->len + n + 1 > HEALTH_URL_BODY_MAX_BYTES) {
        ans->too_big = true;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(ans->body, ans->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + ans->len, data, n);
    ans->body = grown;
    ans->len += n;
    ans->body[ans->len] = '\0';
    return n;
}

static int check_url(const struct args *a, const char *url, double timeout_s, long timeout_ms)
{
    char name[HEALTH_NAME_MAX];
    args_command_name(a->cmd, name, sizeof name);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: cannot initialise libcurl\n", name);
        return CLI_EXIT_FAILURE;
    }
    int status = CLI_EXIT_FAILURE;
    struct url_answer ans = {.keep = args_has(a, "json")};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "%s: out of memory\n", name);
        goto done;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    char agent[64];
    snprintf(agent, sizeof agent, "errand-health/%s", errand_version());
    curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_url_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);

    watchdog_arm(url, timeout_ms, timeout_s);
    CURLcode rc = curl_easy_perform(e);
    watchdog_disarm();
    long http_status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http_status);
    if (ans.too_big) {
        fprintf(stderr, "%s: %s answered with more than %d bytes\n", name, url,
                HEALTH_URL_BODY_MAX_BYTES);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        fprintf(stderr, "%s: %s: no answer within %g s\n", name, url, timeout_s);
    } else if (rc != CURLE_OK) {
        fprintf(stderr, "%s: cannot reach %s: %s\n", name, url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (http_status < HTTP_2XX_MIN || http_status >= HTTP_2XX_END) {
        fprintf(stderr, "%s: %s answered HTTP %ld\n", name, url, http_status);
    } else {
        if (ans.keep)
            out_json_text(ans.body ? ans.body : "");
        else
            printf("ok: HTTP %ld (%s)\n", http_status, url);
        status = CLI_EXIT_OK;
    }
done:
    curl_easy_cleanup(e);
    free(ans.body);
    curl_global_cleanup();
    return status;
}

/* --- the command ------------------------------------------------------------------------ */

static int run_health(const struct args *a)
{
    double timeout_s = HEALTH_TIMEOUT_DEFAULT_S;
    const char *text = args_get(a, "timeout-seconds");
    if (text && (!args_parse_double(text, &timeout_s) || timeout_s <= 0 ||
                 timeout_s > HEALTH_TIMEOUT_MAX_S))
        return args_usage_error(a->cmd,
                                "--timeout-seconds must be a number of seconds above 0 and at "
                                "most %g, got '%s'",
                                HEALTH_TIMEOUT_MAX_S, text);
    long timeout_ms = (long)ceil(timeout_s * MS_PER_S);

    const char *url = args_get(a, "url");
    if (!url)
        return check_server(a, timeout_s, timeout_ms);
    if (!is_http_url(url))
        return args_usage_error(a->cmd, "--url must start with http:// or https://, got '%s'", url);
    return check_url(a, url, timeout_s, timeout_ms);
}

static const struct cli_option health_options[] = {
    {"url", "URL", false,
     "check this HTTP URL instead of the errand server: healthy when it answers 2xx"},
    {"timeout-seconds", "S", false,
     "give up after S seconds, whatever the server does (default 5)"},
    {"json", NULL, false, "print the server's answer as JSON instead of a line"},
    {NULL, NULL, false, NULL},
};

const struct cli_command cmd_health = {
    .group = NULL,
    .name = "health",
    .summary = "Check that the errand server is ready (or any URL answers)",
    .usage = "[--url URL] [--timeout-seconds S] [--json]",
    .options = health_options,
    CONNECT_SETTINGS,
    .details = "Without --url, asks the errand server at ERRAND_API_URL (--api-url; a list is\n"
               "tried as by every command) for GET /health/ready, which needs no API key, and\n"
               "prints 'ready: store sqlite (URL)'. Ready means the store takes writes.\n"
               "With --url, GETs that URL (no API key is sent; redirects are not followed).\n"
               "Exit 0 when healthy; 1 when not reachable, not 2xx, not ready or no answer\n"
               "within --timeout-seconds, with the URL and the reason on stderr. For container\n"
               "health checks and service scripts.\n"
               "\n"
               "Examples:\n"
               "  errand health\n"
               "  errand health --api-url http://10.0.0.5:4200/api --timeout-seconds 2\n"
               "  errand health --url http://127.0.0.1:8000/health",
    .run = run_health,
};
