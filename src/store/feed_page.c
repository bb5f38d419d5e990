/* SPDX-License-Identifier: MIT */
/*
 * feed_page.c — gathering the change feed's events into pages and reading them back
 * (see feed_page.h).
 */
#include "store/feed_page.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/store.h"

#define EVENT_FIXED_BYTES (FEED_ID_LEN + 1 + 8 + 1) /* id, type, time, name length */
#define TASK_LEN_BYTES 2
#define PAGE_MIN_CAP 4096

static bool reserve(struct feed_page *p, size_t more)
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

int feed_page_add(struct feed_page *p, const char *run_id, const char *task, errand_state type,
                  const char *name, int64_t at_ms, errand_error *err)
{
    size_t id_len = strnlen(run_id, FEED_ID_LEN);
    size_t name_len = strnlen(name ? name : "", FEED_NAME_MAX);
    size_t task_len = strnlen(task ? task : "", FEED_TASK_MAX);
    size_t bytes = EVENT_FIXED_BYTES + name_len + TASK_LEN_BYTES + task_len;
    if (!reserve(p, (p->len == 0 ? 1 : 0) + bytes))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (p->len == 0)
        p->data[p->len++] = FEED_PAGE_FORMAT;
    unsigned char *out = p->data + p->len;
    memset(out, 0, FEED_ID_LEN); /* run ids are UUIDs: 36 bytes exactly */
    memcpy(out, run_id, id_len);
    out += FEED_ID_LEN;
    *out++ = (unsigned char)type;
    put_i64(out, at_ms);
    out += 8;
    *out++ = (unsigned char)name_len;
    memcpy(out, name ? name : "", name_len);
    out += name_len;
    *out++ = (unsigned char)(task_len & 0xff);
    *out++ = (unsigned char)(task_len >> 8);
    memcpy(out, task ? task : "", task_len);
    p->len += bytes;
    p->n++;
    if (p->n == 1 || at_ms > p->newest_at)
        p->newest_at = at_ms;
    return 0;
}

struct feed_page_mark feed_page_mark(const struct feed_page *p)
{
    return (struct feed_page_mark){p->len, p->n, p->newest_at};
}

void feed_page_rewind(struct feed_page *p, struct feed_page_mark m)
{
    p->len = m.len;
    p->n = m.n;
    p->newest_at = m.newest_at;
}

void feed_page_clear(struct feed_page *p)
{
    p->len = 0;
    p->n = 0;
    p->newest_at = 0;
}

void feed_page_free(struct feed_page *p)
{
    mem_free(p->data);
    memset(p, 0, sizeof *p);
}

bool feed_page_open(struct feed_page_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 1;
    r->with_task = r->len >= 1 && r->data[0] == FEED_PAGE_FORMAT;
    return r->with_task || (r->len >= 1 && r->data[0] == FEED_PAGE_FORMAT_NO_TASK);
}

int feed_page_next(struct feed_page_reader *r, struct feed_event *out)
{
    if (r->pos >= r->len)
        return 0;
    size_t left = r->len - r->pos;
    if (left < EVENT_FIXED_BYTES)
        return -1;
    const unsigned char *in = r->data + r->pos;
    memcpy(out->id, in, FEED_ID_LEN);
    out->id[FEED_ID_LEN] = '\0';
    in += FEED_ID_LEN;
    out->type = (errand_state)*in++;
    out->at = get_i64(in);
    in += 8;
    size_t name_len = *in++, used = EVENT_FIXED_BYTES + name_len;
    if (left < used)
        return -1;
    memcpy(out->name, in, name_len);
    out->name[name_len] = '\0';
    in += name_len;
    out->has_task = r->with_task;
    out->task[0] = '\0';
    if (r->with_task) {
        if (left - used < TASK_LEN_BYTES)
            return -1;
        size_t task_len = (size_t)in[0] | (size_t)in[1] << 8;
        in += TASK_LEN_BYTES;
        used += TASK_LEN_BYTES + task_len;
        if (task_len > FEED_TASK_MAX || left < used)
            return -1;
        memcpy(out->task, in, task_len);
        out->task[task_len] = '\0';
    }
    r->pos += used;
    return 1;
}

int feed_page_read_events(int64_t first_seq, const void *data, size_t len, int64_t after, int limit,
                          struct run_event_list *out, errand_error *err)
{
    struct feed_page_reader r;
    if (!feed_page_open(&r, data, len))
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: change-feed page %lld has an unknown format",
                         (long long)first_seq);
    struct feed_event ev;
    int got;
    for (int64_t seq = first_seq; (got = feed_page_next(&r, &ev)) == 1; seq++) {
        if (seq <= after)
            continue;
        if (out->n == (size_t)limit)
            return 0;
        struct run_event *e = &out->items[out->n++];
        e->seq = seq;
        memcpy(e->id, ev.id, sizeof e->id);
        e->type = ev.type;
        e->at = ev.at;
        e->task = NULL;
        if (!(e->name = mem_strdup(ev.name)) || (ev.has_task && !(e->task = mem_strdup(ev.task))))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    return got == 0 ? 0
                    : error_set(err, ERRAND_ESTORE, NULL,
                                "store: change-feed page %lld is truncated", (long long)first_seq);
}
