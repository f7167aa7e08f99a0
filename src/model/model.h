/* The loaded model: config, weights bound per layer, RoPE tables, and the
 * backend that runs it.
 *
 * Weight matrices point into memory the backend adopted (for the CPU the
 * mapped or copied tensor data itself); the small float vectors (norm
 * weights, biases, expert bias) are float32 copies made by the model and
 * adopted the same way. */
#ifndef LAGUNA_MODEL_MODEL_H
#define LAGUNA_MODEL_MODEL_H

#include "backend/backend.h"
#include "io/tensor_source.h"
#include "model/config.h"
#include "model/rope.h"

typedef lg_swiglu_weights lg_mlp_weights;
typedef struct lg_comm lg_comm;   /* parallel/comm.h */
typedef struct lg_group lg_group; /* parallel/group.h */

typedef struct {
    int n_heads;                 /* query heads of this layer */
    lg_attention_kind attention_kind;
    lg_mlp_kind mlp_kind;
    lg_gate_mode gate_mode;      /* decided by g_proj's row count */
    float *input_norm, *post_attention_norm, *q_norm, *k_norm;
    lg_matrix q_proj, k_proj, v_proj, o_proj, g_proj;
    float *q_bias, *k_bias, *v_bias, *o_bias, *g_bias; /* NULL when absent */

    lg_mlp_weights dense;        /* dense layers */

    lg_matrix router;            /* sparse layers: [n_experts, hidden] */
    float *expert_bias;          /* e_score_correction_bias: selection only */
    lg_mlp_weights *experts;     /* n_experts */
    int expert_begin, expert_end; /* the experts this device runs; both 0 = all (see lg_moe_plan) */
    lg_mlp_weights shared_expert;
    bool has_shared_expert;
} lg_layer;

struct laguna_model {
    lg_config cfg;
    lg_tensor_source *tensors;
    lg_matrix embed_tokens;      /* [vocab, hidden] */
    lg_matrix lm_head;           /* embed_tokens when tied */
    float *final_norm;
    lg_layer *layers;
    lg_rope_table rope[2];       /* indexed by lg_attention_kind */
    const float *rope_inv_freq[2]; /* the tables' inv_freq as the backend reads it */
    lg_backend *backend;
    uint64_t synth_seed;         /* tensors without data are generated from it (model_synth.c) */
    struct lg_threadpool *synth_pool; /* while generating them on the host */
    uint8_t *synth_chunk;        /* host huge-page chunk the small generated matrices share */
    size_t synth_chunk_used, synth_chunk_bytes;
    void (*progress)(void *user, double fraction); /* while binding (laguna_model_options) */
    void *progress_user;
    bool file_layout; /* never rearranged for the backend (lg_model_open_source) */
    laguna_model_info info;
    /* Several devices (src/parallel/). On one rank's view of the model, its
     * matrices are the rank's slices and cfg's head counts and widths the
     * rank's; the attention and MLP outputs are partial sums that forward.c
     * adds up over comm, and lm_head holds the rank's share of the
     * vocabulary. NULL on one device. */
    lg_comm *comm;
    /* On the model laguna_model_open returns for several devices: the ranks
     * that run it (contexts run their steps there). NULL on one device. */
    lg_group *group;
};

/* The end of laguna_model_open, for any config and tensor source: makes the
 * backend of options->device, checks that the weights fit a device's memory,
 * binds the tensors (`source` names them in messages) and fills the info.
 * Tensors without data are generated from synth_seed (model_synth.h).
 * file_layout: keep the file's layout (no rearranging for the backend's
 * kernels: a model that parallel/ will slice). Takes cfg's arrays and the
 * source in every case (freed on failure). */
laguna_status lg_model_open_source(lg_config *cfg, lg_tensor_source *tensors, const char *source, uint64_t synth_seed,
                                   bool file_layout, const laguna_model_options *options, laguna_model **out,
                                   laguna_error *err);

/* Binds every tensor the config calls for, checking names, shapes and dtypes.
 * On success the model owns cfg's arrays and the tensor source. */
laguna_status lg_model_bind(laguna_model *model, lg_config *cfg, lg_tensor_source *tensors,
                            const char *source, laguna_error *err);
void lg_model_unbind(laguna_model *model);

/* Parameter counts: every weight, and the weights one token reads. */
void lg_model_count_params(const lg_config *cfg, int64_t *total, int64_t *active);

/* Weight bytes one decoded token reads (attention, dense MLPs, router, top-k
 * experts, shared expert, lm_head, one embedding row): the memory-bandwidth
 * floor of decoding. */
uint64_t lg_model_decode_bytes(const laguna_model *m);

#endif
