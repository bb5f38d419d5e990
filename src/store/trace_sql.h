/* SPDX-License-Identifier: MIT */
/*
 * trace_sql.h — the SQL expression of a run's trace id, shared by both backends' schema and
 * listing statements. A stored traceparent was checked on submit (core/traceparent.h), so its
 * trace id is always the 32 characters after "00-": characters 4..35, counted from 1 as SQL
 * does. SQLite uses an index on an expression only for a query that spells it identically,
 * so the index and the statements take it from here.
 */
#ifndef ERRAND_STORE_TRACE_SQL_H
#define ERRAND_STORE_TRACE_SQL_H

#include "core/traceparent.h"

#define TRACE_ID_OF(col) "substr(" col ", 4, 32)"

_Static_assert(TRACEPARENT_TRACE_AT + 1 == 4 && TRACE_ID_LEN == 32,
               "TRACE_ID_OF spells the trace id's place in a traceparent as 4, 32");

#endif
