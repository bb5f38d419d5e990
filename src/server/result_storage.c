/* SPDX-License-Identifier: MIT */
/*
 * result_storage.c — result references, result files and result objects (see
 * result_storage.h).
 */
#include "server/result_storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/result_ref.h"
#include "client/s3.h"
#include "core/uuid.h"

struct result_storage {
    char *dir;             /* absolute, no trailing '/' */
    struct s3_location s3; /* set (s3.bucket) when results are in an S3 bucket */
};

int result_storage_new(const char *path, result_storage **out, errand_error *err)
{
    *out = NULL;
    result_storage *rs = mem_calloc(1, sizeof *rs);
    if (!rs)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (path && *path) {
        char cwd[PATH_MAX];
        if (path[0] == '/')
            rs->dir = mem_strdup(path);
        else if (getcwd(cwd, sizeof cwd))
            rs->dir = mem_printf("%s/%s", cwd, path);
        if (!rs->dir) {
            mem_free(rs);
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        }
        size_t len = strlen(rs->dir);
        while (len > 1 && rs->dir[len - 1] == '/')
            rs->dir[--len] = '\0';
    }
    *out = rs;
    return 0;
}

void result_storage_use_s3(result_storage *rs, struct s3_location *loc)
{
    s3_location_clear(&rs->s3);
    rs->s3 = *loc;
    memset(loc, 0, sizeof *loc);
}

const struct s3_location *result_storage_s3(const result_storage *rs)
{
    return rs && rs->s3.bucket ? &rs->s3 : NULL;
}

void result_storage_free(result_storage *rs)
{
    if (!rs)
        return;
    mem_free(rs->dir);
    s3_location_clear(&rs->s3);
    mem_free(rs);
}

/* The key of the object a reference names in this storage's bucket, "<prefix>/<uuid>.json"
 * (mem_free), or NULL when it names none: another bucket or prefix, not a run id. */
static char *s3_key_of(const result_storage *rs, const char *ref)
{
    const struct s3_location *loc = result_storage_s3(rs);
    char *base = loc ? s3_ref(loc, loc->prefix) : NULL; /* "s3://bucket/prefix" */
    size_t n = base ? strlen(base) : 0, suffix = strlen(RESULT_FILE_SUFFIX);
    char *key = NULL;
    if (base && ref && strncmp(ref, base, n) == 0 && (loc->prefix[0] ? ref[n] == '/' : true)) {
        const char *name = ref + n + (loc->prefix[0] ? 1 : 0);
        size_t len = strlen(name);
        char id[UUID_STR_LEN];
        if (len == UUID_STR_LEN - 1 + suffix &&
            strcmp(name + len - suffix, RESULT_FILE_SUFFIX) == 0) {
            memcpy(id, name, UUID_STR_LEN - 1);
            id[UUID_STR_LEN - 1] = '\0';
            if (uuid_is_valid(id))
                key = s3_result_key(loc, id);
        }
    }
    mem_free(base);
    return key;
}

/* The run id a reference's file is named after ("local://.../<uuid>.json"), lower case,
 * into id; false when the reference has another form. */
static bool ref_run_id(const char *ref, char id[UUID_STR_LEN])
{
    size_t scheme = strlen(RESULT_REF_SCHEME), suffix = strlen(RESULT_FILE_SUFFIX);
    if (!ref || strncmp(ref, RESULT_REF_SCHEME, scheme) != 0 || ref[scheme] != '/')
        return false;
    const char *slash = strrchr(ref + scheme, '/');
    const char *name = slash + 1;
    size_t len = strlen(name);
    if (len != UUID_STR_LEN - 1 + suffix || strcmp(name + len - suffix, RESULT_FILE_SUFFIX) != 0)
        return false;
    for (size_t i = 0; i < UUID_STR_LEN - 1; i++)
        id[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    id[UUID_STR_LEN - 1] = '\0';
    return uuid_is_valid(id);
}

int result_storage_accept(const result_storage *rs, const char *run_id, const char *ref,
                          const char *field, char **canonical, errand_error *err)
{
    *canonical = NULL;
    char id[UUID_STR_LEN];
    if (result_storage_s3(rs)) {
        char *key = s3_result_key(&rs->s3, run_id), *want = key ? s3_ref(&rs->s3, key) : NULL;
        int rc = 0;
        if (!want)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        else if (!ref || strcmp(ref, want) != 0)
            rc = error_set(err, ERRAND_EINVAL, field,
                           "'%s' must name this run's result object, %s, in the S3 result "
                           "storage the server shares",
                           field, want);
        mem_free(key);
        if (rc == 0)
            *canonical = want;
        else
            mem_free(want);
        return rc;
    }
    if (!rs || !rs->dir)
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s': the server has no result storage (ERRAND_LOCAL_STORAGE_PATH)",
                         field);
    if (!ref_run_id(ref, id) || strcasecmp(id, run_id) != 0)
        return error_set(err, ERRAND_EINVAL, field,
                         "'%s' must name this run's result file, local://<storage>/%s%s, in "
                         "the result storage the server shares",
                         field, run_id, RESULT_FILE_SUFFIX);
    *canonical = mem_printf("%s%s/%s%s", RESULT_REF_SCHEME, rs->dir, id, RESULT_FILE_SUFFIX);
    return *canonical ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

bool result_storage_file(const result_storage *rs, const char *ref, char path[PATH_MAX])
{
    char id[UUID_STR_LEN];
    return rs && rs->dir && ref_run_id(ref, id) &&
           snprintf(path, PATH_MAX, "%s/%s%s", rs->dir, id, RESULT_FILE_SUFFIX) < PATH_MAX;
}

/* The object of ref, fetched into an unnamed temporary file (memory stays flat whatever
 * its size; the file goes when closed). A refusal or failure of the store is the server's
 * (500, or 503 when it cannot be reached), not the client's: its words are kept. */
static int open_s3(const result_storage *rs, const char *ref, int *fd, off_t *size,
                   errand_error *err)
{
    char *key = s3_key_of(rs, ref);
    if (!key)
        return error_set(err, ERRAND_ENOTFOUND, NULL,
                         "the result reference is not an object of this server's result storage");
    const char *tmp = getenv("TMPDIR");
    int f = open(tmp && *tmp ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    int rc = f < 0 ? error_set(err, ERRAND_ESERVER, NULL,
                               "cannot make a temporary file for a result: %s", strerror(errno))
                   : s3_get(&rs->s3, key, f, RESULT_FILE_MAX_BYTES, size, err);
    if (rc == 0 && lseek(f, 0, SEEK_SET) != 0)
        rc = error_set(err, ERRAND_ESERVER, NULL, "cannot rewind a result file: %s",
                       strerror(errno));
    if (rc == ERRAND_EAUTH || rc == ERRAND_EIO)
        rc = error_set(err, ERRAND_ESERVER, NULL, "%s", err->message);
    mem_free(key);
    if (rc < 0 && f >= 0)
        close(f);
    if (rc == 0)
        *fd = f;
    return rc;
}

int result_storage_open(const result_storage *rs, const char *ref, int *fd, off_t *size,
                        errand_error *err)
{
    *fd = -1;
    if (result_storage_s3(rs))
        return open_s3(rs, ref, fd, size, err);
    char path[PATH_MAX];
    if (!result_storage_file(rs, ref, path))
        return error_set(err, ERRAND_ENOTFOUND, NULL,
                         "the result reference is not a file of this server's result storage");
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (f < 0)
        return error_set(err, ERRAND_ENOTFOUND, NULL, "the result file is gone: %s",
                         strerror(errno));
    struct stat st;
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return error_set(err, ERRAND_ENOTFOUND, NULL, "the result file is not a regular file");
    }
    if (st.st_size > RESULT_FILE_MAX_BYTES) {
        close(f);
        return error_set(err, ERRAND_ETOOBIG, NULL, "the result file is larger than %ld bytes",
                         RESULT_FILE_MAX_BYTES);
    }
    *fd = f;
    *size = st.st_size;
    return 0;
}

void result_storage_delete_files(const result_storage *rs, char *const *refs, size_t n)
{
    for (size_t i = 0; result_storage_s3(rs) && i < n; i++) {
        char *key = s3_key_of(rs, refs[i]);
        errand_error err;
        if (key && s3_delete(&rs->s3, key, &err) < 0)
            log_warn("cannot delete a result object", "error=\"%s\"", err.message);
        mem_free(key);
    }
    for (size_t i = 0; rs && !result_storage_s3(rs) && i < n; i++) {
        char path[PATH_MAX];
        if (result_storage_file(rs, refs[i], path) && unlink(path) != 0 && errno != ENOENT)
            log_warn("cannot delete a result file", "path=\"%s\" error=\"%s\"", path,
                     strerror(errno));
    }
}
