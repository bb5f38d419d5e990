/* SPDX-License-Identifier: MIT */
/*
 * sqlite_checkpointer.h — copies the SQLite store's WAL back into the database file on a
 * thread of its own, so the writer thread never stalls on the checkpoint's writes and
 * database fsync (SQLite's default is to checkpoint inside the committing connection).
 *
 * The writer connection's WAL hook (run after each commit) wakes the checkpointer once the
 * WAL holds SQLITE_CHECKPOINT_FRAMES frames, and again each time it has grown by as many;
 * the checkpointer runs a PASSIVE checkpoint on its own connection, which never blocks the
 * writer or readers. The WAL starts over at a commit that finds it wholly copied. Under a write
 * load with no pause the WAL could outgrow every passive checkpoint, so past
 * SQLITE_CHECKPOINT_FRAMES_MAX frames the writer itself runs a RESTART checkpoint (after
 * its commit, blocking only its next group) and the WAL starts over. That RESTART never
 * waits for readers: while one holds an old snapshot, commits go on at full speed and the
 * WAL grows by what is written until the reader ends (see on_commit).
 *
 * Threads: the hook runs on the writer thread, which alone uses `restart_tried_at`,
 * `woken_at` and `wakes`; `lock` guards `pending`, `stopping` and the other counters.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_CHECKPOINTER_H
#define ERRAND_STORE_SQLITE_SQLITE_CHECKPOINTER_H

#include "errand/errand.h"
#include "store/sqlite/sqlite_conn.h"

#define SQLITE_CHECKPOINT_FRAMES 1000      /* about 4 MiB of 4 KiB pages */
#define SQLITE_CHECKPOINT_FRAMES_MAX 16384 /* about 64 MiB */

typedef struct sqlite_checkpointer sqlite_checkpointer;

/* Opens its own connection to path (with the store's sync setting) and hooks the writer
 * connection; call before the writer thread starts. */
int sqlite_checkpointer_start(const char *path, const char *sync, struct sqlite_conn *writer,
                              sqlite_checkpointer **out, errand_error *err);

/* How many times the writer has woken the checkpointer (read on the writer thread, or once
 * it is idle: for tests). */
unsigned long sqlite_checkpointer_wakes(const sqlite_checkpointer *cp);

/* Stops the thread and closes its connection; call after the writer stopped (its hook
 * points here). Being the last connection, its close checkpoints and removes the WAL. */
void sqlite_checkpointer_stop(sqlite_checkpointer *cp);

#endif
