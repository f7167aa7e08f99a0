/* The Laguna forward pass over a batch of consecutive tokens. */
#ifndef LAGUNA_MODEL_FORWARD_H
#define LAGUNA_MODEL_FORWARD_H

#include "kernels/kernels.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

/* Work buffers for batches of up to n_batch tokens (allocated once per session). */
typedef struct {
    int n_batch;
    float *x, *h, *q, *k, *v, *attn, *gate, *proj; /* residual, normed, attention */
    float *mlp, *act_gate, *act_up, *expert_in, *expert_out; /* MLP */
    float *router_logits, *route_weight;
    int32_t *route_expert;          /* [n_batch][top_k] chosen experts */
    int *expert_count, *expert_rows; /* grouping of (token, slot) by expert */
    int *pos;
    lg_matmul_op *ops;              /* 2 * (n_experts + 1) products of one MoE step */
} lg_activations;

laguna_status lg_activations_init(lg_activations *a, const lg_config *cfg, int n_batch, laguna_error *err);
void lg_activations_free(lg_activations *a);

/* Runs tokens[0..n) at positions pos0.. through the model, reading and
 * extending the cache (which holds positions [0, pos0)). Writes logits for
 * every token to `logits` when all_logits, else only the last token's, and
 * none when logits is NULL. */
void lg_forward(const laguna_model *m, lg_kernel_ctx *k, lg_activations *a, lg_kv_cache *cache, const int32_t *tokens,
                int n, int pos0, float *logits, bool all_logits, const laguna_observer *observer);

#endif
