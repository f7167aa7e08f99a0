/* Normalizers of tokenizer.json: the string transformations applied to the
 * text between added tokens before pre-tokenization. Supported types:
 * Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip,
 * StripAccents, ByteLevel, Nmt and BertNormalizer (as tokenizers 0.23 has
 * them); any other type is a load error naming it. */
#ifndef LAGUNA_TOKENIZER_NORMALIZERS_H
#define LAGUNA_TOKENIZER_NORMALIZERS_H

#include <cjson/cJSON.h>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/strbuf.h"

typedef struct lg_normalizer lg_normalizer;

/* Builds the normalizer described by `json` (at `where` in the file). */
laguna_status lg_normalizer_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                      lg_normalizer **out);
void lg_normalizer_free(lg_normalizer *n);

/* Replaces out's contents with the normalized form of valid UTF-8 s[0..len). */
laguna_status lg_normalizer_apply(const lg_normalizer *n, const char *s, size_t len, lg_buf *out,
                                  lg_regex_scratch *scratch, laguna_error *err);

#endif
