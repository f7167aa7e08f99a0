/* Writing a checkpoint folder's tokenizer (tokenizer.json,
 * tokenizer_config.json, chat_template.jinja) into GGUF "tokenizer.*" keys
 * the way llama.cpp's Laguna converter does (see gguf_tokenizer.c). */
#ifndef LAGUNA_GGUF_TOKENIZER_H
#define LAGUNA_GGUF_TOKENIZER_H

#include "gguf/gguf_writer.h"

/* vocab_size is the model's (config.json); ids the tokenizer leaves unused
 * become "[PAD<id>]" tokens. */
laguna_status lg_gguf_put_tokenizer(lg_gguf_writer *w, const char *dir, int vocab_size,
                                    laguna_error *err);

#endif
