/* SPDX-License-Identifier: MIT */
/*
 * form.c — body collection (see form.h). Fields arrive from MHD_PostProcessor in pieces (a
 * multipart value may span many calls, with a growing offset); a piece at offset 0 starts a
 * new value, so a repeated field replaces the earlier one. At most FORM_MAX_FIELDS distinct
 * names are kept; others are dropped (this API reads three).
 */
#include "form.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FORM_MAX_FIELDS 16
#define FORM_NAME_MAX 64
#define POST_BUFFER_BYTES (16 * 1024)

typedef struct field {
    char name[FORM_NAME_MAX];
    char *value;
    size_t len;
} field;

struct form {
    form_kind kind;
    struct MHD_PostProcessor *pp;
    size_t max_bytes, seen_bytes;
    bool too_big, failed;
    field fields[FORM_MAX_FIELDS];
    size_t n_fields;
    char *json;
    size_t json_len;
};

static bool append(char **buf, size_t *len, const char *data, size_t size)
{
    char *grown = realloc(*buf, *len + size + 1);
    if (!grown)
        return false;
    memcpy(grown + *len, data, size);
    *len += size;
    grown[*len] = '\0';
    *buf = grown;
    return true;
}

static field *find_field(form *f, const char *name)
{
    for (size_t i = 0; i < f->n_fields; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            return &f->fields[i];
    return NULL;
}

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    form *f = cls;
    if (!key || strlen(key) >= FORM_NAME_MAX)
        return MHD_YES; /* not a field this API reads */
    field *fd = find_field(f, key);
    if (!fd) {
        if (f->n_fields == FORM_MAX_FIELDS)
            return MHD_YES;
        fd = &f->fields[f->n_fields++];
        strcpy(fd->name, key);
    }
    if (off == 0) { /* a new value for this name: the last one wins */
        free(fd->value);
        fd->value = NULL;
        fd->len = 0;
    }
    if (!append(&fd->value, &fd->len, data ? data : "", size)) {
        f->failed = true;
        return MHD_NO;
    }
    return MHD_YES;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

form *form_new(struct MHD_Connection *conn, size_t max_bytes)
{
    form *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->max_bytes = max_bytes;
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) {
        f->kind = FORM_NONE;
    } else if (has_prefix_ci(ct, "application/json") || strstr(ct, "+json")) {
        f->kind = FORM_JSON;
    } else if (has_prefix_ci(ct, MHD_HTTP_POST_ENCODING_FORM_URLENCODED) ||
               has_prefix_ci(ct, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA)) {
        f->kind = FORM_FIELDS;
        f->pp = MHD_create_post_processor(conn, POST_BUFFER_BYTES, on_field, f);
        if (!f->pp) /* e.g. multipart without a boundary: no fields can be read */
            f->kind = FORM_NONE;
    } else {
        f->kind = FORM_NONE;
    }
    return f;
}

void form_feed(form *f, const char *data, size_t size)
{
    if (f->too_big || f->failed)
        return;
    f->seen_bytes += size;
    if (f->seen_bytes > f->max_bytes) {
        f->too_big = true;
        return;
    }
    if (f->kind == FORM_FIELDS) {
        if (MHD_post_process(f->pp, data, size) != MHD_YES)
            f->failed = true;
    } else if (f->kind == FORM_JSON) {
        if (!append(&f->json, &f->json_len, data, size))
            f->failed = true;
    }
}

void form_finish(form *f)
{
    if (!f->pp)
        return;
    if (MHD_destroy_post_processor(f->pp) != MHD_YES && !f->too_big)
        f->failed = true;
    f->pp = NULL;
}

form_kind form_get_kind(const form *f)
{
    return f->kind;
}

bool form_too_big(const form *f)
{
    return f->too_big;
}

bool form_failed(const form *f)
{
    return f->failed;
}

const char *form_field(const form *f, const char *name)
{
    for (size_t i = 0; i < f->n_fields; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            return f->fields[i].value ? f->fields[i].value : "";
    return NULL;
}

const char *form_json_text(const form *f)
{
    return f->json ? f->json : "";
}

void form_free(form *f)
{
    if (!f)
        return;
    if (f->pp)
        MHD_destroy_post_processor(f->pp);
    for (size_t i = 0; i < f->n_fields; i++)
        free(f->fields[i].value);
    free(f->json);
    free(f);
}
