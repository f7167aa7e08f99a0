/* Pre-tokenizers of tokenizer.json: they cut the normalized text into the
 * words that the model tokenizes one by one. Supported types (tokenizers
 * 0.23 semantics): Sequence, Split, ByteLevel, Digits, Whitespace,
 * WhitespaceSplit, Metaspace, Punctuation, BertPreTokenizer and
 * CharDelimiterSplit; any other type is a load error naming it. */
#ifndef LAGUNA_TOKENIZER_PRE_TOKENIZERS_H
#define LAGUNA_TOKENIZER_PRE_TOKENIZERS_H

#include <cjson/cJSON.h>

#include "tokenizer/json_util.h"
#include "tokenizer/pretokenized.h"
#include "tokenizer/regex.h"

typedef struct lg_pretokenizer lg_pretokenizer;

laguna_status lg_pretokenizer_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                        lg_pretokenizer **out);
void lg_pretokenizer_free(lg_pretokenizer *p);

/* Working memory of one encode call. */
typedef struct {
    lg_regex_scratch *regex;
    lg_matches matches;
    lg_pieces spare; /* the other half of a double buffer */
} lg_pretok_scratch;

void lg_pretok_scratch_free(lg_pretok_scratch *s);

/* Pre-tokenizes *pieces in place (text pieces only; added tokens pass
 * through), appending any rewritten text to `arena`. */
laguna_status lg_pretokenizer_apply(const lg_pretokenizer *p, lg_pieces *pieces, lg_buf *arena,
                                    lg_pretok_scratch *scratch, laguna_error *err);

/* Metaspace's settings, shared with the Metaspace decoder. */
typedef enum { LG_PREPEND_ALWAYS, LG_PREPEND_FIRST, LG_PREPEND_NEVER } lg_prepend_scheme;
laguna_status lg_metaspace_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                     uint32_t *replacement, lg_prepend_scheme *scheme, bool *split);

/* A split behaviour name ("Isolated", ...) in field `key`. */
laguna_status lg_split_behavior_from_json(const lg_json_ctx *c, const cJSON *json,
                                          const char *where, const char *key, bool required,
                                          lg_split_behavior *out);

#endif
