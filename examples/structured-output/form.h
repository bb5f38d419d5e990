/* SPDX-License-Identifier: MIT */
/*
 * form.h — collecting a POST body as the fields of a form, whatever its encoding:
 * application/x-www-form-urlencoded and multipart/form-data (read by libmicrohttpd's
 * MHD_PostProcessor, a multipart file part counts as a text field), or a JSON object
 * (application/json, kept as text for the caller to parse). Any other body is ignored, and
 * every field is then missing, as FastAPI does for a form endpoint.
 * The whole body is capped at a limit; past it the form says so and keeps nothing more.
 * A form belongs to one request, handled by one thread.
 */
#ifndef SO_FORM_H
#define SO_FORM_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum form_kind { FORM_FIELDS, FORM_JSON, FORM_NONE } form_kind;

typedef struct form form;

/* Starts collecting the body of conn; reads its Content-Type. NULL when out of memory. */
form *form_new(struct MHD_Connection *conn, size_t max_bytes);

/* Feeds the next piece of the body (from the MHD access handler). */
void form_feed(form *f, const char *data, size_t size);

/* Ends the body: MHD_PostProcessor hands over a urlencoded body's last field only here. */
void form_finish(form *f);

form_kind form_get_kind(const form *f);
bool form_too_big(const form *f);
/* True when the body could not be parsed (malformed multipart, out of memory). */
bool form_failed(const form *f);

/* FORM_FIELDS: the value of field `name` (text, NUL-terminated), NULL if absent. When a field
 * repeats, the last value counts. */
const char *form_field(const form *f, const char *name);

/* FORM_JSON: the raw body (NUL-terminated, "" if empty). */
const char *form_json_text(const form *f);

void form_free(form *f);

#endif
