/* Which tokens a grammar allows next: the vocabulary's byte strings sorted,
 * so that tokens sharing a prefix are neighbours and the matcher walks each
 * shared prefix once (an implicit trie), and a token whose prefix is
 * refused takes every neighbour with that prefix along. Inside a JSON
 * string nearly every token is allowed and the walk is table lookups; in
 * structure most tokens are turned away at their first byte.
 *
 * Added (control) tokens are never allowed: end of text is the caller's to
 * allow when the matcher's state is accepting. */
#ifndef LAGUNA_GRAMMAR_TOKEN_MASK_H
#define LAGUNA_GRAMMAR_TOKEN_MASK_H

#include <stdint.h>

#include "grammar/matcher.h"
#include "laguna_tokenizer.h"

typedef struct lg_token_bytes lg_token_bytes;

/* The byte strings of ids 0 .. n_vocab - 1 (the model's logits) that the
 * tokenizer decodes to text: byte-level tokens as their bytes, others as
 * laguna_tokenizer_decode gives them. */
laguna_status lg_token_bytes_new(const laguna_tokenizer *tok, int n_vocab, lg_token_bytes **out,
                                 laguna_error *err);
/* The same from a list of byte strings (bytes[id] of len[id] bytes; NULL or
 * 0: no text), for benchmarks and tests without a tokenizer. */
laguna_status lg_token_bytes_from_list(const char *const *bytes, const int *len, int n_vocab, lg_token_bytes **out,
                                       laguna_error *err);
void lg_token_bytes_free(lg_token_bytes *t);
/* Id's bytes (borrowed) and their count; -1 when id never stands for text. */
int lg_token_bytes_of(const lg_token_bytes *t, int32_t id, const uint8_t **bytes);
int lg_token_bytes_n_vocab(const lg_token_bytes *t);

/* Sets in allowed (n_vocab bits, cleared first) the tokens whose bytes the
 * matcher takes from state s; returns how many, or LG_MATCHER_ERROR. */
int lg_token_mask(const lg_token_bytes *t, lg_matcher *m, int s, uint64_t *allowed);

/* The state after all of id's bytes from s (LG_MATCHER_DEAD when the
 * grammar refuses them or id has none). */
int lg_token_advance(const lg_token_bytes *t, lg_matcher *m, int s, int32_t id);

#endif
