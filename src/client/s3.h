/* SPDX-License-Identifier: MIT */
/*
 * s3.h — persisted results in an S3-compatible object store (AWS S3, MinIO, Ceph, R2,
 * s3rver...): where they go (ERRAND_RESULT_STORAGE=s3://bucket/prefix, the endpoint, the
 * region and the credentials) and the calls errand makes — put an object, get one into a
 * file, delete one, check that the bucket answers.
 *
 * Requests are signed with AWS Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4); the
 * payload's SHA-256 goes in x-amz-content-sha256, which S3 requires and libcurl signs as
 * given. URLs are path-style, <endpoint>/<bucket>/<key>, which every S3 implementation
 * accepts whatever the bucket's name. A failed call says what the store answered: "s3://b/k:
 * HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you provided does not exist ...".
 */
#ifndef ERRAND_CLIENT_S3_H
#define ERRAND_CLIENT_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "errand/errand.h"

#define S3_URL_SCHEME "s3://"
#define S3_DEFAULT_REGION "us-east-1"

struct s3_location {
    char *endpoint; /* http(s)://host[:port][/path], no trailing slash */
    char *region;
    char *bucket;
    char *prefix; /* "" or "a/b": no leading or trailing slash */
    char *access_key_id;
    char *secret_access_key;
};

/* True when url names an S3 location (starts with s3://). */
bool s3_is_url(const char *url);

/* Parses url ("s3://bucket" or "s3://bucket/prefix") and takes the endpoint (NULL or "" =
 * AWS's for the region), the region (NULL or "" = us-east-1) and the credentials.
 * ERRAND_EINVAL naming field ("result_storage", "s3_endpoint_url", ...) when one is
 * malformed or the credentials are missing. */
int s3_location_init(struct s3_location *loc, const char *url, const char *endpoint,
                     const char *region, const char *access_key_id, const char *secret_access_key,
                     errand_error *err);
void s3_location_clear(struct s3_location *loc);

/* The key of a run's result, "<prefix>/<run id>.json" (mem_free). */
char *s3_result_key(const struct s3_location *loc, const char *run_id);
/* The reference to an object of this location: "s3://<bucket>/<key>" (mem_free). */
char *s3_ref(const struct s3_location *loc, const char *key);

/* Stores len bytes of data as key. */
int s3_put(const struct s3_location *loc, const char *key, const void *data, size_t len,
           errand_error *err);
/* Writes the object key into fd (from its current offset); *size its length. ERRAND_ENOTFOUND
 * when there is no such object, ERRAND_ETOOBIG past max bytes. */
int s3_get(const struct s3_location *loc, const char *key, int fd, off_t max, off_t *size,
           errand_error *err);
/* Deletes key (an object already gone is fine). */
int s3_delete(const struct s3_location *loc, const char *key, errand_error *err);
/* Whether the bucket exists and the credentials are accepted (HEAD of the bucket). */
int s3_check_bucket(const struct s3_location *loc, errand_error *err);

#endif
