/* Text input for commands: the model's tokenizer and chat template (from a
 * checkpoint folder or a GGUF file), and files encoded with it. */
#include "text_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_tokenizer_read.h"
#include "io/file_util.h"

#include <sys/stat.h>
#include "laguna_tokenizer.h"

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

laguna_status text_input_load_tokenizer(const char *model_path, laguna_tokenizer **out, laguna_error *err) {
    if (is_file(model_path) && strstr(model_path, ".json") == NULL) return lg_gguf_load_tokenizer(model_path, out, err);
    return laguna_tokenizer_load(model_path, out, err);
}

laguna_status text_input_load_template(const char *model_path, laguna_chat_template **out, laguna_error *err) {
    if (is_file(model_path)) return lg_gguf_load_chat_template(model_path, out, err);
    return laguna_chat_template_load(model_path, out, err);
}

int text_input_tokenize_file(const char *model_dir, const char *path, int32_t **ids, size_t *n) {
    laguna_error err = {0};
    char *text = NULL;
    size_t len = 0;
    laguna_tokenizer *tok = NULL;
    int rc = -1;
    if (lg_read_file(path, (size_t)1 << 30, &text, &len, &err) == LAGUNA_OK &&
        text_input_load_tokenizer(model_dir, &tok, &err) == LAGUNA_OK) {
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
