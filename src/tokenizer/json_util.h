/* Reading tokenizer.json fields with cJSON: typed getters that fail with a
 * message naming the file, the component's place in it and the field, e.g.
 * "tok/tokenizer.json: pre_tokenizer.pretokenizers[1]: field 'invert' must
 * be true or false". */
#ifndef LAGUNA_TOKENIZER_JSON_UTIL_H
#define LAGUNA_TOKENIZER_JSON_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"
#include "tokenizer/regex.h"

typedef struct {
    const char *source; /* the file name used in messages */
    laguna_error *err;
} lg_json_ctx;

/* Fails with "SOURCE: WHERE: <formatted reason>". */
laguna_status lg_json_fail(const lg_json_ctx *c, const char *where, laguna_status code,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The component's "type" string; *type is NULL when the field is absent. */
laguna_status lg_json_type(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char **type);

/* Optional fields: absent or null gives the default. */
laguna_status lg_json_bool(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, bool def, bool *out);
laguna_status lg_json_uint(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, uint32_t def, uint32_t max, uint32_t *out);
/* A string field; *out borrows cJSON's storage (NULL when absent or null
 * and not required). Strings may not hold NUL characters. */
laguna_status lg_json_string(const lg_json_ctx *c, const cJSON *obj, const char *where,
                             const char *key, bool required, const char **out);
/* A string holding exactly one character (Metaspace's replacement, ...);
 * *out is its code point. */
laguna_status lg_json_char(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, uint32_t def, uint32_t *out);
/* A required array field. */
laguna_status lg_json_array(const lg_json_ctx *c, const cJSON *obj, const char *where,
                            const char *key, const cJSON **out);

/* A {"String": s} or {"Regex": r} object in field "pattern" (Split,
 * Replace): a literal or an Oniguruma-style regex. */
laguna_status lg_pattern_from_json(const lg_json_ctx *c, const cJSON *obj, const char *where,
                                   lg_regex **out);

/* "parent.key" or "parent.key[i]" (i < 0: no index) into buf. */
const char *lg_json_where(char *buf, size_t cap, const char *parent, const char *key, int index);

#endif
