/* Fuzzes the tokenizers of the fixtures (loaded once) on arbitrary bytes:
 * the first byte picks the tokenizer and whether special tokens count, the
 * rest is encoded as text and also read as little-endian int32 ids to decode
 * (in full and streamed). Run from the repository root. */
#include "fuzz_tokenizer.h"
#include "fuzz_util.h"

static const char *const PATHS[] = {
    "tests/fixtures/tokenizer/laguna-like/tokenizer.json",
    "tests/fixtures/tiny-xs/tokenizer.json",
    "tests/fixtures/tiny-m/tokenizer.json",
};
#define N_TOK (sizeof PATHS / sizeof PATHS[0])
static laguna_tokenizer *toks[N_TOK];

static void load_all(void) {
    static int loaded;
    if (loaded) return;
    loaded = 1;
    for (size_t i = 0; i < N_TOK; i++) {
        laguna_error err;
        if (laguna_tokenizer_load(PATHS[i], &toks[i], &err) != LAGUNA_OK) {
            fprintf(stderr, "fuzz_tokenizer_text: %s (run from the repository root)\n", err.message);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    if (size < 1) return 0;
    const laguna_tokenizer *tok = toks[data[0] % N_TOK];
    bool special = data[0] & 0x80;
    fuzz_tokenizer_round_trip(tok, (const char *)data + 1, size - 1, special);
    size_t n = (size - 1) / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + 1 + 4 * i;
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        /* mostly real ids, some far out of range */
        ids[i] = (v & 0x80000000u) ? (int32_t)v : (int32_t)(v % 1100);
    }
    fuzz_decode_ids(tok, ids, n, special);
    free(ids);
    return 0;
}
