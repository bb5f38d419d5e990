/* SPDX-License-Identifier: MIT */
/*
 * test_openapi.c — the API's OpenAPI document (docs/openapi.json, as compiled into the server:
 * openapi_document.h) against the code that serves the API, mechanically:
 *   - every route of router.c's table is an operation of the document, and every operation a
 *     route (method and path pattern), and the public ones are the ones without security;
 *   - every field the request validators accept (the exported field tables of submission.c,
 *     worker_request.c and the handlers) is a property of the document's request schema and
 *     vice versa, and those schemas refuse other properties (additionalProperties false);
 *   - every query parameter a handler accepts is in the document and vice versa (and the
 *     repeatable ones are arrays); an operation whose handler takes none documents none;
 *   - the limits of wire_limits.h and the validators are the document's.
 * tests/e2e/test_openapi.py checks the same against a live server, behaviourally.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/wire_limits.h"
#include "server/handlers.h"
#include "server/openapi_document.h"
#include "server/router.h"
#include "server/submission.h"
#include "server/worker_request.h"
#include "store/run_spec.h"

#define NAME_MAX_LEN 64

/* Fields and parameters the document may hold ahead of the code (a change in progress);
 * none now. */
static const char *const doc_ahead[] = {
    NULL,
};

static json_t *doc;

static int load_document(void **state)
{
    (void)state;
    json_error_t jerr;
    assert_non_null(openapi_assets[0].name);
    assert_string_equal(openapi_assets[0].name, "openapi.json");
    doc = json_loadb((const char *)openapi_assets[0].data, openapi_assets[0].size, 0, &jerr);
    if (!doc)
        fail_msg("docs/openapi.json is not JSON: line %d: %s", jerr.line, jerr.text);
    return 0;
}

static int free_document(void **state)
{
    (void)state;
    json_decref(doc);
    return 0;
}

/* node, or what its "$ref" (a local "#/..." pointer) names, followed until it is no ref. */
static json_t *deref(json_t *node)
{
    for (int hops = 0; node && hops < 16; hops++) {
        const char *ref = json_string_value(json_object_get(node, "$ref"));
        if (!ref)
            return node;
        assert_true(strncmp(ref, "#/", 2) == 0);
        json_t *at = doc;
        char seg[128];
        for (const char *p = ref + 2; at && *p;) {
            size_t n = strcspn(p, "/");
            assert_true(n < sizeof seg);
            memcpy(seg, p, n);
            seg[n] = '\0';
            at = json_object_get(at, seg);
            p += n + (p[n] == '/');
        }
        if (!at)
            fail_msg("dangling $ref %s", ref);
        node = at;
    }
    return node;
}

/* Walks the '/'-separated keys of path from node, following $refs on the way. */
static json_t *walk(json_t *node, const char *path)
{
    char seg[128];
    node = deref(node);
    for (const char *p = path; node && *p;) {
        size_t n = strcspn(p, "/");
        assert_true(n < sizeof seg);
        memcpy(seg, p, n);
        seg[n] = '\0';
        node = deref(json_object_get(node, seg));
        p += n + (p[n] == '/');
    }
    return node;
}

static json_t *operation(const char *method, const char *path)
{
    char lower[16];
    size_t i = 0;
    for (; method[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)tolower((unsigned char)method[i]);
    lower[i] = '\0';
    return json_object_get(json_object_get(json_object_get(doc, "paths"), path), lower);
}

static bool ahead_of_code(const char *what)
{
    for (size_t i = 0; doc_ahead[i]; i++)
        if (strcmp(doc_ahead[i], what) == 0)
            return true;
    return false;
}

static bool in_list(const char *const *names, const char *name)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static const char *const http_methods[] = {"get",  "put",   "post",  "delete", "options",
                                           "head", "patch", "trace", NULL};

/* --- routes ---------------------------------------------------------------------------- */

static void every_route_is_a_documented_operation(void **state)
{
    (void)state;
    assert_true(router_route_count() > 0);
    for (size_t i = 0; i < router_route_count(); i++) {
        const struct route *r = router_route_at(i);
        json_t *op = operation(r->method, r->pattern);
        if (!op)
            fail_msg("route %s %s is not in docs/openapi.json", r->method, r->pattern);
        /* Public routes are served without a key: the document says so with security []. */
        json_t *security = json_object_get(op, "security");
        bool open = json_is_array(security) && json_array_size(security) == 0;
        if (open != (r->scope == AUTH_PUBLIC))
            fail_msg("%s %s: the route is %s, the document says %s", r->method, r->pattern,
                     r->scope == AUTH_PUBLIC ? "public" : "behind a key",
                     open ? "public (security [])" : "behind a key");
    }
    assert_null(router_route_at(router_route_count()));
}

static void every_documented_operation_is_a_route(void **state)
{
    (void)state;
    const char *path;
    json_t *item;
    size_t ops = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        for (size_t m = 0; http_methods[m]; m++) {
            if (!json_object_get(item, http_methods[m]))
                continue;
            ops++;
            bool found = false;
            for (size_t i = 0; i < router_route_count() && !found; i++) {
                const struct route *r = router_route_at(i);
                found =
                    strcasecmp(r->method, http_methods[m]) == 0 && strcmp(r->pattern, path) == 0;
            }
            if (!found)
                fail_msg("docs/openapi.json has %s %s, which router.c does not serve",
                         http_methods[m], path);
        }
    }
    assert_int_equal(ops, router_route_count());
}

/* --- request bodies -------------------------------------------------------------------- */

struct body_table {
    const char *method, *path;
    const char *item; /* NULL: the body's own fields; "runs": the fields of each runs[] item,
                         or of the object "run" (a member that is an object, not an array) */
    const char *const *fields;
};

static const struct body_table bodies[] = {
    {"POST", "/api/task_runs", NULL, run_spec_fields},
    {"POST", "/api/task_runs/batch", NULL, run_spec_batch_fields},
    {"POST", "/api/task_runs/batch", "runs", run_spec_fields},
    {"POST", "/api/task_runs/bulk", NULL, bulk_fields},
    {"POST", "/api/tasks/pause", NULL, task_control_fields},
    {"POST", "/api/tasks/resume", NULL, task_control_fields},
    {"POST", "/api/limits", NULL, limit_fields},
    {"POST", "/api/webhooks", NULL, webhook_fields},
    {"POST", "/api/workers/claim", NULL, worker_claim_fields},
    {"POST", "/api/workers/heartbeat", NULL, worker_heartbeat_fields},
    {"POST", "/api/workers/heartbeat", "leases", worker_lease_fields},
    {"POST", "/api/workers/report", NULL, worker_report_fields},
    {"POST", "/api/workers/report", "reports", worker_report_item_fields},
    {"POST", "/api/workers/report", "logs", worker_log_fields},
    {"POST", "/api/session", NULL, session_login_fields},
    {"POST", "/api/schedules", NULL, schedule_fields},
    {"POST", "/api/schedules", "run", schedule_run_fields},
    {"POST", "/api/schedules/delete", NULL, schedule_control_fields},
    {"POST", "/api/schedules/pause", NULL, schedule_control_fields},
    {"POST", "/api/schedules/resume", NULL, schedule_control_fields},
};
#define N_BODIES (sizeof bodies / sizeof bodies[0])

static json_t *body_schema(const struct body_table *b)
{
    json_t *op = operation(b->method, b->path);
    assert_non_null(op);
    /* Not walk(): "application/json" is one key. */
    json_t *s = deref(json_object_get(
        json_object_get(json_object_get(json_object_get(op, "requestBody"), "content"),
                        "application/json"),
        "schema"));
    if (!s)
        fail_msg("%s %s: no application/json request body in the document", b->method, b->path);
    if (b->item) {
        char path[NAME_MAX_LEN];
        snprintf(path, sizeof path, "properties/%s/items", b->item);
        json_t *items = walk(s, path);
        if (!items) {
            snprintf(path, sizeof path, "properties/%s", b->item);
            items = walk(s, path);
        }
        s = items;
        if (!s)
            fail_msg("%s %s: no items schema for %s[]", b->method, b->path, b->item);
    }
    return s;
}

static void every_body_field_is_documented_and_back(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BODIES; i++) {
        const struct body_table *b = &bodies[i];
        json_t *s = body_schema(b);
        json_t *props = json_object_get(s, "properties");
        char where[NAME_MAX_LEN * 2];
        snprintf(where, sizeof where, "%s %s %s", b->method, b->path, b->item ? b->item : "body");
        if (!json_is_false(json_object_get(s, "additionalProperties")))
            fail_msg("%s: the server refuses unknown fields; the schema must say "
                     "additionalProperties: false",
                     where);
        for (size_t f = 0; b->fields[f]; f++)
            if (!json_object_get(props, b->fields[f]))
                fail_msg("%s: the server accepts '%s', the document does not list it", where,
                         b->fields[f]);
        const char *name;
        json_t *v;
        json_object_foreach(props, name, v)
        {
            char what[NAME_MAX_LEN * 3];
            snprintf(what, sizeof what, "%s%s %s", where, b->item ? "[]" : "", name);
            if (!in_list(b->fields, name) && !ahead_of_code(what))
                fail_msg("%s: the document lists '%s', the server refuses it", where, name);
        }
    }
}

/* An operation with a request body is in the table above (so its fields are checked), and
 * one without takes none. */
static void every_documented_body_is_checked(void **state)
{
    (void)state;
    for (size_t i = 0; i < router_route_count(); i++) {
        const struct route *r = router_route_at(i);
        bool listed = false;
        for (size_t b = 0; b < N_BODIES && !listed; b++)
            listed =
                strcmp(bodies[b].method, r->method) == 0 && strcmp(bodies[b].path, r->pattern) == 0;
        bool has_body = json_object_get(operation(r->method, r->pattern), "requestBody") != NULL;
        if (has_body != listed)
            fail_msg("%s %s: %s", r->method, r->pattern,
                     has_body ? "documents a body whose fields this test does not check"
                              : "is in the field tables but documents no body");
    }
}

/* --- query parameters ------------------------------------------------------------------ */

struct query_table {
    const char *method, *path;
    const struct query_param *params;
};

static const struct query_table queries[] = {
    {"GET", "/api/task_runs", list_runs_params},
    {"GET", "/api/task_runs/{id}/wait", wait_params},
    {"GET", "/api/task_runs/{id}/logs", logs_params},
    {"GET", "/api/workers", workers_params},
    {"GET", "/api/events", events_params},
    {"GET", "/api/stats", stats_params},
    {"GET", "/api/failures", failures_params},
};
#define N_QUERIES (sizeof queries / sizeof queries[0])

/* The documented parameter called name in "query" (operation's and path item's), or NULL;
 * *count receives how many query parameters there are. */
static json_t *doc_query_param(const char *method, const char *path, const char *name,
                               size_t *count)
{
    json_t *item = json_object_get(json_object_get(doc, "paths"), path);
    json_t *lists[2] = {json_object_get(item, "parameters"),
                        json_object_get(operation(method, path), "parameters")};
    json_t *found = NULL;
    *count = 0;
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[l], i, p)
        {
            p = deref(p);
            if (strcmp(json_string_value(json_object_get(p, "in")), "query") != 0)
                continue;
            (*count)++;
            if (name && strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
                found = p;
        }
    }
    return found;
}

static void every_query_parameter_is_documented_and_back(void **state)
{
    (void)state;
    for (size_t i = 0; i < router_route_count(); i++) {
        const struct route *r = router_route_at(i);
        const struct query_table *q = NULL;
        for (size_t t = 0; t < N_QUERIES; t++)
            if (strcmp(queries[t].method, r->method) == 0 &&
                strcmp(queries[t].path, r->pattern) == 0)
                q = &queries[t];
        size_t documented = 0, accepted = 0, ahead = 0;
        doc_query_param(r->method, r->pattern, NULL, &documented);
        for (size_t p = 0; q && q->params[p].name; p++, accepted++) {
            size_t unused;
            json_t *d = doc_query_param(r->method, r->pattern, q->params[p].name, &unused);
            if (!d)
                fail_msg("%s %s: the server accepts ?%s=, the document does not list it", r->method,
                         r->pattern, q->params[p].name);
            const char *type = json_string_value(walk(d, "schema/type"));
            bool array = type && strcmp(type, "array") == 0;
            if (array != q->params[p].repeatable)
                fail_msg("%s %s: ?%s= %s repeat, the document's schema %s an array", r->method,
                         r->pattern, q->params[p].name, q->params[p].repeatable ? "may" : "may not",
                         array ? "is" : "is not");
        }
        for (size_t a = 0; doc_ahead[a]; a++) {
            char prefix[NAME_MAX_LEN * 2];
            size_t unused;
            snprintf(prefix, sizeof prefix, "%s %s query ", r->method, r->pattern);
            if (strncmp(doc_ahead[a], prefix, strlen(prefix)) != 0)
                continue;
            const char *name = doc_ahead[a] + strlen(prefix);
            bool served = false; /* once the code has it, it is counted as accepted */
            for (size_t p = 0; q && q->params[p].name && !served; p++)
                served = strcmp(q->params[p].name, name) == 0;
            if (!served && doc_query_param(r->method, r->pattern, name, &unused))
                ahead++;
        }
        if (documented != accepted + ahead)
            fail_msg("%s %s: the document lists %zu query parameters, the server accepts %zu",
                     r->method, r->pattern, documented, accepted);
    }
}

/* --- limits ---------------------------------------------------------------------------- */

struct limit {
    const char *method, *path;
    const char *at; /* keys from the request body schema, '/'-separated */
    const char *keyword;
    long long value;
};

static const struct limit limits[] = {
    {"POST", "/api/task_runs", "properties/task", "maxLength", WIRE_TASK_NAME_MAX},
    {"POST", "/api/task_runs", "properties/idempotency_key", "maxLength", RUN_SPEC_KEY_MAX},
    {"POST", "/api/task_runs", "properties/cache_key", "maxLength", RUN_SPEC_KEY_MAX},
    {"POST", "/api/task_runs", "properties/tags", "maxItems", RUN_SPEC_TAGS_MAX},
    {"POST", "/api/task_runs", "properties/tags/items", "maxLength", RUN_SPEC_KEY_MAX},
    {"POST", "/api/task_runs", "properties/retries", "maximum", RUN_SPEC_RETRIES_MAX},
    {"POST", "/api/task_runs/batch", "properties/runs", "maxItems", WIRE_SUBMIT_BATCH_MAX},
    {"POST", "/api/task_runs/bulk", "properties/limit", "maximum", WIRE_LIST_LIMIT_MAX},
    {"POST", "/api/tasks/pause", "properties/task", "maxLength", WIRE_TASK_NAME_MAX},
    {"POST", "/api/workers/claim", "properties/worker", "maxLength", WIRE_WORKER_NAME_MAX},
    {"POST", "/api/workers/claim", "properties/tasks", "maxItems", WIRE_WORKER_TASKS_MAX},
    {"POST", "/api/workers/claim", "properties/tasks/items", "maxLength", WIRE_TASK_NAME_MAX},
    {"POST", "/api/workers/claim", "properties/limit", "maximum", WIRE_CLAIM_LIMIT_MAX},
    {"POST", "/api/workers/claim", "properties/wait_seconds", "maximum", CLAIM_WAIT_MAX_S},
    {"POST", "/api/workers/claim", "properties/request_id", "maxLength", WIRE_REQUEST_ID_MAX},
    {"POST", "/api/workers/claim", "properties/lease_seconds", "minimum", WIRE_LEASE_SECONDS_MIN},
    {"POST", "/api/workers/claim", "properties/lease_seconds", "maximum", WIRE_LEASE_SECONDS_MAX},
    {"POST", "/api/workers/heartbeat", "properties/leases", "maxItems", WIRE_HEARTBEAT_LEASES_MAX},
    {"POST", "/api/workers/heartbeat", "properties/leases/items/properties/lease_token",
     "maxLength", LEASE_TOKEN_MAX},
    {"POST", "/api/workers/report", "properties/reports", "maxItems", WIRE_REPORTS_MAX},
    {"POST", "/api/workers/report", "properties/logs", "maxItems", WIRE_REPORT_LOGS_MAX},
    {"POST", "/api/workers/report", "properties/batch_id", "maxLength", WIRE_BATCH_ID_MAX},
    {"POST", "/api/workers/report", "properties/reports/items/properties/result_ref", "maxLength",
     WIRE_RESULT_REF_MAX},
    {"POST", "/api/workers/report", "properties/reports/items/properties/message", "maxLength",
     WIRE_MESSAGE_MAX},
    {"POST", "/api/workers/report", "properties/logs/items/properties/message", "maxLength",
     WIRE_MESSAGE_MAX},
};

static void the_limits_are_the_wire_limits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const struct limit *l = &limits[i];
        struct body_table b = {l->method, l->path, NULL, NULL};
        json_t *node = walk(body_schema(&b), l->at);
        json_t *v = json_object_get(node, l->keyword);
        if (!json_is_number(v) || json_number_value(v) != (double)l->value)
            fail_msg("%s %s %s: %s should be %lld (the server's limit)", l->method, l->path, l->at,
                     l->keyword, l->value);
    }
    /* Query limits: the listings' page sizes. */
    static const struct {
        const char *path, *name;
        long long max;
    } pages[] = {{"/api/task_runs", "limit", WIRE_LIST_LIMIT_MAX},
                 {"/api/workers", "limit", WIRE_LIST_LIMIT_MAX},
                 {"/api/failures", "limit", WIRE_LIST_LIMIT_MAX},
                 {"/api/task_runs/{id}/logs", "limit", WIRE_LOGS_LIMIT_MAX}};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        size_t unused;
        json_t *p = doc_query_param("GET", pages[i].path, pages[i].name, &unused);
        assert_non_null(p);
        json_t *v = walk(p, "schema/maximum");
        if (!json_is_integer(v) || json_integer_value(v) != pages[i].max)
            fail_msg("GET %s ?%s= maximum should be %lld", pages[i].path, pages[i].name,
                     pages[i].max);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_is_a_documented_operation),
        cmocka_unit_test(every_documented_operation_is_a_route),
        cmocka_unit_test(every_body_field_is_documented_and_back),
        cmocka_unit_test(every_documented_body_is_checked),
        cmocka_unit_test(every_query_parameter_is_documented_and_back),
        cmocka_unit_test(the_limits_are_the_wire_limits),
    };
    return cmocka_run_group_tests(tests, load_document, free_document);
}
