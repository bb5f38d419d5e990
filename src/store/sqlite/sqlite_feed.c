/* SPDX-License-Identifier: MIT */
/*
 * sqlite_feed.c — storing a page of the change feed in the SQLite store (see sqlite_feed.h).
 */
#include "store/sqlite/sqlite_feed.h"

#include "core/error.h"
#include "store/sqlite/sqlite_conn.h"

int sqlite_feed_write(struct sqlite_conn *c, errand_error *err)
{
    struct feed_page *p = &c->feed;
    if (p->n == 0)
        return 0;
    sqlite3_stmt *last = sqlite_conn_stmt(c, SQL_FEED_NEXT_SEQ, err);
    if (!last)
        return ERRAND_ESTORE;
    int step = sqlite3_step(last);
    int64_t first = step == SQLITE_ROW ? sqlite3_column_int64(last, 0) : 1;
    sqlite3_reset(last);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_FEED_NEXT_SEQ", err);
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_FEED_INSERT, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, first);
    sqlite3_bind_int64(s, 2, p->n);
    sqlite3_bind_int64(s, 3, p->newest_at);
    sqlite3_bind_blob(s, 4, p->data, (int)p->len, SQLITE_STATIC);
    int rc = sqlite_conn_step_done(c, s, SQL_FEED_INSERT, err);
    if (rc == 0) {
        c->events_written += p->n;
        feed_page_clear(p);
    }
    return rc;
}
