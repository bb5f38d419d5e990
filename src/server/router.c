/* SPDX-License-Identifier: MIT */
/*
 * router.c — the route table of docs/api.md and its matcher. The table is small, so matching
 * is a linear scan comparing segment by segment; literal routes are listed before {id}
 * routes so "/api/task_runs/batch" is never read as an id.
 */
#include "server/router.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

#define ALLOWED_TEXT_MAX 64 /* "GET, POST" ... */
#define ID_SEGMENT "{id}"
/* One path segment naming a file (handlers_ui.c looks it up among the dashboard's). */
#define FILE_SEGMENT "{file}"

static const struct route routes[] = {
    {"POST", "/api/task_runs", handle_submit, AUTH_SUBMIT, true},
    {"GET", "/api/task_runs", handle_list_runs, AUTH_READ, false},
    {"POST", "/api/task_runs/batch", handle_submit_batch, AUTH_SUBMIT, false},
    {"POST", "/api/task_runs/bulk", handle_bulk, AUTH_SUBMIT, false},
    {"GET", "/api/task_runs/{id}", handle_get_run, AUTH_READ, false},
    {"GET", "/api/task_runs/{id}/wait", handle_wait_run, AUTH_READ, false},
    {"GET", "/api/task_runs/{id}/states", handle_run_states, AUTH_READ, false},
    {"GET", "/api/task_runs/{id}/logs", handle_run_logs, AUTH_READ, false},
    {"GET", "/api/task_runs/{id}/result", handle_run_result, AUTH_READ, false},
    {"POST", "/api/task_runs/{id}/cancel", handle_cancel_run, AUTH_SUBMIT, false},
    {"POST", "/api/task_runs/{id}/retry", handle_retry_run, AUTH_SUBMIT, false},
    {"GET", "/api/workers", handle_list_workers, AUTH_READ, false},
    {"GET", "/api/events", handle_events, AUTH_READ, false},
    {"GET", "/api/stats", handle_stats, AUTH_READ, false},
    {"GET", "/api/failures", handle_failures, AUTH_READ, false},
    {"POST", "/api/tasks/pause", handle_task_pause, AUTH_SUBMIT, false},
    {"POST", "/api/tasks/resume", handle_task_resume, AUTH_SUBMIT, false},
    {"GET", "/api/limits", handle_list_limits, AUTH_READ, false},
    {"POST", "/api/limits", handle_set_limit, AUTH_SUBMIT, false},
    {"GET", "/api/webhooks", handle_list_webhooks, AUTH_READ, false},
    {"POST", "/api/webhooks", handle_set_webhook, AUTH_SUBMIT, false},
    {"POST", "/api/schedules", handle_schedule_put, AUTH_SUBMIT, false},
    {"GET", "/api/schedules", handle_schedule_list, AUTH_READ, false},
    {"POST", "/api/schedules/delete", handle_schedule_delete, AUTH_SUBMIT, false},
    {"POST", "/api/schedules/pause", handle_schedule_pause, AUTH_SUBMIT, false},
    {"POST", "/api/schedules/resume", handle_schedule_resume, AUTH_SUBMIT, false},
    {"POST", "/api/workers/claim", handle_claim, AUTH_WORK, false},
    {"POST", "/api/workers/heartbeat", handle_heartbeat, AUTH_WORK, false},
    {"POST", "/api/workers/report", handle_report, AUTH_WORK, false},
    {"GET", "/api/health", handle_health, AUTH_PUBLIC, false},
    {"GET", "/api/health/ready", handle_ready, AUTH_PUBLIC, false},
    {"GET", "/metrics", handle_metrics, AUTH_READ, false},
    {"GET", "/api/openapi.json", handle_openapi, AUTH_PUBLIC, false},
    {"GET", "/api/session", handle_session_get, AUTH_PUBLIC, false},
    {"POST", "/api/session", handle_session_login, AUTH_PUBLIC, false},
    {"DELETE", "/api/session", handle_session_logout, AUTH_PUBLIC, false},
    /* The dashboard (src/server/ui/): its page, and its files by name (404 for a name that
       is not one). */
    {"GET", "/", handle_ui, AUTH_PUBLIC, false},
    {"GET", "/ui/{file}", handle_ui, AUTH_PUBLIC, false},
};

#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

size_t router_route_count(void)
{
    return ROUTE_COUNT;
}

const struct route *router_route_at(size_t i)
{
    return i < ROUTE_COUNT ? &routes[i] : NULL;
}

/* Compares path with pattern segment by segment; on a match, the {id} segment (if any) is
 * copied to id (truncated to UUID_STR_LEN - 1, which then fails uuid_is_valid anyway) and
 * *id_len receives its full length. */
static bool path_matches(const char *pattern, const char *path, char id[UUID_STR_LEN],
                         size_t *id_len)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++, s++;
        size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
        if (plen == strlen(FILE_SEGMENT) && strncmp(p, FILE_SEGMENT, plen) == 0) {
            if (slen == 0)
                return false;
        } else if (plen == strlen(ID_SEGMENT) && strncmp(p, ID_SEGMENT, plen) == 0) {
            if (slen == 0)
                return false;
            size_t n = slen < UUID_STR_LEN - 1 ? slen : UUID_STR_LEN - 1;
            memcpy(id, s, n);
            id[n] = '\0';
            *id_len = slen;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            return false;
        }
        p += plen, s += slen;
    }
    return *p == '\0' && *s == '\0';
}

size_t router_route_index(const struct route *r)
{
    return (size_t)(r - routes);
}

bool router_is_public(const char *method, const char *path)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        char id[UUID_STR_LEN];
        size_t id_len = 0;
        if (routes[i].scope == AUTH_PUBLIC && strcmp(routes[i].method, method) == 0 &&
            path_matches(routes[i].pattern, path, id, &id_len))
            return true;
    }
    return false;
}

int router_match(const char *method, const char *path, const struct route **out,
                 char id_out[UUID_STR_LEN], errand_error *err)
{
    char allowed[ALLOWED_TEXT_MAX] = "";
    *out = NULL;
    id_out[0] = '\0';
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        char id[UUID_STR_LEN] = "";
        size_t id_len = 0;
        if (!path_matches(routes[i].pattern, path, id, &id_len))
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            size_t used = strlen(allowed);
            snprintf(allowed + used, sizeof allowed - used, "%s%s", used ? ", " : "",
                     routes[i].method);
            continue;
        }
        if (strstr(routes[i].pattern, ID_SEGMENT) &&
            (id_len != UUID_STR_LEN - 1 || !uuid_is_valid(id)))
            return error_set(err, ERR_INVALID_PARAMETER, "id",
                             "'id' must be a task-run UUID such as "
                             "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21, got '%.40s'",
                             id);
        *out = &routes[i];
        memcpy(id_out, id, UUID_STR_LEN);
        return 0;
    }
    if (allowed[0])
        return error_set(err, ERR_METHOD, NULL, "%s is not allowed on %s (allowed: %s)", method,
                         path, allowed);
    return error_set(err, ERRAND_ENOTFOUND, NULL, "no endpoint %s %s; see docs/api.md", method,
                     path);
}
