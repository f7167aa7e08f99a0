/* Comparison of the engine with a golden reference file (the fixtures'
 * format: tokens.P, logits.P, hidden.P, experts.LK.P, greedy40.P). */
#ifndef LAGUNA_VERIFY_VERIFY_H
#define LAGUNA_VERIFY_VERIFY_H

#include <stdbool.h>

#include "laguna.h"

typedef struct {
    char prompt[32];        /* "p13" */
    int n_tokens;
    double logits_rel_err;  /* ||ours - ref|| / ||ref|| over all positions */
    double top1_agreement;  /* fraction of positions whose argmax agrees */
    double mean_kl;         /* mean KL(ref || ours) of next-token distributions */
    bool has_hidden;
    double hidden_rel_err;
    int expert_layers;      /* sparse layers with reference experts */
    int expert_mismatches;  /* (token, layer) rows whose chosen experts differ */
    int expert_rows;
    bool has_greedy;
    int greedy_len;
    int greedy_match;       /* leading tokens that agree */
} lg_verify_result;

typedef struct {
    double rel_tol;         /* logits and hidden states; fixtures: 1e-4 */
    bool require_experts;   /* identical chosen experts */
    bool require_greedy;    /* identical greedy continuations */
    /* Distribution criteria over all positions of all prompts together, used
     * for lower-precision weights instead of the three above when
     * distribution_only is set. */
    bool distribution_only;
    double min_top1;        /* fraction of positions whose argmax agrees */
    double max_mean_kl;     /* mean KL(reference || ours), nats */
    const char *name;       /* what the tolerance is for, for messages */
} lg_verify_tolerance;

/* Aggregate over prompts, weighted by positions. */
typedef struct {
    int n_positions;
    double top1_agreement;
    double mean_kl;
    double max_logits_rel_err;
} lg_verify_summary;

/* Runs every prompt of the golden file; *results (caller frees) gets one entry
 * per prompt in the file's order. */
laguna_status lg_verify_run(laguna_model *model, const char *golden_path, lg_verify_result **results, int *n_results,
                            laguna_error *err);

bool lg_verify_passes(const lg_verify_result *r, const lg_verify_tolerance *tol);

void lg_verify_summarize(const lg_verify_result *r, int n, lg_verify_summary *s);
bool lg_verify_summary_passes(const lg_verify_summary *s, const lg_verify_tolerance *tol);

/* The tolerance this engine holds a model to, from the dtype of its routed
 * expert (or dense) weights: float weights get the fixtures' 1e-4 relative
 * error with identical experts and greedy tokens; quantised weights get the
 * top-1 / mean-KL bounds of their type (docs/quantization.md). */
lg_verify_tolerance lg_verify_default_tolerance(const laguna_model *model);

#endif
