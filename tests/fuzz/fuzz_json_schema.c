/* Fuzzes structured output's schemas as response_format brings them: a JSON
 * Schema compiled to a grammar (grammar/json_schema.c), then, when it
 * compiles, a text run through the matcher byte by byte and the token mask
 * of a small fixed vocabulary worked out where the text stops, each token
 * of it held to its bytes run alone (grammar/token_mask.c). A refused
 * schema must say why. Input: the schema, then optionally "\n#####\n" and
 * the text. */
#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

static const char *const VOCAB[] = {"{", "}", "[", "]", ",", ":", "\"", " ", "\n", "  ", "\"a\"", "\": ", "\",",
                                    "true", "false", "null", "0", "12", "-", ".", "e+", "abc", " the", "\\n", "\\u00",
                                    "\xc3\xa9", "\xe2\x82", "\xac", "{\"", "\"}", "[1,", "\t"};
#define N_VOCAB ((int)(sizeof VOCAB / sizeof *VOCAB))

static void die(const char *what) {
    fprintf(stderr, "fuzz_json_schema: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lg_token_bytes *vocab;
    if (!vocab) {
        int len[N_VOCAB];
        for (int i = 0; i < N_VOCAB; i++) len[i] = (int)strlen(VOCAB[i]);
        if (lg_token_bytes_from_list(VOCAB, len, N_VOCAB, &vocab, NULL)) abort();
    }
    const char *sep = "\n#####\n";
    const uint8_t *text = NULL;
    size_t schema_len = size, text_len = 0;
    for (size_t i = 0; i + 7 <= size; i++)
        if (!memcmp(data + i, sep, 7)) {
            schema_len = i, text = data + i + 7, text_len = size - i - 7;
            break;
        }
    cJSON *schema = cJSON_ParseWithLength((const char *)data, schema_len);
    if (!schema) return 0;
    lg_grammar g;
    laguna_error err = {0};
    if (lg_json_schema_grammar(schema, &g, &err)) {
        if (!err.message[0]) die("a refused schema without a message");
        cJSON_Delete(schema);
        return 0;
    }
    lg_matcher *m = NULL;
    if (lg_matcher_new(&g, &m, &err)) abort();
    int s = lg_matcher_start(m);
    for (size_t i = 0; i < text_len && s >= 0; i++) s = lg_matcher_step(m, s, text[i]);
    if (s == LG_MATCHER_ERROR && !lg_matcher_error(m)[0]) die("an error without a message");
    if (s >= 0) {
        uint64_t allowed[1];
        int n = lg_token_mask(vocab, m, s, allowed);
        for (int id = 0; n >= 0 && id < N_VOCAB; id++) {
            int t = lg_token_advance(vocab, m, s, id);
            if (t == LG_MATCHER_ERROR) break; /* a limit met on the way: the mask could not have it either */
            if ((t >= 0) != (int)((allowed[0] >> id) & 1)) die("the mask disagrees with a token run alone");
        }
    }
    lg_matcher_free(m);
    lg_grammar_free(&g);
    cJSON_Delete(schema);
    return 0;
}
