/* SPDX-License-Identifier: MIT */
/*
 * feed_page.h — a page of the change feed (GET /api/events), as every backend stores it: the
 * events of a write transaction gathered in memory and stored as ONE row before it commits,
 * and read back event by event.
 *
 * Why pages: one row per state change costs an insert each (in the SQLite store ~2 µs of the
 * writer's time, three or four per run: 15 % of its CPU in bench/store_throughput). A page is
 * one insert per commit whatever the number of ops and runs in it; an event costs a copy of
 * ~60 bytes into the page.
 *
 * Numbering: a page's key is the seq of its first event; its n events are first_seq ...
 * first_seq + n - 1 and the next page starts at first_seq + n. So seq counts the committed
 * state changes in commit order, without gaps, and a reader resumes from any seq (the page
 * holding it is one index seek away). A page may hold no event: an upgrade may leave one
 * such row to carry the numbering on.
 *
 * Rollback: a backend that runs several ops in one transaction, each in its savepoint, marks
 * the page before an op and rewinds to the mark when the op fails, so a page holds the
 * events of exactly the ops that committed.
 *
 * Page format, version 2: the byte 2, then per event the run id (36 bytes), the state type
 * (1 byte), the time (8 bytes, Unix ms, little-endian two's complement), the name's length
 * (1 byte) and the name (at most 255 bytes; state names are short constants), the task's
 * length (2 bytes, little-endian) and the task (at most FEED_TASK_MAX bytes). The task rides
 * with the event so that a reader need not look up each event's run (one index seek per
 * event, most of the cost of following the feed), and knows it after the run is deleted.
 * Version 1 (pages written before the task was added) is version 2 without the task: still
 * read, its events' tasks are looked up by the store.
 */
#ifndef ERRAND_STORE_FEED_PAGE_H
#define ERRAND_STORE_FEED_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/errand.h"

#include "core/wire_limits.h"

#define FEED_PAGE_FORMAT 2
#define FEED_PAGE_FORMAT_NO_TASK 1
#define FEED_ID_LEN 36
#define FEED_NAME_MAX 255
#define FEED_TASK_MAX (WIRE_TASK_NAME_MAX * 4) /* bytes: a task name's longest UTF-8 */

/* The page being gathered. */
struct feed_page {
    unsigned char *data;
    size_t len, cap;
    uint32_t n;        /* events in data */
    int64_t newest_at; /* the latest event time in data: the page's age for pruning */
};

/* Where a page stood before an op, to rewind to when the op fails. */
struct feed_page_mark {
    size_t len;
    uint32_t n;
    int64_t newest_at;
};

/* Adds an event; ERRAND_ENOMEM (err filled) when the page cannot grow. */
int feed_page_add(struct feed_page *p, const char *run_id, const char *task, errand_state type,
                  const char *name, int64_t at_ms, errand_error *err);
struct feed_page_mark feed_page_mark(const struct feed_page *p);
void feed_page_rewind(struct feed_page *p, struct feed_page_mark m);
/* Empties the page (after a commit or a rollback), keeping its memory. */
void feed_page_clear(struct feed_page *p);
void feed_page_free(struct feed_page *p);

/* One event read back from a page. */
struct feed_event {
    char id[FEED_ID_LEN + 1];
    errand_state type;
    int64_t at;
    char name[FEED_NAME_MAX + 1];
    bool has_task; /* false in a version-1 page: the store looks it up */
    char task[FEED_TASK_MAX + 1];
};

/* Reading a stored page: open it, then take its events in order. */
struct feed_page_reader {
    const unsigned char *data;
    size_t len, pos;
    bool with_task; /* the page's format carries tasks */
};
/* False when data is not a page this build can read (unknown format, empty). */
bool feed_page_open(struct feed_page_reader *r, const void *data, size_t len);
/* 1 and *out filled, 0 at the end of the page, -1 when the page is malformed (truncated). */
int feed_page_next(struct feed_page_reader *r, struct feed_event *out);

struct run_event_list;
/* Adds the events with seq > after of the stored page starting at first_seq to out (whose
 * items hold limit), until it holds limit: with the tasks the page carries, NULL where it
 * carries none (a version-1 page: the store looks them up). ERRAND_ESTORE, err naming the
 * page, when the page is damaged or of a format this build cannot read. */
int feed_page_read_events(int64_t first_seq, const void *data, size_t len, int64_t after, int limit,
                          struct run_event_list *out, errand_error *err);

#endif
