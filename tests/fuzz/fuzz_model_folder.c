/* Fuzzes opening a Hugging Face checkpoint folder: config.json, the
 * safetensors header and the shard index. One input packs the files,
 * separated by FUZZ_SEP: config.json, then model.safetensors, then (when
 * present) model.safetensors.index.json, whose weight_map may name
 * "model.safetensors" or "shard.safetensors" (the same bytes). */
#include "fuzz_util.h"
#include "laguna.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3];
    size_t len[3];
    int n = fuzz_split(data, size, part, len, 3);
    fuzz_write("config.json", part[0], len[0]);
    fuzz_write("model.safetensors", n > 1 ? part[1] : NULL, n > 1 ? len[1] : 0);
    fuzz_write("shard.safetensors", n > 2 ? part[1] : NULL, n > 2 ? len[1] : 0);
    fuzz_write("model.safetensors.index.json", n > 2 ? part[2] : NULL, n > 2 ? len[2] : 0);
    laguna_model_options opt = {.n_threads = 1, .load_mode = LAGUNA_LOAD_MMAP};
    laguna_model *m = NULL;
    laguna_error err;
    if (laguna_model_open(fuzz_dir(), &opt, &m, &err) == LAGUNA_OK) laguna_model_free(m);
    return 0;
}
