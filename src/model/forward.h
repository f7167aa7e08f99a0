/* The Laguna forward pass over one step: a batch of rows from any mix of
 * sequences, each with its token, position and KV page tables. */
#ifndef LAGUNA_MODEL_FORWARD_H
#define LAGUNA_MODEL_FORWARD_H

#include "backend/backend.h"
#include "model/model.h"

/* Work buffers in backend memory for steps of up to n_rows rows, sized
 * exactly for this model (allocated once per context). */
typedef struct {
    int n_rows, n_logit_rows; /* capacity; lm_head runs n_logit_rows at a time */
    size_t bytes;
    void *block;              /* one backend allocation holding everything below */
    float *x, *h, *q, *k, *v, *attn, *gate, *proj, *mlp; /* residual, normed, attention */
    float *act_gate, *act_up, *expert_in, *expert_out;   /* routed experts: [rows * top_k] */
    float *shared_gate, *shared_up, *shared_out;         /* shared expert: [rows] */
    float *router_logits, *route_weight;
    int32_t *route_expert;
    lg_moe_plan plan;
    float *head_in,
        *logits; /* lm_head's input rows, and its output (a rank's columns on several devices) */
    float *host_logits; /* [n_logit_rows][vocab] host memory (malloc) for argmax rows whose logits
                           must come to the host: gathered over devices, or a backend without
                           argmax_rows off the host; NULL when not needed */
    void *host_copy;          /* host memory for observers when the backend's is not */
    size_t host_copy_bytes;
} lg_activations;

laguna_status lg_activations_init(lg_activations *a, const laguna_model *m, int n_rows, laguna_error *err);
void lg_activations_free(lg_activations *a, lg_backend *be);

typedef struct {
    int n_rows;
    const int32_t *tokens, *pos;  /* [n_rows] (host) */
    const int32_t *slots;         /* [n_layers][n_rows] (host): each row's KV pool slot in each layer */
    const int32_t *const *tables; /* [n_layers][n_rows] (host): each row's page table in each layer */
    const int32_t *fresh_from, *fresh_at, *fresh_rows; /* [n_rows] (host): see lg_attention_args */
    int n_logit_rows;
    const int32_t *logit_rows;    /* rows whose logits are wanted, ascending (host) */
    float *logits;                /* [n_logit_rows][vocab] (host) */
    int n_argmax_rows;
    const int32_t *argmax_rows; /* rows whose greedy token alone is wanted, ascending (host) */
    int32_t *argmax; /* [n_argmax_rows] (host): their tokens (lg_argmax_f32 of their logits) */
} lg_step;

/* Runs one step: writes every row's keys and values into the pool, attends
 * over the pool and the step's own rows, and writes the wanted logits and
 * greedy tokens (the latter found on the device when the backend can). */
void lg_forward(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, const lg_kv_pool_view *pool,
                const lg_step *step, const laguna_observer *observer);

/* Per context: how large the backend's scratch must be. */
lg_ctx_sizes lg_forward_ctx_sizes(const laguna_model *m, int max_keys);

#endif
