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

bool text_input_is_gguf(const char *path) {
    if (!is_file(path)) return false;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool gguf = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return gguf;
}

laguna_status text_input_load_tokenizer(const char *model_path, laguna_tokenizer **out, laguna_error *err) {
    if (text_input_is_gguf(model_path)) return lg_gguf_load_tokenizer(model_path, out, err);
    return laguna_tokenizer_load(model_path, out, err);
}

laguna_status text_input_load_template(const char *model_path, laguna_chat_template **out, laguna_error *err) {
    if (text_input_is_gguf(model_path)) return lg_gguf_load_chat_template(model_path, out, err);
    return laguna_chat_template_load(model_path, out, err);
}

char *text_input_read_stdin(size_t max_bytes, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, stdin);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            char *bigger = cap <= max_bytes ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (!buf || ferror(stdin) || n > max_bytes) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
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
