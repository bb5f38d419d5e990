/* SPDX-License-Identifier: MIT */
/*
 * schema.h — the JSON Schema side of structured output: checking that a schema is one we can
 * use, shaping it for the chat-completions request, and validating the model's answer.
 *
 * The validator covers the subset that describes data (draft 2020-12 keywords): type, enum,
 * const, properties, required, additionalProperties, items, minItems/maxItems,
 * minLength/maxLength, minimum/maximum, exclusiveMinimum/exclusiveMaximum, anyOf, oneOf (as
 * anyOf), allOf, and local $ref ("#/$defs/..." or "#/definitions/..."). Other keywords
 * (pattern, format, ...) are accepted and not checked. Along the way a value is coerced the
 * way a typed language would read it: an integer where "number" is asked becomes a real (3 ->
 * 3.0, as Python's float), and a real with no fraction where "integer" is asked becomes an
 * integer.
 */
#ifndef SO_SCHEMA_H
#define SO_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Checks that schema is an object whose "type", "properties", "items", "required", "enum"
 * and $ref keywords have usable values. Returns 0, or -1 with the problem in why. */
int schema_lint(json_t *schema, char *why, size_t why_len);

/* Validates value against schema. Returns a new reference to the (coerced) value, or NULL
 * with why naming the place and the problem ("at $.value[1]: expected integer, got string"). */
json_t *schema_check(json_t *value, json_t *schema, char *why, size_t why_len);

/* The schema to send as response_format.json_schema.schema. OpenAI's structured outputs
 * want an object at the root, so a schema of any other type is wrapped as
 *   {"type":"object","properties":{"value":S},"required":["value"],"additionalProperties":false}
 * and *wrapped set: the answer's "value" member is then the result. New reference. */
json_t *schema_for_request(json_t *schema, bool *wrapped);

/* True when schema fits OpenAI's strict mode: every object lists its properties, requires
 * all of them and forbids others; every array says its items. dict[str, T] cannot (its keys
 * are open), so such targets are sent with "strict": false. */
bool schema_is_strict(json_t *schema);

#endif
