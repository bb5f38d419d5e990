/* SPDX-License-Identifier: MIT */
/*
 * result_storage.h — the server's view of the result storage (ERRAND_LOCAL_STORAGE_PATH):
 * which references a worker may report, the one file each names, and reading it back. A
 * result reference is worker input and names a file: the server accepts only the form a
 * worker writes for the run it reports ("local://<any path>/<that run's id>.json") and
 * stores it as the file of that name in its own storage, whatever path the worker has it
 * mounted at; it resolves a stored reference by its file name only, to
 * "<storage>/<uuid>.json", a regular file opened without following symlinks (so a storage
 * moved to another path still resolves). So no reference can make the server read, serve or
 * delete any other file, and clients never open files named by a run: they read results
 * through GET /api/task_runs/{id}/result.
 */
#ifndef ERRAND_SERVER_RESULT_STORAGE_H
#define ERRAND_SERVER_RESULT_STORAGE_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "errand/errand.h"

/* A persisted result larger than this is not served. */
#define RESULT_FILE_MAX_BYTES (512L * 1024 * 1024)

typedef struct result_storage result_storage;

/* path: the storage directory (made absolute against the working directory); NULL or ""
 * = no storage (no reference is accepted). */
int result_storage_new(const char *path, result_storage **out, errand_error *err);
/* Results are in an S3 bucket instead (ERRAND_RESULT_STORAGE=s3://...): loc is moved in
 * (and zeroed). References are then "s3://<bucket>/<prefix>/<run id>.json"; reading one
 * fetches the object into an unnamed temporary file; deleting one deletes the object. */
struct s3_location;
void result_storage_use_s3(result_storage *rs, struct s3_location *loc);
/* The bucket in use, NULL for local storage. */
const struct s3_location *result_storage_s3(const result_storage *rs);
void result_storage_free(result_storage *rs);

/* Checks the reference a worker reported with the COMPLETED run run_id; *canonical (mem_free)
 * is the reference to store: "local://<storage>/<run id>.json" (or, in a bucket, exactly
 * "s3://<bucket>/<prefix>/<run id>.json"). ERRAND_EINVAL naming field otherwise. */
int result_storage_accept(const result_storage *rs, const char *run_id, const char *ref,
                          const char *field, char **canonical, errand_error *err);

/* The path of the result file a stored reference names ("<storage>/<uuid>.json") into path;
 * false when the reference names none (another form, not a run id, no storage). */
bool result_storage_file(const result_storage *rs, const char *ref, char path[PATH_MAX]);

/* Opens the result file of ref for reading: *fd and *size on success; ERRAND_ENOTFOUND when
 * the file is gone or is not a regular file, ERRAND_ETOOBIG over RESULT_FILE_MAX_BYTES. In a
 * bucket: the object, fetched into a temporary file; ERRAND_ESERVER when the store refuses
 * or fails, ERRAND_EUNAVAILABLE when it cannot be reached. */
int result_storage_open(const result_storage *rs, const char *ref, int *fd, off_t *size,
                        errand_error *err);

/* Deletes the files behind the n references (only those in this storage; a file already gone
 * is fine; other failures are logged). rs NULL deletes nothing. */
void result_storage_delete_files(const result_storage *rs, char *const *refs, size_t n);

#endif
