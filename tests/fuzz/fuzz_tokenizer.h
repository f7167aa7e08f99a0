/* The exercise both tokenizer harnesses give a loaded tokenizer: encode
 * text, decode the ids back in one go and through the streaming
 * detokenizer, then decode arbitrary ids (in and out of range). */
#ifndef LAGUNA_FUZZ_TOKENIZER_H
#define LAGUNA_FUZZ_TOKENIZER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "laguna_tokenizer.h"

static inline void fuzz_decode_ids(const laguna_tokenizer *tok, const int32_t *ids, size_t n,
                                   bool skip) {
    laguna_error err;
    char *text = NULL;
    size_t len = 0;
    if (laguna_tokenizer_decode(tok, ids, n, skip, &text, &len, &err) == LAGUNA_OK)
        laguna_tokenizer_free_text(text);
    laguna_detokenizer *d = NULL;
    if (laguna_detokenizer_new(tok, skip, &d, &err) != LAGUNA_OK) return;
    const char *piece;
    size_t m;
    for (size_t i = 0; i < n; i++)
        if (laguna_detokenizer_push(d, ids[i], &piece, &m, &err) != LAGUNA_OK) break;
    laguna_detokenizer_flush(d, &piece, &m, &err);
    laguna_detokenizer_free(d);
}

static inline void fuzz_tokenizer_round_trip(const laguna_tokenizer *tok, const char *text,
                                             size_t len, bool special) {
    laguna_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    if (laguna_tokenizer_encode(tok, text, len, special, &ids, &n, &err) != LAGUNA_OK) return;
    fuzz_decode_ids(tok, ids, n, !special);
    laguna_tokenizer_free_ids(ids);
}

#endif
