/* SPDX-License-Identifier: MIT */
/*
 * result_store.c — persisting results (see result_store.h). Local writes go through disk.h,
 * S3 writes through core/s3.h.
 */
#include "worker/result_store.h"

#include "core/error.h"
#include "core/mem.h"
#include "core/uuid.h"
#include "worker/disk.h"

bool result_should_persist(int task_choice, int run_choice, int def_choice, bool by_default)
{
    if (task_choice >= 0)
        return task_choice != 0;
    if (run_choice >= 0)
        return run_choice != 0;
    if (def_choice >= 0)
        return def_choice != 0;
    return by_default;
}

/* The S3 side of result_store_write. */
static int write_s3(const struct s3_location *s3, const char *run_id, const char *json, size_t len,
                    char **ref, errand_error *err)
{
    char *key = s3_result_key(s3, run_id);
    int rc = key ? s3_put(s3, key, json, len, err)
                 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (rc == 0 && !(*ref = s3_ref(s3, key)))
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    mem_free(key);
    return rc;
}

int result_store_write(const char *dir, const struct s3_location *s3, const char *run_id,
                       const char *json, size_t len, char **ref, errand_error *err)
{
    *ref = NULL;
    /* The id comes from the server; an object or file is named after it only if it is a
       plain UUID. */
    if (!uuid_is_valid(run_id))
        return error_set(err, ERRAND_EINVAL, "id", "task-run id '%s' is not a UUID", run_id);
    if (s3)
        return write_s3(s3, run_id, json, len, ref, err);
    if (!dir || dir[0] != '/')
        return error_set(err, ERRAND_EINVAL, "local_storage_path",
                         "the result storage path must be absolute, got '%s'", dir ? dir : "");
    char *path = mem_printf("%s/%s" RESULT_FILE_SUFFIX, dir, run_id);
    if (!path)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = disk_write_atomic(path, json, len, err);
    if (rc == ERRAND_EIO) {
        /* Perhaps the directory does not exist yet: create it and try once more. */
        errand_error mk;
        if (disk_mkdirs(dir, &mk) == 0)
            rc = disk_write_atomic(path, json, len, err);
    }
    if (!rc) {
        *ref = mem_printf(RESULT_REF_SCHEME "%s", path);
        if (!*ref)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    mem_free(path);
    return rc;
}
