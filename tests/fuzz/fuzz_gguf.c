/* Fuzzes a GGUF file: the model (header, metadata, tensor infos, the Laguna
 * config from metadata), its tokenizer and its chat template. */
#include "fuzz_util.h"
#include "gguf/gguf_tokenizer_read.h"
#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("model.gguf", data, size);
    const char *p = fuzz_path("model.gguf");
    laguna_model_options opt = {.n_threads = 1, .load_mode = LAGUNA_LOAD_MMAP};
    laguna_model *m = NULL;
    laguna_error err;
    if (laguna_model_open(p, &opt, &m, &err) == LAGUNA_OK) laguna_model_free(m);
    laguna_tokenizer *tok = NULL;
    if (lg_gguf_load_tokenizer(p, &tok, &err) == LAGUNA_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (laguna_tokenizer_encode(tok, "Hello wörld 12 <s>", 19, true, &ids, &n, &err) == LAGUNA_OK) {
            char *text = NULL;
            size_t tl = 0;
            if (laguna_tokenizer_decode(tok, ids, n, false, &text, &tl, &err) == LAGUNA_OK)
                laguna_tokenizer_free_text(text);
            laguna_tokenizer_free_ids(ids);
        }
        laguna_tokenizer_free(tok);
    }
    laguna_chat_template *t = NULL;
    if (lg_gguf_load_chat_template(p, &t, &err) == LAGUNA_OK) {
        laguna_chat_limits lim = {.max_output_bytes = 1 << 20, .max_memory_bytes = 64 << 20, .max_steps = 100000};
        laguna_chat_template_set_limits(t, &lim);
        const char *req = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
        char *out = NULL;
        if (laguna_chat_template_apply(t, req, strlen(req), &out, NULL, &err) == LAGUNA_OK) free(out);
        laguna_chat_template_free(t);
    }
    return 0;
}
