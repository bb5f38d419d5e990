/*
 * result.c — errand_result(): the result of a COMPLETED run, from the inline "result" or
 * from the file its "result_ref" names (local:///abs/path.json, or a plain path). When that
 * path does not exist here but a file of the same name does in this client's local storage
 * path, that one is read (worker and client may mount the same storage at different paths).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "client/run.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/result_ref.h"

/* A persisted result larger than this is refused rather than read into memory. */
#define RESULT_FILE_MAX_BYTES (512L * 1024 * 1024)

/* Reads a whole file into *out (NUL-terminated). Returns 0 or -errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (st.st_size > RESULT_FILE_MAX_BYTES) {
        close(fd);
        return -EFBIG;
    }
    /* Room for one byte more than fstat said, to notice a file that grew meanwhile. */
    size_t cap = (size_t)st.st_size + 2, n = 0;
    char *buf = mem_alloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            mem_free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n == cap - 1) {
        close(fd);
        mem_free(buf);
        return -EFBIG;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int read_ref(errand_client *c, const char *run_id, const char *ref, char **result_json,
                    errand_error *err)
{
    const char *path = ref;
    if (strncmp(ref, RESULT_REF_SCHEME, strlen(RESULT_REF_SCHEME)) == 0)
        path = ref + strlen(RESULT_REF_SCHEME);
    else if (strstr(ref, "://"))
        return error_set(err, ERRAND_EINVAL, "result_ref",
                         "task run %s has result_ref '%s' whose storage this client cannot "
                         "read (only local:// is supported)",
                         run_id, ref);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);
    if (rc == -ENOENT && c->local_storage_path[0]) {
        const char *base = strrchr(path, '/');
        char *alt = mem_printf("%s/%s", c->local_storage_path, base ? base + 1 : path);
        if (!alt)
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        if (read_file(alt, &text, &len) == 0)
            rc = 0;
        mem_free(alt);
    }
    if (rc == -ENOMEM)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory reading result %s", path);
    if (rc == -EFBIG)
        return error_set(err, ERRAND_ETOOBIG, "result_ref",
                         "the result file %s of task run %s is larger than %ld bytes", path, run_id,
                         RESULT_FILE_MAX_BYTES);
    if (rc)
        return error_set(err, ERRAND_EIO, "result_ref",
                         "cannot read the result of task run %s from %s: %s (set "
                         "ERRAND_LOCAL_STORAGE_PATH to where the worker's result storage is "
                         "mounted)",
                         run_id, path, strerror(-rc));
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    mem_free(text);
    if (!v)
        return error_set(err, ERRAND_EIO, "result_ref",
                         "the result file %s of task run %s is not valid JSON: %s", path, run_id,
                         jerr.text);
    *result_json = json_compact(v);
    json_decref(v);
    if (!*result_json)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

int errand_result(errand_client *c, const errand_run *r, char **result_json, errand_error *err)
{
    if (result_json)
        *result_json = NULL;
    error_clear(err);
    if (!c || !r || !result_json)
        return error_set(err, ERRAND_EINVAL,
                         !c   ? "client"
                         : !r ? "run"
                              : "result_json",
                         "errand_result needs a client, a run and an out pointer");
    switch (r->state) {
    case ERRAND_STATE_COMPLETED:
        break;
    case ERRAND_STATE_FAILED:
    case ERRAND_STATE_CRASHED:
        return error_set(err, ERRAND_EFAILED, NULL, "%s",
                         r->message[0] ? r->message : "the task run failed");
    case ERRAND_STATE_CANCELLED:
        return error_set(err, ERRAND_ECANCELLED, NULL, "task run %s was cancelled", r->id);
    default:
        return error_set(err, ERRAND_ECONFLICT, NULL, "task run %s has no result yet: it is %s",
                         r->id, r->state_name);
    }
    json_t *inline_result = json_object_get(r->root, "result");
    const char *ref = json_string_value(json_object_get(r->root, "result_ref"));
    if (inline_result && !(json_is_null(inline_result) && ref && *ref)) {
        *result_json = json_compact(inline_result);
        return *result_json ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    if (ref && *ref)
        return read_ref(c, r->id, ref, result_json, err);
    *result_json = mem_strdup("null");
    return *result_json ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}
