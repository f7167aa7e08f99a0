/* laguna verify DIR GOLDEN: per prompt, the relative error of logits and
 * hidden states, expert agreement and greedy agreement against a reference
 * file; exits 0 only when every prompt is within tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "verify/verify.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna verify [-m] MODEL GOLDEN.safetensors [--tol REL] [--min-top1 F --max-kl F] [--threads N] [--device cpu|cuda[:N]] [--devices cuda:0,cuda:1,...|cpu:N] [--load auto|mmap|copy] [--bf16-activations]\n"
               "  MODEL         a checkpoint folder or a GGUF file\n"
               "  --tol REL     relative-error tolerance for logits and hidden states (default 1e-4)\n"
               "  --min-top1 F, --max-kl F  judge by top-1 agreement and mean KL over all positions instead\n"
               "                (the default for quantised weights, with bounds per type)\n"
               "  --threads N   compute threads (default: all cores)\n"
               "  --bf16-activations  CPU, bf16 weights: activations rounded to bf16 (the tolerance\n"
               "                becomes top-1 >= 0.90, mean KL <= 5e-3)\n");
}

int cmd_verify(int argc, char **argv) {
    const char *dir = NULL, *golden = NULL;
    laguna_model_options mo = {0};
    float user_tol = -1, min_top1 = -1, max_kl = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int shared;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tol")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float("--tol", v, 0, 1e9, &user_tol)) return 2;
        } else if (!strcmp(argv[i], "--min-top1")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float("--min-top1", v, 0, 1, &min_top1)) return 2;
        } else if (!strcmp(argv[i], "--max-kl")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float("--max-kl", v, 0, 1e9, &max_kl)) return 2;
        } else if ((shared = arg_model_option(argc, argv, &i, &mo))) {
            if (shared < 0) return 2;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(dir = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "-t")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int("--threads", v, 0, 512, &mo.n_threads)) return 2;
        } else if (argv[i][0] == '-') {
            return arg_usage_error("unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else if (!golden) {
            golden = argv[i];
        } else {
            return arg_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir) return arg_usage_error("missing -m MODEL");
    if (!golden) return arg_usage_error("missing the golden file (GOLDEN.safetensors)");
    laguna_error err = {0};
    laguna_model *m;
    if (laguna_model_open(dir, &mo, &m, &err)) {
        fprintf(stderr, "laguna verify: %s\n", err.message);
        return 1;
    }
    model_options_note(&mo, m);
    lg_verify_tolerance tol = lg_verify_default_tolerance(m);
    if (user_tol >= 0) tol.rel_tol = user_tol;
    if (min_top1 >= 0 || max_kl >= 0) {
        tol.distribution_only = true;
        tol.name = "given";
        if (min_top1 >= 0) tol.min_top1 = min_top1;
        if (max_kl >= 0) tol.max_mean_kl = max_kl;
    }
    lg_verify_result *res;
    int n;
    if (lg_verify_run(m, golden, &res, &n, &err)) {
        fprintf(stderr, "laguna verify: %s\n", err.message);
        laguna_model_free(m);
        return 1;
    }
    int failed = 0;
    printf("%-8s %6s %12s %12s %8s %10s %12s %9s  %s\n", "prompt", "tokens", "logits_rel", "hidden_rel", "top1", "mean_kl",
           "experts", "greedy", "verdict");
    for (int i = 0; i < n; i++) {
        const lg_verify_result *r = &res[i];
        char hidden[32] = "-", experts[32] = "-", greedy[32] = "-";
        if (r->has_hidden) snprintf(hidden, sizeof hidden, "%.3e", r->hidden_rel_err);
        if (r->expert_rows) snprintf(experts, sizeof experts, "%d/%d", r->expert_rows - r->expert_mismatches, r->expert_rows);
        if (r->has_greedy) snprintf(greedy, sizeof greedy, "%d/%d", r->greedy_match, r->greedy_len);
        bool ok = lg_verify_passes(r, &tol);
        const char *verdict = tol.distribution_only ? "-" : ok ? "ok" : "FAIL";
        failed += !ok;
        printf("%-8s %6d %12.3e %12s %8.4f %10.2e %12s %9s  %s\n", r->prompt, r->n_tokens, r->logits_rel_err, hidden,
               r->top1_agreement, r->mean_kl, experts, greedy, verdict);
    }
    lg_verify_summary sum;
    lg_verify_summarize(res, n, &sum);
    printf("all      %6d %12.3e %12s %8.4f %10.2e\n", sum.n_positions, sum.max_logits_rel_err, "", sum.top1_agreement,
           sum.mean_kl);
    if (tol.distribution_only) {
        failed = !lg_verify_summary_passes(&sum, &tol);
        printf("%s: %s tolerance: top-1 agreement %.4f (need >= %.2f), mean KL %.2e (need <= %.2e)\n", failed ? "FAIL" : "PASS",
               tol.name, sum.top1_agreement, tol.min_top1, sum.mean_kl, tol.max_mean_kl);
    } else {
        printf("%s: %d of %d prompts within tolerance (rel %.1e, identical experts and greedy tokens)\n",
               failed ? "FAIL" : "PASS", n - failed, n, tol.rel_tol);
    }
    free(res);
    laguna_model_free(m);
    return failed ? 1 : 0;
}
