/* JSON in and out of template values.
 *
 * In: JSON text (keeping Python's int/float distinction: "30" is an int,
 * "30.0" a float, as json.loads reads them) or a cJSON tree (cJSON keeps only
 * doubles, so integral numbers become ints there).
 * Out: transformers' `tojson` filter, which is json.dumps(x, ensure_ascii=False,
 * indent=indent, separators=separators, sort_keys=sort_keys). */
#ifndef LAGUNA_TEMPLATE_JSON_H
#define LAGUNA_TEMPLATE_JSON_H

#include "template/value.h"

struct cJSON;

/* Parses JSON text; on failure returns false and writes a one-line reason
 * (with the byte offset) into why. Nesting is limited to max_depth. */
bool jt_json_parse(jt_arena *a, const char *text, size_t len, int max_depth, jt_value *out,
                   char *why, size_t why_size);
/* Converts a cJSON tree; false when it nests deeper than max_depth. */
bool jt_from_cjson(jt_arena *a, const struct cJSON *item, int max_depth, jt_value *out);

typedef struct {
    const char *indent;   /* NULL: one line; else the string of one indent level */
    const char *item_sep; /* default ", " (or "," with indent) */
    const char *key_sep;  /* default ": " */
    bool ensure_ascii;
    bool sort_keys;
} jt_json_style;

/* Writes v as json.dumps would. Returns NULL on success, else the error
 * message (e.g. "Object of type Undefined is not JSON serializable"). */
const char *jt_json_write(jt_sb *b, jt_value v, const jt_json_style *style, int max_depth);

#endif
