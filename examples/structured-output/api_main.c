/* SPDX-License-Identifier: MIT */
/*
 * api_main.c — structured-output-api: the web API (the seed's `uvicorn src.foo.api:app
 * --host 0.0.0.0 --port 8000`). Parses flags and environment, starts libmicrohttpd with a
 * thread per connection, logs `msg="listening" host=H port=P` (the real port when asked for
 * port 0), and serves until SIGINT/SIGTERM, then finishes in-flight requests and exits 0.
 *
 *   structured-output-api [--host HOST] [--port PORT] [--errand-api-url URL]
 *
 * Settings, each a flag over an environment variable over a default:
 *   --host            ERRAND_EXAMPLE_API_HOST   0.0.0.0
 *   --port            ERRAND_EXAMPLE_API_PORT   8000 (0 = any free port)
 *   --errand-api-url  ERRAND_API_URL            http://127.0.0.1:4200/api (liberrand's)
 * and ERRAND_API_KEY, read by liberrand.
 */
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api_routes.h"
#include "applog.h"

#define DEFAULT_HOST "0.0.0.0"
#define DEFAULT_PORT "8000"
#define DEFAULT_ERRAND_API_URL "http://127.0.0.1:4200/api"
#define MAX_PORT 65535
#define CONNECTION_LIMIT 512
#define CONNECTION_TIMEOUT_SECONDS 60
#define EXIT_USAGE 2
#define MHD_LOG_MAX 512

static const char usage[] =
    "usage: structured-output-api [--host HOST] [--port PORT] [--errand-api-url URL]\n"
    "Serves the structured-output web API and page.\n"
    "  --host HOST            address to listen on (env ERRAND_EXAMPLE_API_HOST, "
    "default " DEFAULT_HOST ")\n"
    "  --port PORT            port, 0 = any free one (env ERRAND_EXAMPLE_API_PORT, "
    "default " DEFAULT_PORT ")\n"
    "  --errand-api-url URL   the errand server (env ERRAND_API_URL, "
    "default " DEFAULT_ERRAND_API_URL ")\n";

typedef struct api_args {
    const char *host;
    const char *port;
    const char *errand_url; /* NULL = liberrand reads ERRAND_API_URL */
} api_args;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static int parse_args(int argc, char **argv, api_args *a)
{
    a->host = env_or("ERRAND_EXAMPLE_API_HOST", DEFAULT_HOST);
    a->port = env_or("ERRAND_EXAMPLE_API_PORT", DEFAULT_PORT);
    a->errand_url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        const char **slot = strcmp(arg, "--host") == 0             ? &a->host
                            : strcmp(arg, "--port") == 0           ? &a->port
                            : strcmp(arg, "--errand-api-url") == 0 ? &a->errand_url
                                                                   : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "structured-output-api: unknown or incomplete option '%s'\n%s", arg,
                    usage);
            return -1;
        }
        *slot = argv[++i];
    }
    return 0;
}

static int parse_port(const char *text, unsigned short *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < 0 || v > MAX_PORT) {
        applog_error("bad port",
                     "port=\"%s\" error=\"the port must be a number from 0 to %d "
                     "(--port or ERRAND_EXAMPLE_API_PORT)\"",
                     text, MAX_PORT);
        return -1;
    }
    *out = (unsigned short)v;
    return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[MHD_LOG_MAX];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    applog_warn("libmicrohttpd", "error=\"%s\"", text);
}

static struct MHD_Daemon *start(api_ctx *ctx, const api_args *a, unsigned short port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", port);
    int gai = getaddrinfo(a->host, port_text, &hints, &ai);
    if (gai != 0) {
        applog_error("cannot resolve the listen address", "host=%s error=\"%s\"", a->host,
                     gai_strerror(gai));
        return NULL;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, port, NULL, NULL, api_handle, ctx,
        /* the logger first, so that even option errors go through it */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, api_request_done, ctx, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)CONNECTION_TIMEOUT_SECONDS, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        applog_error("cannot listen",
                     "host=%s port=%u error=\"the address is in use or not "
                     "available here\"",
                     a->host, port);
    return d;
}

int main(int argc, char **argv)
{
    api_args args;
    unsigned short port;
    if (parse_args(argc, argv, &args) != 0 || parse_port(args.port, &port) != 0)
        return EXIT_USAGE;

    static api_ctx ctx;
    int rc = so_task_init(&ctx.task, NULL, NULL);
    if (rc != ERRAND_OK) {
        applog_error("bad task definition", "error=\"%s\"", errand_strerror(rc));
        return EXIT_FAILURE;
    }
    ctx.client_opt.api_url = args.errand_url;
    ctx.client_opt.timeout_ms = API_ERRAND_TIMEOUT_MS;
    ctx.errand_url =
        args.errand_url ? args.errand_url : env_or("ERRAND_API_URL", DEFAULT_ERRAND_API_URL);

    /* Block the stop signals before any thread starts, so only sigwait() below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* liberrand's clients use libcurl; its global set-up must happen before any thread. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        applog_error("could not initialise libcurl", NULL);
        return EXIT_FAILURE;
    }
    struct MHD_Daemon *d = start(&ctx, &args, port);
    if (!d) {
        curl_global_cleanup();
        return EXIT_FAILURE;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    applog_info("listening", "host=%s port=%u errand_api_url=%s task=%s", args.host,
                info ? info->port : port, ctx.errand_url, SO_TASK_NAME);

    int sig = 0;
    sigwait(&stop, &sig);
    applog_info("stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    MHD_stop_daemon(d);
    curl_global_cleanup();
    applog_info("stopped", NULL);
    return 0;
}
