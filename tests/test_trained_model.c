/* The shipped trained model (models/laguna-tiny) against what transformers
 * computed for it (golden.safetensors, reference.json): greedy continuations
 * of the 5 prompts token for token, held-out perplexity within 0.1%, the
 * tokenizer on the prompts, and the stated bounds of each quantisation type
 * and KV-cache type (docs/quantization.md). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "io/tensor_source.h"
#include "laguna.h"
#include "laguna_tokenizer.h"
#include "testutil.h"
#include "verify/perplexity.h"
#include "verify/verify.h"

#define MODEL "models/laguna-tiny"
#define GOLDEN MODEL "/golden.safetensors"

static cJSON *reference(void) {
    char *text = tu_read_file(MODEL "/reference.json", NULL);
    cJSON *r = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(r != NULL);
    return r;
}

static double sample_perplexity(const char *model_path, laguna_kv_type kv) {
    laguna_tokenizer *tok = NULL;
    laguna_model *m = NULL;
    laguna_error err = {0};
    size_t len = 0, n = 0;
    char *text = tu_read_file(MODEL "/heldout_sample.txt", &len);
    int32_t *ids = NULL;
    double ppl = -1;
    if (text && laguna_tokenizer_load(MODEL, &tok, &err) == 0 &&
        laguna_tokenizer_encode(tok, text, len, false, &ids, &n, &err) == 0 &&
        laguna_model_open(model_path, &(laguna_model_options){.n_threads = 2}, &m, &err) == 0) {
        lg_perplexity_result r;
        if (lg_perplexity(m, ids, n, 0, kv, false, &r, &err) == 0) ppl = exp(r.nll_sum / (double)r.n_predicted);
    }
    CHECKF(ppl > 0, "%s", err.message);
    laguna_model_free(m);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
    free(text);
    return ppl;
}

static void test_greedy_and_logits_match_transformers(void) {
    laguna_model *m = NULL;
    laguna_error err = {0};
    CHECKF(laguna_model_open(MODEL, &(laguna_model_options){.n_threads = 2}, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    lg_verify_result *r = NULL;
    int n = 0;
    lg_verify_tolerance tol = lg_verify_default_tolerance(m);
    CHECK(!tol.distribution_only); /* bf16 weights: the float tolerance */
    CHECKF(lg_verify_run(m, GOLDEN, &r, &n, &err) == 0, "%s", err.message);
    CHECK(n == 5);
    for (int i = 0; i < n; i++) {
        CHECKF(lg_verify_passes(&r[i], &tol), "%s: rel %.2e greedy %d/%d experts %d", r[i].prompt, r[i].logits_rel_err,
               r[i].greedy_match, r[i].greedy_len, r[i].expert_mismatches);
        CHECK(r[i].has_greedy && r[i].greedy_len == 40);
    }
    free(r);
    laguna_model_free(m);
}

static void test_perplexity_matches_transformers(void) {
    cJSON *ref = reference();
    double want = cJSON_GetNumberValue(cJSON_GetObjectItem(ref, "sample_perplexity"));
    double got = sample_perplexity(MODEL, LAGUNA_KV_F32);
    CHECKF(fabs(got - want) <= 1e-3 * want, "perplexity %.6f vs transformers %.6f", got, want);
    cJSON_Delete(ref);
}

/* The prompts' texts, encoded by our tokenizer, are the reference's tokens. */
static void test_tokenizer_on_prompts(void) {
    cJSON *ref = reference();
    laguna_tokenizer *tok = NULL;
    lg_tensor_source *g = lg_tensor_source_new();
    CHECK(laguna_tokenizer_load(MODEL, &tok, NULL) == 0);
    CHECK(lg_tensor_source_add_safetensors_file(g, GOLDEN, false, NULL) == 0);
    const cJSON *prompts = cJSON_GetObjectItem(ref, "prompts"), *p;
    int k = 0;
    cJSON_ArrayForEach(p, prompts) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(p, "prompt"));
        char name[32];
        snprintf(name, sizeof name, "tokens.p%d", ++k);
        const lg_tensor *t = lg_tensor_source_find(g, name);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(text && t && tok && laguna_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, NULL) == 0);
        CHECKF(t && n == (size_t)t->shape[0] && !memcmp(ids, t->data, n * sizeof(int32_t)), "prompt %d tokens differ", k);
        laguna_tokenizer_free_ids(ids);
    }
    CHECK(k == 5);
    laguna_tokenizer_free(tok);
    lg_tensor_source_free(g);
    cJSON_Delete(ref);
}

/* Bounds for a trained model (rows are whole K-quant blocks here), measured
 * against the float reference on the golden prompts and the held-out sample.
 * q8_0's perplexity lands within ~0.35% of the float model's on either side,
 * and float rounding alone moves it that much: the same quantised bytes gave
 * 5.6407 and 5.6501 in -march=native builds and 5.6352 under make sanitize
 * (no FMA outside the kernels), and 5.6375 / 5.6314 once the AVX-512 Q8_0
 * kernel added its lanes in another order (its mean KL fell from 1.10e-3 to
 * 9.4e-4 meanwhile), against 5.6484. So its perplexity bound is q6_k's 1.005,
 * not tighter than that noise; its KL bound (0.003) is the fidelity check. */
static void test_quantized_bounds(void) {
    struct { const char *type; double min_top1, max_kl, max_ppl_ratio; } cases[] = {
        {"q8_0", 0.95, 0.003, 1.005},
        {"q6_k", 0.90, 0.015, 1.005},
        {"q5_k_m", 0.90, 0.03, 1.01},
        {"q4_k_m", 0.80, 0.05, 1.01},
    };
    double base = sample_perplexity(MODEL, LAGUNA_KV_F32);
    char *d = tu_temp_dir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.gguf", d, cases[i].type);
        lg_quantize_options opt = {.n_threads = 2};
        laguna_error err = {0};
        CHECK(lg_ftype_parse(cases[i].type, &opt.ftype) == 0);
        lg_quantize_stats stats;
        CHECKF(lg_quantize_model(MODEL, path, &opt, &stats, &err) == 0, "%s", err.message);
        laguna_model *m = NULL;
        CHECKF(laguna_model_open(path, &(laguna_model_options){.n_threads = 2}, &m, &err) == 0, "%s", err.message);
        if (!m) continue;
        lg_verify_result *r = NULL;
        int n = 0;
        lg_verify_summary s;
        CHECK(lg_verify_run(m, GOLDEN, &r, &n, &err) == 0);
        lg_verify_summarize(r, n, &s);
        double ppl = sample_perplexity(path, LAGUNA_KV_F32);
        printf("  %-7s top-1 %.4f  mean KL %.2e  perplexity %.4f (float %.4f)\n", cases[i].type, s.top1_agreement, s.mean_kl,
               ppl, base);
        CHECKF(s.top1_agreement >= cases[i].min_top1 && s.mean_kl <= cases[i].max_kl, "%s: top-1 %.3f KL %.2e", cases[i].type,
               s.top1_agreement, s.mean_kl);
        CHECKF(ppl / base <= cases[i].max_ppl_ratio && ppl / base >= 1 / cases[i].max_ppl_ratio, "%s: perplexity %.4f vs %.4f",
               cases[i].type, ppl, base);
        free(r);
        laguna_model_free(m);
    }
    tu_remove_dir(d);
}

static void test_kv_cache_types(void) {
    double base = sample_perplexity(MODEL, LAGUNA_KV_F32);
    laguna_kv_type types[3] = {LAGUNA_KV_F16, LAGUNA_KV_BF16, LAGUNA_KV_Q8_0};
    double bound[3] = {1.0005, 1.001, 1.002};
    for (int i = 0; i < 3; i++) {
        double ppl = sample_perplexity(MODEL, types[i]);
        CHECKF(fabs(ppl / base - 1) <= bound[i] - 1, "kv type %d: perplexity %.5f vs %.5f", (int)types[i], ppl, base);
    }
}

int main(void) {
    RUN(test_greedy_and_logits_match_transformers);
    RUN(test_perplexity_matches_transformers);
    RUN(test_tokenizer_on_prompts);
    RUN(test_quantized_bounds);
    RUN(test_kv_cache_types);
    return test_summary();
}
