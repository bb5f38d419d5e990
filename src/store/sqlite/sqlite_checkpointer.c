/* SPDX-License-Identifier: MIT */
/*
 * sqlite_checkpointer.c — background WAL checkpoints for the SQLite store (see
 * sqlite_checkpointer.h). Measured on a VM disk where one fsync takes ~7 ms: with SQLite's
 * automatic checkpoints the writer spent more time checkpointing than committing.
 */
#include "store/sqlite/sqlite_checkpointer.h"

#include <pthread.h>
#include <stdbool.h>

#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"

struct sqlite_checkpointer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool pending;
    bool stopping;
    unsigned long passive, restart; /* checkpoints run, for the log at stop */
    int restart_tried_at;           /* WAL frames at the last RESTART try (writer thread's) */
    int woken_at;                   /* WAL frames when the thread was last woken (writer's) */
    unsigned long wakes;            /* times the writer woke the thread (writer's) */
    pthread_t thread;
    struct sqlite_conn *conn; /* the checkpointer thread's own */
};

/* The writer's WAL hook: runs on the writer thread after every commit. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sqlite_checkpointer *cp = arg;
    if (frames < cp->restart_tried_at)
        cp->restart_tried_at = 0; /* the WAL started over */
    if (frames < cp->woken_at)
        cp->woken_at = 0;
    if (frames >= SQLITE_CHECKPOINT_FRAMES_MAX &&
        (cp->restart_tried_at == 0 || frames >= cp->restart_tried_at + SQLITE_CHECKPOINT_FRAMES)) {
        /* Never wait for readers here. A RESTART must wait until no reader uses the WAL; a
           long reader (an online backup, a big listing) would make it call the busy handler,
           and the writer's would wait SQLITE_BUSY_TIMEOUT_MS after every commit. Without a
           busy handler it checkpoints what it can, like PASSIVE, and answers SQLITE_BUSY: the
           WAL then grows while the reader lasts (by what is written meanwhile), is tried
           again every SQLITE_CHECKPOINT_FRAMES frames, and starts over once the reader ends. */
        int log_frames = 0, done = 0;
        cp->restart_tried_at = frames;
        sqlite3_busy_timeout(db, 0);
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, &log_frames, &done);
        sqlite3_busy_timeout(db, SQLITE_BUSY_TIMEOUT_MS);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("store checkpoint failed", "error=\"%s\"", sqlite3_errmsg(db));
        pthread_mutex_lock(&cp->lock);
        cp->restart++;
        pthread_mutex_unlock(&cp->lock);
        return SQLITE_OK;
    }
    /* Once per SQLITE_CHECKPOINT_FRAMES the WAL grows, not after every commit past it: one
       commit at a time, the WAL rarely starts over (a commit lands while the checkpoint
       runs), and a checkpoint per commit copied a commit's pages and synced the database
       file each time, 150 us of CPU per run beside the writer's commits. */
    if (frames >= SQLITE_CHECKPOINT_FRAMES && frames >= cp->woken_at + SQLITE_CHECKPOINT_FRAMES) {
        cp->woken_at = frames;
        cp->wakes++;
        pthread_mutex_lock(&cp->lock);
        if (!cp->pending) {
            cp->pending = true;
            pthread_cond_signal(&cp->wake);
        }
        pthread_mutex_unlock(&cp->lock);
    }
    return SQLITE_OK;
}

static void *checkpointer_main(void *p)
{
    struct sqlite_checkpointer *cp = p;
    pthread_setname_np(pthread_self(), "errand-ckpt");
    pthread_mutex_lock(&cp->lock);
    for (;;) {
        while (!cp->pending && !cp->stopping)
            pthread_cond_wait(&cp->wake, &cp->lock);
        if (cp->stopping)
            break;
        cp->pending = false;
        pthread_mutex_unlock(&cp->lock);
        int log_frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(cp->conn->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                           &log_frames, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("store checkpoint failed", "error=\"%s\"", sqlite3_errmsg(cp->conn->db));
        pthread_mutex_lock(&cp->lock);
        cp->passive++;
    }
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

int sqlite_checkpointer_start(const char *path, const char *sync, struct sqlite_conn *writer,
                              sqlite_checkpointer **out, errand_error *err)
{
    *out = NULL;
    struct sqlite_checkpointer *cp = mem_calloc(1, sizeof *cp);
    if (!cp)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = sqlite_conn_open(path, SQLITE_CONN_CHECKPOINTER, sync, &cp->conn, err);
    if (rc < 0) {
        mem_free(cp);
        return rc;
    }
    pthread_mutex_init(&cp->lock, NULL);
    pthread_cond_init(&cp->wake, NULL);
    if (pthread_create(&cp->thread, NULL, checkpointer_main, cp) != 0) {
        sqlite_conn_close(cp->conn);
        pthread_cond_destroy(&cp->wake);
        pthread_mutex_destroy(&cp->lock);
        mem_free(cp);
        return error_set(err, ERRAND_ESTORE, NULL, "store: cannot start the checkpoint thread");
    }
    sqlite3_wal_hook(writer->db, on_commit, cp); /* replaces SQLite's automatic checkpoints */
    *out = cp;
    return 0;
}

unsigned long sqlite_checkpointer_wakes(const sqlite_checkpointer *cp)
{
    return cp->wakes;
}

void sqlite_checkpointer_stop(sqlite_checkpointer *cp)
{
    if (!cp)
        return;
    pthread_mutex_lock(&cp->lock);
    cp->stopping = true;
    pthread_cond_signal(&cp->wake);
    pthread_mutex_unlock(&cp->lock);
    pthread_join(cp->thread, NULL);
    log_info("store checkpoints", "background=%lu inline=%lu", cp->passive, cp->restart);
    sqlite_conn_close(cp->conn);
    pthread_cond_destroy(&cp->wake);
    pthread_mutex_destroy(&cp->lock);
    mem_free(cp);
}
