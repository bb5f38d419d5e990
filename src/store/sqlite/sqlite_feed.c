/* SPDX-License-Identifier: MIT */
/*
 * sqlite_feed.c — gathering the change feed's events into pages and reading them back
 * (see sqlite_feed.h).
 */
#include "store/sqlite/sqlite_feed.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/sqlite_conn.h"

#define EVENT_FIXED_BYTES (SQLITE_FEED_ID_LEN + 1 + 8 + 1) /* id, type, time, name length */
#define PAGE_MIN_CAP 4096

static bool reserve(struct sqlite_feed_page *p, size_t more)
{
    if (p->cap - p->len >= more)
        return true;
    size_t cap = p->cap ? p->cap : PAGE_MIN_CAP;
    while (cap - p->len < more)
        cap *= 2;
    unsigned char *data = mem_realloc(p->data, cap);
    if (!data)
        return false;
    p->data = data;
    p->cap = cap;
    return true;
}

static void put_i64(unsigned char *out, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(u >> (8 * i));
}

static int64_t get_i64(const unsigned char *in)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)in[i] << (8 * i);
    return (int64_t)u;
}

int sqlite_feed_add(struct sqlite_feed_page *p, const char *run_id, errand_state type,
                    const char *name, int64_t at_ms, errand_error *err)
{
    size_t id_len = strnlen(run_id, SQLITE_FEED_ID_LEN);
    size_t name_len = strnlen(name ? name : "", SQLITE_FEED_NAME_MAX);
    if (!reserve(p, (p->len == 0 ? 1 : 0) + EVENT_FIXED_BYTES + name_len))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (p->len == 0)
        p->data[p->len++] = SQLITE_FEED_FORMAT;
    unsigned char *out = p->data + p->len;
    memset(out, 0, SQLITE_FEED_ID_LEN); /* run ids are UUIDs: 36 bytes exactly */
    memcpy(out, run_id, id_len);
    out += SQLITE_FEED_ID_LEN;
    *out++ = (unsigned char)type;
    put_i64(out, at_ms);
    out += 8;
    *out++ = (unsigned char)name_len;
    memcpy(out, name ? name : "", name_len);
    p->len += EVENT_FIXED_BYTES + name_len;
    p->n++;
    if (p->n == 1 || at_ms > p->newest_at)
        p->newest_at = at_ms;
    return 0;
}

struct sqlite_feed_mark sqlite_feed_mark(const struct sqlite_feed_page *p)
{
    return (struct sqlite_feed_mark){p->len, p->n, p->newest_at};
}

void sqlite_feed_rewind(struct sqlite_feed_page *p, struct sqlite_feed_mark m)
{
    p->len = m.len;
    p->n = m.n;
    p->newest_at = m.newest_at;
}

void sqlite_feed_clear(struct sqlite_feed_page *p)
{
    p->len = 0;
    p->n = 0;
    p->newest_at = 0;
}

void sqlite_feed_free(struct sqlite_feed_page *p)
{
    mem_free(p->data);
    memset(p, 0, sizeof *p);
}

int sqlite_feed_write(struct sqlite_conn *c, errand_error *err)
{
    struct sqlite_feed_page *p = &c->feed;
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
        sqlite_feed_clear(p);
    }
    return rc;
}

bool sqlite_feed_open(struct sqlite_feed_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 1;
    return r->len >= 1 && r->data[0] == SQLITE_FEED_FORMAT;
}

int sqlite_feed_next(struct sqlite_feed_reader *r, struct sqlite_feed_event *out)
{
    if (r->pos >= r->len)
        return 0;
    if (r->len - r->pos < EVENT_FIXED_BYTES)
        return -1;
    const unsigned char *in = r->data + r->pos;
    memcpy(out->id, in, SQLITE_FEED_ID_LEN);
    out->id[SQLITE_FEED_ID_LEN] = '\0';
    in += SQLITE_FEED_ID_LEN;
    out->type = (errand_state)*in++;
    out->at = get_i64(in);
    in += 8;
    size_t name_len = *in++;
    if (r->len - r->pos - EVENT_FIXED_BYTES < name_len)
        return -1;
    memcpy(out->name, in, name_len);
    out->name[name_len] = '\0';
    r->pos += EVENT_FIXED_BYTES + name_len;
    return 1;
}
