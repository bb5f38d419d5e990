/* SPDX-License-Identifier: MIT */
/*
 * run_row.c — owning and freeing the strings of task-run rows (run_row.h).
 */
#include "store/run_row.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"

int run_row_own_strings(struct run_row *r, errand_error *err)
{
    const char **fields[] = {
        &r->id,       &r->task,       &r->parameters,      &r->state_name, &r->state_message,
        &r->worker,   &r->tags,       &r->idempotency_key, &r->cache_key,  &r->retry_delays,
        &r->result,   &r->result_ref, &r->lease_token,     &r->retry_of,   &r->traceparent,
        &r->wait_for,
    };
    size_t n = sizeof fields / sizeof fields[0];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (*fields[i])
            total += strlen(*fields[i]) + 1;
    char *buf = mem_alloc(total ? total : 1);
    if (!buf)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    char *at = buf;
    for (size_t i = 0; i < n; i++) {
        if (!*fields[i])
            continue;
        size_t len = strlen(*fields[i]) + 1;
        memcpy(at, *fields[i], len);
        *fields[i] = at;
        at += len;
    }
    mem_free(r->owned);
    r->owned = buf;
    return 0;
}

void run_row_clear(struct run_row *r)
{
    mem_free(r->owned);
    memset(r, 0, sizeof *r);
}

void run_list_clear(struct run_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        run_row_clear(&l->rows[i]);
    mem_free(l->rows);
    l->rows = NULL;
    l->n = 0;
}

void run_id_norm(const char *id, char out[37])
{
    size_t len = id ? strlen(id) : 0;
    if (len >= 37) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = (id[i] >= 'A' && id[i] <= 'Z') ? (char)(id[i] - 'A' + 'a') : id[i];
    out[len] = '\0';
}
