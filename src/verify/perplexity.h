/* Perplexity of a token sequence and the routing it causes: the model's
 * mean negative log-likelihood of each next token, and how often each
 * expert of each sparse layer was chosen. */
#ifndef LAGUNA_VERIFY_PERPLEXITY_H
#define LAGUNA_VERIFY_PERPLEXITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

typedef struct {
    double nll_sum;     /* natural log */
    int64_t n_predicted;
    int64_t *expert_load; /* [n_layers][n_experts] choices, or NULL when not asked */
} lg_perplexity_result;

/* Scores tokens in windows of `window` positions (0 = the model's maximum),
 * each window starting a fresh context; the first token of each window is
 * context only. With want_load, result->expert_load is allocated (caller frees). */
laguna_status lg_perplexity(laguna_model *model, const int32_t *tokens, size_t n_tokens, int window,
                            laguna_kv_type kv_type, bool want_load, lg_perplexity_result *result, laguna_error *err);

#endif
