/* Text input for commands, until the tokenizer is wired in: a clear refusal. */
#include "text_input.h"

#include <stdio.h>

int text_input_tokenize_file(const char *model_dir, const char *path, int32_t **ids, size_t *n) {
    (void)model_dir, (void)path, (void)ids, (void)n;
    fprintf(stderr, "laguna: text input needs the tokenizer, which this build does not have yet; use token ids\n");
    return -1;
}
