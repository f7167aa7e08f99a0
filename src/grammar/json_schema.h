/* The grammar of the JSON texts a JSON Schema describes, for structured
 * output (OpenAI's response_format json_schema and json_object).
 *
 * Enforced: type (one or a list), properties (written in the schema's
 * order), required, additionalProperties (absent or false: only the listed
 * properties; true or a schema: more after them), items, prefixItems,
 * minItems / maxItems, enum, const, anyOf and oneOf (both as "one of
 * these"), allOf of one schema, $ref to "#" or a JSON pointer into the
 * schema (recursion allowed), nullable, minLength / maxLength of strings.
 * Annotations (title, description, default, examples, $schema, $id, ...)
 * and value checks the grammar cannot express (format, pattern, minimum,
 * maximum, multipleOf, uniqueItems, ...) are ignored. Keywords that change
 * what is valid in ways it cannot follow (not, if/then/else,
 * patternProperties, dependentSchemas, contains, ...) are refused with an
 * error naming the keyword and where it is. Whitespace between tokens is
 * bounded (a space, or a newline and up to 32 spaces or tabs), so a model
 * cannot loop on it; integers have at most 16 digits, fractions 16,
 * exponents 3. */
#ifndef LAGUNA_GRAMMAR_JSON_SCHEMA_H
#define LAGUNA_GRAMMAR_JSON_SCHEMA_H

#include "grammar/grammar.h"

struct cJSON;

/* The grammar of texts valid under schema; schema NULL: any JSON object
 * (json_object mode). A little leading whitespace is allowed, nothing after
 * the value. */
laguna_status lg_json_schema_grammar(const struct cJSON *schema, lg_grammar *out, laguna_error *err);

#endif
