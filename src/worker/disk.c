/* SPDX-License-Identifier: MIT */
/*
 * disk.c — atomic file writes and directory creation (see disk.h).
 */
#include "worker/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/uuid.h"

#define DISK_NEVER_FAIL (-1L)
#define DISK_FILE_MODE 0644
#define DISK_DIR_MODE 0755
/* Random hex bytes in a temporary file's name, so concurrent writers never collide. */
#define DISK_TMP_RANDOM_BYTES 8

static atomic_long fail_budget = DISK_NEVER_FAIL;

void disk_fail_after(long n)
{
    atomic_store(&fail_budget, n < 0 ? DISK_NEVER_FAIL : n);
}

static bool disk_may_write(void)
{
    long cur = atomic_load(&fail_budget);
    for (;;) {
        if (cur < 0)
            return true;
        if (cur == 0)
            return false;
        if (atomic_compare_exchange_weak(&fail_budget, &cur, cur - 1))
            return true;
    }
}

int disk_mkdirs(const char *dir, errand_error *err)
{
    char *path = mem_strdup(dir);
    if (!path)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, DISK_DIR_MODE) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = error_set(err, ERRAND_EIO, "local_storage_path",
                               "cannot create directory %s: %s", path, strerror(e));
            mem_free(path);
            return rc;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    mem_free(path);
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static void fsync_parent(const char *path)
{
    char *dir = mem_strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else if (slash)
        dir[1] = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    mem_free(dir);
}

int disk_write_atomic(const char *path, const char *data, size_t len, errand_error *err)
{
    if (!disk_may_write())
        return error_set(err, ERRAND_EIO, NULL, "cannot write %s: %s", path, strerror(ENOSPC));
    char rnd[2 * DISK_TMP_RANDOM_BYTES + 1];
    if (token_random_hex(DISK_TMP_RANDOM_BYTES, rnd))
        snprintf(rnd, sizeof rnd, "%ld", (long)getpid());
    char *tmp = mem_printf("%s.tmp-%s", path, rnd);
    if (!tmp)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, DISK_FILE_MODE);
    if (fd < 0) {
        int e = errno;
        mem_free(tmp);
        return error_set(err, ERRAND_EIO, NULL, "cannot create %s: %s", path, strerror(e));
    }
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        mem_free(tmp);
        return error_set(err, ERRAND_EIO, NULL, "cannot write %s: %s", path, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        mem_free(tmp);
        return error_set(err, ERRAND_EIO, NULL, "cannot write %s: %s", path, strerror(e));
    }
    mem_free(tmp);
    fsync_parent(path);
    return 0;
}
