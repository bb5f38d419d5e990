/* SPDX-License-Identifier: MIT */
/*
 * test_worker_result_store.c — persisted results: which choice wins (the task's own call,
 * the run's persist_result, the task definition — which has no say when left at zero — the
 * worker default), the file and its local:// reference (directory created on demand), ids
 * that are not UUIDs refused, and a full disk (disk_fail_after) failing cleanly without
 * leaving temporary files behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/choice.h"
#include "core/mem.h"
#include "worker/disk.h"
#include "worker/result_store.h"

#define RUN_ID "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"

static void the_most_specific_choice_wins(void **state)
{
    (void)state;
    assert_false(result_should_persist(-1, -1, -1, false));
    assert_true(result_should_persist(-1, -1, -1, true));
    assert_true(result_should_persist(-1, -1, 1, false));
    assert_false(result_should_persist(-1, -1, 0, true));
    assert_true(result_should_persist(-1, 1, 0, false));
    assert_false(result_should_persist(-1, 0, 1, true));
    assert_true(result_should_persist(1, 0, 0, false));
    assert_false(result_should_persist(0, 1, 1, true));
}

/* A definition's persist_result as the executor passes it: left at zero it has no say. */
static void a_definition_left_at_zero_defers_to_the_worker(void **state)
{
    (void)state;
    assert_true(result_should_persist(-1, -1, choice_tristate(ERRAND_DEFAULT), true));
    assert_false(result_should_persist(-1, -1, choice_tristate(ERRAND_DEFAULT), false));
    assert_false(result_should_persist(-1, -1, choice_tristate(ERRAND_NO), true));
    assert_true(result_should_persist(-1, -1, choice_tristate(ERRAND_YES), false));
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void result_is_written_atomically_and_referenced(void **state)
{
    (void)state;
    char base[] = "/tmp/errand-test-store-XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[128];
    snprintf(dir, sizeof dir, "%s/nested/storage", base); /* created on demand */
    char *ref = NULL;
    errand_error err;
    const char *json = "{\"answer\":42}";
    assert_int_equal(result_store_write(dir, NULL, RUN_ID, json, strlen(json), &ref, &err), 0);
    char path[192];
    snprintf(path, sizeof path, "%s/%s.json", dir, RUN_ID);
    char expected[256];
    snprintf(expected, sizeof expected, "local://%s", path);
    assert_string_equal(ref, expected);
    mem_free(ref);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[64] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, json);
    assert_int_equal(count_entries(dir), 1);

    /* a full disk: the write fails, nothing is left behind, the old file stays whole */
    disk_fail_after(0);
    assert_int_equal(result_store_write(dir, NULL, RUN_ID, "[1]", 3, &ref, &err), ERRAND_EIO);
    assert_null(ref);
    assert_non_null(strstr(err.message, "No space left on device"));
    disk_fail_after(-1);
    assert_int_equal(count_entries(dir), 1);
    f = fopen(path, "r");
    memset(buf, 0, sizeof buf);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, json);

    /* the id becomes a file name only when it is a UUID */
    assert_int_equal(result_store_write(dir, NULL, "../../etc/passwd", "1", 1, &ref, &err),
                     ERRAND_EINVAL);
    assert_string_equal(err.field, "id");
    assert_int_equal(result_store_write("relative/dir", NULL, RUN_ID, "1", 1, &ref, &err),
                     ERRAND_EINVAL);
    assert_string_equal(err.field, "local_storage_path");

    unlink(path);
    rmdir(dir);
    snprintf(path, sizeof path, "%s/nested", base);
    rmdir(path);
    rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_most_specific_choice_wins),
        cmocka_unit_test(a_definition_left_at_zero_defers_to_the_worker),
        cmocka_unit_test(result_is_written_atomically_and_referenced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
