/* Round trip of the fixtures through GGUF: each `laguna quantize` type is
 * written, loaded by the engine and held to its stated tolerance against the
 * float golden files (bf16 exactly to the float one). */
#include <stdio.h>
#include <stdlib.h>

#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "laguna.h"
#include "testutil.h"
#include "verify/verify.h"

static void round_trip(const char *fixture, const char *type, lg_verify_summary *out) {
    char src[256], golden[256], dst[512];
    snprintf(src, sizeof src, "tests/fixtures/%s", fixture);
    snprintf(golden, sizeof golden, "tests/fixtures/%s/golden.safetensors", fixture);
    char *d = tu_temp_dir();
    snprintf(dst, sizeof dst, "%s/model-%s.gguf", d, type);
    lg_quantize_options opt = {.n_threads = 2};
    CHECK(lg_ftype_parse(type, &opt.ftype) == 0);
    laguna_error err = {0};
    lg_quantize_stats stats;
    CHECKF(lg_quantize_model(src, dst, &opt, &stats, &err) == LAGUNA_OK, "%s %s: %s", fixture, type, err.message);
    laguna_model *m = NULL;
    CHECKF(laguna_model_open(dst, &(laguna_model_options){.n_threads = 2}, &m, &err) == LAGUNA_OK, "%s", err.message);
    if (m) {
        lg_verify_result *r = NULL;
        int n = 0;
        CHECKF(lg_verify_run(m, golden, &r, &n, &err) == LAGUNA_OK, "%s", err.message);
        lg_verify_tolerance tol = lg_verify_default_tolerance(m);
        lg_verify_summarize(r, n, out);
        CHECKF(lg_verify_summary_passes(out, &tol), "%s %s: top-1 %.3f (>= %.2f), KL %.2e (<= %.2e)", fixture, type,
               out->top1_agreement, tol.min_top1, out->mean_kl, tol.max_mean_kl);
        for (int i = 0; i < n; i++)
            CHECKF(lg_verify_passes(&r[i], &tol), "%s %s %s: rel %.2e experts %d greedy %d/%d", fixture, type, r[i].prompt,
                   r[i].logits_rel_err, r[i].expert_mismatches, r[i].greedy_match, r[i].greedy_len);
        free(r);
        laguna_model_free(m);
    }
    tu_remove_dir(d);
}

static void test_bf16_gguf_is_exact(void) {
    lg_verify_summary s;
    round_trip("tiny-xs", "bf16", &s);
    CHECK(s.max_logits_rel_err < 1e-4 && s.top1_agreement == 1.0);
    round_trip("tiny-m", "bf16", &s);
    CHECK(s.max_logits_rel_err < 1e-4 && s.top1_agreement == 1.0);
}

static void test_quantized_types_within_tolerance(void) {
    const char *types[] = {"q8_0", "q6_k", "q5_k_m", "q4_k_m"};
    const char *fixtures[] = {"tiny-xs", "tiny-m"};
    for (int f = 0; f < 2; f++)
        for (int t = 0; t < 4; t++) {
            lg_verify_summary s;
            round_trip(fixtures[f], types[t], &s);
            CHECKF(s.max_logits_rel_err > 0, "%s %s: quantisation changed nothing?", fixtures[f], types[t]);
        }
}

int main(void) {
    RUN(test_bf16_gguf_is_exact);
    RUN(test_quantized_types_within_tolerance);
    return test_summary();
}
