/* A bounded cache of BPE results per pre-tokenized word (tokenizers keeps
 * one too). Most words of a text repeat, so looking them up skips the merge
 * loop. When the cache is full it is emptied and refilled; its memory never
 * exceeds the limits given at creation. One thread at a time uses it:
 * acquire it first, and go without it when another thread holds it. */
#ifndef LAGUNA_TOKENIZER_WORD_CACHE_H
#define LAGUNA_TOKENIZER_WORD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lg_word_cache lg_word_cache;

/* Holds up to max_words words of fewer than max_word_bytes bytes each. */
lg_word_cache *lg_word_cache_new(size_t max_words, size_t max_word_bytes);
void lg_word_cache_free(lg_word_cache *c);

/* Takes the cache for this thread; false when another thread has it. */
bool lg_word_cache_acquire(lg_word_cache *c);
void lg_word_cache_release(lg_word_cache *c);

/* The cached ids of a word (borrowed until the next put), or false. */
bool lg_word_cache_get(const lg_word_cache *c, const char *word, size_t len, const int32_t **ids,
                       size_t *n_ids);
/* Remembers a word's ids (silently skipped when too long or out of memory). */
void lg_word_cache_put(lg_word_cache *c, const char *word, size_t len, const int32_t *ids,
                       size_t n_ids);

#endif
