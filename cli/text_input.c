/* Text input for commands: read a file and encode it with the checkpoint's
 * tokenizer.json. */
#include "text_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file_util.h"
#include "laguna_tokenizer.h"

int text_input_tokenize_file(const char *model_dir, const char *path, int32_t **ids, size_t *n) {
    laguna_error err = {0};
    char *text = NULL;
    size_t len = 0;
    laguna_tokenizer *tok = NULL;
    int rc = -1;
    if (lg_read_file(path, (size_t)1 << 30, &text, &len, &err) == LAGUNA_OK &&
        laguna_tokenizer_load(model_dir, &tok, &err) == LAGUNA_OK) {
        int32_t *out = NULL;
        if (laguna_tokenizer_encode(tok, text, len, false, &out, n, &err) == LAGUNA_OK) {
            *ids = malloc(sizeof(int32_t) * (*n ? *n : 1));
            if (*ids) {
                memcpy(*ids, out, sizeof(int32_t) * *n);
                rc = 0;
            }
            laguna_tokenizer_free_ids(out);
        }
    }
    if (rc) fprintf(stderr, "laguna: %s\n", err.message[0] ? err.message : "out of memory");
    laguna_tokenizer_free(tok);
    free(text);
    return rc;
}
