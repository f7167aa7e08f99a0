/* The two ways weights reach memory (mapped, or copied into huge-page
 * memory while the page cache drops what was read) hold the same bytes, say
 * which one happened, and compute the same logits; for safetensors folders
 * (one file and sharded) and GGUF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "io/tensor_source.h"
#include "laguna.h"
#include "model/model.h"
#include "quant/quant.h"
#include "testutil.h"

static laguna_model *open_as(const char *path, laguna_load_mode mode) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    laguna_model_options o = {.n_threads = 2, .load_mode = mode};
    CHECKF(laguna_model_open(path, &o, &m, &err) == LAGUNA_OK, "%s: %s", path, err.message);
    return m;
}

/* Logits of a short prompt, for comparing two loads of one model. */
static float *logits_of(laguna_model *m) {
    laguna_error err = {0};
    laguna_session *s = NULL;
    int V = laguna_model_get_info(m)->vocab_size;
    float *out = malloc(sizeof(float) * (size_t)V);
    int32_t toks[5] = {1, 7, 42, 3, 9};
    CHECK(out &&
          laguna_session_create(m, &(laguna_session_options){.n_ctx = 16}, &s, &err) == LAGUNA_OK);
    CHECKF(laguna_session_feed(s, toks, 5, NULL, &err) == LAGUNA_OK, "%s", err.message);
    if (out) memcpy(out, laguna_session_logits(s), sizeof(float) * (size_t)V);
    laguna_session_free(s);
    return out;
}

/* Returns the bytes the copy rearranged. */
static uint64_t check_same_weights(const char *path) {
    laguna_model *a = open_as(path, LAGUNA_LOAD_MMAP), *b = open_as(path, LAGUNA_LOAD_COPY);
    uint64_t rearranged = 0;
    if (!a || !b) goto done;
    const laguna_model_info *ia = laguna_model_get_info(a), *ib = laguna_model_get_info(b);
    CHECKF(ia->weights_load == LAGUNA_LOAD_MMAP && ib->weights_load == LAGUNA_LOAD_COPY,
           "%s: %d %d", path, ia->weights_load, ib->weights_load);
    CHECK(ia->weights_bytes > 0 && ia->weights_bytes == ib->weights_bytes);
    CHECK(ib->weights_huge_bytes <= ib->weights_bytes);
    /* a copy's Q4_K, Q5_K, Q6_K and Q8_0 matrices (of rows in 16s) are regrouped for
     * AVX-512 (quant.h), a mapping's never */
    bool avx512 = lg_qgemm_layout_for(LG_DTYPE_Q4_K, 16) == LG_DTYPE_Q4_K_X16;
    CHECK(ia->weights_rearranged_bytes == 0);
    uint64_t grouped_bytes = 0;
    size_t n = lg_tensor_source_count(a->tensors);
    CHECK(n > 0 && n == lg_tensor_source_count(b->tensors));
    for (size_t i = 0; i < n; i++) {
        const lg_tensor *ta = lg_tensor_source_at(a->tensors, i);
        const lg_tensor *tb = lg_tensor_source_find(b->tensors, ta->name);
        bool grouped = (ta->dtype == LG_DTYPE_Q4_K || ta->dtype == LG_DTYPE_Q5_K || ta->dtype == LG_DTYPE_Q6_K ||
                        ta->dtype == LG_DTYPE_Q8_0) &&
                       avx512 && ta->n_dims == 2 &&
                       ta->shape[0] % 16 == 0 && strcmp(ta->name, "model.embed_tokens.weight");
        CHECKF(tb && tb->n_bytes == ta->n_bytes && tb->dtype == (grouped ? lg_x16_of(ta->dtype) : ta->dtype),
               "%s: tensor %s", path, ta->name);
        if (!tb || tb->n_bytes != ta->n_bytes) continue;
        uint8_t *back = malloc(tb->n_bytes);
        memcpy(back, tb->data, tb->n_bytes);
        if (grouped) {
            grouped_bytes += tb->n_bytes;
            CHECKF(memcmp(ta->data, back, ta->n_bytes), "%s: tensor %s not rearranged", path, ta->name);
            CHECK(lg_x16_ungroup(back, ta->dtype, ta->shape[0], ta->shape[1]) == 0);
        }
        CHECKF(tb->data != ta->data && !memcmp(ta->data, back, ta->n_bytes), "%s: tensor %s differs",
               path, ta->name);
        free(back);
    }
    CHECKF(ib->weights_rearranged_bytes == grouped_bytes, "%s: %llu rearranged bytes, %llu of K-quants and Q8_0",
           path, (unsigned long long)ib->weights_rearranged_bytes, (unsigned long long)grouped_bytes);
    rearranged = ib->weights_rearranged_bytes;
    float *la = logits_of(a), *lb = logits_of(b);
    if (la && lb)
        CHECKF(!memcmp(la, lb, sizeof(float) * (size_t)ia->vocab_size), "%s: logits differ", path);
    free(la);
    free(lb);
done:
    laguna_model_free(a);
    laguna_model_free(b);
    return rearranged;
}

static void test_safetensors_file(void) {
    check_same_weights("tests/fixtures/tiny-xs");
}

static void test_sharded_safetensors(void) {
    check_same_weights("tests/fixtures/tiny-m");
}

/* check_same_weights on a GGUF of `src` quantised to `ftype` in a temporary
 * folder; returns what it returns. */
static uint64_t check_same_weights_gguf(const char *src, const char *ftype) {
    char *d = tu_temp_dir(), dst[512];
    snprintf(dst, sizeof dst, "%s/model-%s.gguf", d, ftype);
    lg_quantize_options opt = {.n_threads = 2};
    laguna_error err = {0};
    uint64_t rearranged = 0;
    CHECK(lg_ftype_parse(ftype, &opt.ftype) == 0);
    bool made = lg_quantize_model(src, dst, &opt, NULL, &err) == LAGUNA_OK;
    CHECKF(made, "%s", err.message);
    if (made) rearranged = check_same_weights(dst);
    tu_remove_dir(d);
    return rearranged;
}

static void test_gguf(void) {
    check_same_weights_gguf("tests/fixtures/tiny-xs", "q8_0");
}

/* Q4_K_M and Q5_K_M (the trained model: its 256-wide rows are whole K-quant
 * blocks): the copy's K-quants rearranged on an AVX-512 CPU, the same logits
 * to the bit. */
static void test_gguf_q4_K_M(void) {
    const char *types[] = {"q4_k_m", "q5_k_m"};
    for (int i = 0; i < 2; i++) {
        uint64_t rearranged = check_same_weights_gguf("models/laguna-tiny", types[i]);
        if (lg_qgemm_layout_for(LG_DTYPE_Q4_K, 16) == LG_DTYPE_Q4_K_X16)
            CHECKF(rearranged > 1000000, "%s: %llu bytes rearranged", types[i], (unsigned long long)rearranged);
        else
            CHECK(rearranged == 0);
    }
}

/* The CPU backend's rearrange_weights: Q4_K, Q5_K, Q6_K and Q8_0 of rows in 16s into
 * 16-row groups where AVX-512 runs (the scalar regrouping's bytes), anything
 * else (other rows, other dtypes, a grouped matrix included) returned as it
 * is and untouched (never rearranged twice). */
static void test_rearrange_op(void) {
    lg_backend *be = lg_cpu_backend_new(2);
    enum { ROWS = 320, COLS = 10 * 256 }; /* 460-670 KB: several of the op's tasks */
    const lg_dtype bases[] = {LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K, LG_DTYPE_Q8_0};
    for (int k = 0; k < 4; k++) {
        lg_dtype base = bases[k], grouped = lg_x16_of(base);
        size_t bytes = ROWS * lg_dtype_row_bytes(base, COLS);
        uint8_t *w = malloc(bytes), *want = malloc(bytes);
        for (size_t i = 0; i < bytes; i++)
            w[i] = (uint8_t)(i * 2654435761u >> 13);
        memcpy(want, w, bytes);
        bool avx512 = lg_qgemm_layout_for(base, ROWS) == grouped;
        if (avx512) CHECK(lg_x16_group(want, base, ROWS, COLS) == 0);
        CHECK(be->ops->rearrange_weights(be, base, w, ROWS, COLS) == (avx512 ? grouped : base));
        CHECK(!memcmp(w, want, bytes));
        CHECK(be->ops->rearrange_weights(be, grouped, w, ROWS, COLS) == grouped);
        CHECK(be->ops->rearrange_weights(be, LG_DTYPE_Q4_0, w, ROWS / 2, COLS) == LG_DTYPE_Q4_0);
        CHECK(be->ops->rearrange_weights(be, LG_DTYPE_Q5_0, w, ROWS / 2, COLS) == LG_DTYPE_Q5_0);
        CHECK(be->ops->rearrange_weights(be, base, w, ROWS - 1, COLS) == base);
        CHECK(!memcmp(w, want, bytes));
        free(w), free(want);
    }
    be->ops->destroy(be);
}

/* AUTO copies small weights on any machine with 2 GiB to spare, and says so. */
static void test_auto_reports_its_choice(void) {
    laguna_model *m = open_as("tests/fixtures/tiny-xs", LAGUNA_LOAD_AUTO);
    if (!m) return;
    const laguna_model_info *info = laguna_model_get_info(m);
    laguna_load_mode want = lg_load_mode_placement(LG_LOAD_AUTO, info->weights_bytes) != LG_PLACE_MAP
                                ? LAGUNA_LOAD_COPY
                                : LAGUNA_LOAD_MMAP;
    CHECK(info->weights_load == want);
    laguna_model_free(m);
}

int main(void) {
    RUN(test_safetensors_file);
    RUN(test_sharded_safetensors);
    RUN(test_gguf);
    RUN(test_gguf_q4_K_M);
    RUN(test_rearrange_op);
    RUN(test_auto_reports_its_choice);
    return test_summary();
}
