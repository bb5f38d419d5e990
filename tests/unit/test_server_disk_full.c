/* SPDX-License-Identifier: MIT */
/*
 * test_server_disk_full.c — a server whose disk is full, over real HTTP (live_server.h): a
 * submission answers 507 insufficient_storage and stores nothing; GET /api/health/ready
 * fails the same way while GET /api/health (liveness) still answers; once there is room
 * again both work, without a restart.
 *
 * The full disk is an SQLite VFS shim in this test: the unix VFS with every write failing
 * with SQLITE_FULL while `disk_full` is set, which is what the unix VFS itself returns when
 * write() fails with ENOSPC.
 */
#include "live_server.h"

#include "client/http.h"

#define MAX_METHOD_TABLES 8
#define TIMEOUT_MS 10000

static atomic_bool disk_full;
static sqlite3_vfs *real_vfs;
static sqlite3_vfs full_vfs;

/* The unix VFS hands out a few io_methods tables; each gets a copy whose xWrite may fail. */
static struct {
    const sqlite3_io_methods *real;
    sqlite3_io_methods patched;
} tables[MAX_METHOD_TABLES];
static size_t n_tables;
static pthread_mutex_t tables_mu = PTHREAD_MUTEX_INITIALIZER;

static const sqlite3_io_methods *real_methods_of(const sqlite3_io_methods *patched)
{
    for (size_t i = 0; i < n_tables; i++)
        if (&tables[i].patched == patched)
            return tables[i].real;
    return NULL;
}

static int full_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (atomic_load(&disk_full))
        return SQLITE_FULL;
    return real_methods_of(f->pMethods)->xWrite(f, buf, n, off);
}

static const sqlite3_io_methods *patched_of(const sqlite3_io_methods *real)
{
    pthread_mutex_lock(&tables_mu);
    const sqlite3_io_methods *out = NULL;
    for (size_t i = 0; i < n_tables && !out; i++)
        if (tables[i].real == real)
            out = &tables[i].patched;
    if (!out && n_tables < MAX_METHOD_TABLES) {
        tables[n_tables].real = real;
        tables[n_tables].patched = *real;
        tables[n_tables].patched.xWrite = full_write;
        out = &tables[n_tables++].patched;
    }
    pthread_mutex_unlock(&tables_mu);
    assert_non_null(out);
    return out;
}

static int full_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    int rc = real_vfs->xOpen(real_vfs, name, f, flags, out);
    if (rc == SQLITE_OK && f->pMethods)
        f->pMethods = patched_of(f->pMethods);
    return rc;
}

static void install_full_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(real_vfs);
    full_vfs = *real_vfs;
    full_vfs.zName = "errand-disk-full";
    full_vfs.pAppData = real_vfs->pAppData;
    full_vfs.xOpen = full_open;
    assert_int_equal(sqlite3_vfs_register(&full_vfs, 1), SQLITE_OK);
}

/* Performs a request; returns the status, the body into body (owned) when asked. */
static long request(http_conn *c, const char *method, const char *path, const char *body,
                    char **body_out)
{
    struct http_response resp = {0};
    errand_error err;
    if (http_perform(c, method, path, body, 0, -1, &resp, &err) != 0)
        fail_msg("%s %s: %s", method, path, err.message);
    long status = resp.status;
    if (body_out)
        *body_out = strdup(resp.body);
    http_response_clear(&resp);
    return status;
}

static void expect_error_code(const char *body, const char *code)
{
    json_t *v = json_loads(body, 0, NULL);
    const char *got = json_string_value(json_object_get(json_object_get(v, "error"), "code"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("want error code %s, got: %s", code, body);
    json_decref(v);
}

static void a_full_disk_answers_507_and_recovers(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    http_conn *c = NULL;
    errand_error err;
    assert_int_equal(http_conn_new(ls.api_url, "", TIMEOUT_MS, &c, &err), 0);
    const char *submit_body = "{\"task\": \"t\"}";
    assert_int_equal(request(c, "GET", "/health/ready", NULL, NULL), 200);
    assert_int_equal(request(c, "POST", "/task_runs", submit_body, NULL), 201);

    atomic_store(&disk_full, true);
    char *body = NULL;
    assert_int_equal(request(c, "POST", "/task_runs", submit_body, &body), 507);
    expect_error_code(body, "insufficient_storage");
    free(body);
    assert_int_equal(request(c, "GET", "/health/ready", NULL, &body), 507);
    expect_error_code(body, "insufficient_storage");
    free(body);
    assert_int_equal(request(c, "GET", "/health", NULL, NULL), 200); /* alive all the same */

    atomic_store(&disk_full, false);
    assert_int_equal(request(c, "GET", "/health/ready", NULL, NULL), 200);
    assert_int_equal(request(c, "POST", "/task_runs", submit_body, NULL), 201);
    assert_int_equal(total_runs_counted(fx), 2); /* the refused one was not stored */

    http_conn_free(c);
    live_stop(&ls);
}

int main(void)
{
    mem_install_json();
    install_full_vfs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_full_disk_answers_507_and_recovers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
