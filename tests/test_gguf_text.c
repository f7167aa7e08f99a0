/* A GGUF's embedded tokenizer and chat template behave like the checkpoint
 * folder's they were written from: same ids for the same text, same
 * decoded text, same rendered prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_quantize.h"
#include "gguf/gguf_tokenizer_read.h"
#include "harness.h"
#include "testutil.h"

static void test_tokenizer_and_template_round_trip(void) {
    char *d = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", d);
    lg_quantize_options opt = {.ftype = LG_FTYPE_Q8_0, .n_threads = 2};
    laguna_error err = {0};
    CHECKF(lg_quantize_model("models/laguna-tiny", path, &opt, NULL, &err) == 0, "%s", err.message);
    laguna_tokenizer *a = NULL, *b = NULL;
    CHECK(laguna_tokenizer_load("models/laguna-tiny", &a, &err) == 0);
    CHECKF(lg_gguf_load_tokenizer(path, &b, &err) == 0, "%s", err.message);
    size_t len = 0;
    char *sample = tu_read_file("models/laguna-tiny/heldout_sample.txt", &len);
    const char *texts[] = {sample ? sample : "", "<user>hi</user><assistant><think></think>ok</assistant>",
                           "  x = 12345 + y\n\n\tdef f(): return 'don't'\n", "", "héllo wörld ✓ 日本語"};
    for (size_t i = 0; a && b && i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        CHECK(laguna_tokenizer_encode(a, texts[i], strlen(texts[i]), false, &x, &nx, NULL) == 0);
        CHECK(laguna_tokenizer_encode(b, texts[i], strlen(texts[i]), false, &y, &ny, NULL) == 0);
        CHECKF(nx == ny && !memcmp(x, y, nx * sizeof *x), "text %zu: %zu vs %zu ids", i, nx, ny);
        char *tx = NULL, *ty = NULL;
        size_t lx, ly;
        CHECK(laguna_tokenizer_decode(a, x, nx, false, &tx, &lx, NULL) == 0);
        CHECK(laguna_tokenizer_decode(b, y, ny, false, &ty, &ly, NULL) == 0);
        CHECKF(tx && ty && lx == ly && !memcmp(tx, ty, lx), "text %zu decodes differently", i);
        laguna_tokenizer_free_text(tx);
        laguna_tokenizer_free_text(ty);
        laguna_tokenizer_free_ids(x);
        laguna_tokenizer_free_ids(y);
    }
    laguna_chat_template *ta = NULL, *tb = NULL;
    CHECK(laguna_chat_template_load("models/laguna-tiny", &ta, &err) == 0);
    CHECKF(lg_gguf_load_chat_template(path, &tb, &err) == 0, "%s", err.message);
    const char *req = "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}],"
                      "\"chat_template_kwargs\":{\"enable_thinking\":true}}";
    char *ra = NULL, *rb = NULL;
    size_t la, lb;
    if (ta && tb) {
        CHECK(laguna_chat_template_apply(ta, req, strlen(req), &ra, &la, NULL) == 0);
        CHECK(laguna_chat_template_apply(tb, req, strlen(req), &rb, &lb, NULL) == 0);
        CHECKF(ra && rb && la == lb && !memcmp(ra, rb, la), "rendered:\n%s\nvs\n%s", ra ? ra : "", rb ? rb : "");
    }
    free(ra);
    free(rb);
    laguna_chat_template_free(ta);
    laguna_chat_template_free(tb);
    laguna_tokenizer_free(a);
    laguna_tokenizer_free(b);
    free(sample);
    /* a GGUF without tokenizer keys: a clear error */
    CHECK(lg_gguf_load_tokenizer("tests/fixtures/tiny-xs/golden.safetensors", &b, &err) != 0);
    tu_remove_dir(d);
}

int main(void) {
    RUN(test_tokenizer_and_template_round_trip);
    return test_summary();
}
