/* SPDX-License-Identifier: MIT */
/*
 * pg_schema.h — creating and migrating the PostgreSQL store's tables (pg_schema.c).
 */
#ifndef ERRAND_STORE_POSTGRES_PG_SCHEMA_H
#define ERRAND_STORE_POSTGRES_PG_SCHEMA_H

#include <stdint.h>

#include "store/postgres/pg_conn.h"

/* The newest schema version this build knows. */
int pg_schema_version(void);

/* Brings the database to pg_schema_version(), each step in its own transaction under an
 * advisory lock, so several servers starting at once apply each step once. Refuses a
 * database whose version is newer than this build knows. */
int pg_schema_migrate(struct pg_conn *c, int64_t now_ms, errand_error *err);

#endif
