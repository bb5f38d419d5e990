/* SPDX-License-Identifier: MIT */
/*
 * disk.h — the one seam through which the worker writes to disk (persisted results), so
 * tests can make writes fail as a full disk would (disk_fail_after), the way mem.h does for
 * allocations.
 */
#ifndef ERRAND_WORKER_DISK_H
#define ERRAND_WORKER_DISK_H

#include <stddef.h>

#include "errand/errand.h"

/* Writes data to path atomically: a temporary file in the same directory, fsync, rename over
 * path, fsync of the directory. Readers see the old file or the whole new one. */
int disk_write_atomic(const char *path, const char *data, size_t len, errand_error *err);

/* Creates dir and its missing parents (mode 0755). */
int disk_mkdirs(const char *dir, errand_error *err);

/* Test hook: after n more successful disk_write_atomic calls, every call fails with ENOSPC
 * (n < 0: never). */
void disk_fail_after(long n);

#endif
