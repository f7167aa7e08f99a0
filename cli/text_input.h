/* Turning user text into token ids with a checkpoint's tokenizer, for the
 * commands that take text (generate -p, perplexity --file, chat). */
#ifndef LAGUNA_CLI_TEXT_INPUT_H
#define LAGUNA_CLI_TEXT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "laguna_chat.h"
#include "laguna_tokenizer.h"

/* Whether path is a file that starts with the GGUF magic. */
bool text_input_is_gguf(const char *path);

/* The tokenizer / chat template of a model: tokenizer.json and the template
 * files of a checkpoint folder, or the keys embedded in a GGUF file. */
laguna_status text_input_load_tokenizer(const char *model_path, laguna_tokenizer **out, laguna_error *err);
laguna_status text_input_load_template(const char *model_path, laguna_chat_template **out, laguna_error *err);

/* All of stdin (at most max_bytes) as a NUL-terminated heap string; NULL
 * when it cannot be read or is longer. */
char *text_input_read_stdin(size_t max_bytes, size_t *len);

/* Reads `path` and encodes it with DIR's tokenizer.json (no special tokens).
 * Prints a message and returns -1 on failure. */
int text_input_tokenize_file(const char *model_dir, const char *path, int32_t **ids, size_t *n);

#endif
