/* Models with no checkpoint (model/model_synth.h, `laguna bench --synth`)
 * on the CPU: the weights made in memory are the ones `laguna synth` writes
 * (bf16) or `laguna synth --type` quantises, so the model gives the same
 * logits bit for bit as the files; bad presets, types and option mixes are
 * refused with clear messages. The GPU's generator is checked in
 * test_cuda.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "laguna.h"
#include "model/model_synth.h"
#include "synth/presets.h"
#include "synth/synth.h"
#include "testutil.h"

#define N_TOK 24

/* Logits of N_TOK tokens fed in one go (caller frees); NULL on failure. */
static float *logits_of(laguna_model *m) {
    int V = laguna_model_get_info(m)->vocab_size;
    int32_t tok[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        tok[i] = (i * 131 + 7) % V;
    laguna_error err = {0};
    laguna_session *s = NULL;
    float *out = malloc(sizeof(float) * N_TOK * (size_t)V);
    CHECKF(laguna_session_create(m, &(laguna_session_options){.n_ctx = 64}, &s, &err) == 0, "%s",
           err.message);
    if (!s || !out || laguna_session_feed(s, tok, N_TOK, out, &err) != 0) {
        CHECKF(0, "feed: %s", err.message);
        free(out);
        out = NULL;
    }
    laguna_session_free(s);
    return out;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* The weights of a tensor as lg_synth_generate makes them (bf16). */
static bool same_as_generated(const char *name, const lg_matrix *w, uint64_t seed) {
    lg_tensor t = {
        .name = (char *)name, .dtype = LG_DTYPE_BF16, .n_dims = 2, .shape = {w->rows, w->cols}};
    size_t bytes = (size_t)w->rows * w->row_bytes;
    uint8_t *want = malloc(bytes);
    lg_synth_generate(seed, &t, 0, want, bytes);
    bool same = w->dtype == LG_DTYPE_BF16 && memcmp(want, w->data, bytes) == 0;
    free(want);
    return same;
}

/* bf16: the same model as the checkpoint `laguna synth` writes with this seed. */
static void test_synth_equals_written_checkpoint(void) {
    laguna_error err = {0};
    laguna_model *a = NULL, *b = NULL;
    CHECKF(lg_model_open_synth("synth-tiny", 0, NULL, 5, &(laguna_model_options){.n_threads = 2},
                               &a, &err) == 0,
           "%s", err.message);
    lg_config cfg;
    char *d = tu_temp_dir();
    CHECK(lg_synth_preset("synth-tiny", &cfg, &err) == 0);
    CHECKF(lg_synth_write(&cfg, d, &(lg_synth_options){.dtype = LG_DTYPE_BF16, .seed = 5}, &err) ==
               0,
           "%s", err.message);
    lg_config_free(&cfg);
    CHECKF(laguna_model_open(d, &(laguna_model_options){.n_threads = 2}, &b, &err) == 0, "%s",
           err.message);
    if (a && b) {
        CHECK(same_as_generated("model.embed_tokens.weight", &a->embed_tokens, 5));
        CHECK(same_as_generated("model.layers.2.mlp.experts.3.down_proj.weight",
                                &a->layers[2].experts[3].down, 5));
        CHECK(!same_as_generated("model.layers.2.mlp.experts.3.down_proj.weight",
                                 &a->layers[2].experts[3].down, 6));
        int H = a->cfg.hidden_size;
        CHECK(memcmp(a->final_norm, b->final_norm, sizeof(float) * (size_t)H) == 0);
        CHECK(fabsf(a->final_norm[0] - 1) < 0.1f && a->final_norm[0] != 1); /* ~1, not constant */
        float *la = logits_of(a), *lb = logits_of(b);
        size_t n = (size_t)N_TOK * laguna_model_get_info(a)->vocab_size;
        CHECK(la && lb && all_finite(la, n) && memcmp(la, lb, n * sizeof(float)) == 0);
        free(la);
        free(lb);
    }
    laguna_model_free(a);
    laguna_model_free(b);
    tu_remove_dir(d);
}

static void generate(void *user, const lg_tensor *t, size_t offset, void *dst, size_t n) {
    lg_synth_generate(*(const uint64_t *)user, t, offset, dst, n);
}

/* Quantised types: the same tensors, dtypes and bytes as `laguna synth --type T`'s GGUF. */
static void test_synth_types_equal_quantized_files(void) {
    const char *types[] = {"q8_0", "q4_k_m", "q6_k"};
    char *d = tu_temp_dir();
    for (int k = 0; k < 3; k++) {
        uint64_t seed = 9;
        laguna_error err = {0};
        lg_config cfg;
        lg_tensor_source *src = NULL;
        lg_quantize_options qo = {.n_threads = 2, .generate = generate, .generate_user = &seed};
        char path[512];
        snprintf(path, sizeof path, "%s/%s.gguf", d, types[k]);
        CHECK(lg_ftype_parse(types[k], &qo.ftype) == 0);
        CHECK(lg_synth_preset("synth-tiny", &cfg, &err) == 0);
        CHECK(lg_synth_tensor_source(&cfg, LG_DTYPE_BF16, &src, &err) == 0);
        CHECKF(lg_quantize_source(&cfg, src, "synth-tiny", path, &qo, NULL, &err) == 0, "%s",
               err.message);
        lg_tensor_source_free(src);
        lg_config_free(&cfg);
        laguna_model *a = NULL, *b = NULL;
        CHECKF(lg_model_open_synth("synth-tiny", 0, types[k], seed,
                                   &(laguna_model_options){.n_threads = 2}, &a, &err) == 0,
               "%s", err.message);
        CHECKF(laguna_model_open(path, &(laguna_model_options){.n_threads = 2}, &b, &err) == 0,
               "%s", err.message);
        if (!a || !b) {
            laguna_model_free(a);
            laguna_model_free(b);
            continue;
        }
        const lg_matrix *pairs[][2] = {
            {&a->lm_head, &b->lm_head},
            {&a->layers[1].q_proj, &b->layers[1].q_proj},
            {&a->layers[1].router, &b->layers[1].router},
            {&a->layers[3].experts[5].down, &b->layers[3].experts[5].down}};
        for (int p = 0; p < 4; p++) {
            const lg_matrix *x = pairs[p][0], *y = pairs[p][1];
            CHECKF(x->dtype == y->dtype && x->row_bytes == y->row_bytes &&
                       memcmp(x->data, y->data, (size_t)x->rows * x->row_bytes) == 0,
                   "%s: matrix %d: %s vs the GGUF's %s", types[k], p, lg_dtype_name(x->dtype),
                   lg_dtype_name(y->dtype));
        }
        float *la = logits_of(a), *lb = logits_of(b);
        size_t n = (size_t)N_TOK * laguna_model_get_info(a)->vocab_size;
        CHECKF(la && lb && all_finite(la, n) && memcmp(la, lb, n * sizeof(float)) == 0,
               "%s: logits differ", types[k]);
        free(la);
        free(lb);
        laguna_model_free(a);
        laguna_model_free(b);
    }
    tu_remove_dir(d);
}

static void test_synth_errors(void) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    CHECK(lg_model_open_synth("nope", 0, NULL, 1, NULL, &m, &err) == LAGUNA_ERR_ARGUMENT && !m);
    CHECKF(strstr(err.message, "unknown preset 'nope'"), "%s", err.message);
    CHECK(lg_model_open_synth("synth-tiny", 0, "q3", 1, NULL, &m, &err) == LAGUNA_ERR_ARGUMENT &&
          !m);
    CHECKF(strstr(err.message, "unknown weight type 'q3'") && strstr(err.message, "q4_k_m"), "%s",
           err.message);
    CHECK(lg_model_open_synth("synth-tiny", 99, NULL, 1, NULL, &m, &err) == LAGUNA_ERR_ARGUMENT &&
          !m);
    CHECKF(strstr(err.message, "--layers 99"), "%s", err.message);
    CHECK(lg_model_open_synth("synth-tiny", 0, NULL, 1, &(laguna_model_options){.device = "gpu9"},
                              &m, &err) != 0 &&
          !m);
    CHECKF(strstr(err.message, "gpu9"), "%s", err.message);
    CHECK(lg_model_open_synth(NULL, 0, NULL, 1, NULL, &m, &err) == LAGUNA_ERR_ARGUMENT && !m);
}

static void expect(const char *args, int want_rc, const char *needle) {
    char *out = NULL;
    int rc = tu_run_laguna(args, &out);
    CHECKF(rc == want_rc, "laguna %s: exit %d (want %d)\n%s", args, rc, want_rc, out ? out : "");
    if (needle)
        CHECKF(out && strstr(out, needle), "laguna %s: output lacks '%s':\n%s", args, needle,
               out ? out : "");
    free(out);
}

static void test_bench_synth_command(void) {
    expect("bench --synth synth-tiny --layers 3 --type q8_0 --prompt 8 --gen 4 --reps 1 -t 2", 0,
           "synthetic synth-tiny (3 layers, q8_0, seed 1)");
    expect("bench --synth synth-tiny --prompt 8 --gen 4 --reps 1 --batch 1,2 -t 2", 0,
           "decode tok/s (all)");
    expect("bench --synth nope", 1, "unknown preset 'nope'");
    expect("bench --synth synth-tiny --type q3", 1, "unknown weight type 'q3'");
    expect("bench --synth synth-tiny --layers 0", 2, "--layers");
    expect("bench --synth synth-tiny -m models/laguna-tiny", 2, "not both");
    expect("bench -m models/laguna-tiny --type q8_0", 2, "go with --synth");
    expect("bench --help", 0, "--synth PRESET");
}

/* --config-only: the shapes alone, as the checkpoint's config.json. */
static void test_synth_config_only(void) {
    char *d = tu_temp_dir(), args[512], path[512];
    snprintf(args, sizeof args, "synth --preset xs2 --layers 3 --config-only --out %s/c", d);
    expect(args, 0, "wrote");
    snprintf(path, sizeof path, "%s/c/config.json", d);
    char *text = tu_read_file(path, NULL);
    lg_config got, want;
    laguna_error err = {0};
    CHECKF(text && lg_config_parse(text, path, &got, &err) == 0, "%s", err.message);
    CHECK(lg_synth_preset_layers("xs2", 3, &want, &err) == 0);
    if (text) {
        CHECK(got.n_layers == 3 && got.hidden_size == want.hidden_size &&
              got.n_experts == want.n_experts && got.n_heads[1] == want.n_heads[1] &&
              got.attention_kind[0] == want.attention_kind[0] &&
              got.sliding_window == want.sliding_window);
        lg_config_free(&got);
    }
    lg_config_free(&want);
    free(text);
    snprintf(path, sizeof path, "%s/c/model.safetensors", d);
    char *weights = tu_read_file(path, NULL);
    CHECK(weights == NULL);
    free(weights);
    snprintf(path, sizeof path, "%s/c/generation_config.json", d);
    text = tu_read_file(path, NULL);
    CHECK(text && strstr(text, "eos_token_id"));
    free(text);
    snprintf(args, sizeof args, "synth --preset xs2 --config-only --type q8_0 --out %s/c", d);
    expect(args, 2, "--config-only");
    tu_remove_dir(d);
}

int main(void) {
    RUN(test_synth_equals_written_checkpoint);
    RUN(test_synth_types_equal_quantized_files);
    RUN(test_synth_errors);
    RUN(test_bench_synth_command);
    RUN(test_synth_config_only);
    return test_summary();
}
