/* The engine on Laguna checkpoints whose shapes and options the shared
 * fixtures do not have (tests/data/variants, references from transformers):
 * every prompt within the float tolerance at 1 and 4 threads, and through a
 * bf16 GGUF where GGUF can express the model (else the documented refusal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "laguna.h"
#include "testutil.h"
#include "verify/verify.h"

typedef struct {
    const char *name;
    const char *gguf_refusal; /* NULL: GGUF holds it; else part of the expected error */
} variant;

static const variant variants[] = {
    {"defaults-tied", NULL},
    {"yarn-options", "eos_token_id"},
    {"yarn-attention-factor", NULL},
    {"mqa-bias-mixed", "dense after a sparse layer"},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

static void verify_model(const char *model, const char *golden, int threads) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    CHECKF(laguna_model_open(model, &(laguna_model_options){.n_threads = threads}, &m, &err) == LAGUNA_OK, "%s: %s",
           model, err.message);
    if (!m) return;
    lg_verify_result *r = NULL;
    int n = 0;
    lg_verify_tolerance tol = {.rel_tol = 1e-4, .require_experts = true, .require_greedy = true};
    CHECKF(lg_verify_run(m, golden, &r, &n, &err) == LAGUNA_OK, "%s: %s", model, err.message);
    CHECKF(n == 3, "%s: %d prompts", model, n);
    for (int p = 0; p < n; p++) {
        CHECKF(lg_verify_passes(&r[p], &tol), "%s (%d threads) %s: logits %.2e hidden %.2e experts %d/%d greedy %d/%d",
               model, threads, r[p].prompt, r[p].logits_rel_err, r[p].hidden_rel_err, r[p].expert_mismatches,
               r[p].expert_rows, r[p].greedy_match, r[p].greedy_len);
        if (r[p].has_hidden) CHECK(r[p].expert_rows > 0);
    }
    free(r);
    laguna_model_free(m);
}

static void test_checkpoints_match_transformers(void) {
    for (int i = 0; i < N_VARIANTS; i++) {
        char dir[256], golden[320];
        snprintf(dir, sizeof dir, "tests/data/variants/%s", variants[i].name);
        snprintf(golden, sizeof golden, "%s/golden.safetensors", dir);
        verify_model(dir, golden, 1);
        verify_model(dir, golden, 4);
    }
}

static void test_bf16_gguf_or_clear_refusal(void) {
    for (int i = 0; i < N_VARIANTS; i++) {
        char dir[256], golden[320], dst[512];
        snprintf(dir, sizeof dir, "tests/data/variants/%s", variants[i].name);
        snprintf(golden, sizeof golden, "%s/golden.safetensors", dir);
        char *d = tu_temp_dir();
        snprintf(dst, sizeof dst, "%s/model.gguf", d);
        lg_quantize_options opt = {.n_threads = 2};
        CHECK(lg_ftype_parse("bf16", &opt.ftype) == 0);
        laguna_error err = {0};
        lg_quantize_stats stats;
        laguna_status st = lg_quantize_model(dir, dst, &opt, &stats, &err);
        if (variants[i].gguf_refusal) {
            CHECKF(st == LAGUNA_ERR_UNSUPPORTED && strstr(err.message, variants[i].gguf_refusal), "%s: status %d '%s'",
                   variants[i].name, st, err.message);
            FILE *f = fopen(dst, "rb"); /* nothing left under the destination name */
            CHECKF(f == NULL, "%s: a refused GGUF was left behind", variants[i].name);
            if (f) fclose(f);
        } else {
            CHECKF(st == LAGUNA_OK, "%s: %s", variants[i].name, err.message);
            if (st == LAGUNA_OK) verify_model(dst, golden, 2);
        }
        tu_remove_dir(d);
    }
}

int main(void) {
    RUN(test_checkpoints_match_transformers);
    RUN(test_bf16_gguf_or_clear_refusal);
    return test_summary();
}
