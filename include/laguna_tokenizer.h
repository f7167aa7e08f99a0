/* laguna.c tokenizer API: the tokenizer.json a checkpoint ships (Hugging Face
 * tokenizers format), encoding and decoding byte for byte as tokenizers 0.23
 * does, plus a streaming detokenizer for generation.
 *
 * Supported: the BPE model (byte-level or not, byte_fallback, unk_token,
 * fuse_unk, continuing_subword_prefix, end_of_word_suffix, ignore_merges);
 * added tokens (special or not, lstrip, rstrip, single_word, normalized); the
 * usual normalizers, pre-tokenizers, post-processors and decoders. A
 * component of another type is a load error that names it. The file's
 * "truncation" and "padding" settings are ignored (transformers disables them
 * unless a call asks for them).
 *
 * Text is UTF-8. Invalid UTF-8 given to encode is read the way Python's
 * bytes.decode("utf-8", errors="replace") reads it: each invalid sequence
 * becomes U+FFFD. Decoded text is always valid UTF-8.
 *
 * Thread safety: a loaded tokenizer is read-only except for an internal word
 * cache behind a lock, so any number of threads may encode and decode with
 * one tokenizer at once. A detokenizer belongs to one thread. */
#ifndef LAGUNA_TOKENIZER_H
#define LAGUNA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct laguna_tokenizer laguna_tokenizer;

/* Loads `path`: a tokenizer.json file, or a checkpoint folder holding one. */
laguna_status laguna_tokenizer_load(const char *path, laguna_tokenizer **out, laguna_error *err);

/* Loads tokenizer.json content from memory; `source` names it in messages. */
laguna_status laguna_tokenizer_load_json(const char *json, size_t len, const char *source,
                                         laguna_tokenizer **out, laguna_error *err);

void laguna_tokenizer_free(laguna_tokenizer *tok);

/* Encodes text[0..len) into *ids (*n_ids of them; free with
 * laguna_tokenizer_free_ids). add_special_tokens applies the post-processor
 * (e.g. a BOS template), as tokenizers' encode(text, add_special_tokens). */
laguna_status laguna_tokenizer_encode(const laguna_tokenizer *tok, const char *text, size_t len,
                                      bool add_special_tokens, int32_t **ids, size_t *n_ids,
                                      laguna_error *err);
void laguna_tokenizer_free_ids(int32_t *ids);

/* Decodes ids into NUL-terminated UTF-8 *text of *len bytes (free with
 * laguna_tokenizer_free_text). skip_special_tokens drops the added tokens
 * (<s>, </s>, <think>, ...: all of them, whether or not tokenizer.json marks
 * them special, as transformers' decode does for Laguna). Ids the tokenizer
 * does not know are skipped, as tokenizers does. */
laguna_status laguna_tokenizer_decode(const laguna_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                      bool skip_special_tokens, char **text, size_t *len,
                                      laguna_error *err);
void laguna_tokenizer_free_text(char *text);

/* The id of a token string (added tokens first, then the model's vocabulary),
 * or -1. */
int32_t laguna_tokenizer_token_to_id(const laguna_tokenizer *tok, const char *token, size_t len);

/* The token string of an id (borrowed, NUL-terminated, *len bytes when len
 * is non-NULL), or NULL for an unknown id. */
const char *laguna_tokenizer_id_to_token(const laguna_tokenizer *tok, int32_t id, size_t *len);

/* Number of distinct tokens: the model's vocabulary plus added tokens that
 * are not in it (tokenizers' get_vocab_size(with_added_tokens=True)). */
size_t laguna_tokenizer_vocab_size(const laguna_tokenizer *tok);

/* True when id is an added (control) token: what skip_special_tokens drops. */
bool laguna_tokenizer_is_special(const laguna_tokenizer *tok, int32_t id);

/* ---- streaming detokenizer ------------------------------------------------ */

/* Turns ids into text one at a time during generation. Each push returns the
 * text that this id completes; text that later ids could still change (an
 * incomplete UTF-8 character, a trailing U+FFFD) is held back until they
 * arrive or until flush. The concatenation of all pushes and the flush
 * equals laguna_tokenizer_decode of all the ids. */
typedef struct laguna_detokenizer laguna_detokenizer;

laguna_status laguna_detokenizer_new(const laguna_tokenizer *tok, bool skip_special_tokens,
                                     laguna_detokenizer **out, laguna_error *err);
/* *text (borrowed until the next call on this detokenizer, NUL-terminated)
 * receives *len new bytes, possibly none. */
laguna_status laguna_detokenizer_push(laguna_detokenizer *d, int32_t id, const char **text,
                                      size_t *len, laguna_error *err);
/* Returns whatever is still held back and starts over. */
laguna_status laguna_detokenizer_flush(laguna_detokenizer *d, const char **text, size_t *len,
                                       laguna_error *err);
void laguna_detokenizer_free(laguna_detokenizer *d);

#ifdef __cplusplus
}
#endif
#endif
