/* SPDX-License-Identifier: MIT */
/*
 * sqlite_schema.h — the SQLite store's schema and its versioned migrations.
 *
 * The schema version is PRAGMA user_version (in the database header, so it changes in the
 * same transaction as the schema); table schema_migrations keeps a readable history (version,
 * name, applied_at). A database newer than this build is refused rather than guessed at.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_SCHEMA_H
#define ERRAND_STORE_SQLITE_SQLITE_SCHEMA_H

#include <stdint.h>

#include "errand/errand.h"
#include "store/sqlite/sqlite_conn.h"

/* The version this build creates and understands. */
int sqlite_schema_version(void);
/* How many migrations there are (versions may skip a number taken by another branch). */
int sqlite_schema_migration_count(void);

/* Brings the database of the writer connection c up to sqlite_schema_version(), one
 * migration per transaction. now_ms stamps schema_migrations.applied_at. */
int sqlite_schema_migrate(struct sqlite_conn *c, int64_t now_ms, errand_error *err);

#endif
