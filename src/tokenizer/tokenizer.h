/* The loaded tokenizer (laguna_tokenizer) as the library's tokenizer files
 * share it: the model, the added vocabulary, the pipeline components and
 * the id -> string table used for decoding. */
#ifndef LAGUNA_TOKENIZER_TOKENIZER_H
#define LAGUNA_TOKENIZER_TOKENIZER_H

#include "laguna_tokenizer.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/word_cache.h"

/* Flags per id. */
enum {
    LG_ID_SKIP = 1, /* dropped by skip_special_tokens: it decodes from an added token's string */
};

struct laguna_tokenizer {
    lg_bpe bpe;
    lg_added_vocab added;
    lg_normalizer *normalizer;      /* NULL: none */
    lg_pretokenizer *pre_tokenizer; /* NULL: none */
    lg_post_processor *post_processor;
    lg_decoder *decoder; /* NULL: tokens are joined with spaces */

    /* What each id decodes from: an added token's (normalized) content or
     * the model's token; NULL for ids nobody uses. */
    const char **id_str;
    uint32_t *id_len;
    uint8_t *id_flags;
    size_t n_ids;
    size_t vocab_size;

    lg_word_cache *cache; /* shared by encode calls, with its own lock */
};

/* The string an id decodes from, or NULL. */
static inline const char *lg_tokenizer_id_str(const laguna_tokenizer *tok, int32_t id,
                                              size_t *len) {
    if (id < 0 || (size_t)id >= tok->n_ids || !tok->id_str[id]) return NULL;
    *len = tok->id_len[id];
    return tok->id_str[id];
}

/* Decodes into out (appending), as laguna_tokenizer_decode. */
laguna_status lg_tokenizer_decode_into(const laguna_tokenizer *tok, const int32_t *ids,
                                       size_t n_ids, bool skip_special_tokens, lg_buf *out,
                                       laguna_error *err);

#endif
