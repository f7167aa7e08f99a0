/* Fuzzes the chat-request JSON (an OpenAI-style body) through the real
 * templates of the fixtures: the first byte picks the template, the rest is
 * the request. Run from the repository root. */
#include "fuzz_util.h"
#include "io/file_util.h"
#include "laguna_chat.h"

static const char *const PATHS[] = {
    "tests/fixtures/chat/laguna-like.jinja",
    "tests/fixtures/tiny-xs/chat_template.jinja",
    "tests/data/templates/qwen3.jinja",
    "tests/data/templates/glm45.jinja",
};
#define N_T (sizeof PATHS / sizeof PATHS[0])
static laguna_chat_template *tmpls[N_T];

static void load_all(void) {
    static int loaded;
    if (loaded) return;
    loaded = 1;
    for (size_t i = 0; i < N_T; i++) {
        char *text = NULL;
        size_t len = 0;
        laguna_error err;
        if (lg_read_file(PATHS[i], 1 << 20, &text, &len, &err) != LAGUNA_OK ||
            laguna_chat_template_compile(text, len, PATHS[i], NULL, &tmpls[i], &err) != LAGUNA_OK) {
            fprintf(stderr, "fuzz_chat_request: %s (run from the repository root)\n", err.message);
            abort();
        }
        free(text);
        laguna_chat_limits lim = {.max_output_bytes = 1 << 20, .max_memory_bytes = 64 << 20,
                                  .max_steps = 200000};
        laguna_chat_template_set_limits(tmpls[i], &lim);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    if (size < 1) return 0;
    char *out = NULL;
    laguna_error err;
    if (laguna_chat_template_apply(tmpls[data[0] % N_T], (const char *)data + 1, size - 1, &out,
                                   NULL, &err) == LAGUNA_OK)
        free(out);
    return 0;
}
