/* SPDX-License-Identifier: MIT */
/*
 * sqlite_feed.h — the change feed as the SQLite store writes it: the writer's connection
 * gathers a transaction's events in a page (store/feed_page.h) and stores it as ONE row of
 * run_feed before it commits. The writer marks the page before each op and rewinds it when
 * the op fails; pages are written between ops, never inside one, so a rolled-back savepoint
 * cannot take other ops' events with it.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_FEED_H
#define ERRAND_STORE_SQLITE_SQLITE_FEED_H

#include "store/feed_page.h"

/* A page is written once it holds this much, between two ops, rather than at commit only:
 * a large group commit makes several pages of bounded size. */
#define SQLITE_FEED_PAGE_BYTES (32 * 1024)

struct sqlite_conn;

/* Stores c's page as the next row of run_feed, in c's open transaction, and empties it;
 * nothing when it holds no event. Counts the events in c->events_written. */
int sqlite_feed_write(struct sqlite_conn *c, errand_error *err);

#endif
