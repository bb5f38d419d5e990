/* SPDX-License-Identifier: MIT */
/*
 * result_storage.c — result references and result files (see result_storage.h).
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
#include "core/uuid.h"

struct result_storage {
    char *dir; /* absolute, no trailing '/' */
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

void result_storage_free(result_storage *rs)
{
    if (!rs)
        return;
    mem_free(rs->dir);
    mem_free(rs);
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

int result_storage_open(const result_storage *rs, const char *ref, int *fd, off_t *size,
                        errand_error *err)
{
    *fd = -1;
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
    for (size_t i = 0; rs && i < n; i++) {
        char path[PATH_MAX];
        if (result_storage_file(rs, refs[i], path) && unlink(path) != 0 && errno != ENOENT)
            log_warn("cannot delete a result file", "path=\"%s\" error=\"%s\"", path,
                     strerror(errno));
    }
}
