/* Added tokens (tokenizer.json "added_tokens"): the special and control
 * tokens matched in the text before the model sees it, as tokenizers'
 * AddedVocabulary does it.
 *
 * Tokens with normalized=false are found in the raw text first; the text
 * between them is normalized, and tokens with normalized=true are then found
 * in that normalized text (matching their normalized content). Each search
 * takes the leftmost match, the longest one there, then continues after it;
 * single_word, lstrip and rstrip are applied to each match as in
 * AddedVocabulary::find_matches. */
#ifndef LAGUNA_TOKENIZER_ADDED_TOKENS_H
#define LAGUNA_TOKENIZER_ADDED_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/hashmap.h"
#include "tokenizer/pretokenized.h"

typedef struct {
    char *content; /* as written in tokenizer.json */
    size_t len;
    char *pattern; /* what is matched: content, or its normalized form */
    size_t pattern_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} lg_added_token;

/* A byte trie over token patterns; edges live in a pair map keyed by
 * (node, byte). */
typedef struct {
    lg_pairmap edges;
    int32_t *terminal; /* per node: index of the token ending there, or -1 */
    size_t n_nodes, cap_nodes;
    bool first_byte[256];
    bool empty;
} lg_token_trie;

typedef struct {
    lg_added_token *tokens;
    size_t n, cap;
    lg_strmap by_content; /* content -> index in tokens */
    lg_token_trie raw, normalized;
} lg_added_vocab;

void lg_added_vocab_free(lg_added_vocab *v);

/* Adds or updates a token (AddedVocabulary::add_tokens with an id already
 * chosen); `pattern` is the normalized content or NULL. False when out of
 * memory. */
bool lg_added_vocab_add(lg_added_vocab *v, const char *content, size_t len, int32_t id,
                        bool single_word, bool lstrip, bool rstrip, bool normalized, bool special,
                        const char *pattern, size_t pattern_len);

/* The index of the token with this content, or -1. */
int32_t lg_added_vocab_find(const lg_added_vocab *v, const char *content, size_t len);

/* Builds both tries from the current tokens; false when out of memory. */
bool lg_added_vocab_build(lg_added_vocab *v);

/* Splits `piece` (text in arena) on the tokens of one trie, appending text
 * pieces and token pieces to out. */
void lg_added_vocab_split(const lg_added_vocab *v, bool normalized, const lg_piece *piece,
                          const lg_buf *arena, lg_pieces *out);

#endif
