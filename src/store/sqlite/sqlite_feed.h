/* SPDX-License-Identifier: MIT */
/*
 * sqlite_feed.h — the change feed as the SQLite store writes it: the events of a write
 * transaction gathered in memory and stored as ONE row of run_feed (a page) before it
 * commits, and read back event by event.
 *
 * Why pages: the feed was one row per state change, an insert each (~2 µs of the writer's
 * time, three or four per run: 15 % of its CPU in bench/store_throughput). A page is one
 * insert per commit whatever the number of ops and runs in it; an event costs a copy of ~60
 * bytes into the page.
 *
 * Numbering: a page's key is the seq of its first event; its n events are first_seq ...
 * first_seq + n - 1 and the next page starts at first_seq + n. So seq still counts the
 * committed state changes in commit order, without gaps, and a reader resumes from any seq
 * (the page holding it is one index seek away). A page may hold no event: the upgrade that
 * introduced pages leaves one such row to carry the numbering on.
 *
 * Rollback: ops share a transaction, each in its savepoint (sqlite_writer.c). The writer
 * marks the page before an op and rewinds to the mark when the op fails, so a page holds the
 * events of exactly the ops that committed. Pages are written between ops, never inside
 * one: a rolled-back savepoint cannot take other ops' events with it.
 *
 * Page format, version 1: the byte 1, then per event the run id (36 bytes), the state type
 * (1 byte), the time (8 bytes, Unix ms, little-endian two's complement), the name's length
 * (1 byte) and the name (at most 255 bytes; state names are short constants).
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_FEED_H
#define ERRAND_STORE_SQLITE_SQLITE_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"

#define SQLITE_FEED_FORMAT 1
#define SQLITE_FEED_ID_LEN 36
#define SQLITE_FEED_NAME_MAX 255
/* A page is written once it holds this much, between two ops, rather than at commit only:
 * a large group commit makes several pages of bounded size. */
#define SQLITE_FEED_PAGE_BYTES (32 * 1024)

struct sqlite_conn;

/* The page being gathered (a field of the writer's connection). */
struct sqlite_feed_page {
    unsigned char *data;
    size_t len, cap;
    uint32_t n;        /* events in data */
    int64_t newest_at; /* the latest event time in data: the page's age for pruning */
};

/* Where a page stood before an op, to rewind to when the op fails. */
struct sqlite_feed_mark {
    size_t len;
    uint32_t n;
    int64_t newest_at;
};

/* Adds an event; ERRAND_ENOMEM (err filled) when the page cannot grow. */
int sqlite_feed_add(struct sqlite_feed_page *p, const char *run_id, errand_state type,
                    const char *name, int64_t at_ms, errand_error *err);
struct sqlite_feed_mark sqlite_feed_mark(const struct sqlite_feed_page *p);
void sqlite_feed_rewind(struct sqlite_feed_page *p, struct sqlite_feed_mark m);
/* Empties the page (after a commit or a rollback), keeping its memory. */
void sqlite_feed_clear(struct sqlite_feed_page *p);
void sqlite_feed_free(struct sqlite_feed_page *p);

/* Stores c's page as the next row of run_feed, in c's open transaction, and empties it;
 * nothing when it holds no event. Counts the events in c->events_written. */
int sqlite_feed_write(struct sqlite_conn *c, errand_error *err);

/* One event read back from a page. */
struct sqlite_feed_event {
    char id[SQLITE_FEED_ID_LEN + 1];
    errand_state type;
    int64_t at;
    char name[SQLITE_FEED_NAME_MAX + 1];
};

/* Reading a stored page: open it, then take its events in order. */
struct sqlite_feed_reader {
    const unsigned char *data;
    size_t len, pos;
};
/* False when data is not a page this build can read (unknown format, empty). */
bool sqlite_feed_open(struct sqlite_feed_reader *r, const void *data, size_t len);
/* 1 and *out filled, 0 at the end of the page, -1 when the page is malformed (truncated). */
int sqlite_feed_next(struct sqlite_feed_reader *r, struct sqlite_feed_event *out);

#endif
