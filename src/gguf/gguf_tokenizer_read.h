/* A GGUF's embedded tokenizer and chat template, made usable by the
 * engine's tokenizer.json and Jinja code: the "tokenizer.ggml.*" keys are
 * turned back into an equivalent tokenizer.json (BPE vocabulary and merges,
 * control / user-defined tokens as added tokens, the pre-tokenizer that
 * llama.cpp's "tokenizer.ggml.pre" name stands for). */
#ifndef LAGUNA_GGUF_TOKENIZER_READ_H
#define LAGUNA_GGUF_TOKENIZER_READ_H

#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"

laguna_status lg_gguf_load_tokenizer(const char *gguf_path, laguna_tokenizer **out, laguna_error *err);

/* tokenizer.chat_template, with bos/eos token strings from the vocabulary. */
laguna_status lg_gguf_load_chat_template(const char *gguf_path, laguna_chat_template **out, laguna_error *err);

#endif
