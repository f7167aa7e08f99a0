/* Decoders of tokenizer.json: they turn the token strings of a list of ids
 * back into text. Supported types (tokenizers 0.23 semantics): ByteLevel,
 * Sequence, Replace, Strip, Fuse, ByteFallback, Metaspace, BPEDecoder,
 * WordPiece and CTC; any other type is a load error naming it. */
#ifndef LAGUNA_TOKENIZER_DECODERS_H
#define LAGUNA_TOKENIZER_DECODERS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "tokenizer/json_util.h"
#include "tokenizer/strbuf.h"

typedef struct lg_decoder lg_decoder;

laguna_status lg_decoder_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                   lg_decoder **out);
void lg_decoder_free(lg_decoder *d);

/* Decoder::decode: runs the decoder chain over `tokens` (consumed as
 * scratch) and appends the joined result to out. */
laguna_status lg_decoder_decode(const lg_decoder *d, lg_strlist *tokens, lg_buf *out,
                                laguna_error *err);

/* True when the decoder is a lone ByteLevel (possibly inside a Sequence of
 * one): each token then decodes to bytes on its own, which the streaming
 * detokenizer uses to work in constant time per token. */
bool lg_decoder_is_byte_level(const lg_decoder *d);

/* The ByteLevel decoding of one token: its characters' bytes, or the token
 * itself when a character is outside the byte map. */
void lg_byte_level_decode_token(lg_buf *out, const char *token, size_t len);

#endif
