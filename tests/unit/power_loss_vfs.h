/* SPDX-License-Identifier: MIT */
/*
 * power_loss_vfs.h — a simulated disk for power-cut tests of the SQLite store
 * (test_store_sqlite_power_loss.c): an SQLite VFS shim over the unix VFS that remembers every
 * change not yet synced, so that a test can cut the power and find on the disk only what was
 * synced, as SQLite's own crash tests do (src/test6.c in SQLite). Header-only, like
 * store_fixture.h, because every tests/unit/test_*.c is its own program.
 *
 * The disk it simulates:
 *  - A write or a resize (xTruncate) of a file is on the disk once that file is synced
 *    (xSync through any connection's handle: fsync covers the whole file). Per file, the shim
 *    keeps an undo log of the changes since its last sync (the bytes each one overwrote or
 *    cut off); at the cut it applies the log backwards and truncates the file to its synced
 *    size, so every unsynced write is lost. With `torn`, it then replays the unsynced writes
 *    in order with each 4 KiB sector of each write kept, dropped or filled with garbage, and
 *    each resize kept or dropped: a torn write, as test6.c does. Only bytes a write covered
 *    change, which is what the unix VFS's powersafe-overwrite promise lets SQLite assume.
 *  - A file created since the last fsync of its directory vanishes. SQLite fsyncs the
 *    directory itself at the first sync of a new WAL or journal (not of a new database file);
 *    the shim sees that through the unix VFS's "openDirectory" system call, which the unix VFS
 *    uses for nothing else, and takes it to make every entry of that directory durable. Files
 *    that existed when the shim began (the test directory too) count as durable. Deletions
 *    count as durable at once: the store deletes nothing while it runs (SQLite deletes the WAL
 *    at the last close, and a rollback journal only while creating the database).
 *  - The -shm file is memory: the cut deletes it; SQLite rebuilds it from the WAL.
 *  - From the cut on, every write, resize, sync, delete and file creation fails with an I/O
 *    error, so nothing more reaches the disk. Reads still work: in the story the machine is
 *    dead, and what it reads no longer matters. SQLITE_FCNTL_SIZE_HINT is ignored, so every
 *    size change passes through the shim. At the cut errand's logger goes quiet: the store's
 *    errors from then on are expected.
 *
 * The real files get every write as it happens (reads need them); the real fsync is passed on
 * too, though only the shim's bookkeeping decides what survives, so a test directory on tmpfs
 * costs no disk flushes.
 *
 * Use: pl_init() once; per power cut pl_begin() (the shim becomes the default VFS), open the
 * store, pl_arm(), run, pl_cut(), close the store, pl_restore(); pl_fini() at the end.
 */
#ifndef ERRAND_TESTS_POWER_LOSS_VFS_H
#define ERRAND_TESTS_POWER_LOSS_VFS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define PL_VFS_NAME "errand-power-loss"
#define PL_SECTOR 4096               /* the unix VFS's sector size: the unit of a torn write */
#define PL_LOG_QUIET (LOG_ERROR + 1) /* errand's log level once the power is off */

/* --- a seeded random stream (splitmix64) ---------------------------------------------- */

static uint64_t pl_rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static unsigned pl_rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(pl_rng_next(s) % n);
}

/* --- the simulated disk --------------------------------------------------------------- */

/* One change to a file since its last sync. */
struct pl_change {
    bool resize;           /* xTruncate; else xWrite */
    int64_t offset;        /* write: where; resize: the size the file got */
    size_t len;            /* write: bytes written */
    unsigned char *after;  /* write: the bytes written */
    int64_t before_at;     /* where the bytes the change overwrote or cut off begin */
    unsigned char *before; /* those bytes (only the ones that existed) */
    size_t before_len;
    struct pl_change *next;
};

/* A file as the disk knows it: what it last synced, and the changes since. */
struct pl_disk_file {
    char *path;
    bool main_db;
    bool entry_pending; /* created since its directory was last synced: a cut removes it */
    bool deleted;       /* deleted (and not created again): gone for good */
    int64_t synced_size;
    struct pl_change *head, *tail; /* oldest first */
    struct pl_disk_file *next;
};

/* An open file of the shim: the real (unix) file follows it in the same allocation. */
struct pl_file {
    sqlite3_file base;
    sqlite3_file *real;
    struct pl_disk_file *disk; /* NULL for temporary files: never on the disk of the story */
};

/* The one simulated disk of the process (a VFS is process-wide). `lock` guards everything
 * here; it is recursive because the real xSync calls the openDirectory hook, which takes it,
 * while the shim holds it. Writes are recorded and made under the lock, so the cut falls
 * between two I/O calls, never inside one. */
static struct {
    pthread_mutex_t lock;
    sqlite3_vfs *real;
    sqlite3_syscall_ptr real_open_directory;
    struct pl_disk_file *files;
    long cut_at;   /* the I/O call that cuts the power (0 = the test cuts it) */
    long io_calls; /* writes, resizes and syncs since armed */
    long db_syncs; /* syncs of a database file since armed: checkpoints */
    bool armed;    /* counting I/O calls towards cut_at */
    bool cut;      /* the power is off */
} pl;

static struct pl_disk_file *pl_disk_of(const char *path)
{
    for (struct pl_disk_file *d = pl.files; d; d = d->next)
        if (strcmp(d->path, path) == 0)
            return d;
    return NULL;
}

static void pl_changes_free(struct pl_disk_file *d)
{
    for (struct pl_change *c = d->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    d->head = d->tail = NULL;
}

/* Counts an I/O call that changes the disk. False once the power is off: this call may be
 * the one that cuts it. Caller holds pl.lock. */
static bool pl_power_on(void)
{
    if (pl.cut)
        return false;
    if (pl.armed && ++pl.io_calls == pl.cut_at) {
        pl.cut = true;
        log_set_level((enum log_level)PL_LOG_QUIET);
    }
    return !pl.cut;
}

static void pl_append(struct pl_disk_file *d, struct pl_change *c)
{
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
}

/* A change with room for before_len + after_len bytes behind it. */
static struct pl_change *pl_change_new(size_t before_len, size_t after_len)
{
    struct pl_change *c = calloc(1, sizeof *c + before_len + after_len);
    if (!c)
        return NULL;
    c->before = (unsigned char *)(c + 1);
    c->before_len = before_len;
    c->after = c->before + before_len;
    return c;
}

/* Reads the c->before_len bytes at `from` of the real file into c->before. */
static int pl_save_before(sqlite3_file *real, struct pl_change *c, int64_t from)
{
    c->before_at = from;
    if (c->before_len == 0)
        return SQLITE_OK;
    return real->pMethods->xRead(real, c->before, (int)c->before_len, from);
}

static int pl_close(sqlite3_file *f)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xClose(p->real);
}

static int pl_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xRead(p->real, buf, n, off);
}

static int pl_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    struct pl_file *p = (struct pl_file *)f;
    sqlite3_file *real = p->real;
    pthread_mutex_lock(&pl.lock);
    int rc = pl_power_on() ? SQLITE_OK : SQLITE_IOERR_WRITE;
    if (rc == SQLITE_OK && p->disk) {
        sqlite3_int64 size = 0;
        rc = real->pMethods->xFileSize(real, &size);
        size_t before = off < size ? (size_t)(size - off < n ? size - off : n) : 0;
        struct pl_change *c = rc == SQLITE_OK ? pl_change_new(before, (size_t)n) : NULL;
        if (rc == SQLITE_OK && !c)
            rc = SQLITE_NOMEM;
        if (c) {
            c->offset = off;
            c->len = (size_t)n;
            memcpy(c->after, buf, (size_t)n);
            if ((rc = pl_save_before(real, c, off)) == SQLITE_OK)
                pl_append(p->disk, c);
            else
                free(c);
        }
    }
    if (rc == SQLITE_OK)
        rc = real->pMethods->xWrite(real, buf, n, off);
    pthread_mutex_unlock(&pl.lock);
    return rc;
}

static int pl_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct pl_file *p = (struct pl_file *)f;
    sqlite3_file *real = p->real;
    pthread_mutex_lock(&pl.lock);
    int rc = pl_power_on() ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
    struct pl_change *c = NULL;
    if (rc == SQLITE_OK && p->disk) {
        sqlite3_int64 old = 0;
        rc = real->pMethods->xFileSize(real, &old);
        if (rc == SQLITE_OK && !(c = pl_change_new(size < old ? (size_t)(old - size) : 0, 0)))
            rc = SQLITE_NOMEM;
        if (c && (rc = pl_save_before(real, c, size)) != SQLITE_OK) {
            free(c);
            c = NULL;
        }
    }
    if (rc == SQLITE_OK)
        rc = real->pMethods->xTruncate(real, size);
    if (c) {
        /* The unix VFS may round the size up to its chunk size: keep the size it got. */
        sqlite3_int64 got = size;
        real->pMethods->xFileSize(real, &got);
        c->resize = true;
        c->offset = got;
        pl_append(p->disk, c);
    }
    pthread_mutex_unlock(&pl.lock);
    return rc;
}

static int pl_sync(sqlite3_file *f, int flags)
{
    struct pl_file *p = (struct pl_file *)f;
    pthread_mutex_lock(&pl.lock);
    int rc = pl_power_on() ? SQLITE_OK : SQLITE_IOERR_FSYNC;
    if (rc == SQLITE_OK)
        rc = p->real->pMethods->xSync(p->real, flags);
    if (rc == SQLITE_OK && p->disk) {
        if (pl.armed && p->disk->main_db)
            pl.db_syncs++;
        sqlite3_int64 size = 0;
        rc = p->real->pMethods->xFileSize(p->real, &size);
        p->disk->synced_size = size;
        pl_changes_free(p->disk);
    }
    pthread_mutex_unlock(&pl.lock);
    return rc;
}

static int pl_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xFileSize(p->real, size);
}

static int pl_lock(sqlite3_file *f, int level)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xLock(p->real, level);
}

static int pl_unlock(sqlite3_file *f, int level)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xUnlock(p->real, level);
}

static int pl_check_reserved(sqlite3_file *f, int *out)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int pl_file_control(sqlite3_file *f, int op, void *arg)
{
    struct pl_file *p = (struct pl_file *)f;
    if (op == SQLITE_FCNTL_SIZE_HINT)
        return SQLITE_OK; /* a hint: ignored, so that every size change is an xTruncate or xWrite */
    return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int pl_sector_size(sqlite3_file *f)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xSectorSize(p->real);
}

static int pl_device_characteristics(sqlite3_file *f)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int pl_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xShmMap(p->real, region, size, extend, out);
}

static int pl_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

static void pl_shm_barrier(sqlite3_file *f)
{
    struct pl_file *p = (struct pl_file *)f;
    p->real->pMethods->xShmBarrier(p->real);
}

static int pl_shm_unmap(sqlite3_file *f, int delete_flag)
{
    struct pl_file *p = (struct pl_file *)f;
    return p->real->pMethods->xShmUnmap(p->real, delete_flag);
}

/* Version 2: the shared-memory methods WAL needs, and no xFetch, so SQLite reads through
 * xRead (the unix VFS maps nothing by default anyway). */
static const sqlite3_io_methods pl_io = {
    .iVersion = 2,
    .xClose = pl_close,
    .xRead = pl_read,
    .xWrite = pl_write,
    .xTruncate = pl_truncate,
    .xSync = pl_sync,
    .xFileSize = pl_file_size,
    .xLock = pl_lock,
    .xUnlock = pl_unlock,
    .xCheckReservedLock = pl_check_reserved,
    .xFileControl = pl_file_control,
    .xSectorSize = pl_sector_size,
    .xDeviceCharacteristics = pl_device_characteristics,
    .xShmMap = pl_shm_map,
    .xShmLock = pl_shm_lock,
    .xShmBarrier = pl_shm_barrier,
    .xShmUnmap = pl_shm_unmap,
};

static int pl_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct pl_file *p = (struct pl_file *)f;
    p->base.pMethods = NULL;
    p->real = (sqlite3_file *)(p + 1);
    p->disk = NULL;
    bool tracked = name && !(flags & SQLITE_OPEN_DELETEONCLOSE);
    struct stat sb;
    bool created = tracked && (flags & SQLITE_OPEN_CREATE) && stat(name, &sb) != 0;
    pthread_mutex_lock(&pl.lock);
    if (created && pl.cut) { /* creating a file is a write too */
        pthread_mutex_unlock(&pl.lock);
        return SQLITE_CANTOPEN;
    }
    int rc = pl.real->xOpen(pl.real, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (p->real->pMethods)
            p->real->pMethods->xClose(p->real);
        pthread_mutex_unlock(&pl.lock);
        return rc;
    }
    if (tracked) {
        struct pl_disk_file *d = pl_disk_of(name);
        if (!d) {
            sqlite3_int64 size = 0;
            p->real->pMethods->xFileSize(p->real, &size);
            if (!(d = calloc(1, sizeof *d)) || !(d->path = strdup(name))) {
                free(d);
                p->real->pMethods->xClose(p->real);
                pthread_mutex_unlock(&pl.lock);
                return SQLITE_NOMEM;
            }
            d->synced_size = size;
            d->next = pl.files;
            pl.files = d;
        }
        if (created)
            d->entry_pending = true;
        d->deleted = false;
        if (flags & SQLITE_OPEN_MAIN_DB)
            d->main_db = true;
        p->disk = d;
    }
    pthread_mutex_unlock(&pl.lock);
    p->base.pMethods = &pl_io;
    return SQLITE_OK;
}

static int pl_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    pthread_mutex_lock(&pl.lock);
    int rc = SQLITE_IOERR_DELETE;
    if (!pl.cut) {
        rc = pl.real->xDelete(pl.real, name, sync_dir);
        struct pl_disk_file *d = pl_disk_of(name);
        if (rc == SQLITE_OK && d) { /* gone from the disk at once (see the header) */
            pl_changes_free(d);
            d->synced_size = 0;
            d->deleted = true;
        }
    }
    pthread_mutex_unlock(&pl.lock);
    return rc;
}

static int pl_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return pl.real->xAccess(pl.real, name, flags, out);
}

static int pl_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return pl.real->xFullPathname(pl.real, name, n, out);
}

static void *pl_dl_open(sqlite3_vfs *vfs, const char *path)
{
    return pl.real->xDlOpen(pl.real, path);
}

static void pl_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    pl.real->xDlError(pl.real, n, out);
}

static void (*pl_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return pl.real->xDlSym(pl.real, h, sym);
}

static void pl_dl_close(sqlite3_vfs *vfs, void *h)
{
    pl.real->xDlClose(pl.real, h);
}

static int pl_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return pl.real->xRandomness(pl.real, n, out);
}

static int pl_sleep(sqlite3_vfs *vfs, int us)
{
    return pl.real->xSleep(pl.real, us);
}

static int pl_current_time(sqlite3_vfs *vfs, double *out)
{
    return pl.real->xCurrentTime(pl.real, out);
}

static int pl_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return pl.real->xGetLastError(pl.real, n, out);
}

static int pl_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return pl.real->xCurrentTimeInt64(pl.real, out);
}

static sqlite3_vfs pl_vfs = {
    .iVersion = 2,
    .zName = PL_VFS_NAME,
    .xOpen = pl_open,
    .xDelete = pl_delete,
    .xAccess = pl_access,
    .xFullPathname = pl_full_pathname,
    .xDlOpen = pl_dl_open,
    .xDlError = pl_dl_error,
    .xDlSym = pl_dl_sym,
    .xDlClose = pl_dl_close,
    .xRandomness = pl_randomness,
    .xSleep = pl_sleep,
    .xCurrentTime = pl_current_time,
    .xGetLastError = pl_get_last_error,
    .xCurrentTimeInt64 = pl_current_time_int64,
};

/* The unix VFS calls openDirectory(file) only to fsync the directory holding file, at the
 * first sync of a new WAL or journal and for a delete with dirSync: from then on, every
 * entry of that directory is on the disk. */
static int pl_open_directory(const char *path, int *fd)
{
    pthread_mutex_lock(&pl.lock);
    if (pl.cut) {
        pthread_mutex_unlock(&pl.lock);
        return SQLITE_CANTOPEN; /* what the unix VFS answers when it cannot: it skips the sync */
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    for (struct pl_disk_file *d = pl.files; d; d = d->next) {
        const char *s = strrchr(d->path, '/');
        if ((s ? (size_t)(s - d->path) : 0) == dir_len && strncmp(d->path, path, dir_len) == 0)
            d->entry_pending = false;
    }
    int rc = ((int (*)(const char *, int *))pl.real_open_directory)(path, fd);
    pthread_mutex_unlock(&pl.lock);
    return rc;
}

/* Makes the shim the default VFS over a disk that holds the files as they are now. */
static void pl_begin(void)
{
    if (!pl.real) { /* the first time: what the shim wraps */
        pl.real = sqlite3_vfs_find("unix");
        assert_non_null(pl.real);
        pl_vfs.szOsFile = (int)sizeof(struct pl_file) + pl.real->szOsFile;
        pl_vfs.mxPathname = pl.real->mxPathname;
        pl.real_open_directory = pl.real->xGetSystemCall(pl.real, "openDirectory");
        assert_non_null(pl.real_open_directory);
    }
    assert_int_equal(
        pl.real->xSetSystemCall(pl.real, "openDirectory", (sqlite3_syscall_ptr)pl_open_directory),
        SQLITE_OK);
    pl.files = NULL;
    pl.armed = pl.cut = false;
    pl.io_calls = pl.cut_at = pl.db_syncs = 0;
    assert_int_equal(sqlite3_vfs_register(&pl_vfs, 1), SQLITE_OK);
}

/* From now on the I/O call number cut_at (0 = none) cuts the power. */
static void pl_arm(long cut_at)
{
    pthread_mutex_lock(&pl.lock);
    pl.cut_at = cut_at;
    pl.io_calls = pl.db_syncs = 0;
    pl.armed = true;
    pthread_mutex_unlock(&pl.lock);
}

/* The next I/O call cuts the power (if none did yet). */
static void pl_cut_at_next_io(void)
{
    pthread_mutex_lock(&pl.lock);
    if (pl.armed && !pl.cut)
        pl.cut_at = pl.io_calls + 1;
    pthread_mutex_unlock(&pl.lock);
}

static bool pl_is_cut(void)
{
    pthread_mutex_lock(&pl.lock);
    bool cut = pl.cut;
    pthread_mutex_unlock(&pl.lock);
    return cut;
}

/* How the power went. */
struct pl_cut_info {
    bool in_io;    /* an I/O call cut it, else pl_cut() */
    long io_calls; /* I/O calls counted until then */
    long db_syncs; /* database syncs (checkpoints) until then */
};

/* Cuts the power now, if no I/O call did. */
static void pl_cut(struct pl_cut_info *info)
{
    pthread_mutex_lock(&pl.lock);
    info->in_io = pl.cut;
    pl.cut = true;
    log_set_level((enum log_level)PL_LOG_QUIET);
    info->io_calls = pl.io_calls;
    info->db_syncs = pl.db_syncs;
    pthread_mutex_unlock(&pl.lock);
}

static void pl_pwrite(int fd, const void *buf, size_t n, int64_t off, const char *path)
{
    if (n > 0 && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
        fail_msg("restoring %s: pwrite at %" PRId64 ": %s", path, off, strerror(errno));
}

/* Tears the unsynced changes of one file over its synced image: each sector of each write
 * kept, dropped or garbage, each resize kept or dropped, in their order. */
static void pl_replay_torn(int fd, const struct pl_disk_file *d, uint64_t *rng)
{
    for (const struct pl_change *c = d->head; c; c = c->next) {
        if (c->resize) {
            if (pl_rng_below(rng, 2) && ftruncate(fd, (off_t)c->offset) != 0)
                fail_msg("restoring %s: ftruncate: %s", d->path, strerror(errno));
            continue;
        }
        for (int64_t at = c->offset; at < c->offset + (int64_t)c->len;) {
            int64_t end = (at / PL_SECTOR + 1) * PL_SECTOR;
            if (end > c->offset + (int64_t)c->len)
                end = c->offset + (int64_t)c->len;
            unsigned char garbage[PL_SECTOR];
            switch (pl_rng_below(rng, 3)) {
            case 0: /* reached the disk */
                pl_pwrite(fd, c->after + (at - c->offset), (size_t)(end - at), at, d->path);
                break;
            case 1: /* never did */
                break;
            default: /* torn: the sector holds garbage where the write went */
                for (int64_t i = 0; i < end - at; i++)
                    garbage[i] = (unsigned char)pl_rng_next(rng);
                pl_pwrite(fd, garbage, (size_t)(end - at), at, d->path);
            }
            at = end;
        }
    }
}

/* After the store has closed: puts every file back as the disk holds it (see the header),
 * and forgets the disk. The shim stops being the default VFS. */
static void pl_restore(bool torn, uint64_t *rng)
{
    assert_int_equal(sqlite3_vfs_register(pl.real, 1), SQLITE_OK);
    assert_int_equal(pl.real->xSetSystemCall(pl.real, "openDirectory", pl.real_open_directory),
                     SQLITE_OK);
    for (struct pl_disk_file *d = pl.files, *next; d; d = next) {
        next = d->next;
        if (d->main_db) {
            char shm[PATH_MAX];
            snprintf(shm, sizeof shm, "%s-shm", d->path);
            unlink(shm);
        }
        if (d->deleted) {
            /* nothing left of it */
        } else if (d->entry_pending) {
            unlink(d->path);
        } else {
            int fd = open(d->path, O_RDWR);
            if (fd < 0)
                fail_msg("restoring %s: %s", d->path, strerror(errno));
            int n = 0;
            for (const struct pl_change *c = d->head; c; c = c->next)
                n++;
            const struct pl_change **log = calloc((size_t)n + 1, sizeof *log);
            assert_non_null(log);
            n = 0;
            for (const struct pl_change *c = d->head; c; c = c->next)
                log[n++] = c;
            while (n-- > 0)
                pl_pwrite(fd, log[n]->before, log[n]->before_len, log[n]->before_at, d->path);
            free(log);
            if (ftruncate(fd, (off_t)d->synced_size) != 0)
                fail_msg("restoring %s: ftruncate: %s", d->path, strerror(errno));
            if (torn)
                pl_replay_torn(fd, d, rng);
            close(fd);
        }
        pl_changes_free(d);
        free(d->path);
        free(d);
    }
    pl.files = NULL;
}

/* Once per process, before anything else of the shim. */
static void pl_init(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&pl.lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

static void pl_fini(void)
{
    if (pl.real) {
        sqlite3_vfs_register(pl.real, 1);
        pl.real->xSetSystemCall(pl.real, "openDirectory", pl.real_open_directory);
    }
    sqlite3_vfs_unregister(&pl_vfs);
    pthread_mutex_destroy(&pl.lock);
}

#endif
