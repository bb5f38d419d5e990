/* SPDX-License-Identifier: MIT */
/*
 * target_type.h — what the caller asked the payload to become: a Python-style type expression
 * as the seed's marvin.cast(target=...) takes ("float", "builtins.float", "list[str]",
 * "dict[str, int]", nested as deep as TARGET_MAX_DEPTH), or a JSON Schema object given inline
 * (as text starting with "{", or as an object in a JSON body). Both become one JSON Schema,
 * which the task sends to the model and checks the answer against.
 * Used by the API (to refuse a bad target_type with 422 before anything is submitted) and by
 * the task (to build the request), so both accept exactly the same set.
 */
#ifndef SO_TARGET_TYPE_H
#define SO_TARGET_TYPE_H

#include <jansson.h>
#include <stddef.h>

#define TARGET_MAX_DEPTH 16
#define TARGET_WHY_MAX 512

typedef struct target_type {
    json_t *schema;    /* the JSON Schema the result must match (owned) */
    json_t *canonical; /* what goes into the run's parameters: "list[str]" for a type
                          expression (so "List[ str ]" and "list[str]" share a cache key), or
                          the schema object itself (owned) */
} target_type;

/* Parses a target given as text: a type expression, or a JSON Schema object's text.
 * On failure returns -1 with a message in why (for a 422 or a failed run). */
int target_type_parse_text(const char *text, target_type *out, char why[TARGET_WHY_MAX]);

/* Parses a target given as JSON: a string (as above) or a JSON Schema object. */
int target_type_parse_json(json_t *target, target_type *out, char why[TARGET_WHY_MAX]);

void target_type_clear(target_type *t);

#endif
