/* Fuzzes loading a tokenizer.json (every normalizer, pre-tokenizer, model,
 * post-processor and decoder the loader knows), then runs what loaded on a
 * fixed text and on every id from -1 up to a little past the vocabulary. */
#include "fuzz_tokenizer.h"
#include "fuzz_util.h"

static const char SAMPLE[] = "Hello, wörld! 12345 \xe2\x96\x81x <s>a</s>\n\n  \t def f(): "
                             "return 0xff \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    laguna_tokenizer *tok = NULL;
    laguna_error err;
    if (laguna_tokenizer_load_json((const char *)data, size, "fuzz.json", &tok, &err) != LAGUNA_OK)
        return 0;
    fuzz_tokenizer_round_trip(tok, SAMPLE, sizeof SAMPLE - 1, true);
    fuzz_tokenizer_round_trip(tok, SAMPLE, sizeof SAMPLE - 1, false);
    int32_t ids[300];
    size_t n = 0;
    for (int32_t id = -1; id < 299; id++) ids[n++] = id;
    fuzz_decode_ids(tok, ids, n, false);
    fuzz_decode_ids(tok, ids, n, true);
    laguna_tokenizer_free(tok);
    return 0;
}
